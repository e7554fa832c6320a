#!/bin/bash
# Relay at cluster scale: what `ferry run --backend userspace --intercept on`
# holds with N intercepted frontends (one TCP cluster IP service each, from
# a manifest directory): descriptors (/proc/PID/fd), RSS, time from start to
# the redirects programmed, and whether the first and last service answer
# through it. Issue 12, goal 5: 100k frontends and 2 workers under 1,000
# descriptors.
#
#   sudo bench/relay_scale.sh [BUILD_DIR]          (default ./build)
#
# Knobs: SIZES (default "1000 10000 100000"), WORKERS (2), EPS (endpoints
# per service, 1), WAIT_S (per size, for the redirects: 240), BASE (a
# second build dir measured the same way, e.g. the code before a change,
# at the sizes BASE_SIZES, default SIZES),
# OUT (/tmp/ferry-relay-scale). Results: stdout and $OUT/relay_scale.{md,csv}.
#
# Topology, namespaces made here and removed on exit:
#   client 10.202.1.2 --veth-- 10.202.1.1  node (ferry)  10.202.2.1 --veth-- 10.202.2.2.. backends
# Cluster IPs 10.96.0.0/12 are routed from the node towards the backends
# (as a node routes its service CIDR somewhere); only the interception
# brings them to the relay. The host's network is untouched.
set -u

BUILD=${1:-./build}
SIZES=${SIZES:-1000 10000 100000}
WORKERS=${WORKERS:-2}
EPS=${EPS:-1}
WAIT_S=${WAIT_S:-240}
BASE=${BASE:-}
BASE_SIZES=${BASE_SIZES:-$SIZES}
OUT=${OUT:-/tmp/ferry-relay-scale}
RB=$BUILD/bench/relay_bench
TAG=ferry-scale-$$
NS_C=$TAG-c
NS_N=$TAG-n
NS_B=$TAG-b
TMP=
PIDS=()

die() { echo "relay_scale.sh: $*" >&2; exit 1; }

cleanup() {
	local p ns
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for ns in "$NS_C" "$NS_N" "$NS_B"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "$TMP" ] && rm -rf "$TMP"
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$BUILD/ferry" ] || die "$BUILD/ferry not built"
[ -x "$RB" ] || die "$RB not built (make relay_bench)"
trap cleanup EXIT
trap 'exit 1' INT TERM
TMP=$(mktemp -d /tmp/ferry-relay-scale.XXXXXX)
mkdir -p "$OUT"

for ns in "$NS_C" "$NS_N" "$NS_B"; do
	ip netns add "$ns" || die "cannot create namespace $ns"
	ip -n "$ns" link set lo up
done
ip -n "$NS_C" link add c0 type veth peer name n0 netns "$NS_N" || die veth
ip -n "$NS_N" link add n1 type veth peer name b0 netns "$NS_B" || die veth
ip -n "$NS_C" addr add 10.202.1.2/24 dev c0
ip -n "$NS_N" addr add 10.202.1.1/24 dev n0
ip -n "$NS_N" addr add 10.202.2.1/24 dev n1
ip -n "$NS_B" addr add 10.202.2.2/24 dev b0
for l in "$NS_C c0" "$NS_N n0" "$NS_N n1" "$NS_B b0"; do
	set -- $l
	ip -n "$1" link set "$2" up
done
ip -n "$NS_C" route add default via 10.202.1.1
ip -n "$NS_B" route add default via 10.202.2.1
ip -n "$NS_N" route add 10.96.0.0/12 via 10.202.2.2
ip netns exec "$NS_N" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NS_N" nft list tables >/dev/null 2>&1 || die "nf_tables is not usable in a namespace"

ip netns exec "$NS_B" "$RB" server --listen 10.202.2.2:9000 --threads 1 >"$TMP/server.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 50); do grep -q ready "$TMP/server.log" && break; sleep 0.1; done

# svc_ip I: service I's cluster IP (0-based), inside 10.96.0.0/12.
svc_ip() { echo "10.$(( 96 + $1 / 65536 )).$(( $1 / 256 % 256 )).$(( $1 % 256 ))"; }

