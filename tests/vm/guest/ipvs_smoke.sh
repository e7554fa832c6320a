#!/bin/bash
# Guest half of tests/scenario/test_ipvs_genl_vm.sh: runs inside the test VM
# (tests/vm/run_in_vm.sh), whose Debian kernel has IPVS, on the usual
# nft_topo client / node / backend namespaces. IPVS is programmed in the
# node namespace only, by $FERRY_HELPERS/ipvs_smoke (tests/helpers/
# ipvs_smoke.c), through ferry's generic netlink mechanism
# (backends/ipvs/ipvs_genl.c); ferry itself does not run.
#
#   - ipvs_smoke check: every call against the kernel (services of both
#     families and fwmark, destinations, edits, dumps read back field by
#     field, idempotence, the kernel's own errnos, timeouts, flush);
#   - control: a backend answers straight, the virtual IP does not before
#     IPVS knows it, so whatever answers later was programmed here;
#   - a virtual server with two masqueraded real servers balances TCP
#     connections over both (IPv4) and carries IPv6; the backend sees the
#     client's own address;
#   - weight 0 stops new connections to a real server, and the dump shows
#     the connection counters graceful termination waits on (inactive ones
#     left by finished connections, an active one held open);
#   - deleting the service takes the virtual IP out of IPVS.
. "$(dirname "$0")/../../scenario/lib.sh"
. "$(dirname "$0")/../../scenario/nft_topo.sh"
lib_init ipvs_smoke
SMOKE=$FERRY_HELPERS/ipvs_smoke
[ -x "$SMOKE" ] || fail "no $SMOKE in the VM"
nft_topo

smoke() { ip netns exec "$N" "$SMOKE" "$@"; }

say "modules: $(grep -o '^ip_vs[a-z_]*' /proc/modules | tr '\n' ' ')"
say "the mechanism against the kernel (ipvs_smoke check in the node namespace)"
smoke check || fail "ipvs_smoke check failed (exit $?)"

echo_start "$B" s1 10.0.2.2:9000 --tcp
echo_start "$B" s2 10.0.2.3:9000 --tcp
echo_start "$B" s6 "[fd00:2::2]:9000" --tcp
say "control: a backend answers straight; the virtual IP does not yet"
wait_answer "$C" tcp 10.0.2.2:9000 s1
expect_silent "$C" tcp 10.96.0.10:80

# The virtual IPs are local on the node (kube-proxy puts them on a dummy
# interface), so IPVS sees the connections at LOCAL_IN.
ip -n "$N" link add ferry-ipvs0 type dummy || fail "dummy interface"
ip -n "$N" link set ferry-ipvs0 up || fail "dummy up"
ns_addr "$N" ferry-ipvs0 10.96.0.10/32
ns_addr "$N" ferry-ipvs0 fd00:96::10/128

say "a virtual server with two real servers"
smoke add 10.96.0.10:80 tcp rr 10.0.2.2:9000 10.0.2.3:9000 || fail "ipvs_smoke add"
smoke add "[fd00:96::10]:80" tcp rr "[fd00:2::2]:9000" || fail "ipvs_smoke add (IPv6)"
say "$(smoke show | tr '\n' ';')"
wait_answer "$C" tcp 10.96.0.10:80
names_count "$C" tcp 10.96.0.10:80 10 >/dev/null
s1=$(echo "$COUNTS" | count_of s1)
s2=$(echo "$COUNTS" | count_of s2)
say "10 connections: s1=$s1 s2=$s2"
[ "$s1" -gt 0 ] && [ "$s2" -gt 0 ] || fail "both real servers must answer (s1=$s1 s2=$s2)"
seen=$(answer_of "$C" tcp 10.96.0.10:80 | awk '{print $2}')
[ "${seen%:*}" = 10.0.1.2 ] || fail "the real server saw $seen, expected the client 10.0.1.2"
wait_answer "$C" tcp "[fd00:96::10]:80" s6

say "drain s1 (weight 0): new connections go to s2 only"
smoke weight 10.96.0.10:80 tcp 10.0.2.2:9000 0 || fail "ipvs_smoke weight"
names_count "$C" tcp 10.96.0.10:80 6 >/dev/null
[ "$(echo "$COUNTS" | count_of s1)" = 0 ] || fail "s1 answered while drained: $COUNTS"
# One connection held open: an active one on s2.
bg_start "$C" "$T/hold.log" "$PROBE" tcp 10.96.0.10:80 --hold-ms 8000 --timeout-ms 10000
hold=$BG_PID
active=0
for _ in $(seq 1 50); do
	show=$(smoke show)
	active=$(echo "$show" | awk '$1 == "dest" && $2 == "10.0.2.3:9000" {print $6}')
	[ "${active:-0}" -ge 1 ] && break
	sleep 0.1
done
say "$(echo "$show" | tr '\n' ';')"
[ "${active:-0}" -ge 1 ] || fail "no active connection counted on s2: $show"
line=$(echo "$show" | awk '$1 == "dest" && $2 == "10.0.2.2:9000"')
[ -n "$line" ] || fail "the drained s1 is gone from the dump: $show"
set -- $line
[ "$4" = 0 ] || fail "s1's weight is $4, expected 0"
[ $(($6 + $8)) -ge 1 ] || fail "s1 has no connections counted (active $6, inactive $8)"
wait "$hold" || fail "the held connection broke (exit $?): $(cat "$T/hold.log")"

say "delete the service: IPVS lets the virtual IP go"
smoke del 10.96.0.10:80 tcp || fail "ipvs_smoke del"
smoke show | grep -q '10\.96\.0\.10:80' && fail "the service is still listed: $(smoke show)"
# Nothing listens on the node itself: the node refuses, no real server answers.
probe "$C" tcp 10.96.0.10:80 --timeout-ms 3000 >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] || fail "the deleted virtual IP: expected refused by the node (exit 2), got exit $rc"
wait_answer "$C" tcp "[fd00:96::10]:80" s6
pass
