#!/bin/bash
# nftables: a ClusterIP service answers from another namespace routed
# through the node and from the node itself, balanced over its endpoints;
# with no cluster CIDR given the backend sees the client's own address.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_cluster_ip
nft_topo
echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2 10.0.2.3
nft_ferry_start

wait_answer "$C" tcp 10.96.0.10:80
names_count "$C" tcp 10.96.0.10:80 40 >/dev/null
b1=$(echo "$COUNTS" | count_of b1)
b2=$(echo "$COUNTS" | count_of b2)
say "from the client: b1=$b1 b2=$b2"
[ "$b1" -gt 0 ] && [ "$b2" -gt 0 ] || fail "both endpoints must answer (b1=$b1 b2=$b2)"
seen=$(answer_of "$C" tcp 10.96.0.10:80 | awk '{print $2}')
[ "${seen%:*}" = 10.0.1.2 ] || fail "backend saw $seen, expected the client 10.0.1.2"

say "from the node itself"
wait_answer "$N" tcp 10.96.0.10:80
pass
