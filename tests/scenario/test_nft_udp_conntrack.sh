#!/bin/bash
# nftables: when a UDP endpoint is removed, its conntrack entries are
# deleted, so a client that keeps its source port moves to a live endpoint
# (instead of being DNATed to the removed one for as long as it sends).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_udp_conntrack
command -v python3 >/dev/null || skip "python3 not installed (fixed-port UDP client)"
nft_topo
echo_start "$B" u1 10.0.2.2:9053 --udp
echo_start "$B" u2 10.0.2.3:9053 --udp
svc_yaml "$T/manifests/dns.yaml" dns ip=10.96.0.53 ports=dns/UDP/53/9053
eps_yaml "$T/manifests/dns-eps.yaml" dns-1 dns dns/UDP/9053 -- 10.0.2.2
nft_ferry_start
wait_answer "$C" udp 10.96.0.53:53 u1

# One datagram from the fixed source port 40053; prints the answering name.
ask() {
	ip netns exec "$C" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.1.2", 40053))
s.settimeout(1.0)
s.sendto(b"hi", ("10.96.0.53", 53))
try:
    print(s.recvfrom(512)[0].decode().split()[0])
except socket.timeout:
    print("timeout")
'
}
first=$(ask)
[ "$first" = u1 ] || fail "first answer from $first, expected u1"
say "endpoint u1 replaced by u2 (u1 keeps running: a stale entry would still reach it)"
eps_yaml "$T/eps.new" dns-1 dns dns/UDP/9053 -- 10.0.2.3
mv "$T/eps.new" "$T/manifests/dns-eps.yaml"
for i in $(seq 1 30); do
	got=$(ask)
	[ "$got" = u2 ] && break
	sleep 0.2
done
[ "$got" = u2 ] || fail "the client with a fixed source port still reaches '$got' after u1 was removed"
grep -q "stale UDP conntrack" "$FERRY_LOG" || say "(ferry's log does not mention the conntrack deletion)"
pass
