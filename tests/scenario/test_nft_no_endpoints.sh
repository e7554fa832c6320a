#!/bin/bash
# nftables: a service without a usable endpoint is refused at once (TCP RST:
# probe exit 2, not a timeout) on its cluster IP and on its node port; UDP
# gets no answer; externalTrafficPolicy Local without a local endpoint drops
# (the client times out) instead of refusing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_no_endpoints
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/ok.yaml" ok ip=10.96.0.9 ports=http/TCP/80/9000
eps_yaml "$T/manifests/ok-eps.yaml" ok-1 ok http/TCP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/empty.yaml" empty type=NodePort ip=10.96.0.10 \
	ports=http/TCP/80/9000/30080,dns/UDP/53/9000/30053
eps_yaml "$T/manifests/empty-eps.yaml" empty-1 empty http/TCP/9000,dns/UDP/9000 --
svc_yaml "$T/manifests/noslice.yaml" noslice ip=10.96.0.11 ports=http/TCP/80/9000
svc_yaml "$T/manifests/local.yaml" local type=NodePort etp=Local ip=10.96.0.12 ports=http/TCP/80/9000/30082
eps_yaml "$T/manifests/local-eps.yaml" local-1 local http/TCP/9000 -- 10.0.2.2,node=node-b
nft_ferry_start
wait_answer "$C" tcp 10.96.0.9:80

for t in 10.96.0.10:80 10.96.0.11:80 10.0.1.1:30080; do
	say "tcp $t from the client: refused at once"
	expect_refused "$C" tcp "$t"
done
say "tcp 10.96.0.10:80 from the node itself: refused at once"
expect_refused "$N" tcp 10.96.0.10:80
say "udp 10.96.0.10:53: no answer"
probe "$C" udp 10.96.0.10:53 --timeout-ms 500 >/dev/null 2>&1 && fail "udp without endpoints answered"
say "node port with externalTrafficPolicy Local and no local endpoint: dropped"
expect_silent "$C" tcp 10.0.1.1:30082
say "and from outside its cluster IP still works through the remote endpoint"
wait_answer "$C" tcp 10.96.0.12:80 b1
pass
