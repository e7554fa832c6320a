#!/bin/bash
# nftables scaling benchmark: rule-lookup latency and programming cost as
# the number of services grows, ferry's nftables backend against
# kube-proxy-style rules and against no proxy at all.
#
#   sudo bench/nft_scale.sh [BUILD_DIR]      (default BUILD_DIR: ./build)
#   SIZES="100 1000 10000 30000 100000" OUT=/tmp/ferry-nft-scale
#   ROUNDS=30 BLOCK=100  latency: ROUNDS rounds of BLOCK connects per path
#   LAT_TIMEOUT=600      seconds at most for one interleaved measurement
#   PATHS="ferry none nat-floor iptables kube-nft"  (a subset for a narrower run)
#   NODES=100  endpoints spread over NODES nodes, ferry is node-0 (0: no
#              nodeName at all, the standalone-manifest shape)
#
# Topology, made here and removed on exit (nothing else is touched, traffic
# stays inside these namespaces): one client and one backend namespace, and
# between them four node namespaces side by side, each with its own veth
# pair on both sides, so that every path has the same hops and devices and
# differs only by its rules. The client picks the path by destination (its
# source address is then the one of that path's link, and the backend routes
# each client subnet back through the same node):
#
#   client 10.0.1.2 -- node       10.0.2.1 -- 10.0.2.2 backend  ferry's rules (or
#                                                               the iptables/kube-nft
#                                                               rulesets); 10.96.0.0/12
#          10.0.3.2 -- node-floor 10.0.4.1 -- 10.0.4.2          no rules (the floor)
#          10.0.5.2 -- node-ct    10.0.6.1 -- 10.0.6.2          a conntrack rule only
#          10.0.7.2 -- node-dnat  10.0.8.1 -- 10.0.8.2          one static DNAT rule,
#                                                               10.112.0.1:80 ->
#                                                               10.0.8.2:9000
# (nft_scale_bench serve listens on every backend address.)
#
# Latency is measured interleaved (nft_scale_bench interleave): ROUNDS rounds,
# each BLOCK sequential connects (each a new conntrack entry, so every one is
# a first packet) to every path in turn, order rotated per round; per path
# p50/p99 over all its connects, failures, and "p50 / floor": the median over
# rounds of p50(path) / p50(floor) within the round, so that load drifting
# on a shared machine cancels. Before each measurement a short check reads the
# nodes' interface counters and stops the run unless every path crosses its
# own node both ways and no other.
#
# For each N, services 10.96.0.1.. port 80, the target service placed last
# (its endpoints 10.0.2.2:9000-9009 are real, the others never contacted):
#   ferry:        `ferry run --backend nftables` on N services x 10 endpoints;
#                 full sync time (from empty; ferry's own log: building the
#                 batch + kernel commit), one endpoint change of the target
#                 (median of 5, ferry's log), ferry's RSS, connect latency
#                 (interleaved with none and nat-floor), and a restart: the
#                 new ferry takes the table over (reads it once, sends the
#                 difference; ferry's log);
#   iptables-legacy / iptables-nft: kube-proxy iptables-mode rules (a
#                 KUBE-SERVICES match per service, KUBE-SVC and KUBE-SEP
#                 chains; 1 endpoint per service) loaded with *-restore into
#                 the node once ferry has left it: load time (kube-proxy's
#                 iptables mode rewrites the table on each change, so this is
#                 also its change cost), connect latency interleaved with the
#                 floor in a step of its own;
#   kube-nft:     kube-proxy nftables-mode shape (a chain per service and per
#                 endpoint, 10 endpoints, verdict-map dispatch) with `nft -f`:
#                 load time and one endpoint change (new endpoint chains,
#                 service chain rewritten);
#   none:         connect straight to the backend through node-floor (the
#                 floor; its row is the one measured with ferry);
#   nat-floor:    what any NAT-based proxy pays on top of the floor:
#                 "conntrack-only" (node-ct: a ct state rule, no NAT) and
#                 "one-dnat-rule" (node-dnat: a single static DNAT rule for
#                 one virtual IP, no lookup at all).
# Every load is bounded by LOAD_TIMEOUT seconds ("timeout" in the table).
# Results: $OUT/nft_scale.csv, $OUT/nft_scale.md, $OUT/nft_scale.png (gnuplot).
set -u

