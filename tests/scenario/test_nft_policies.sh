#!/bin/bash
# nftables: internalTrafficPolicy Local uses only this node's endpoints;
# serving+terminating endpoints are used when no endpoint is ready.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_policies
nft_topo
echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
svc_yaml "$T/manifests/itp.yaml" itp itp=Local ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/itp-eps.yaml" itp-1 itp http/TCP/9000 -- 10.0.2.2 10.0.2.3,node=node-b
svc_yaml "$T/manifests/term.yaml" term ip=10.96.0.11 ports=http/TCP/80/9000
eps_yaml "$T/manifests/term-eps.yaml" term-1 term http/TCP/9000 -- \
	10.0.2.2,ready=false,serving=false,terminating=true 10.0.2.3,ready=false,serving=true,terminating=true
nft_ferry_start
wait_answer "$C" tcp 10.96.0.10:80
names_count "$C" tcp 10.96.0.10:80 20 >/dev/null
[ "$(echo "$COUNTS" | count_of b1)" = 20 ] || fail "ITP Local must use only the local b1: $COUNTS"
wait_answer "$C" tcp 10.96.0.11:80
names_count "$C" tcp 10.96.0.11:80 20 >/dev/null
[ "$(echo "$COUNTS" | count_of b2)" = 20 ] || fail "terminating fallback must use only the serving b2: $COUNTS"
pass
