#!/bin/bash
# The control path against N (issue 12): planner time for one endpoint
# change (incremental update against a whole replan, bench/planner_bench)
# and ferry's RSS after its first full sync of a manifest directory, this
# build against an older ferry in the same run, on nft_scale.sh's two
# layouts (NODES=100: endpoints spread over 100 nodes; NODES=0: no
# nodeName, the standalone shape), for each backend in BACKENDS.
#
#   sudo bench/control_path.sh [BUILD_DIR] [OLD_FERRY]
#   SIZES="1000 10000 100000" EPS=10 ROUNDS=500 BACKENDS="nftables userspace" OUT=/tmp/ferry-control-path
#
# Each ferry runs in a network namespace made here and removed after
# (nothing else is touched; no traffic is sent). Results: $OUT/planner.csv,
# $OUT/rss.csv, $OUT/control_path.png (gnuplot).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
old=${2:-}
sizes=${SIZES:-1000 10000 100000}
eps=${EPS:-10}
rounds=${ROUNDS:-500}
backends=${BACKENDS:-${BACKEND:-nftables userspace}}
out=${OUT:-/tmp/ferry-control-path}
gen=$build/bench/nft_scale_bench
mkdir -p "$out"
tmp=$(mktemp -d)
ns=ferrycp$$
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# RSS (MB) and peak of FERRY once it logged its first full sync of DIR
# with the backend $backend.
rss_of() {
	local ferry=$1 dir=$2 log=$tmp/log pid rss hwm
	ip netns add "$ns"
	ip netns exec "$ns" ip link set lo up
	# userspace: interception on, as in a cluster (with dir: it defaults to
	# off, a listening socket per frontend and worker: 200k descriptors).
	local extra=()
	[ "$backend" = userspace ] && extra=(--intercept on)
	ip netns exec "$ns" "$ferry" run --source "dir:$dir" --backend "$backend" "${extra[@]}" \
		--log-level info >"$log" 2>&1 &
	pid=$!
	for _ in $(seq 1 1200); do
		grep -q "sync: full sync $backend:" "$log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	sleep 2 # the trim after the first sync
	if grep -q "sync: full sync $backend:" "$log"; then
		rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo NA)
		hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo NA)
	else
		rss=NA hwm=NA
		echo "$ferry did not sync: $(tail -1 "$log")" >&2
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	ip netns del "$ns"
	echo "${rss:-NA} ${hwm:-NA}"
}

echo "services,update_p50_ms,update_p99_ms,whole_p50_ms,model_B_per_ep,plan_B_per_ep" >"$out/planner.csv"
echo "services,backend,layout,new_rss_mb,new_peak_mb,old_rss_mb,old_peak_mb" >"$out/rss.csv"
for n in $sizes; do
	pb=$("$build/bench/planner_bench" "$n" "$eps" "$rounds" 100)
	echo "$pb"
	up50=$(sed -n 's/.*update p50 \([0-9.]*\) ms.*/\1/p' <<<"$pb")
	up99=$(sed -n 's/.*update p50 [0-9.]* ms p99 \([0-9.]*\) ms.*/\1/p' <<<"$pb")
	wh50=$(sed -n 's/.*whole replan p50 \([0-9.]*\) ms.*/\1/p' <<<"$pb")
	mb=$(sed -n 's/.*heap model .*(\([0-9]*\) B\/endpoint), plan.*/\1/p' <<<"$pb")
	pl=$(sed -n 's/.*, plan .*(\([0-9]*\) B\/endpoint).*/\1/p' <<<"$pb")
	echo "$n,$up50,$up99,$wh50,$mb,$pl" >>"$out/planner.csv"
	for nodes in 100 0; do
		rm -rf "$tmp/m"
		mkdir -p "$tmp/m"
		"$gen" gen-ferry "$tmp/m" "$n" "$eps" "$nodes" >/dev/null
		for backend in $backends; do
			read -r nr nh < <(rss_of "$build/ferry" "$tmp/m")
			orr=NA oh=NA
			[ -n "$old" ] && read -r orr oh < <(rss_of "$old" "$tmp/m")
			echo "RSS at $n services x $eps, NODES=$nodes, $backend: new $nr MB (peak $nh), old $orr MB (peak $oh)"
			echo "$n,$backend,nodes$nodes,$nr,$nh,$orr,$oh" >>"$out/rss.csv"
		done
	done
done

gnuplot <<EOF
set terminal pngcairo size 1300,520 noenhanced
set output "$out/control_path.png"
set datafile separator ","
set multiplot layout 1,2
set logscale xy
set key top left
set xlabel "services (x $eps endpoints)"
set ylabel "ms per endpoint change"
set title "planner: one endpoint change"
plot "$out/planner.csv" every ::1 using 1:2 with linespoints title "incremental update p50", \
     "" every ::1 using 1:3 with linespoints title "incremental update p99", \
     "" every ::1 using 1:4 with linespoints title "whole replan p50 (before)"
unset logscale y
set logscale x
set ylabel "RSS after the first full sync (MB)"
set title "ferry run, manifest directory (new: lines, old: dashed)"
plot $(sep=""; for b in $backends; do for l in 100 0; do
	t="$b, $([ $l = 100 ] && echo "100 nodes" || echo "no nodeName")"
	printf '%s"< grep ,%s,nodes%s, %s/rss.csv" using 1:4 with linespoints title "new, %s", "< grep ,%s,nodes%s, %s/rss.csv" using 1:6 with linespoints dashtype 2 title "old, %s"' \
		"$sep" "$b" "$l" "$out" "$t" "$b" "$l" "$out" "$t"
	sep=", "
done; done)
unset multiplot
EOF
echo "results: $out/planner.csv $out/rss.csv $out/control_path.png"