BUILD=${1:-./build}
SIZES=${SIZES:-"100 1000 10000 30000 100000"}
ROUNDS=${ROUNDS:-30}
BLOCK=${BLOCK:-100}
LAT_TIMEOUT=${LAT_TIMEOUT:-600}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-120}
KUBE_NFT_MAX=${KUBE_NFT_MAX:-10000}
PATHS=${PATHS:-"ferry none nat-floor iptables kube-nft"}
NODES=${NODES:-100}
OUT=${OUT:-/tmp/ferry-nft-scale}
FERRY=$(readlink -f "$BUILD/ferry")
NB=$(readlink -f "$BUILD/bench/nft_scale_bench")
TAG=ferry-nsb-$$
C=$TAG-c
B=$TAG-b
N=$TAG-n
NF=$TAG-nf
NC=$TAG-nc
ND=$TAG-nd
NODE_NS=("$N" "$NF" "$NC" "$ND")
# The paths' targets: the floor and conntrack-only connect to the backend
# through their node, one-dnat-rule to its virtual IP.
FLOOR=none=10.0.4.2:9000
CT=conntrack-only=10.0.6.2:9000
DVIP=10.112.0.1
DNAT=one-dnat-rule=$DVIP:80
TMP=$(mktemp -d /tmp/ferry-nft-scale.XXXXXX)
PIDS=()

die() { echo "nft_scale.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$FERRY" ] && [ -x "$NB" ] || die "build ferry and nft_scale_bench first ($BUILD)"
for cmd in nft conntrack iptables-legacy-restore iptables-nft-restore; do
	command -v $cmd >/dev/null || die "$cmd missing (scripts/install-deps.sh)"
