#!/bin/bash
# loadBalancerSourceRanges and the node's own address (nftables backend).
# kube-proxy: when a source range contains the node's IP, connections whose
# source is one of the service's load-balancer IPs are accepted too (traffic
# the node sent through the load balancer and got back, hairpinned); when no
# range contains it they are dropped like any other source outside the ranges.
# The node's IP is its primary address; standalone, the default route's source.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_lb_ranges_node
nft_topo
# N's primary address is 10.0.1.1 (its default route's source).
ip -n "$N" route add default via 10.0.1.2 || fail "default route on N"
# C plays the load balancer bringing traffic back: it sends from the
# service's second load-balancer IP (N routes replies to it back to C).
ns_addr "$C" eth0 192.0.2.11/32
ns_addr "$C" eth0 10.0.9.2/32
ip -n "$N" route add 192.0.2.11/32 via 10.0.1.2 || fail "route to the LB IP"
ip -n "$N" route add 10.0.9.2/32 via 10.0.1.2 || fail "route to the outsider"
echo_start "$B" b1 10.0.2.2:9000

# lb_service RANGES: a LoadBalancer service with two ingress IPs.
lb_service() {
	svc_yaml "$T/manifests/lb.yaml.tmp" lb type=LoadBalancer ip=10.96.0.11 lb=192.0.2.10,192.0.2.11 \
		ranges="$1" ports=http/TCP/80/9000/30090
	mv "$T/manifests/lb.yaml.tmp" "$T/manifests/lb.yaml"
}
eps_yaml "$T/manifests/lb-eps.yaml" lb-1 lb http/TCP/9000 -- 10.0.2.2

say "a range holds the node's address: the load-balancer IPs are admitted as sources"
lb_service 10.0.1.0/24
nft_ferry_start
wait_answer "$C" tcp 192.0.2.10:80 b1
out=$(probe "$C" tcp 192.0.2.10:80 --bind 192.0.2.11 --timeout-ms 1000 2>&1) ||
	fail "a connection from the service's own load-balancer IP was dropped: $out"
say "  from 192.0.2.11: $out"
say "a source outside the ranges (and no LB IP) is still dropped"
probe "$C" tcp 192.0.2.10:80 --bind 10.0.9.2 --timeout-ms 500 >/dev/null 2>&1
[ $? = 3 ] || fail "a client outside the ranges was not dropped"

say "no range holds the node's address: the load-balancer IPs are dropped like others"
lb_service 172.16.0.0/12,10.0.1.2/32
for i in $(seq 1 50); do
	probe "$C" tcp 192.0.2.10:80 --bind 192.0.2.11 --timeout-ms 300 >/dev/null 2>&1
	[ $? = 3 ] && break
	sleep 0.1
done
probe "$C" tcp 192.0.2.10:80 --bind 192.0.2.11 --timeout-ms 500 >/dev/null 2>&1
[ $? = 3 ] || fail "a load-balancer IP source was admitted although no range holds the node"
wait_answer "$C" tcp 192.0.2.10:80 b1
pass
