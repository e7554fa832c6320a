#!/bin/bash
# IPVS scaling benchmark: first-packet latency and programming cost as the
# number of services grows, ferry's IPVS backend against its nftables
# backend, kube-proxy-style iptables rules, one static DNAT rule, no proxy,
# and ipvsadm-restore of the same table.
#
#   bench/ipvs_scale.sh [BUILD_DIR]      (default BUILD_DIR: ./build)
#
# The development machines' kernel has no IPVS, so everything is measured
# inside the project's VM (tests/vm/run_in_vm.sh: Debian 12's 6.1 kernel
# under qemu TCG, software emulation, docs/testing-vm.md). Emulation makes
# every figure several times slower than on hardware; ratios between paths
# measured within one run (interleaved, per round) are what to compare.
# This script builds nothing: BUILD_DIR must hold ferry,
# bench/nft_scale_bench and tests/{echo_server,probe_client}.
#
# Knobs (environment):
#   SIZES="100 1000 10000 30000"  services per step
#   ROUNDS=30 BLOCK=100   latency: ROUNDS rounds of BLOCK connects per path
#   EPS=10                endpoints per service (ferry-ipvs, ferry-nftables,
#                         ipvsadm-restore; the iptables rules have 1)
#   NODES=100             endpoints spread over NODES nodes, ferry is node-0
#   LAT_TIMEOUT=300       seconds at most for one interleaved measurement
#   LOAD_TIMEOUT=300      seconds at most for one load, sync or wait
#   IPVSADM_MAX=30000     no ipvsadm-restore above this many services
#   IPVSADM_TIMEOUT=300   ipvsadm-restore is stopped (with its ipvsadm -R)
#                         after this many seconds: "timeout", and the number
#                         of virtual servers it had loaded by then
#   ONEBUCKET_MAX=30000   the one-bucket IPVS path up to this many services
#   VM_TIMEOUT=1800       seconds for the whole VM run (boot to power-off)
#   VM_MEM=2G             guest memory
#   OUT=/tmp/ferry-ipvs-scale
#   FERRY_VM_CACHE        kernel cache (default BUILD_DIR/vm-cache)
#   PLOT_ONLY=1           no VM run: tables and plot again from $OUT/console.log
#
# What the guest does (bench/ipvs_scale_guest.sh, copied to /ferry/extra/):
# six node namespaces side by side between one client and one backend
# namespace, one per ruleset, so that the paths are measured interleaved
# (nft_scale_bench interleave: the order rotated per round, "p50 / floor"
# the median over rounds of p50(path) / p50(floor) within the round): none
# (the floor), one-dnat-rule, ferry-nftables, ferry-ipvs, iptables-legacy
# (kube-proxy iptables-mode rules) in one run, and ipvs-one-bucket (N
# virtual servers that all hash to one of IPVS's 256 service buckets: the
# even case at 256 times N) in a run of its own with the floor. Each
# target sits where its lookup reaches it last (for IPVS: added first, at
# the tail of its hash chain; see the guest script). Programming cost:
# ferry-ipvs full sync from empty, one endpoint change of the target (median
# of 5), restart take-over (ferry's own log lines), against ipvsadm-restore
# of the same virtual and real servers, a full `ipvsadm -Sn` listing, and
# binding the N cluster IPs to a dummy interface with `ip -batch` (wall
# times in the guest). ferry-nftables' full sync and iptables-legacy-restore
# are recorded too. docs/benchmarks.md has the results and what they mean.
#
# Results: $OUT/ipvs_scale_lat.csv, $OUT/ipvs_scale_prog.csv,
# $OUT/ipvs_scale.md, $OUT/ipvs_scale.png, the console in $OUT/console.log.
# Not part of the test suite.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BUILD=$(readlink -f "${1:-./build}")
SIZES=${SIZES:-"100 1000 10000 30000"}
ROUNDS=${ROUNDS:-30}
BLOCK=${BLOCK:-100}
EPS=${EPS:-10}
NODES=${NODES:-100}
LAT_TIMEOUT=${LAT_TIMEOUT:-300}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-300}
IPVSADM_MAX=${IPVSADM_MAX:-30000}
IPVSADM_TIMEOUT=${IPVSADM_TIMEOUT:-300}
ONEBUCKET_MAX=${ONEBUCKET_MAX:-30000}
VM_TIMEOUT=${VM_TIMEOUT:-1800}
VM_MEM=${VM_MEM:-2G}
OUT=${OUT:-/tmp/ferry-ipvs-scale}
export FERRY_VM_CACHE=${FERRY_VM_CACHE:-$BUILD/vm-cache}
export FERRY_BIN=$BUILD/ferry FERRY_HELPERS=$BUILD/tests

