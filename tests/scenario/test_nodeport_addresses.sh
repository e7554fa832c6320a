#!/bin/bash
# --nodeport-addresses as kube-proxy reads it (nftables backend, manifest
# directory, so no Node object):
# - CIDRs are matched against this host's interface addresses (kube-proxy's
#   GetNodeIPs over the local interfaces), not the Node object, and followed
#   as addresses come and go; the log says where node ports open, and warns
#   about a CIDR that matches nothing;
# - without the option the nftables backend opens node ports on the primary
#   address only (kube-proxy's nftables default, "primary"); standalone,
#   primary is the source address of the default route;
# - "all" opens them on every local address;
# - "localhost" is refused by the nftables backend with a warning (kube-proxy:
#   "localhost NodePorts are not supported" in nftables mode).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nodeport_addresses
nft_topo
# N's default route points at C, so its primary IPv4 address is 10.0.1.1.
ip -n "$N" route add default via 10.0.1.2 || fail "default route on N"
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/np.yaml" np type=NodePort ip=10.96.0.10 ports=http/TCP/80/9000/30080
eps_yaml "$T/manifests/np-eps.yaml" np-1 np http/TCP/9000 -- 10.0.2.2

# answers ADDR: the node port on ADDR reaches b1 (polled, 5 s).
answers() { wait_answer "$C" tcp "$1:30080" b1; }
# closed ADDR: the node port on ADDR is not forwarded (nothing listens on
# N itself, so the kernel refuses).
closed() {
	local out
	out=$(probe "$C" tcp "$1:30080" --timeout-ms 500 2>&1) && fail "node port on $1 answered ($out); it should not open there"
	return 0
}
restart() {
	kill "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	ip netns exec "$N" "$FERRY_BIN" cleanup --backend nftables >/dev/null 2>&1
	nft_ferry_start "$@"
}

say "a CIDR opens node ports on the host's matching interface address (no Node object needed)"
nft_ferry_start --nodeport-addresses 10.0.2.0/24,10.77.0.0/16
answers 10.0.2.1
closed 10.0.1.1
grep -q "node ports open on IPv4 10.0.2.1" "$FERRY_LOG" || fail "the log does not say where node ports open"
grep -q "nodeport-addresses 10.77.0.0/16 matches no address" "$FERRY_LOG" ||
	fail "no warning for a CIDR that matches no address"

say "an address added later inside the CIDR opens at once; removed, it closes"
ns_addr "$N" b0 10.0.2.9/24
answers 10.0.2.9
ip -n "$N" addr del 10.0.2.9/24 dev b0 || fail "addr del"
for i in $(seq 1 30); do
	probe "$C" tcp 10.0.2.9:30080 --timeout-ms 300 >/dev/null 2>&1 || break
	sleep 0.1
done
closed 10.0.2.9

say "no option: kube-proxy's nftables default, the primary address only"
restart
answers 10.0.1.1
closed 10.0.2.1
grep -q "node ports open on IPv4 10.0.1.1;" "$FERRY_LOG" || fail "the log does not name the primary address"

say "all: every local address"
restart --nodeport-addresses all
answers 10.0.1.1
answers 10.0.2.1
say "  but not loopback: kube-proxy's match-all rule has ip daddr != 127.0.0.0/8"
# Nothing listens on N's loopback port: refused, not DNATed (a loopback
# source cannot leave the host, so a DNAT would hang the connection).
expect_refused "$N" tcp 127.0.0.1:30080

say "localhost with nftables: a warning, and the rest of the list still applies"
restart --nodeport-addresses localhost,10.0.2.0/24
grep -q "cannot serve node ports on loopback" "$FERRY_LOG" || fail "no warning for localhost on nftables"
answers 10.0.2.1
closed 10.0.1.1
pass
