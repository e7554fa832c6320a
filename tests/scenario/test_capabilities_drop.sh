#!/bin/bash
# ferry run, started as root with every capability, keeps only what its
# backend needs once started (libcap-ng, proxy/program/privileges.c), in
# every thread and in the bounding set: nftables NET_ADMIN and NET_RAW,
# userspace NET_BIND_SERVICE too. After the drop it still programs a
# change: the nftables backend moves a cluster IP to another endpoint, the
# userspace relay opens a new listener below port 1024.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init capabilities_drop
command -v nft >/dev/null || skip "the nft command is not installed"
grep -q '^CapBnd' /proc/self/status || skip "no capability lines in /proc/PID/status"
[ "$(awk '/^CapEff/{print $2}' /proc/self/status)" != 0000000000000000 ] || skip "the test runs without capabilities"

NET_BIND_SERVICE=10
NET_ADMIN=12
NET_RAW=13
hex() { printf '%016x' "$1"; }

# check_caps PID WANT: every thread's effective, permitted and bounding
# sets are WANT (hex), inheritable and ambient empty.
check_caps() {
	local pid=$1 want=$2 task n=0 line
	for task in /proc/"$pid"/task/*; do
		for f in CapEff CapPrm CapBnd; do
			line=$(awk -v f="$f:" '$1 == f {print $2}' "$task/status")
			[ "$line" = "$want" ] || fail "thread ${task##*/}: $f is $line, not $want"
		done
		for f in CapInh CapAmb; do
			line=$(awk -v f="$f:" '$1 == f {print $2}' "$task/status")
			[ -z "$line" ] || [ "$line" = 0000000000000000 ] || fail "thread ${task##*/}: $f is $line"
		done
		n=$((n + 1))
	done
	say "  $n threads: CapEff = CapPrm = CapBnd = $want"
}

nft_topo
echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2

say "nftables: NET_ADMIN and NET_RAW only"
nft_ferry_start
grep -q "privileges: keeping only cap_net_admin, cap_net_raw (bounding set too)" "$FERRY_LOG" ||
	fail "no privileges line: $(grep privileges "$FERRY_LOG")"
check_caps "$FERRY_PID" "$(hex $(( (1 << NET_ADMIN) | (1 << NET_RAW) )))"
got=$(answer_of "$C" tcp 10.96.0.10:80)
[ "${got%% *}" = b1 ] || fail "10.96.0.10:80 answered '$got', not b1"
say "after the drop, the endpoint moves to b2"
eps_yaml "$T/manifests/eps.yaml.new" web-1 web http/TCP/9000 -- 10.0.2.3
mv "$T/manifests/eps.yaml.new" "$T/manifests/eps.yaml"
wait_answer "$C" tcp 10.96.0.10:80 b2
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
[ $? = 0 ] || fail "ferry (nftables) did not exit 0 on SIGTERM"
ip netns exec "$N" "$FERRY_BIN" cleanup --backend nftables >/dev/null 2>&1 || fail "ferry cleanup failed"

say "userspace: NET_BIND_SERVICE too; a new port below 1024 opens after the drop"
ip -n "$N" addr add 10.0.9.1/32 dev lo || fail "cannot add 10.0.9.1 on N"
svc_yaml "$T/manifests/svc.yaml" web ip=10.0.9.1 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2
ferry_start "$N" --workers 2
for i in $(seq 1 50); do
	grep -q "privileges: keeping only" "$FERRY_LOG" && break
	sleep 0.1
done
grep -q "privileges: keeping only cap_net_bind_service, cap_net_admin, cap_net_raw (bounding set too)" "$FERRY_LOG" ||
	fail "no privileges line: $(grep privileges "$FERRY_LOG")"
wait_answer "$C" tcp 10.0.9.1:80 b1
check_caps "$FERRY_PID" "$(hex $(( (1 << NET_BIND_SERVICE) | (1 << NET_ADMIN) | (1 << NET_RAW) )))"
eps_yaml "$T/manifests/eps.yaml.new" web-1 web http/TCP/9000,alt/TCP/9000 -- 10.0.2.2
mv "$T/manifests/eps.yaml.new" "$T/manifests/eps.yaml"
svc_yaml "$T/manifests/svc.yaml.new" web ip=10.0.9.1 ports=http/TCP/80/9000,alt/TCP/81/9000
mv "$T/manifests/svc.yaml.new" "$T/manifests/svc.yaml"
wait_answer "$C" tcp 10.0.9.1:81 b1
grep -qi "permission denied\|EACCES" "$FERRY_LOG" && fail "a bind was refused: $(grep -i denied "$FERRY_LOG")"
pass
