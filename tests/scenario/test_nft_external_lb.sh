#!/bin/bash
# nftables: externalIPs and load-balancer IPs forward; loadBalancerSourceRanges
# admit listed clients and drop the others before DNAT.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_external_lb
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/ext.yaml" ext ip=10.96.0.10 ext=10.99.0.1 ports=http/TCP/80/9000
eps_yaml "$T/manifests/ext-eps.yaml" ext-1 ext http/TCP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/lb.yaml" lb type=LoadBalancer ip=10.96.0.11 lb=10.98.0.1 \
	ranges=10.0.1.2/32 ports=http/TCP/80/9000/30090
eps_yaml "$T/manifests/lb-eps.yaml" lb-1 lb http/TCP/9000 -- 10.0.2.2
nft_ferry_start

say "external IP"
wait_answer "$C" tcp 10.99.0.1:80 b1
say "load-balancer IP from an allowed client"
wait_answer "$C" tcp 10.98.0.1:80 b1
say "load-balancer IP from a client outside the source ranges: dropped"
probe "$C" tcp 10.98.0.1:80 --bind 10.0.1.3 --timeout-ms 500 >/dev/null 2>&1
rc=$?
[ "$rc" = 3 ] || fail "a client outside loadBalancerSourceRanges got exit $rc (expected a timeout, 3)"
say "its cluster IP is not restricted"
probe "$C" tcp 10.96.0.11:80 --bind 10.0.1.3 --timeout-ms 1000 >/dev/null || fail "cluster IP of the LB service refused 10.0.1.3"
pass
