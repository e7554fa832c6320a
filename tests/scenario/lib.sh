# Shared plumbing for the scenario tests (sourced, not run).
#
# A test calls `lib_init NAME` first. From then on every namespace it makes
# with ns_new, every process it starts with bg_start/echo_start/ferry_start,
# and the temp dir $T are removed by an EXIT trap, whatever way the test ends.
#
# Rules the functions keep: traffic goes only to loopback or to addresses in
# namespaces made here; nothing touches the host namespace's network setup
# (veth pairs are created inside our namespaces, never in the host); every
# wait is a bounded poll.
#
# Environment (set by CTest): FERRY_BIN, FERRY_HELPERS, FERRY_TESTS_DIR.

LIB_NAME=
LIB_PIDS=()
LIB_NS=()
T=
FERRY_PID=
FERRY_LOG=

say() { printf '%s: %s\n' "$LIB_NAME" "$*"; }

skip() {
	printf '%s: SKIP: %s\n' "$LIB_NAME" "$*"
	exit 77
}

# Print the message, the tail of ferry's log, and fail the test.
fail() {
	printf '%s: FAIL: %s\n' "$LIB_NAME" "$*"
	if [ -n "$FERRY_LOG" ] && [ -s "$FERRY_LOG" ]; then
		echo "---- last lines of ferry's log ($FERRY_LOG) ----"
		tail -n 30 "$FERRY_LOG"
		echo "----"
	fi
	exit 1
}

pass() {
	printf '%s: PASS\n' "$LIB_NAME"
	exit 0
}

# Milliseconds on a monotonic-enough clock (date is fine at this scale).
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

lib_cleanup() {
	local pid ns i
	# SIGTERM first, then SIGKILL whatever is left after a bounded wait.
	for pid in "${LIB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for i in $(seq 1 20); do
		local alive=0
		for pid in "${LIB_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${LIB_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	# Anything still inside our own namespaces was started by this test.
	for ns in "${LIB_NS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "$T" ] && [ -d "$T" ] && [ -z "$FERRY_KEEP_TMP" ] && rm -rf "$T"
}

# lib_init NAME: check prerequisites, make $T, install the cleanup trap.
lib_init() {
	LIB_NAME=$1
	[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
	command -v ip >/dev/null || skip "iproute2 (ip) not installed"
	[ -n "$FERRY_BIN" ] && [ -x "$FERRY_BIN" ] || fail "FERRY_BIN ('$FERRY_BIN') is not an executable"
	[ -n "$FERRY_HELPERS" ] && [ -x "$FERRY_HELPERS/echo_server" ] && [ -x "$FERRY_HELPERS/probe_client" ] ||
		fail "FERRY_HELPERS ('$FERRY_HELPERS') lacks echo_server/probe_client"
	ECHO_SERVER=$FERRY_HELPERS/echo_server
	PROBE=$FERRY_HELPERS/probe_client
	T=$(mktemp -d "/tmp/ferry-$LIB_NAME.XXXXXX") || fail "mktemp"
	mkdir -p "$T/manifests"
	trap lib_cleanup EXIT
	trap 'exit 1' INT TERM
}

# ns_new VAR SUFFIX: create namespace ferry-NAME-PID-SUFFIX with lo up and
# store its name in VAR (not via $(...): the namespace list must be kept in
# this shell for the cleanup trap). Skips the test if namespaces cannot be made.
ns_new() {
	local ns="ferry-$LIB_NAME-$$-$2"
	ip netns add "$ns" 2>"$T/netns.err" || skip "cannot create a network namespace: $(cat "$T/netns.err")"
	LIB_NS+=("$ns")
	ip -n "$ns" link set lo up || fail "cannot bring lo up in $ns"
	printf -v "$1" '%s' "$ns"
}

# ns_link NS1 IF1 NS2 IF2: a veth pair between two of our namespaces,
# created directly inside NS1 (the host namespace never sees it).
ns_link() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3" || fail "veth $1/$2 <-> $3/$4"
	ip -n "$1" link set "$2" up || fail "link up $1/$2"
	ip -n "$3" link set "$4" up || fail "link up $3/$4"
}

# ns_addr NS IF ADDR/LEN: add an address (IPv6 without duplicate detection,
# so it is usable at once).
ns_addr() {
	case "$3" in
	*:*) ip -n "$1" addr add "$3" dev "$2" nodad || fail "addr $3 on $1/$2" ;;
	*) ip -n "$1" addr add "$3" dev "$2" || fail "addr $3 on $1/$2" ;;
	esac
}

# bg_start NS LOG CMD...: run CMD in NS in the background, output to LOG;
# sets BG_PID (the command's own pid: ip netns exec execs it).
bg_start() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 &
	BG_PID=$!
	LIB_PIDS+=("$BG_PID")
}

# echo_start NS NAME LISTEN... [--tcp|--udp]: start a named echo server and
# wait (at most 5 s) until it says "ready".
echo_start() {
	local ns=$1 name=$2 i
	shift 2
	local args=()
	for a in "$@"; do
		case "$a" in
		--*) args+=("$a") ;;
		*) args+=(--listen "$a") ;;
		esac
	done
	bg_start "$ns" "$T/echo-$name.log" "$ECHO_SERVER" --name "$name" "${args[@]}"
	for i in $(seq 1 50); do
		grep -q '^ready' "$T/echo-$name.log" 2>/dev/null && return 0
		kill -0 "$BG_PID" 2>/dev/null || fail "echo server $name died: $(cat "$T/echo-$name.log")"
		sleep 0.1
	done
	fail "echo server $name not ready after 5 s"
}