die() { echo "ipvs_scale.sh: $*" >&2; exit 1; }
[ -x "$FERRY_BIN" ] && [ -x "$BUILD/bench/nft_scale_bench" ] && [ -x "$FERRY_HELPERS/echo_server" ] ||
	die "build ferry, nft_scale_bench, echo_server and probe_client first ($BUILD)"

args=(--timeout "$VM_TIMEOUT" --mem "$VM_MEM" --log "$OUT/console.log" --bin "$BUILD/bench/nft_scale_bench")
# ipvsadm-restore is a bash script running ipvsadm; iptables-legacy(-restore)
# are names of xtables-legacy-multi (copied under each name), which loads
# its match and target extensions from the xtables directory.
for t in ipvsadm ipvsadm-restore ipset iptables-legacy iptables-legacy-restore; do
	p=$(command -v $t) || die "$t is not installed (scripts/install-deps.sh)"
	args+=(--tool "$p")
done
xt=${XTABLES_LIBDIR:-/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/xtables}
[ -e "$xt/libxt_tcp.so" ] || die "no xtables extensions in $xt (set XTABLES_LIBDIR)"
# The VM builder copies only executable files: the extensions go through
# an executable copy, found in the guest through XTABLES_LIBDIR.
xtc=$(mktemp -d /tmp/ferry-ipvs-xt.XXXXXX) || die mktemp
trap 'rm -rf "$xtc"' EXIT
for e in libxt_standard libxt_tcp libxt_udp libxt_DNAT libxt_NAT; do
	[ -e "$xt/$e.so" ] || continue
	install -m 755 "$xt/$e.so" "$xtc/" && args+=(--tool "$xtc/$e.so")
done
args+=(--env "XTABLES_LIBDIR=$xtc")
# IPVS, ipsets and nft_compat (ferry's IPVS backend, as tests/scenario/
# test_ipvs_vm.sh), and what iptables-legacy's nat rules need.
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_mh ip_vs_sed ip_vs_nq \
	ip_set ip_set_hash_ipport ip_set_hash_ipportip ip_set_hash_ipportnet xt_set nft_compat dummy \
	ip_tables iptable_nat xt_tcpudp xt_nat; do
	args+=(--module "$m")
done
for v in SIZES ROUNDS BLOCK EPS NODES LAT_TIMEOUT LOAD_TIMEOUT IPVSADM_MAX IPVSADM_TIMEOUT ONEBUCKET_MAX; do
	args+=(--env "$v=${!v}")
done

mkdir -p "$OUT" || die "cannot make $OUT"
rc=0
if [ -z "${PLOT_ONLY:-}" ]; then
	t0=$(date +%s)
	echo "ipvs_scale.sh: sizes $SIZES, $EPS endpoints per service, $ROUNDS x $BLOCK connects per path," \
		"VM ${VM_MEM}, $(nproc) host cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	bash "$repo/tests/vm/run_in_vm.sh" "${args[@]}" "$here/ipvs_scale_guest.sh" |
		grep -v '^IPVS-SCALE-'
	rc=${PIPESTATUS[0]}
	t1=$(date +%s)
	echo "ipvs_scale.sh: VM run exit $rc after $((t1 - t0)) s"
fi

LAT=$OUT/ipvs_scale_lat.csv
PROG=$OUT/ipvs_scale_prog.csv
sed -n 's/^IPVS-SCALE-LAT //p' "$OUT/console.log" >"$LAT"
sed -n 's/^IPVS-SCALE-PROG //p' "$OUT/console.log" >"$PROG"
[ "$(wc -l <"$LAT")" -gt 1 ] || die "no results in $OUT/console.log"

MD=$OUT/ipvs_scale.md
md_table() {
	head -1 "$1" | awk -F, '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n|";
		for (i = 1; i <= NF; i++) printf "---|"; printf "\n" }'
	tail -n +2 "$1" | awk -F, '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }'
}
{
	echo "First-packet TCP connect through the node (interleaved; p50 / floor: median of per-round ratios)"
	echo
	md_table "$LAT"
	echo
	echo "Programming cost (ms; ferry's figures from its log, the others wall time in the guest)"
	echo
	md_table "$PROG"
} >"$MD"
cat "$MD"

