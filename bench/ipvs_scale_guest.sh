#!/bin/bash
# Guest half of bench/ipvs_scale.sh: runs inside the test VM
# (tests/vm/run_in_vm.sh, Debian 6.1 kernel with IPVS, qemu TCG), as root
# in the VM's initial namespace. Everything it makes lives in namespaces it
# creates; the VM has no network card.
#
# Topology (as bench/nft_scale.sh, with one node namespace per ruleset so
# that every ruleset is in place at once and all paths are measured in one
# interleaved run):
#
#   client 10.0.1.2 -- node-nft   -- 10.0.2.2  backend  ferry --backend nftables,
#                                                       cluster IPs 10.96.0.0/12
#          10.0.3.2 -- node-floor -- 10.0.4.2           no rules (the floor)
#          10.0.5.2 -- node-ipvs-N - 10.0.6.2           ferry --backend ipvs,
#                                                       cluster IPs 10.128.0.0/12
#          10.0.7.2 -- node-dnat  -- 10.0.8.2           one static DNAT rule
#                                                       10.112.0.1:80 -> 10.0.8.2:9000
#          10.0.9.2 -- node-ipt   -- 10.0.10.2          kube-proxy iptables-mode rules
#                                                       (iptables-legacy),
#                                                       cluster IPs 10.144.0.0/12
#          10.0.11.2 - node-ipvs1b-N - 10.0.12.2        IPVS, N virtual servers in
#                                                       one hash bucket (ipvsadm -R),
#                                                       11.0.0.1 + 256 k
#
# The IPVS paths get new node namespaces for each N, and ipvsadm-restore
# a namespace of its own (see ipvs_paths: the kernel's dest trash).
#
# For each N in $SIZES: N services (port 80, EPS endpoints each, the
# target's real: BACKEND:9000..), the same table for each ruleset
# (nft_scale_bench gen-* with NSB_SVC_BASE / NSB_TARGET). The target is
# where a lookup finds it last: for the iptables rules the last rule; for
# IPVS, whose service hash adds each virtual server at the head of its
# chain, the first one added, so its cluster IP is the lowest (NSB_REVERSE;
# ferry and the ipvsadm input add them in address order); for nftables'
# hash maps the order does not matter (the last).
#   1. ferry-nftables starts in node-nft (full sync: its log), then
#      ferry-ipvs in node-ipvs (full sync = its first "took over" line,
#      from an empty table), then iptables-legacy-restore in node-ipt;
#   2. a path check (interface counters: each path crosses its own node
#      both ways and no other), then nft_scale_bench interleave: floor,
#      one-dnat-rule, ferry-nftables, ferry-ipvs, iptables-legacy;
#   3. ferry-ipvs: one endpoint change of the target, 5 times (median,
#      its "ipvs: update" line), a restart (the new process's "took over"
#      line), its RSS;
#   4. ipvsadm on the table ferry left (ferry stopped): a full listing
#      `ipvsadm -Sn` (what kube-proxy's IPVS mode reads on every sync) and
#      one endpoint change as two ipvsadm commands (add a real server,
#      weight 0 for the old one); then `ferry cleanup` (wall);
#   5. with no other IPVS table in the VM (the service hash is one table
#      for all namespaces), up to ONEBUCKET_MAX services, the one-bucket
#      table in node-ipvs1b: N virtual servers 256 addresses apart, which
#      all hash to the same one of IPVS's 256 buckets, the target at the end
#      of the chain (what the even case, N/256 per chain, is at 256 times
#      the services), loaded with `ipvsadm -R` and measured interleaved with
#      the floor and one-dnat-rule in a run of its own;
#   6. in a namespace of its own, the same table as ferry's from
#      `ipvsadm-restore` (wall; up to IPVSADM_MAX services, stopped after
#      IPVSADM_TIMEOUT s: then "timeout" and the number of virtual servers
#      it had loaded), and the N cluster IPs bound to a dummy with
#      `ip -batch` (what ipvsadm-restore leaves out and ferry and kube-proxy
#      both do).
# Results go to the console as lines "IPVS-SCALE-LAT csv" and
# "IPVS-SCALE-PROG csv" (bench/ipvs_scale.sh collects them). Every wait is
# bounded (LOAD_TIMEOUT per load, LAT_TIMEOUT per interleaved run).
set -u

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
FERRY=$FERRY_BIN
NB=$FERRY_HELPERS/nft_scale_bench
TMP=$(mktemp -d /tmp/ipvs-scale.XXXXXX)
C=c B=b N1=node-nft NF=node-floor NI=node-ipvs-0 ND=node-dnat NT=node-ipt N6=node-ipvs1b-0
NODE_NS=("$N1" "$NF" "$NI" "$ND" "$NT" "$N6")
NFT_BASE=10.96.0.0 IPVS_BASE=10.128.0.0 IPT_BASE=10.144.0.0 ONEB_BASE=11.0.0.0
FLOOR=none=10.0.4.2:9000
DVIP=10.112.0.1
DNAT=one-dnat-rule=$DVIP:80
PIDS=()

