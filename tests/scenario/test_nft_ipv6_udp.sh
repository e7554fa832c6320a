#!/bin/bash
# nftables: an IPv6 cluster IP (ip6 ferry table) and UDP services forward.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_ipv6_udp
nft_topo
echo_start "$B" b6 "[fd00:2::2]:9000"
echo_start "$B" u1 10.0.2.2:9053 --udp
svc_yaml "$T/manifests/v6.yaml" v6 ip=fd00:96::10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/v6-eps.yaml" v6-1 v6 http/TCP/9000 -- fd00:2::2
svc_yaml "$T/manifests/dns.yaml" dns ip=10.96.0.53 ports=dns/UDP/53/9053
eps_yaml "$T/manifests/dns-eps.yaml" dns-1 dns dns/UDP/9053 -- 10.0.2.2
nft_ferry_start
say "IPv6 TCP"
wait_answer "$C" tcp "[fd00:96::10]:80" b6
say "IPv4 UDP"
wait_answer "$C" udp 10.96.0.53:53 u1
pass