# ferry_start NS [extra args]: run `ferry run` on $T/manifests in NS.
# Sets FERRY_PID and FERRY_LOG.
ferry_start() {
	local ns=$1
	shift
	FERRY_LOG=$T/ferry.log
	bg_start "$ns" "$FERRY_LOG" "$FERRY_BIN" run --source "dir:$T/manifests" \
		--backend userspace --log-level debug "$@"
	FERRY_PID=$BG_PID
	sleep 0.1
	kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry exited at once"
}

# probe NS ARGS...: run probe_client in NS; its stdout and exit status pass through.
probe() {
	local ns=$1
	shift
	ip netns exec "$ns" "$PROBE" "$@"
}

# wait_answer NS PROTO TARGET [NAME]: poll (50 x 100 ms) until TARGET answers,
# and if NAME is given until NAME answers. Fails the test otherwise.
wait_answer() {
	local ns=$1 proto=$2 target=$3 name=$4 i out
	for i in $(seq 1 50); do
		out=$(probe "$ns" "$proto" "$target" --timeout-ms 300 2>/dev/null)
		if [ $? = 0 ]; then
			[ -z "$name" ] && return 0
			[ "${out%% *}" = "$name" ] && return 0
		fi
		[ -n "$FERRY_PID" ] && ! kill -0 "$FERRY_PID" 2>/dev/null && fail "ferry died while waiting for $proto $target"
		sleep 0.1
	done
	fail "$proto $target did not answer${name:+ from $name} within 5 s (last answer: '${out}')"
}

# names_count NS PROTO TARGET N: make N probes; set COUNTS to "COUNT NAME"
# lines (sorted by name) and print them. Fails the test if any probe fails.
# Call it directly, not in $(...), so a failure ends the test.
names_count() {
	local out rc
	out=$(probe "$1" "$2" "$3" --count "$4" --timeout-ms 1000)
	rc=$?
	[ "$rc" = 0 ] || fail "$2 $3: a probe among $4 failed (exit $rc); answers before it: $(echo $out)"
	COUNTS=$(echo "$out" | awk '{print $1}' | sort | uniq -c)
	echo "$COUNTS"
}

# count_of NAME < names_count output: how many times NAME answered.
count_of() {
	awk -v n="$1" '$2 == n {c = $1} END {print c + 0}'
}

# ---- manifests ----------------------------------------------------------

# mf_service FILE NAME IP PORTSPEC... [balance=MODE]
#   PORTSPEC is name/PROTO/port, e.g. tcp/TCP/8080. Writes one Service in
#   namespace default (single-stack; family from the IP).
mf_service() {
	local file=$1 name=$2 ip=$3 fam=IPv4 balance= p
	shift 3
	case "$ip" in *:*) fam=IPv6 ;; esac
	{
		echo "apiVersion: v1"
		echo "kind: Service"
		echo "metadata:"
		echo "  name: $name"
		echo "  namespace: default"
		for p in "$@"; do
			case "$p" in balance=*) balance=${p#balance=} ;; esac
		done
		if [ -n "$balance" ]; then
			echo "  annotations:"
			echo "    ferry.io/balance: $balance"
		fi
		echo "spec:"
		echo "  type: ClusterIP"
		echo "  ipFamilies: [$fam]"
		echo "  clusterIP: \"$ip\""
		echo "  clusterIPs: [\"$ip\"]"
		echo "  ports:"
		for p in "$@"; do
			case "$p" in balance=*) continue ;; esac
			IFS=/ read -r pn pp pport <<<"$p"
			echo "  - name: $pn"
			echo "    protocol: $pp"
			echo "    port: $pport"
		done
	} >"$file"
}

# mf_slice FILE NAME SERVICE PORTSPEC... -- ENDPOINT...
#   PORTSPEC is name/PROTO/port (the backends' port). ENDPOINT is ADDR or
#   ADDR,cond=value,... with cond among ready, serving, terminating
#   (defaults: ready=true serving=true terminating=false).
mf_slice() {
	local file=$1 name=$2 svc=$3 fam=IPv4 p
	shift 3
	local ports=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do ports+=("$1"); shift; done
	[ "$1" = "--" ] && shift
	case "${1%%,*}" in *:*) fam=IPv6 ;; esac
	{
		echo "apiVersion: discovery.k8s.io/v1"
		echo "kind: EndpointSlice"
		echo "metadata:"
		echo "  name: $name"
		echo "  namespace: default"
		echo "  labels:"
		echo "    kubernetes.io/service-name: $svc"
		echo "addressType: $fam"
		echo "ports:"
		for p in "${ports[@]}"; do
			IFS=/ read -r pn pp pport <<<"$p"
			echo "- name: $pn"
			echo "  protocol: $pp"
			echo "  port: $pport"
		done
		if [ $# = 0 ]; then
			echo "endpoints: []"
		else
			echo "endpoints:"
		fi
		for e in "$@"; do
			local addr=${e%%,*} ready=true serving=true terminating=false kv
			if [ "$addr" != "$e" ]; then
				IFS=, read -ra kvs <<<"${e#*,}"
				for kv in "${kvs[@]}"; do
					case "$kv" in
					ready=*) ready=${kv#ready=} ;;
					serving=*) serving=${kv#serving=} ;;
					terminating=*) terminating=${kv#terminating=} ;;
					esac
				done
			fi
			echo "- addresses: [\"$addr\"]"
			echo "  conditions:"
			echo "    ready: $ready"
			echo "    serving: $serving"
			echo "    terminating: $terminating"
		done
	} >"$file"
}
