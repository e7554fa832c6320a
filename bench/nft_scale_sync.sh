#!/bin/bash
# nftables programming at scale: ferry's full sync and restart take-over,
# against the kernel's own floors, for one or two ferry builds side by side
# in the same run (so that a shared, noisy machine weighs on both alike).
#
#   sudo bench/nft_scale_sync.sh BUILD [BASE_BUILD]
#   SIZES="100000"     services (x EPS endpoints each)
#   EPS=10
#   LAYOUTS="100 0"    NODES of nft_scale_bench gen-ferry: 100, the benchmark's
#                      layout (ferry is node-0, 1 % of the endpoints local);
#                      0, the standalone layout (no nodeName: every endpoint
#                      gets a hairpin pair)
#   CHANGE=1           also restart after a change made while ferry was down
#                      (one endpoint port of the target): the take-over that
#                      must read the sets
#   NFTF=1             also time `nft -f` on `ferry plan --format rules` of the
#                      same manifests (the same elements) in a fresh namespace
#   LOAD_TIMEOUT=300   seconds at most for each ferry start, nft -f or dump
#   OUT=/tmp/ferry-nft-sync
#
# Per size, layout and build, in a namespace of its own (made and removed
# here; no traffic at all): ferry run on the manifests, first sync from
# empty ("full": total, build, kernel, messages, elements from ferry's
# log; RSS after it); the dump floor: nft_scale_bench dump of every set a
# take-over may read (all but the four slot tables), a bare netlink dump
# that decodes nothing, i.e. as fast as the kernel dumps; then SIGTERM and
# a restart: the take-over (ferry's "took over" line: total and reading);
# with CHANGE=1 once more after the change. nft -f: the rules file loaded
# into an empty namespace, wall clock plus nft's user and system time
# (/usr/bin/time), i.e. nft's parsing and the kernel's commit together.
# Results: $OUT/nft_sync.csv and $OUT/nft_sync.md.
set -u

BUILD=$(readlink -f "${1:?usage: nft_scale_sync.sh BUILD [BASE_BUILD]}")
BASE=${2:+$(readlink -f "$2")}
SIZES=${SIZES:-100000}
EPS=${EPS:-10}
LAYOUTS=${LAYOUTS:-"100 0"}
CHANGE=${CHANGE:-1}
NFTF=${NFTF:-1}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-300}
OUT=${OUT:-/tmp/ferry-nft-sync}
NB=$BUILD/bench/nft_scale_bench
TAG=ferry-nss-$$
TMP=$(mktemp -d /tmp/ferry-nft-sync.XXXXXX)
NS=
FP=

die() { echo "nft_scale_sync.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$BUILD/ferry" ] && [ -x "$NB" ] || die "build ferry and nft_scale_bench first ($BUILD)"
[ -z "$BASE" ] || [ -x "$BASE/ferry" ] || die "no ferry in $BASE"
command -v nft >/dev/null || die "nft missing"