done

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for ns in $C $B "${NODE_NS[@]}"; do ip netns del $ns 2>/dev/null; done
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# new_ns NS: an empty namespace, loopback up, no IPv6 (no router
# solicitations or MLD reports in the path counters).
new_ns() {
	ip netns add $1 || die "cannot create namespace $1"
	ip -n $1 link set lo up
	ip netns exec $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# add_path NS K: node namespace NS as path K (1..4): client 10.0.(2K-1).2 on
# its device pK -- c0 10.0.(2K-1).1 NS 10.0.2K.1 b0 -- pK 10.0.2K.2 backend,
# and each end routes the other's subnet through NS.
add_path() {
	local ns=$1 k=$2 a=$(($2 * 2 - 1)) b=$(($2 * 2))
	new_ns $ns
	ip -n $C link add p$k type veth peer name c0 netns $ns || die "veth $ns"
	ip -n $ns link add b0 type veth peer name p$k netns $B || die "veth $ns"
	ip -n $C addr add 10.0.$a.2/24 dev p$k && ip -n $C link set p$k up
	ip -n $ns addr add 10.0.$a.1/24 dev c0 && ip -n $ns link set c0 up
	ip -n $ns addr add 10.0.$b.1/24 dev b0 && ip -n $ns link set b0 up
	ip -n $B addr add 10.0.$b.2/24 dev p$k && ip -n $B link set p$k up
	ip -n $C route add 10.0.$b.0/24 via 10.0.$a.1
	ip -n $B route add 10.0.$a.0/24 via 10.0.$b.1
	ip netns exec $ns sysctl -qw net.ipv4.ip_forward=1
}

new_ns $C
new_ns $B
add_path $N 1
add_path $NF 2
add_path $NC 3
add_path $ND 4
ip -n $C route add 10.96.0.0/12 via 10.0.1.1
ip -n $N route add 10.96.0.0/12 via 10.0.2.2
ip -n $C route add $DVIP/32 via 10.0.7.1
ip netns exec $NC nft -f - <<-NFT || die "node-ct rules"
	table ip nat_floor {
		chain pre { type filter hook prerouting priority -150; ct state new counter; }
	}
	NFT
ip netns exec $ND nft -f - <<-NFT || die "node-dnat rules"
	table ip nat_floor {
		chain nat_pre { type nat hook prerouting priority -100; ip daddr $DVIP tcp dport 80 dnat to 10.0.8.2:9000; }
		chain nat_post { type nat hook postrouting priority 100; }
	}
	NFT
ip netns exec $B "$NB" serve 0.0.0.0 9000 11 >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
sleep 0.3
grep -q ready "$TMP/serve.log" || die "backend server did not start: $(cat "$TMP/serve.log")"

mkdir -p "$OUT"
CSV=$OUT/nft_scale.csv
echo "services,path,connect_p50_us,connect_p99_us,failures,full_load_ms,one_change_ms,ferry_rss_mb,restart_takeover_ms,p50_over_floor" >"$CSV"

# target_ip N: cluster IP of the last service.
target_ip() {
	local a=$(( (10 << 24 | 96 << 16) + $1 ))
	echo "$((a >> 24)).$(((a >> 16) & 255)).$(((a >> 8) & 255)).$((a & 255))"
}

# ferry_first_sync LOG: start ferry on $TMP/m in the node namespace (pid in
# fp) and wait for its first sync; FIRST: its time in ms from ferry's log
# (or "timeout"), FIRST_KIND: "full" (replaced the tables) or "took-over".
ferry_first_sync() {
	local log=$1 i node=()
	[ "$NODES" -gt 0 ] && node=(--hostname-override node-0)
	ip netns exec $N "$FERRY" run --source "dir:$TMP/m" --backend nftables --log-level debug \
		--sync-period 1h "${node[@]}" >"$log" 2>&1 &
	fp=$!
	PIDS+=($fp)
	FIRST=timeout
	FIRST_KIND=
	for i in $(seq 1 $((LOAD_TIMEOUT * 10))); do
		if grep -q "nftables: full sync:" "$log"; then
			FIRST=$(grep -m1 "nftables: full sync:" "$log" | sed -E 's/.* in ([0-9.]+) ms \(build.*/\1/')
			FIRST_KIND=full
			return
		fi
		if grep -q "nftables: took over" "$log"; then
			FIRST=$(grep -m1 "nftables: took over" "$log" | sed -E 's/.* in ([0-9.]+) ms \(reading.*/\1/')
			FIRST_KIND=took-over
			return
		fi
		kill -0 $fp 2>/dev/null || return
		sleep 0.1
	done
}

# node_counters: rx packets of every node's c0 and b0, in NODE_NS order.
node_counters() {
	local ns
	for ns in "${NODE_NS[@]}"; do
		ip netns exec $ns cat /sys/class/net/c0/statistics/rx_packets /sys/class/net/b0/statistics/rx_packets
	done | tr '\n' ' '
}

# check_path NS NAME=ADDR:PORT: 50 connects to the target must cross node NS
# both ways (from the client at least SYN and ACK of each, from the backend
# at least the SYN-ACK) and no other node; stops the run otherwise.
check_path() {
	local ns=$1 name=${2%%=*} target=${2#*=} i dc db seen=
	local -a rx0 rx1
	read -ra rx0 <<<"$(node_counters)"
	ip netns exec $C "$NB" connect "$target" 50 >/dev/null
	read -ra rx1 <<<"$(node_counters)"
	for i in "${!NODE_NS[@]}"; do
		dc=$((rx1[2 * i] - rx0[2 * i]))
		db=$((rx1[2 * i + 1] - rx0[2 * i + 1]))
		seen="$seen ${NODE_NS[i]#$TAG-}:+$dc/+$db"
		if [ "${NODE_NS[i]}" = "$ns" ]; then
			[ $dc -ge 100 ] && [ $db -ge 50 ] ||
				die "path check: $name ($target) does not cross ${ns#$TAG-} both ways (rx from client/backend:$seen)"
		else
			[ $dc -le 5 ] && [ $db -le 5 ] ||
				die "path check: $name ($target) also crosses ${NODE_NS[i]#$TAG-} (rx from client/backend:$seen)"
		fi
	done
	echo "  path check: $name via ${ns#$TAG-}, rx from client/backend:$seen"
}

# interleaved NAME=ADDR:PORT...: latency of the paths interleaved, the first
# is the floor; results in $TMP/lat (lines "NAME p50 p99 failures ratio").
interleaved() {
	ip netns exec $C "$NB" interleave -r "$ROUNDS" -b "$BLOCK" -t "$LAT_TIMEOUT" "$@" >"$TMP/lat" 2>"$TMP/lat.err" ||
		die "interleave failed: $(cat "$TMP/lat.err")"
	sed 's/^/  /' "$TMP/lat.err"
}

# lat NAME FIELDS: fields (cut -f: 1 p50, 2 p99, 3 failures, 4 p50 / floor)
# of NAME in the last interleaved run, space-separated; NA when not measured.
lat() {
	{ [ -f "$TMP/lat" ] && cat "$TMP/lat"; } |
		awk -v n="$1" '$1 == n { print $2, $3, $4, $5; f = 1 } END { if (!f) print "NA NA NA NA" }' |
		cut -d' ' -f"$2"
}

# ms of a command run in the node namespace (bounded), or "timeout".
timed() {
	local t0 t1
	t0=$(date +%s%N)
	timeout "$LOAD_TIMEOUT" ip netns exec $N "$@" >/dev/null 2>"$TMP/timed.err" || { echo timeout; return; }
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000000 ))
}

