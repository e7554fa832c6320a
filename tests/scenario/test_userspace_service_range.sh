#!/bin/bash
# userspace with --intercept on: kube-proxy's guards of the service range.
# A new connection to a cluster IP on a port no service defines is rejected
# at once (TCP reset, ICMP port unreachable), one to an unallocated address
# of --service-cluster-ip-range is dropped; defined ports still work. The
# node routes the service range towards B (nft_topo), and B holds the
# "unallocated" 10.96.0.99 / fd00:96::99 and answers on it: without the
# guards an unknown port times out (B drops what is not its own) and the
# unallocated address answers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init userspace_service_range
nft_topo
ip -n "$B" addr add 10.96.0.99/32 dev lo || fail "addr 10.96.0.99 on B"
ip -n "$B" addr add fd00:96::99/128 dev lo || fail "addr fd00:96::99 on B"
echo_start "$B" b1 10.0.2.2:9000 "[fd00:2::2]:9000"
echo_start "$B" stray 10.96.0.99:80 "[fd00:96::99]:80"
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000,dns/UDP/53/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000,dns/UDP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/svc6.yaml" web6 ip=fd00:96::10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps6.yaml" web6-1 web6 http/TCP/9000 -- fd00:2::2

# us_start ARGS: ferry (userspace, interception on) on N, until it answers.
us_start() {
	ferry_start "$N" --hostname-override "$NODE_NAME" --intercept on "$@"
	wait_answer "$C" tcp 10.96.0.10:80 b1
}

us_stop() {
	local i
	kill -TERM "$FERRY_PID"
	for i in $(seq 1 40); do
		kill -0 "$FERRY_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$FERRY_PID" 2>/dev/null && fail "ferry still running 2 s after SIGTERM"
	wait "$FERRY_PID"
}

say "--service-cluster-ip-range 10.96.0.0/16,fd00:96::/112"
us_start --service-cluster-ip-range 10.96.0.0/16,fd00:96::/112
say "defined ports work"
wait_answer "$C" udp 10.96.0.10:53 b1
wait_answer "$C" tcp "[fd00:96::10]:80" b1
wait_answer "$N" tcp 10.96.0.10:80 b1

say "a cluster IP on an undefined port: rejected at once"
# kube-proxy: "Reject traffic to invalid ports of ClusterIPs".
expect_refused "$C" tcp 10.96.0.10:81
expect_refused "$C" udp 10.96.0.10:54
expect_refused "$C" tcp 10.96.0.10:53
expect_refused "$C" tcp "[fd00:96::10]:81"
expect_refused "$N" tcp 10.96.0.10:81
expect_refused "$N" tcp "[fd00:96::10]:81"

say "an unallocated address of the range: dropped"
# kube-proxy: "Drop traffic to unallocated ClusterIPs".
expect_silent "$C" tcp 10.96.0.99:80
expect_silent "$C" tcp "[fd00:96::99]:80"
expect_silent "$N" tcp 10.96.0.99:80

say "a service added later: its port works, its other ports are rejected"
svc_yaml "$T/manifests/svc2.yaml" api ip=10.96.0.20 ports=http/TCP/8080/9000
eps_yaml "$T/manifests/eps2.yaml" api-1 api http/TCP/9000 -- 10.0.2.2
wait_answer "$C" tcp 10.96.0.20:8080 b1
expect_refused "$C" tcp 10.96.0.20:80
say "and removed: its address is unallocated again"
rm "$T/manifests/svc2.yaml" "$T/manifests/eps2.yaml"
for i in $(seq 1 50); do
	probe "$C" tcp 10.96.0.20:8080 --timeout-ms 300 >/dev/null 2>&1
	[ $? = 3 ] && break
	sleep 0.1
done
expect_silent "$C" tcp 10.96.0.20:8080
us_stop

say "no service range known: only the cluster IPs are guarded"
us_start
expect_refused "$C" tcp 10.96.0.10:81
answer_of "$C" tcp 10.96.0.99:80 | grep -q '^stray ' || fail "10.96.0.99 must be routed on without a range"
us_stop
pass