cleanup() {
	[ -n "$FP" ] && kill "$FP" 2>/dev/null
	sleep 0.2
	[ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Non-slot sets: what a take-over dumps when it must read.
SETS="fe np empty_fe empty_np masq_fe local_fe masq_np ranged_fe ranges hairpin sc_fe sc_np cluster_ips digest np_digest"

# ferry_start FERRY NODES LOG: ferry in $NS on $TMP/m; waits for its first
# sync (bounded). Sets FP.
ferry_start() {
	local node=() i
	[ "$2" -gt 0 ] && node=(--hostname-override node-0)
	# No earlier run's log may answer the wait below.
	rm -f "$3"
	: >"$3"
	ip netns exec "$NS" "$1" run --source "dir:$TMP/m" --backend nftables --log-level debug \
		--sync-period 1h "${node[@]}" >"$3" 2>&1 &
	FP=$!
	for i in $(seq 1 $((LOAD_TIMEOUT * 10))); do
		grep -q "nftables: full sync:\|nftables: took over" "$3" && return 0
		kill -0 "$FP" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
ferry_stop() {
	kill -TERM "$FP" 2>/dev/null
	wait "$FP" 2>/dev/null
	FP=
}
# field LOG SED: the first "full sync:" / "took over" figure SED extracts, or NA.
field() {
	local v
	v=$(grep -m1 -E "nftables: (full sync:|took over)" "$1" | sed -nE "$2")
	echo "${v:-NA}"
}

mkdir -p "$OUT"
CSV=$OUT/nft_sync.csv
echo "services,nodes,build,full_ms,full_build_ms,full_kernel_ms,messages,elements,rss_mb,dump_floor_ms,dump_elements,takeover_ms,takeover_read_ms,takeover_kind,takeover_change_ms,takeover_change_read_ms,nft_f_ms,nft_f_user_s,nft_f_sys_s" >"$CSV"

for n in $SIZES; do
	for nodes in $LAYOUTS; do
		echo "== $n services x $EPS endpoints, NODES=$nodes"
		rm -rf "$TMP/m" && mkdir -p "$TMP/m"
		"$NB" gen-ferry "$TMP/m" "$n" "$EPS" "$nodes" || die "gen-ferry"
		builds=("new=$BUILD")
		[ -n "$BASE" ] && builds=("base=$BASE" "new=$BUILD")
		for b in "${builds[@]}"; do
			label=${b%%=*} dir=${b#*=}
			NS=$TAG-$label
			ip netns add "$NS" || die "netns"
			# First start: full sync from empty.
			full=NA fbuild=NA fkernel=NA msgs=NA elems=NA rss=NA
			if ferry_start "$dir/ferry" "$nodes" "$TMP/f1.log"; then
				full=$(field "$TMP/f1.log" 's/.* in ([0-9.]+) ms \(build.*/\1/p')
				fbuild=$(field "$TMP/f1.log" 's/.*\(build ([0-9.]+) ms.*/\1/p')
				fkernel=$(field "$TMP/f1.log" 's/.*kernel ([0-9.]+) ms\).*/\1/p')
				msgs=$(field "$TMP/f1.log" 's/.*\(([0-9]+) messages\).*/\1/p')
				elems=$(field "$TMP/f1.log" 's/.*frontends, ([0-9]+) elements.*/\1/p')
				rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$FP/status 2>/dev/null)
			fi
			ferry_stop
			# The dump floor of the sets a take-over may read.
			timeout "$LOAD_TIMEOUT" ip netns exec "$NS" "$NB" dump ip ferry $SETS >"$TMP/dump" 2>&1
			floor=$(awk '$1 == "total" {print $3}' "$TMP/dump")
			dumped=$(awk '$1 == "total" {print $2}' "$TMP/dump")
			sed 's/^/  dump /' "$TMP/dump"
			# Restart: take-over, nothing changed.
			take=NA tread=NA kind=NA
			if ferry_start "$dir/ferry" "$nodes" "$TMP/f2.log"; then
				if grep -q "took over" "$TMP/f2.log"; then
					take=$(field "$TMP/f2.log" 's/.* in ([0-9.]+) ms \(reading.*/\1/p')
					tread=$(field "$TMP/f2.log" 's/.*\(reading ([0-9.]+) ms\).*/\1/p')
					kind=took-over
				else
					kind=replaced
				fi
			fi
			grep -E "taking over|took over|read [0-9]+ elements|looked up" "$TMP/f2.log" | cut -c1-220 | sed 's/^/  /'
			ferry_stop
			# Restart after a change made while ferry was down.
			ctake=NA cread=NA
			if [ "$CHANGE" = 1 ]; then
				sed -i 's/"port":9000}/"port":9010}/' "$TMP/m/target.json"
				if ferry_start "$dir/ferry" "$nodes" "$TMP/f3.log" && grep -q "took over" "$TMP/f3.log"; then
					ctake=$(field "$TMP/f3.log" 's/.* in ([0-9.]+) ms \(reading.*/\1/p')
					cread=$(field "$TMP/f3.log" 's/.*\(reading ([0-9.]+) ms\).*/\1/p')
				fi
				grep -E "taking over|took over" "$TMP/f3.log" | cut -c1-220 | sed 's/^/  /'
				ferry_stop
				sed -i 's/"port":9010}/"port":9000}/' "$TMP/m/target.json"
			fi
			ip netns del "$NS"
			NS=
			row="$n,$nodes,$label,$full,$fbuild,$fkernel,$msgs,$elems,${rss:-NA},${floor:-NA},${dumped:-NA},$take,$tread,$kind,$ctake,$cread,NA,NA,NA"
			echo "  $row"
			echo "$row" >>"$CSV"
		done
		if [ "$NFTF" = 1 ]; then
			node=()
			[ "$nodes" -gt 0 ] && node=(--hostname-override node-0)
			timeout "$LOAD_TIMEOUT" "$BUILD/ferry" plan --source "dir:$TMP/m" --backend nftables --format rules \
				"${node[@]}" >"$TMP/rules.nft" 2>/dev/null
			NS=$TAG-nftf
			ip netns add "$NS" || die "netns"
			t0=$(date +%s%N)
			if timeout "$LOAD_TIMEOUT" /usr/bin/time -f "%U %S" -o "$TMP/nft.time" ip netns exec "$NS" nft -f "$TMP/rules.nft"; then
				t1=$(date +%s%N)
				ms=$(((t1 - t0) / 1000000))
				read -r us ss <"$TMP/nft.time"
			else
				ms=timeout us=NA ss=NA
			fi
			ip netns del "$NS"
			NS=
			row="$n,$nodes,nft-f,NA,NA,NA,NA,$(awk '/^add element/ {f = 1; next} /^}/ {f = 0} f' "$TMP/rules.nft" | wc -l),NA,NA,NA,NA,NA,NA,NA,NA,$ms,$us,$ss"
			echo "  $row"
			echo "$row" >>"$CSV"
		fi
	done
done

MD=$OUT/nft_sync.md
{
	echo "| services | nodes | build | full (ms) | build (ms) | kernel (ms) | messages | elements | RSS (MB) | dump floor (ms) | dumped | take-over (ms) | reading (ms) | kind | take-over after a change (ms) | its reading (ms) | nft -f (ms) | nft user (s) | nft sys (s) |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	tail -n +2 "$CSV" | awk -F, '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }'
} >"$MD"
cat "$MD"
echo "results: $CSV $MD"
