#!/bin/bash
# nftables: hairpin. An endpoint reaching its own service and being picked
# itself gets an answer (the connection is masqueraded to the node). Hairpin
# pairs exist only for endpoints on this node or whose node is unknown (no
# nodeName): an endpoint on another node is DNATed by that node's proxy.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_hairpin
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/svc.yaml" self ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" self-1 self http/TCP/9000 -- 10.0.2.2
# No nodeName: may be here, so it hairpins too (also on 10.0.2.2, other port).
svc_yaml "$T/manifests/svc2.yaml" anon ip=10.96.0.11 ports=http/TCP/80/9001
eps_yaml "$T/manifests/eps2.yaml" anon-1 anon http/TCP/9001 -- 10.0.2.2,node=
# On another node: no hairpin pair for it.
svc_yaml "$T/manifests/svc3.yaml" remote ip=10.96.0.12 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps3.yaml" remote-1 remote http/TCP/9000 -- 10.0.2.99,node=node-b
nft_ferry_start
wait_answer "$C" tcp 10.96.0.10:80 b1
out=$(probe "$B" tcp 10.96.0.10:80 --bind 10.0.2.2 --timeout-ms 1000) || fail "hairpin connection failed: $out"
seen=$(echo "$out" | awk '{print $2}')
say "hairpin: $out"
[ "${seen%:*}" = 10.0.2.1 ] || fail "hairpin: backend saw $seen, expected the node 10.0.2.1"

echo_start "$B" b2 10.0.2.2:9001
wait_answer "$C" tcp 10.96.0.11:80 b2
out=$(probe "$B" tcp 10.96.0.11:80 --bind 10.0.2.2 --timeout-ms 1000) || fail "hairpin (no nodeName) failed: $out"
seen=$(echo "$out" | awk '{print $2}')
say "hairpin, endpoint without nodeName: $out"
[ "${seen%:*}" = 10.0.2.1 ] || fail "hairpin (no nodeName): backend saw $seen, expected 10.0.2.1"

set_out=$(ip netns exec "$N" nft list set ip ferry hairpin) || fail "cannot list the hairpin set"
echo "$set_out" | grep -q "10.0.2.2 . 10.0.2.2" || fail "hairpin set lacks the local endpoint: $set_out"
echo "$set_out" | grep -q "10.0.2.99" && fail "hairpin set holds an endpoint of another node: $set_out"
pass