# intact: the namespaces and $TMP are still there (a row is only written
# from a whole setup).
intact() {
	local ns list
	list=$(ip netns list)
	for ns in $C $B "${NODE_NS[@]}"; do
		grep -q "^$ns\b" <<<"$list" || return 1
	done
	[ -d "$TMP" ]
}
row() {
	intact || die "namespaces or $TMP removed from outside the script, at $1 services"
	echo "$*" | tr ' ' ',' >>"$CSV"
	echo "  $*"
}
want() { case " $PATHS " in *" $1 "*) return 0;; esac; return 1; }

for n in $SIZES; do
	echo "== $n services"
	tip=$(target_ip "$n")
	rm -f "$TMP/lat"

	# --- ferry nftables: start it, then the latency of every path
	# interleaved (ferry, the floor, the nat-floor rows) ---
	ferry_up=
	if want ferry; then
		rm -rf "$TMP/m" && mkdir -p "$TMP/m"
		"$NB" gen-ferry "$TMP/m" "$n" 10 "$NODES" || die "gen-ferry"
		ferry_first_sync "$TMP/ferry.log"
		full=$FIRST
		rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$fp/status 2>/dev/null)
		[ "$full" != timeout ] && ferry_up=1
	fi
	targets=("$FLOOR")
	if [ -n "$ferry_up" ]; then targets+=("ferry-nftables=$tip:80"); fi
	want nat-floor && targets+=("$CT" "$DNAT")
	if [ ${#targets[@]} -gt 1 ] || want none; then
		check_path $NF "$FLOOR"
		[ -n "$ferry_up" ] && check_path $N "ferry-nftables=$tip:80"
		if want nat-floor; then
			check_path $NC "$CT"
			check_path $ND "$DNAT"
		fi
		interleaved "${targets[@]}"
		if want nat-floor; then
			echo "  conntrack entries: node-ct $(ip netns exec $NC conntrack -C), node-dnat $(ip netns exec $ND conntrack -C)"
		fi
	fi

	if want ferry; then
		# One endpoint change of the target, 5 times (port 9000 <-> 9010).
		changes=()
		for k in 1 2 3 4 5; do
			[ -n "$ferry_up" ] || break
			before=$(grep -c "nftables: update:" "$TMP/ferry.log")
			if [ $((k % 2)) = 1 ]; then sed -i 's/"port":9000}/"port":9010}/' "$TMP/m/target.json"
			else sed -i 's/"port":9010}/"port":9000}/' "$TMP/m/target.json"; fi
			for i in $(seq 1 100); do
				[ "$(grep -c "nftables: update:" "$TMP/ferry.log")" -gt "$before" ] && break
				sleep 0.05
			done
			changes+=("$(grep "nftables: update:" "$TMP/ferry.log" | tail -1 | sed -E 's/.* in ([0-9.]+) ms$/\1/')")
		done
		one=$(printf '%s\n' "${changes[@]}" | sort -g | sed -n 3p)
		# Restart: the new process takes the table over (no change meanwhile).
		kill -TERM $fp; wait $fp 2>/dev/null
		restart=NA
		if [ -n "$ferry_up" ]; then
			ferry_first_sync "$TMP/ferry2.log"
			restart=$FIRST
			[ "$FIRST_KIND" = full ] && restart=replaced
			kill -TERM $fp; wait $fp 2>/dev/null
		fi
		row "$n ferry-nftables $(lat ferry-nftables 1-3) $full ${one:-NA} ${rss:-NA} $restart $(lat ferry-nftables 4)"
		grep -E "full sync|update:" "$TMP/ferry.log" | head -20 >"$OUT/ferry-$n.log"
		[ -n "$ferry_up" ] && grep -E "took over|full sync" "$TMP/ferry2.log" >>"$OUT/ferry-$n.log"
		ip netns exec $N "$FERRY" cleanup --backend nftables >/dev/null 2>&1
	fi

	# --- no proxy, and what any NAT-based proxy pays: connection tracking
	# alone, one static DNAT rule (no lookup at all); measured above with
	# ferry ---
	want none && row "$n none $(lat none 1-3) NA NA NA NA $(lat none 4)"
	if want nat-floor; then
		row "$n conntrack-only $(lat conntrack-only 1-3) NA NA NA NA $(lat conntrack-only 4)"
		row "$n one-dnat-rule $(lat one-dnat-rule 1-3) NA NA NA NA $(lat one-dnat-rule 4)"
	fi

	# --- kube-proxy iptables mode, legacy and nft back ends, in the node
	# ferry has left; latency interleaved with the floor in a step of its
	# own ---
	if want iptables; then
		"$NB" gen-iptables "$TMP/ipt.rules" "$n"
		for flavour in legacy nft; do
			load=$(timed sh -c "iptables-$flavour-restore < $TMP/ipt.rules")
			if [ "$load" = timeout ]; then
				row "$n iptables-$flavour NA NA NA timeout timeout NA NA NA"
			else
				check_path $N "iptables-$flavour=$tip:80"
				interleaved "$FLOOR" "iptables-$flavour=$tip:80"
				row "$n iptables-$flavour $(lat iptables-$flavour 1-3) $load $load NA NA $(lat iptables-$flavour 4)"
			fi
			ip netns exec $N iptables-$flavour -t nat -F 2>/dev/null
			ip netns exec $N iptables-$flavour -t nat -X 2>/dev/null
		done
	fi

	# --- kube-proxy nftables-mode shape (load and one change) ---
	if want kube-nft; then
		if [ "$n" -le "$KUBE_NFT_MAX" ]; then
			"$NB" gen-kube-nft "$TMP/kube.nft" "$n" 10
			"$NB" gen-kube-nft-change "$TMP/kube-change.nft" "$n" 10
			load=$(timed nft -f "$TMP/kube.nft")
			change=NA
			[ "$load" != timeout ] && change=$(timed nft -f "$TMP/kube-change.nft")
			row "$n kube-nft NA NA NA $load $change NA NA NA"
			ip netns exec $N nft delete table ip kube-proxy 2>/dev/null
		else
			row "$n kube-nft NA NA NA skipped skipped NA NA NA"
		fi
	fi
done

# Markdown table and plot.
MD=$OUT/nft_scale.md
{
	echo "| services | path | connect p50 (µs) | connect p99 (µs) | failures | full load (ms) | one change (ms) | ferry RSS (MB) | restart take-over (ms) | p50 / floor |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	tail -n +2 "$CSV" | awk -F, '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }'
} >"$MD"
cat "$MD"
if command -v gnuplot >/dev/null; then
	# Left: p50 of every measured path (log y: iptables reaches ms). Right:
	# p50 / floor of the NAT paths against the goal.
	plots=
	ratios=
	for p in ferry-nftables none conntrack-only one-dnat-rule iptables-legacy iptables-nft; do
		awk -F, -v p=$p '$2 == p && $3 != "NA" {print $1, $3, $4, $10}' "$CSV" >"$TMP/$p.dat"
		[ -s "$TMP/$p.dat" ] || continue
		# One colour per path in both panels.
		case $p in
		ferry-nftables) lc='#9400d3' pt=1 ;;
		none) lc='#000000' pt=2 ;;
		conntrack-only) lc='#009e73' pt=3 ;;
		one-dnat-rule) lc='#e69f00' pt=4 ;;
		iptables-legacy) lc='#56b4e9' pt=5 ;;
		*) lc='#0072b2' pt=6 ;;
		esac
		plots="$plots${plots:+, }\"$TMP/$p.dat\" using 1:2 with linespoints lc rgb \"$lc\" pt $pt title \"$p\""
		case $p in
		none | iptables-*) ;;
		*) ratios="$ratios\"$TMP/$p.dat\" using 1:4 with linespoints lc rgb \"$lc\" pt $pt title \"$p\", " ;;
		esac
	done
	if [ -n "$plots" ]; then
		gnuplot <<-GP
		set terminal pngcairo size 1300,560 noenhanced
		set output "$OUT/nft_scale.png"
		set multiplot layout 1,2 title "first-packet latency through the node (TCP connect, paths interleaved)"
		set logscale x
		set rmargin 5
		set logscale y
		set xlabel "services (target placed last)"
		set ylabel "connect p50 (µs)"
		set key top left
		plot $plots
		unset logscale y
		set yrange [0.8:*]
		set offsets 0, 0, graph 0.45, 0
		set key top right
		set ylabel "p50 / floor (median of per-round ratios)"
		plot $ratios 1 with lines dt 2 lc rgb "#000000" title "floor (none)", 1.1 with lines dt 2 lc rgb "red" title "goal: floor + 10 %"
		unset multiplot
		GP
	fi
fi
echo "results: $CSV $MD $OUT/nft_scale.png"
