#!/bin/bash
# Guest half of tests/scenario/test_ipvs_host_vm.sh: runs inside the test VM
# (tests/vm/run_in_vm.sh), whose Debian kernel has the dummy driver and
# IPVS, which this machine's kernel lacks.
#
# The IPVS host mechanism (backends/ipvs/ipvs_host.c):
#   - tests/helpers/ipvs_host_check, in a node namespace with a veth to a
#     peer namespace, runs every check of the mechanism (dummy create,
#     idempotent ensure/remove, VIPs bound and listed, local delivery of
#     both families to a wildcard listener with the control before binding,
#     node addresses, restart take-over, the sysctls the backend sets);
#     it leaves ferry-ipvs0 with 10.96.0.10 and fd00:96::10 on it;
#   - iproute2, independent of the code under test, sees a dummy link,
#     DOWN, with exactly the two host addresses (the IPv6 one nodad, no
#     link-local address) and their routes in the local table, and no
#     ferry-ipvs0 in the VM's own namespace;
#   - a client in the peer namespace, routed to the node, reaches a TCP
#     server on 0.0.0.0 / [::] through each VIP (delivered locally on the
#     node although the dummy is down), and the server sees the client's
#     own address; an unbound address of the same range gets no answer.
. "$(dirname "$0")/../../scenario/lib.sh"
. "$(dirname "$0")/../../scenario/nft_topo.sh"
lib_init ipvs_host
CHECK=$FERRY_HELPERS/ipvs_host_check
[ -x "$CHECK" ] || fail "no $CHECK in the guest (run_in_vm.sh --bin)"

ns_new N node
ns_new P peer
ns_link "$N" eth0 "$P" eth0
ns_addr "$N" eth0 10.0.1.1/24
ns_addr "$N" eth0 fd00:1::1/64
ns_addr "$P" eth0 10.0.1.2/24
ns_addr "$P" eth0 fd00:1::2/64

say "mechanism checks (ipvs_host_check) in the node namespace"
ip netns exec "$N" "$CHECK" --node-addr 10.0.1.1 --node-addr fd00:1::1 --ipvs --leave
rc=$?
[ "$rc" = 77 ] && fail "ipvs_host_check skipped: the VM kernel should have the dummy driver (--module dummy)"
[ "$rc" = 0 ] || fail "ipvs_host_check failed (exit $rc)"

say "iproute2's view of what the mechanism left"
link=$(ip -n "$N" -d link show ferry-ipvs0 2>&1) || fail "no ferry-ipvs0 in $N: $link"
echo "$link"
echo "$link" | grep -qw dummy || fail "ferry-ipvs0 is not a dummy link"
echo "$link" | head -n 1 | grep -q '[<,]UP[,>]' && fail "ferry-ipvs0 is up; the mechanism leaves it down"
addrs=$(ip -n "$N" addr show dev ferry-ipvs0)
echo "$addrs"
echo "$addrs" | grep -q 'inet 10\.96\.0\.10/32 ' || fail "ferry-ipvs0 lacks 10.96.0.10/32"
echo "$addrs" | grep -q 'inet6 fd00:96::10/128 .*nodad' || fail "ferry-ipvs0 lacks fd00:96::10/128 nodad"
echo "$addrs" | grep -q 'fe80:' && fail "ferry-ipvs0 has a link-local address (it should be down)"
echo "$addrs" | grep -q tentative && fail "an address on ferry-ipvs0 is tentative"
[ "$(echo "$addrs" | grep -c 'inet')" = 2 ] || fail "ferry-ipvs0 should hold exactly the two VIPs"
ip -n "$N" route show table local | grep -q '^local 10\.96\.0\.10 dev ferry-ipvs0' ||
	fail "no local route for 10.96.0.10: $(ip -n "$N" route show table local)"
ip -n "$N" -6 route show table local | grep -q '^local fd00:96::10 dev ferry-ipvs0' ||
	fail "no local route for fd00:96::10: $(ip -n "$N" -6 route show table local)"
ip link show ferry-ipvs0 >/dev/null 2>&1 && fail "ferry-ipvs0 appeared in the VM's own namespace"

say "traffic from the peer namespace to the VIPs, routed to the node"
ip -n "$P" route add 10.96.0.0/16 via 10.0.1.1 || fail "route 10.96.0.0/16 in $P"
ip -n "$P" -6 route add fd00:96::/64 via fd00:1::1 || fail "route fd00:96::/64 in $P"
echo_start "$N" node 0.0.0.0:8080 "[::]:8080" --tcp
wait_answer "$P" tcp 10.96.0.10:8080 node
seen=$(answer_of "$P" tcp 10.96.0.10:8080 | awk '{print $2}')
[ "${seen%:*}" = 10.0.1.2 ] || fail "the server saw $seen, expected the peer 10.0.1.2"
wait_answer "$P" tcp "[fd00:96::10]:8080" node
seen=$(answer_of "$P" tcp "[fd00:96::10]:8080" | awk '{print $2}')
case "$seen" in
"[fd00:1::2]:"*) ;;
*) fail "the server saw $seen, expected the peer [fd00:1::2]" ;;
esac
say "control: an unbound address of the range is not answered"
probe "$P" tcp 10.96.0.11:8080 --timeout-ms 500 >/dev/null 2>&1 && fail "10.96.0.11 answered"
probe "$P" tcp "[fd00:96::11]:8080" --timeout-ms 500 >/dev/null 2>&1 && fail "fd00:96::11 answered"
pass