if command -v gnuplot >/dev/null; then
	TMP=$(mktemp -d /tmp/ferry-ipvs-scale.XXXXXX)
	plots='' ratios='' p99s=''
	for p in none one-dnat-rule ferry-nftables ferry-ipvs iptables-legacy ipvs-one-bucket; do
		awk -F, -v p=$p '$2 == p && $3 != "NA" {print $1, $3, $4, $6}' "$LAT" >"$TMP/$p.dat"
		[ -s "$TMP/$p.dat" ] || continue
		case $p in
		ferry-nftables) lc='#9400d3' pt=1 ;;
		none) lc='#000000' pt=2 ;;
		one-dnat-rule) lc='#e69f00' pt=4 ;;
		ferry-ipvs) lc='#d55e00' pt=7 ;;
		ipvs-one-bucket) lc='#cc79a7' pt=8 ;;
		*) lc='#56b4e9' pt=5 ;;
		esac
		plots="$plots${plots:+, }\"$TMP/$p.dat\" using 1:2 with linespoints lc rgb \"$lc\" pt $pt title \"$p\""
		p99s="$p99s${p99s:+, }\"$TMP/$p.dat\" using 1:3 with linespoints lc rgb \"$lc\" pt $pt title \"$p\""
		if [ $p = ipvs-one-bucket ]; then
			# A chain of N is what the uniform hash gives 256 N services.
			ratios="$ratios${ratios:+, }\"$TMP/$p.dat\" using (\$1 * 256):4 with linespoints dt 2 lc rgb \"$lc\" pt $pt title \"ipvs, N in one bucket, at 256 N\""
		elif [ $p != none ]; then
			ratios="$ratios${ratios:+, }\"$TMP/$p.dat\" using 1:4 with linespoints lc rgb \"$lc\" pt $pt title \"$p\""
		fi
	done
	# Programming: columns of $PROG (see the guest's header line).
	prog() { awk -F, -v c=$1 'NR > 1 && $c ~ /^[0-9.]+$/ {print $1, $c}' "$PROG" >"$TMP/prog$1.dat"; }
	progs=
	for spec in "2:ferry-ipvs full sync:#d55e00:7" "6:ferry-ipvs restart take-over:#cc79a7:9" \
		"10:ipvsadm-restore:#009e73:3" "12:ip -batch (bind N cluster IPs):#999999:6" \
		"14:ferry-nftables full sync:#9400d3:1" "16:iptables-legacy-restore:#56b4e9:5" \
		"5:ferry-ipvs one change:#d55e00:6"; do
		IFS=: read -r col title lc pt <<<"$spec"
		prog "$col"
		[ -s "$TMP/prog$col.dat" ] || continue
		dt=1
		[ "$col" = 5 ] && dt=2
		progs="$progs${progs:+, }\"$TMP/prog$col.dat\" using 1:2 with linespoints dt $dt lc rgb \"$lc\" pt $pt title \"$title\""
	done
	gnuplot <<-GP
	set terminal pngcairo size 1300,1000 noenhanced
	set output "$OUT/ipvs_scale.png"
	set multiplot layout 2,2 title "IPVS in the test VM (qemu TCG, Debian 6.1 kernel): first packet through the node (paths interleaved) and programming cost"
	set logscale xy
	set xrange [70:45000]
	set xlabel "services (each path's target where its lookup reaches it last)"
	set key top left
	set ylabel "connect p50 (µs)"
	plot $plots
	set xrange [70:1.2e7]
	set yrange [0.9:30]
	set xlabel "services"
	set ylabel "p50 / floor (median of per-round ratios)"
	plot $ratios, 1 with lines dt 3 lc rgb "#000000" title "floor (none)"
	set xrange [70:45000]
	set autoscale y
	set xlabel "services"
	set ylabel "connect p99 (µs; emulation jitter)"
	plot $p99s
	set ylabel "ms (ferry: its log; others: wall time)"
	set yrange [1:2e6]
	plot $progs
	unset multiplot
	GP
	rm -rf "$TMP"
fi
echo "results: $LAT $PROG $MD $OUT/ipvs_scale.png (console: $OUT/console.log)"
exit "$rc"