# gen DIR N: N services (TCP 80 -> 9000), each with one slice of EPS
# endpoints (10.202.2.2 first; the others never answer), 1000 per file.
gen() {
	rm -rf "$1"
	mkdir -p "$1"
	awk -v n="$2" -v eps="$EPS" -v dir="$1" 'BEGIN {
		for (i = 0; i < n; i++) {
			f = sprintf("%s/svc-%04d.yaml", dir, int(i / 1000))
			ip = sprintf("10.%d.%d.%d", 96 + int(i / 65536), int(i / 256) % 256, i % 256)
			printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d, namespace: default}\n", i > f
			printf "spec:\n  type: ClusterIP\n  ipFamilies: [IPv4]\n  clusterIP: \"%s\"\n  clusterIPs: [\"%s\"]\n", ip, ip > f
			printf "  ports:\n  - {name: http, protocol: TCP, port: 80, targetPort: 9000}\n" > f
			printf "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s%d-1\n", i > f
			printf "  namespace: default\n  labels: {kubernetes.io/service-name: s%d}\naddressType: IPv4\n", i > f
			printf "ports:\n- {name: http, protocol: TCP, port: 9000}\nendpoints:\n" > f
			for (e = 0; e < eps; e++)
				printf "- addresses: [\"10.202.%d.%d\"]\n  conditions: {ready: true, serving: true, terminating: false}\n", 2 + int(e / 250), 2 + e % 250 > f
			if (i % 1000 == 999) close(f)
		}
	}'
}

# reach VIP: one short connection from the client through VIP:80.
reach() {
	ip netns exec "$NS_C" "$RB" crr --target "$1:80" --clients 1 --conns 1 --max-seconds 3 >/dev/null 2>&1
}

RESULTS=()
# measure NAME FERRY N: start that ferry on the manifests of N services,
# wait for its redirects, record descriptors, RSS, time, reachability.
measure() {
	local name=$1 bin=$2 n=$3 fpid t0 t1 ms="" fds="" rss="" status=ok i first last
	ip netns exec "$NS_N" "$bin" run --source "dir:$TMP/m" --backend userspace --intercept on \
		--workers "$WORKERS" --log-level info >"$TMP/$name-$n.log" 2>&1 &
	fpid=$!
	PIDS+=("$fpid")
	t0=$(date +%s%N)
	for i in $(seq 1 $(( WAIT_S * 10 ))); do
		grep -q "intercept: $n redirects" "$TMP/$name-$n.log" && break
		kill -0 "$fpid" 2>/dev/null || break
		sleep 0.1
	done
	t1=$(date +%s%N)
	if grep -q "intercept: $n redirects" "$TMP/$name-$n.log"; then
		ms=$(( (t1 - t0) / 1000000 ))
		sleep 1
		fds=$(ls "/proc/$fpid/fd" 2>/dev/null | wc -l)
		rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$fpid/status" 2>/dev/null)
		first=$(svc_ip 0)
		last=$(svc_ip $(( n - 1 )))
		reach "$first" && reach "$last" || status="not reachable ($first or $last)"
	elif kill -0 "$fpid" 2>/dev/null; then
		fds=$(ls "/proc/$fpid/fd" 2>/dev/null | wc -l)
		rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$fpid/status" 2>/dev/null)
		status="no redirects after ${WAIT_S} s: $(grep -c 'warn\|error' "$TMP/$name-$n.log") warnings, last: $(grep 'warn\|error' "$TMP/$name-$n.log" | tail -n1 | cut -c1-120 | tr ',' ' ')"
	else
		status="exited: $(tail -n1 "$TMP/$name-$n.log" | cut -c1-120 | tr ',' ' ')"
	fi
	kill -TERM "$fpid" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$fpid" 2>/dev/null
	echo "relay_scale.sh: $name n=$n: ${ms:-?} ms, ${fds:-?} fds, ${rss:-?} MiB, $status" >&2
	RESULTS+=("$name,$n,$ms,$fds,$rss,$status")
}

for n in $SIZES; do
	gen "$TMP/m" "$n"
	measure ferry "$BUILD/ferry" "$n"
	[ -n "$BASE" ] && [[ " $BASE_SIZES " == *" $n "* ]] && measure ferry-base "$BASE/ferry" "$n"
done

CSV=$OUT/relay_scale.csv
MD=$OUT/relay_scale.md
echo "build,frontends,ms_to_redirects,fds,rss_mib,status" >"$CSV"
{
	echo "Relay at scale, $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, workers=$WORKERS, $EPS endpoint(s) per service, --intercept on, ulimit -n $(ulimit -n)"
	echo
	echo "| build | frontends | start to redirects ms | descriptors | RSS MiB | status |"
	echo "|---|---|---|---|---|---|"
} >"$MD"
for r in "${RESULTS[@]}"; do
	IFS=, read -r name n ms fds rss status <<<"$r"
	echo "$r" >>"$CSV"
	echo "| $name | $n | ${ms:--} | ${fds:--} | ${rss:--} | $status |" >>"$MD"
done
cat "$MD"
