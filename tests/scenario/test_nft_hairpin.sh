#!/bin/bash
# nftables: hairpin. An endpoint reaching its own service and being picked
# itself gets an answer (the connection is masqueraded to the node).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_hairpin
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/svc.yaml" self ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" self-1 self http/TCP/9000 -- 10.0.2.2
nft_ferry_start
wait_answer "$C" tcp 10.96.0.10:80 b1
out=$(probe "$B" tcp 10.96.0.10:80 --bind 10.0.2.2 --timeout-ms 1000) || fail "hairpin connection failed: $out"
seen=$(echo "$out" | awk '{print $2}')
say "hairpin: $out"
[ "${seen%:*}" = 10.0.2.1 ] || fail "hairpin: backend saw $seen, expected the node 10.0.2.1"
pass