say() { echo "ipvs_scale: $*"; }
die() { echo "ipvs_scale: FAIL: $*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
for t in ipvsadm ipvsadm-restore ipset nft iptables-legacy iptables-legacy-restore; do
	command -v $t >/dev/null || die "$t missing in the guest (bench/ipvs_scale.sh passes it with --tool)"
done
[ -x "$NB" ] || die "no $NB (bench/ipvs_scale.sh passes it with --bin)"

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT

new_ns() {
	ip netns add $1 || die "cannot create namespace $1"
	ip -n $1 link set lo up
	ip netns exec $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# add_path NS K: node namespace NS as path K: client 10.0.(2K-1).2 on pK --
# c0 NS b0 -- pK 10.0.2K.2 backend, each end routing the other's subnet
# through NS (as bench/nft_scale.sh).
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
add_path $N1 1
add_path $NF 2
add_path $ND 4
add_path $NT 5
ip -n $C route add $NFT_BASE/12 via 10.0.1.1
ip -n $N1 route add $NFT_BASE/12 via 10.0.2.2
ip -n $C route add $DVIP/32 via 10.0.7.1
ip -n $C route add $IPT_BASE/12 via 10.0.9.1
ip -n $NT route add $IPT_BASE/12 via 10.0.10.2

# ipvs_paths N: new node namespaces for the two IPVS paths (3: ferry-ipvs,
# 6: one bucket), the previous ones deleted. Each measurement of IPVS
# programming starts from a namespace that has never had an IPVS table:
# the kernel keeps deleted real servers on a per-namespace list (the dest
# trash, freed about two minutes later) that every real server added walks,
# so re-adding after a mass delete costs adds x deletes (measured: ferry's
# full sync of 10k services took 98 s within a minute of the 1k step's
# deletions in the same namespace, 17-25 s in a fresh one).
ipvs_paths() {
	local k old i
	for k in 3 6; do
		old=${NODE_NS[k - 1]}
		ip netns list | grep -q "^$old\b" || continue
		ip netns del "$old"
		# The namespace goes asynchronously, and its veth peers with it.
		for i in $(seq 1 600); do
			ip -n $C link show p$k >/dev/null 2>&1 || ip -n $B link show p$k >/dev/null 2>&1 || break
			sleep 0.1
		done
		ip -n $C link show p$k >/dev/null 2>&1 && die "the veth of $old outlived it"
	done
	NI=node-ipvs-$1 N6=node-ipvs1b-$1
	NODE_NS[2]=$NI NODE_NS[5]=$N6
	add_path $NI 3
	add_path $N6 6
	ip -n $C route add $IPVS_BASE/12 via 10.0.5.1
	# One bucket: every address of 11.0.0.0/8 is local to the node (the
	# virtual servers need local addresses); IPVS uses conntrack as ferry
	# makes it.
	ip -n $C route add $ONEB_BASE/8 via 10.0.11.1
	ip -n $N6 route add local $ONEB_BASE/8 dev lo
	ip netns exec $N6 sysctl -qw net.ipv4.vs.conntrack=1 || die "no IPVS in the guest kernel"
}
ip netns exec $ND nft -f - <<-NFT || die "node-dnat rules"
	table ip nat_floor {
		chain nat_pre { type nat hook prerouting priority -100; ip daddr $DVIP tcp dport 80 dnat to 10.0.8.2:9000; }
		chain nat_post { type nat hook postrouting priority 100; }
	}
	NFT
ip netns exec $B "$NB" serve 0.0.0.0 9000 11 >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 50); do grep -q ready "$TMP/serve.log" && break; sleep 0.1; done
grep -q ready "$TMP/serve.log" || die "backend server did not start: $(cat "$TMP/serve.log")"
say "topology up; sizes $SIZES, $EPS endpoints per service, $ROUNDS rounds x $BLOCK connects"
echo "IPVS-SCALE-LAT services,path,connect_p50_us,connect_p99_us,failures,p50_over_floor"
echo "IPVS-SCALE-PROG services,ferry_ipvs_full_ms,ferry_ipvs_first_sync_wall_ms,ferry_ipvs_items,ferry_ipvs_change_ms,ferry_ipvs_restart_ms,ferry_ipvs_restart_items,ferry_ipvs_cleanup_ms,ferry_ipvs_rss_mb,ipvsadm_restore_ms,ipvsadm_list_ms,ip_batch_addrs_ms,ipvsadm_change_ms,ferry_nft_full_ms,ferry_nft_rss_mb,iptables_legacy_restore_ms,mem_avail_mb,ipvsadm_restore_services,one_bucket_load_ms"

# ip_of BASE I: BASE + I as a dotted quad.
ip_of() {
	local o1 o2 o3 o4 a
	IFS=. read -r o1 o2 o3 o4 <<<"$1"
	a=$(((o1 << 24 | o2 << 16 | o3 << 8 | o4) + $2))
	echo "$((a >> 24)).$(((a >> 16) & 255)).$(((a >> 8) & 255)).$((a & 255))"
}

# ferry_up NS BACKEND DIR LOG PATTERN: start ferry in NS on DIR (pid in fp)
# and wait, bounded, for its first sync line matching PATTERN; WALL: ms
# from the start to that line (or "timeout").
ferry_up() {
	local ns=$1 be=$2 dir=$3 log=$4 pat=$5 t0 i node=()
	[ "$NODES" -gt 0 ] && node=(--hostname-override node-0)
	t0=$(now_ms)
	ip netns exec $ns "$FERRY" run --source "dir:$dir" --backend $be --log-level debug \
		--sync-period 1h "${node[@]}" >"$log" 2>&1 &
	fp=$!
	PIDS+=("$fp")
	WALL=timeout
	while [ "$(now_ms)" -lt $((t0 + LOAD_TIMEOUT * 1000)) ]; do
		if grep -Eq "$pat" "$log"; then
			WALL=$(($(now_ms) - t0))
			return 0
		fi
		kill -0 $fp 2>/dev/null || { say "ferry ($be) died: $(tail -5 "$log")"; return 1; }
		sleep 0.1
	done
	say "ferry ($be) made no first sync within $LOAD_TIMEOUT s: $(tail -3 "$log")"
	ferry_stop $fp
	return 1
}

ferry_stop() {
	kill -TERM "$1" 2>/dev/null
	for i in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# timed NS CMD...: wall ms of CMD in NS, or "timeout" (killed after
# TIMED_CAP, default LOAD_TIMEOUT, seconds, with every process it started:
# ipvsadm-restore's `ipvsadm -R` would otherwise go on loading in the
# background) or "failed". The command runs in a session of its own
# (setsid) and a watchdog kills that process group; busybox prefers its own
# applets to PATH, hence the real ip by its path.
IP=$(command -v ip)
timed() {
	local ns=$1 t0 t1 rc pid dog cap=${TIMED_CAP:-$LOAD_TIMEOUT}
	shift
	t0=$(date +%s%N)
	setsid "$IP" netns exec $ns "$@" >/dev/null 2>"$TMP/timed.err" &
	pid=$!
	(sleep "$cap"; kill -KILL -- -$pid $pid 2>/dev/null) >/dev/null 2>&1 &
	dog=$!
	wait $pid
	rc=$?
	t1=$(date +%s%N)
	kill $dog 2>/dev/null
	wait $dog 2>/dev/null
	if [ $rc = 137 ] && [ $(((t1 - t0) / 1000000000)) -ge "$cap" ]; then
		kill -KILL -- -$pid 2>/dev/null
		echo timeout
		return
	fi
	[ $rc = 0 ] || { say "failed ($rc): $* : $(head -3 "$TMP/timed.err")" >&2; echo failed; return; }
	echo $(((t1 - t0) / 1000000))
}

node_counters() {
	local ns
	for ns in "${NODE_NS[@]}"; do
		ip netns exec $ns cat /sys/class/net/c0/statistics/rx_packets /sys/class/net/b0/statistics/rx_packets
	done | tr '\n' ' '
}

# check_path NS NAME=ADDR:PORT: 50 connects must cross node NS both ways
# and no other node (as bench/nft_scale.sh); stops the run otherwise.
check_path() {
	local ns=$1 name=${2%%=*} target=${2#*=} i dc db seen='' out
	local -a rx0 rx1
	read -ra rx0 <<<"$(node_counters)"
	out=$(ip netns exec $C "$NB" connect "$target" 50)
	read -ra rx1 <<<"$(node_counters)"
	for i in "${!NODE_NS[@]}"; do
		dc=$((rx1[2 * i] - rx0[2 * i]))
		db=$((rx1[2 * i + 1] - rx0[2 * i + 1]))
		seen="$seen ${NODE_NS[i]}:+$dc/+$db"
		if [ "${NODE_NS[i]}" = "$ns" ]; then
			[ $dc -ge 100 ] && [ $db -ge 50 ] ||
				die "path check: $name ($target) does not cross $ns both ways (rx from client/backend:$seen; connect: $out)"
		else
			[ $dc -le 5 ] && [ $db -le 5 ] ||
				die "path check: $name ($target) also crosses ${NODE_NS[i]} (rx from client/backend:$seen)"
		fi
	done
	say "path check: $name via $ns, rx from client/backend:$seen; 50 connects p50/p99/fail: $out"
}

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$1/status 2>/dev/null || echo NA; }
mem_avail_mb() { awk '/MemAvailable/ {printf "%.0f", $2 / 1024}' /proc/meminfo; }

run_t0=$(now_ms)
for n in $SIZES; do
	say "== $n services ($(($(now_ms) - run_t0)) ms into the run, $(mem_avail_mb) MB available)"
	ipvs_paths $n
	# IPVS's target has the lowest cluster IP (NSB_REVERSE): ferry and
	# ipvsadm add virtual servers in address order, each at the head of its
	# hash chain, so the target is at the tail of its chain, the last one a
	# lookup reaches (what "placed last" is for a list of rules).
	nft_tip=$(ip_of $NFT_BASE $n) ipvs_tip=$(ip_of $IPVS_BASE 1) ipt_tip=$(ip_of $IPT_BASE $n)
	rm -rf "$TMP/m-nft" "$TMP/m-ipvs" && mkdir -p "$TMP/m-nft" "$TMP/m-ipvs"
	t0=$(now_ms)
	NSB_SVC_BASE=$NFT_BASE NSB_TARGET=10.0.2.2 "$NB" gen-ferry "$TMP/m-nft" $n $EPS $NODES || die gen-ferry
	NSB_SVC_BASE=$IPVS_BASE NSB_TARGET=10.0.6.2 NSB_REVERSE=1 "$NB" gen-ferry "$TMP/m-ipvs" $n $EPS $NODES || die gen-ferry
	NSB_SVC_BASE=$IPVS_BASE NSB_TARGET=10.0.6.2 NSB_REVERSE=1 "$NB" gen-ipvsadm "$TMP/ipvs.rules" $n $EPS || die gen-ipvsadm
	NSB_SVC_BASE=$IPVS_BASE "$NB" gen-addrs "$TMP/addrs.batch" $n kube-ipvs0 || die gen-addrs
	NSB_SVC_BASE=$IPT_BASE NSB_TARGET=10.0.10.2 "$NB" gen-iptables "$TMP/ipt.rules" $n || die gen-iptables
	say "inputs generated in $(($(now_ms) - t0)) ms"

	# --- 1. the three rulesets ---
	nft_full=NA nft_rss=NA nft_ok=
	if ferry_up $N1 nftables "$TMP/m-nft" "$TMP/nft.log" "nftables: (full sync|took over)"; then
		nft_ok=1
		nft_fp=$fp
		nft_full=$(grep -m1 -E "nftables: full sync:" "$TMP/nft.log" | sed -E 's/.* in ([0-9.]+) ms \(build.*/\1/')
		nft_rss=$(rss_mb $fp)
		say "ferry-nftables: $(grep -m1 -E 'nftables: (full sync|took over)' "$TMP/nft.log" | sed 's/.*nftables: //') (wall $WALL ms)"
	fi
	ipvs_full=NA ipvs_wall=NA ipvs_items=NA ipvs_ok=
	if ferry_up $NI ipvs "$TMP/m-ipvs" "$TMP/ipvs.log" "ipvs: took over"; then
		ipvs_ok=1
		ipvs_fp=$fp
		ipvs_wall=$WALL
		line=$(grep -m1 "ipvs: took over" "$TMP/ipvs.log")
		ipvs_full=$(echo "$line" | sed -E 's/.* in ([0-9.]+) ms$/\1/')
		ipvs_items=$(echo "$line" | sed -E 's/.*frontends, (\+[0-9]+ -[0-9]+ ~[0-9]+) items.*/\1/' | tr ' ' '/')
		say "ferry-ipvs: ${line#*ipvs: } (wall $WALL ms)"
	fi
	ipt_load=$(timed $NT sh -c "iptables-legacy-restore < $TMP/ipt.rules")
	say "iptables-legacy-restore: $ipt_load ms"
	mem=$(mem_avail_mb)
	say "all rulesets in place: $mem MB available"

	# --- 2. latency, every path interleaved ---
	targets=("$FLOOR" "$DNAT")
	check_path $NF "$FLOOR"
	check_path $ND "$DNAT"
	if [ -n "$nft_ok" ]; then check_path $N1 "ferry-nftables=$nft_tip:80" && targets+=("ferry-nftables=$nft_tip:80"); fi
	if [ -n "$ipvs_ok" ]; then check_path $NI "ferry-ipvs=$ipvs_tip:80" && targets+=("ferry-ipvs=$ipvs_tip:80"); fi
	if [[ "$ipt_load" =~ ^[0-9]+$ ]]; then
		check_path $NT "iptables-legacy=$ipt_tip:80" && targets+=("iptables-legacy=$ipt_tip:80")
	fi
	ip netns exec $C "$NB" interleave -r "$ROUNDS" -b "$BLOCK" -t "$LAT_TIMEOUT" "${targets[@]}" >"$TMP/lat" 2>"$TMP/lat.err" ||
		die "interleave failed: $(cat "$TMP/lat.err")"
	sed 's/^/ipvs_scale:   /' "$TMP/lat.err"
	for p in none one-dnat-rule ferry-nftables ferry-ipvs iptables-legacy; do
		awk -v n=$n -v p=$p '$1 == p { printf "IPVS-SCALE-LAT %s,%s,%s,%s,%s,%s\n", n, p, $2, $3, $4, $5; f = 1 }
			END { if (!f) printf "IPVS-SCALE-LAT %s,%s,NA,NA,NA,NA\n", n, p }' "$TMP/lat"
	done
	ipvs_conns=$(ip netns exec $NI ipvsadm -Ln -t $ipvs_tip:80 2>/dev/null | awk '/->/ && $5 ~ /^[0-9]+$/ {a += $5; i += $6} END {print a + 0 "/" i + 0}')
	say "ferry-ipvs target active/inactive connections after the run: $ipvs_conns"

	# --- 3. ferry-ipvs: changes, restart ---
	ipvs_change=NA ipvs_restart=NA ipvs_restart_items=NA ipvs_rss=NA ipvs_cleanup=NA
	if [ -n "$ipvs_ok" ]; then
		ipvs_rss=$(rss_mb $ipvs_fp)
		changes=()
		for k in 1 2 3 4 5; do
			before=$(grep -c "ipvs: update:" "$TMP/ipvs.log")
			if [ $((k % 2)) = 1 ]; then sed -i 's/"port":9000}/"port":9010}/' "$TMP/m-ipvs/target.json"
			else sed -i 's/"port":9010}/"port":9000}/' "$TMP/m-ipvs/target.json"; fi
			t0=$(now_ms)
			while [ "$(now_ms)" -lt $((t0 + LOAD_TIMEOUT * 1000)) ]; do
				[ "$(grep -c "ipvs: update:" "$TMP/ipvs.log")" -gt "$before" ] && break
				sleep 0.1
			done
			line=$(grep "ipvs: update:" "$TMP/ipvs.log" | tail -1)
			[ "$(grep -c "ipvs: update:" "$TMP/ipvs.log")" -gt "$before" ] || { say "change $k: no update line"; break; }
			changes+=("$(echo "$line" | sed -E 's/.* in ([0-9.]+) ms$/\1/')")
			say "change $k: ${line#*ipvs: }; $(grep 'sync: update' "$TMP/ipvs.log" | tail -1 | sed 's/.*sync: //')"
		done
		[ ${#changes[@]} = 5 ] && ipvs_change=$(printf '%s\n' "${changes[@]}" | sort -g | sed -n 3p)
		grep -E "ipvs: (update|sync|took|drained)" "$TMP/ipvs.log" | tail -3 | sed 's/^/ipvs_scale:   /'
		ferry_stop $ipvs_fp
		if ferry_up $NI ipvs "$TMP/m-ipvs" "$TMP/ipvs2.log" "ipvs: took over"; then
			line=$(grep -m1 "ipvs: took over" "$TMP/ipvs2.log")
			ipvs_restart=$(echo "$line" | sed -E 's/.* in ([0-9.]+) ms$/\1/')
			ipvs_restart_items=$(echo "$line" | sed -E 's/.*frontends, (\+[0-9]+ -[0-9]+ ~[0-9]+) items.*/\1/' | tr ' ' '/')
			say "restart: ${line#*ipvs: } (wall $WALL ms)"
			ferry_stop $fp
		fi
	fi

	# --- 4. ipvsadm on the same table: a full listing and one endpoint
	# change on the table ferry left (the same virtual and real servers;
	# ferry is stopped), then, after ferry's cleanup, the whole table from
	# ipvsadm-restore and the N cluster IPs bound to a dummy with ip -batch ---
	list=NA chg=NA restore=NA
	if [ -n "$ipvs_ok" ]; then
		list=$(timed $NI ipvsadm -Sn)
		chg=$(timed $NI sh -c "ipvsadm -a -t $ipvs_tip:80 -r 10.0.6.2:9011 -m -w 1 && ipvsadm -e -t $ipvs_tip:80 -r 10.0.6.2:9010 -m -w 0")
		ipvs_cleanup=$(timed $NI "$FERRY" cleanup --backend ipvs)
		say "ipvsadm -Sn: $list ms; ipvsadm one change: $chg ms; ferry cleanup --backend ipvs: $ipvs_cleanup ms," \
			"left: $(ip netns exec $NI ipvsadm -Ln | grep -c '^TCP') virtual servers"
	fi
	restored=NA
	# --- 5. one bucket, in a step of its own: the service hash is one
	# table for all network namespaces (the namespace is mixed into the
	# key), so this chain could also be the one of ferry-ipvs's target ---
	oneb=NA
	if [ "$n" -le "$ONEBUCKET_MAX" ]; then
		# The same N virtual servers (1 real server each) 256 addresses
		# apart hash to one of the 256 buckets; the target (11.0.0.1,
		# added first) is at the end of a chain of N.
		NSB_SVC_BASE=$ONEB_BASE NSB_SVC_STRIDE=256 NSB_TARGET=10.0.12.2 NSB_REVERSE=1 \
			"$NB" gen-ipvsadm "$TMP/oneb.rules" $n 1 || die gen-ipvsadm
		oneb=$(timed $N6 sh -c "ipvsadm -R < $TMP/oneb.rules")
		say "one-bucket table (ipvsadm -R, $n virtual servers in one chain): $oneb ms"
	fi
	if [[ "$oneb" =~ ^[0-9]+$ ]]; then
		check_path $N6 "ipvs-one-bucket=11.0.0.1:80"
		ip netns exec $C "$NB" interleave -r "$ROUNDS" -b "$BLOCK" -t "$LAT_TIMEOUT" "$FLOOR" "$DNAT" \
			"ipvs-one-bucket=11.0.0.1:80" >"$TMP/lat" 2>"$TMP/lat.err" ||
			die "interleave failed: $(cat "$TMP/lat.err")"
		sed 's/^/ipvs_scale:   /' "$TMP/lat.err"
		awk '{ print "ipvs_scale:   " $0 }' "$TMP/lat"
	else
		echo "NA" >"$TMP/lat"
	fi
	awk -v n=$n -v p=ipvs-one-bucket '$1 == p { printf "IPVS-SCALE-LAT %s,%s,%s,%s,%s,%s\n", n, p, $2, $3, $4, $5; f = 1 }
		END { if (!f) printf "IPVS-SCALE-LAT %s,%s,NA,NA,NA,NA\n", n, p }' "$TMP/lat"
	ip netns exec $N6 ipvsadm -C

	# --- 6. ipvsadm-restore and ip -batch, in a namespace of their own
	# that never had an IPVS table (no traffic: no path) ---
	NA_=ipvsadm-$n
	new_ns $NA_ # loopback up: IPVS takes a real server for unicast only if the namespace has a local table
	if [ "$n" -le "$IPVSADM_MAX" ]; then
		restore=$(TIMED_CAP=$IPVSADM_TIMEOUT timed $NA_ sh -c "ipvsadm-restore < $TMP/ipvs.rules")
		restored=$(ip netns exec $NA_ ipvsadm -Ln | grep -c '^TCP')
		say "ipvsadm-restore: $restore ms, $restored virtual servers of $n"
		sleep 1
		[ "$(ip netns exec $NA_ ipvsadm -Ln | grep -c '^TCP')" = "$restored" ] ||
			die "virtual servers are still being added after ipvsadm-restore was stopped"
	else
		restore=skipped
		say "ipvsadm-restore skipped above IPVSADM_MAX=$IPVSADM_MAX"
	fi
	ip -n $NA_ link add kube-ipvs0 type dummy
	addrs=$(timed $NA_ ip -batch "$TMP/addrs.batch")
	say "ip -batch of $n addresses: $addrs ms"
	ip netns del $NA_

	if [ -n "$nft_ok" ]; then
		ferry_stop $nft_fp
		ip netns exec $N1 "$FERRY" cleanup --backend nftables >/dev/null 2>&1
	fi
	ip netns exec $NT iptables-legacy -t nat -F
	ip netns exec $NT iptables-legacy -t nat -X
	echo "IPVS-SCALE-PROG $n,$ipvs_full,$ipvs_wall,$ipvs_items,$ipvs_change,$ipvs_restart,$ipvs_restart_items,$ipvs_cleanup,$ipvs_rss,$restore,$list,$addrs,$chg,$nft_full,$nft_rss,$ipt_load,$mem,$restored,$oneb"
done
say "done in $(($(now_ms) - run_t0)) ms"
exit 0
