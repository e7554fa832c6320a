#!/bin/bash
# nftables scaling benchmark: rule-lookup latency and programming cost as
# the number of services grows, ferry's nftables backend against
# kube-proxy-style rules and against no proxy at all.
#
#   sudo bench/nft_scale.sh [BUILD_DIR]      (default BUILD_DIR: ./build)
#   SIZES="100 1000 10000 30000 100000" CONNECTS=3000 OUT=/tmp/ferry-nft-scale
#   PATHS="ferry none iptables kube-nft"  (a subset for a narrower run)
#   NODES=100  endpoints spread over NODES nodes, ferry is node-0 (0: no
#              nodeName at all, the standalone-manifest shape)
#
# Topology, three namespaces made here and removed on exit (nothing else is
# touched, traffic stays inside them):
#
#   client 10.0.1.2 --veth-- 10.0.1.1 node 10.0.2.1 --veth-- 10.0.2.2 backend
#                            (rules live here)             (nft_scale_bench serve)
#
# For each N, services 10.96.0.1.. port 80, the target service placed last
# (its endpoints 10.0.2.2:9000-9009 are real, the others never contacted):
#   ferry:        `ferry run --backend nftables` on N services x 10 endpoints;
#                 full sync time (from empty; ferry's own log: building the
#                 batch + kernel commit), one endpoint change of the target
#                 (median of 5, ferry's log), ferry's RSS, connect p50/p99,
#                 and a restart: the new ferry takes the table over (reads
#                 it once, sends the difference; ferry's log);
#   iptables-legacy / iptables-nft: kube-proxy iptables-mode rules (a
#                 KUBE-SERVICES match per service, KUBE-SVC and KUBE-SEP
#                 chains; 1 endpoint per service) loaded with *-restore:
#                 load time (kube-proxy's iptables mode rewrites the table on
#                 each change, so this is also its change cost), connect p50/p99;
#   kube-nft:     kube-proxy nftables-mode shape (a chain per service and per
#                 endpoint, 10 endpoints, verdict-map dispatch) with `nft -f`:
#                 load time and one endpoint change (new endpoint chains,
#                 service chain rewritten);
#   none:         connect straight to 10.0.2.2:9000 (the floor).
# Every load is bounded by LOAD_TIMEOUT seconds ("timeout" in the table).
# Results: $OUT/nft_scale.csv, $OUT/nft_scale.md, $OUT/nft_scale.png (gnuplot).
set -u

BUILD=${1:-./build}
SIZES=${SIZES:-"100 1000 10000 30000 100000"}
CONNECTS=${CONNECTS:-3000}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-120}
KUBE_NFT_MAX=${KUBE_NFT_MAX:-10000}
PATHS=${PATHS:-"ferry none iptables kube-nft"}
NODES=${NODES:-100}
OUT=${OUT:-/tmp/ferry-nft-scale}
FERRY=$(readlink -f "$BUILD/ferry")
NB=$(readlink -f "$BUILD/bench/nft_scale_bench")
TAG=ferry-nsb-$$
C=$TAG-c
N=$TAG-n
B=$TAG-b
TMP=$(mktemp -d /tmp/ferry-nft-scale.XXXXXX)
PIDS=()

die() { echo "nft_scale.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$FERRY" ] && [ -x "$NB" ] || die "build ferry and nft_scale_bench first ($BUILD)"
for cmd in nft iptables-legacy-restore iptables-nft-restore; do
	command -v $cmd >/dev/null || die "$cmd missing (scripts/install-deps.sh)"
done

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for ns in $C $N $B; do ip netns del $ns 2>/dev/null; done
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add $C && ip netns add $N && ip netns add $B || die "cannot create namespaces"
for ns in $C $N $B; do ip -n $ns link set lo up; done
ip -n $C link add eth0 type veth peer name c0 netns $N
ip -n $N link add b0 type veth peer name eth0 netns $B
ip -n $C addr add 10.0.1.2/24 dev eth0 && ip -n $C link set eth0 up
ip -n $N addr add 10.0.1.1/24 dev c0 && ip -n $N link set c0 up
ip -n $N addr add 10.0.2.1/24 dev b0 && ip -n $N link set b0 up
ip -n $B addr add 10.0.2.2/24 dev eth0 && ip -n $B link set eth0 up
ip -n $C route add default via 10.0.1.1
ip -n $B route add default via 10.0.2.1
ip -n $N route add 10.96.0.0/12 via 10.0.2.2
ip netns exec $N sysctl -qw net.ipv4.ip_forward=1
ip netns exec $B "$NB" serve 10.0.2.2 9000 11 >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
sleep 0.3
grep -q ready "$TMP/serve.log" || die "backend server did not start: $(cat "$TMP/serve.log")"

