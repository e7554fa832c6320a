#!/bin/bash
# nftables: NodePort on the node's addresses. externalTrafficPolicy Cluster
# masquerades (the backend sees the node), Local keeps the client address
# and uses only this node's endpoints.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_nodeport
nft_topo
echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
svc_yaml "$T/manifests/cl.yaml" cl type=NodePort ip=10.96.0.10 ports=http/TCP/80/9000/30080
eps_yaml "$T/manifests/cl-eps.yaml" cl-1 cl http/TCP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/lo.yaml" lo type=NodePort etp=Local ip=10.96.0.11 ports=http/TCP/80/9000/30081
eps_yaml "$T/manifests/lo-eps.yaml" lo-1 lo http/TCP/9000 -- 10.0.2.3 10.0.2.2,node=node-b
nft_ferry_start

wait_answer "$C" tcp 10.0.1.1:30080 b1
seen=$(answer_of "$C" tcp 10.0.1.1:30080 | awk '{print $2}')
say "ETP Cluster: backend saw $seen"
[ "${seen%:*}" = 10.0.2.1 ] || fail "ETP Cluster node port: backend saw $seen, expected the node 10.0.2.1"
say "the node port also answers on the node's other address"
wait_answer "$C" tcp 10.0.2.1:30080 b1

wait_answer "$C" tcp 10.0.1.1:30081
names_count "$C" tcp 10.0.1.1:30081 20 >/dev/null
[ "$(echo "$COUNTS" | count_of b2)" = 20 ] || fail "ETP Local must use only the local endpoint b2: $COUNTS"
seen=$(answer_of "$C" tcp 10.0.1.1:30081 | awk '{print $2}')
say "ETP Local: backend saw $seen"
[ "${seen%:*}" = 10.0.1.2 ] || fail "ETP Local node port: backend saw $seen, expected the client 10.0.1.2"
pass
