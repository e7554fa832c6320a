#!/bin/bash
# userspace, externalTrafficPolicy Local, kube-proxy's short-circuit: a
# connection to an external frontend (node port, external IP) of an eTP
# Local service uses only this node's endpoints when it comes from outside,
# but all of them when it starts on this node (from the node itself, or
# from one of this cluster's pods: source inside --cluster-cidr). Here the
# only endpoint is on node-b and ferry runs as node-a, so the Local set is
# empty: an outside client is turned away as the relay does for an empty set
# (TCP reset, UDP datagram dropped), while the node and the pod are served
# by the remote endpoint.
#
#   pod P 10.244.1.2 / fd00:244::2 -p0- node N (ferry) -c0- client C 10.0.1.2
#                                            |
#                                            b0- backend B 10.0.2.2 (node-b)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init userspace_short_circuit
nft_topo
ns_new P pod
ns_link "$N" p0 "$P" eth0
ns_addr "$N" p0 10.244.1.1/24
ns_addr "$P" eth0 10.244.1.2/24
ns_addr "$N" p0 fd00:244::1/64
ns_addr "$P" eth0 fd00:244::2/64
ip -n "$P" route add default via 10.244.1.1 || fail "route P"
ip -n "$P" -6 route add default via fd00:244::1 || fail "route6 P"
# The node reaches the external IP through the backends' side, as a node
# whose default route leads elsewhere does (the interception catches it).
ip -n "$N" route add 10.99.0.0/16 via 10.0.2.2 || fail "external route N"

echo_start "$B" b1 10.0.2.2:9000 "[fd00:2::2]:9000"
svc_yaml "$T/manifests/svc.yaml" web type=NodePort etp=Local ip=10.96.0.10 ext=10.99.0.1 \
	ports=http/TCP/80/9000/30080,dns/UDP/53/9000/30053
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000,dns/UDP/9000 -- 10.0.2.2,node=node-b
svc_yaml "$T/manifests/svc6.yaml" web6 type=NodePort etp=Local ip=fd00:96::10 \
	ports=http/TCP/80/9000/30081
eps_yaml "$T/manifests/eps6.yaml" web6-1 web6 http/TCP/9000 -- fd00:2::2,node=node-b

ferry_start "$N" --hostname-override "$NODE_NAME" --intercept on \
	--cluster-cidr 10.244.0.0/16,fd00:244::/64
for i in $(seq 1 50); do
	grep -q "10.99.0.1:80/TCP intercepted" "$FERRY_LOG" && break
	kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died at start"
	sleep 0.1
done
grep -q "10.99.0.1:80/TCP intercepted" "$FERRY_LOG" || fail "the external IP is not intercepted"
# The cluster IP (Cluster policy for internal traffic) answers at once:
# ferry is programmed.
wait_answer "$C" tcp 10.96.0.10:80 b1

say "an external client: the Local set is empty, refused (TCP reset) / dropped (UDP)"
# externalTrafficPolicy: Local proper. The relay turns a TCP connection to
# an empty set away with a reset, and drops the datagram of a UDP flow.
expect_refused "$C" tcp 10.0.1.1:30080
expect_refused "$C" tcp 10.99.0.1:80
expect_refused "$C" tcp "[fd00:1::1]:30081"
expect_silent "$C" udp 10.0.1.1:30053

say "the node itself: short-circuited to every endpoint"
# kube-proxy's "short-circuit local traffic": a connection from one of the
# node's own addresses uses the cluster-wide set.
wait_answer "$N" tcp 10.0.1.1:30080 b1
wait_answer "$N" tcp 10.0.2.1:30080 b1
wait_answer "$N" tcp 127.0.0.1:30080 b1
wait_answer "$N" tcp 10.99.0.1:80 b1
wait_answer "$N" udp 10.0.1.1:30053 b1
wait_answer "$N" tcp "[fd00:1::1]:30081" b1

say "a pod of this cluster (source in --cluster-cidr): short-circuited too"
# kube-proxy's "short-circuit pod traffic": local-traffic detection
# (ClusterCIDR mode) counts it as this cluster's.
wait_answer "$P" tcp 10.244.1.1:30080 b1
wait_answer "$P" tcp 10.0.1.1:30080 b1
wait_answer "$P" tcp 10.99.0.1:80 b1
wait_answer "$P" udp 10.244.1.1:30053 b1
wait_answer "$P" tcp "[fd00:244::1]:30081" b1

say "the outside client is still refused (nothing leaked into the Local set)"
expect_refused "$C" tcp 10.0.1.1:30080
expect_refused "$C" tcp 10.99.0.1:80

say "an endpoint on this node: the outside client uses it, the node still reaches all"
echo_start "$B" b2 10.0.2.3:9000
eps_yaml "$T/manifests/eps.tmp" web-1 web http/TCP/9000,dns/UDP/9000 -- 10.0.2.2,node=node-b 10.0.2.3
mv "$T/manifests/eps.tmp" "$T/manifests/eps.yaml"
wait_answer "$C" tcp 10.0.1.1:30080 b2
names_count "$C" tcp 10.0.1.1:30080 10 >/dev/null
[ "$(echo "$COUNTS" | count_of b2)" = 10 ] || fail "external clients must use the local endpoint only: $COUNTS"
names_count "$N" tcp 10.0.1.1:30080 20 >/dev/null
b1=$(echo "$COUNTS" | count_of b1)
b2=$(echo "$COUNTS" | count_of b2)
say "  from the node: b1=$b1 b2=$b2"
[ "$b1" -gt 0 ] && [ "$b2" -gt 0 ] || fail "the node must reach both endpoints (b1=$b1 b2=$b2)"
pass