mkdir -p "$OUT"
CSV=$OUT/nft_scale.csv
echo "services,path,connect_p50_us,connect_p99_us,failures,full_load_ms,one_change_ms,ferry_rss_mb,restart_takeover_ms" >"$CSV"

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

# latency TARGET: "p50 p99 failures" of CONNECTS connects from the client.
latency() { ip netns exec $C "$NB" connect "$1" "$CONNECTS"; }

# ms of a command run in the node namespace (bounded), or "timeout".
timed() {
	local t0 t1
	t0=$(date +%s%N)
	timeout "$LOAD_TIMEOUT" ip netns exec $N "$@" >/dev/null 2>"$TMP/timed.err" || { echo timeout; return; }
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000000 ))
}

row() { echo "$*" | tr ' ' ',' >>"$CSV"; echo "  $*"; }
want() { case " $PATHS " in *" $1 "*) return 0;; esac; return 1; }

for n in $SIZES; do
	echo "== $n services"
	tip=$(target_ip "$n")

	# --- ferry nftables ---
	if want ferry; then
		rm -rf "$TMP/m" && mkdir -p "$TMP/m"
		"$NB" gen-ferry "$TMP/m" "$n" 10 "$NODES" || die "gen-ferry"
		ferry_first_sync "$TMP/ferry.log"
		full=$FIRST
		rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$fp/status 2>/dev/null)
		read -r p50 p99 fails < <(latency "$tip:80")
		# One endpoint change of the target, 5 times (port 9000 <-> 9010).
		changes=()
		for k in 1 2 3 4 5; do
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
		ferry_first_sync "$TMP/ferry2.log"
		restart=$FIRST
		[ "$FIRST_KIND" = full ] && restart=replaced
		row "$n ferry-nftables $p50 $p99 $fails $full $one ${rss:-NA} $restart"
		grep -E "full sync|update:" "$TMP/ferry.log" | head -20 >"$OUT/ferry-$n.log"
		grep -E "took over|full sync" "$TMP/ferry2.log" >>"$OUT/ferry-$n.log"
		kill -TERM $fp; wait $fp 2>/dev/null
		ip netns exec $N "$FERRY" cleanup --backend nftables >/dev/null 2>&1
	fi

	# --- no proxy ---
	if want none; then
		read -r p50 p99 fails < <(latency "10.0.2.2:9000")
		row "$n none $p50 $p99 $fails NA NA NA NA"
	fi

	# --- kube-proxy iptables mode, legacy and nft back ends ---
	if want iptables; then
		"$NB" gen-iptables "$TMP/ipt.rules" "$n"
		for flavour in legacy nft; do
			load=$(timed sh -c "iptables-$flavour-restore < $TMP/ipt.rules")
			if [ "$load" = timeout ]; then
				row "$n iptables-$flavour NA NA NA timeout timeout NA NA"
			else
				read -r p50 p99 fails < <(latency "$tip:80")
				row "$n iptables-$flavour $p50 $p99 $fails $load $load NA NA"
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
			row "$n kube-nft NA NA NA $load $change NA NA"
			ip netns exec $N nft delete table ip kube-proxy 2>/dev/null
		else
			row "$n kube-nft NA NA NA skipped skipped NA NA"
		fi
	fi
done

# Markdown table and plot.
MD=$OUT/nft_scale.md
{
	echo "| services | path | connect p50 (µs) | connect p99 (µs) | failures | full load (ms) | one change (ms) | ferry RSS (MB) | restart take-over (ms) |"
	echo "|---|---|---|---|---|---|---|---|---|"
	tail -n +2 "$CSV" | awk -F, '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }'
} >"$MD"
cat "$MD"
if command -v gnuplot >/dev/null; then
	for p in ferry-nftables none iptables-legacy iptables-nft; do
		awk -F, -v p=$p '$2 == p && $3 != "NA" {print $1, $3, $4}' "$CSV" >"$TMP/$p.dat"
	done
	gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced
set output "$OUT/nft_scale.png"
set logscale x
set xlabel "services (target placed last)"
set ylabel "TCP connect p50 (µs)"
set title "first-packet latency through the node"
set key top left
plot "$TMP/ferry-nftables.dat" using 1:2 with linespoints title "ferry nftables", \
     "$TMP/none.dat" using 1:2 with linespoints title "no proxy", \
     "$TMP/iptables-legacy.dat" using 1:2 with linespoints title "iptables-legacy (kube-proxy rules)", \
     "$TMP/iptables-nft.dat" using 1:2 with linespoints title "iptables-nft (kube-proxy rules)"
GP
fi
echo "results: $CSV $MD $OUT/nft_scale.png"
