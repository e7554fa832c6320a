#!/bin/bash
# userspace in a cluster: a cluster IP that no interface holds is served by
# the relay from another namespace routed through the node and from the
# node itself, because --intercept on redirects it (nftables tables
# ferry_intercept) to the relay's shared wildcard sockets, one per family
# and protocol (and worker), which find the service by the connection's
# original destination; the VIP gets no socket of its own. The backends see the
# node's address (the relay carried the traffic, not a kernel NAT); UDP
# replies reach the client from the VIP. With --intercept off the same
# client gets no answer, and after SIGTERM the tables are gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init userspace_intercept
nft_topo
echo_start "$B" b1 10.0.2.2:9000 "[fd00:2::2]:9000"
echo_start "$B" b2 10.0.2.3:9000
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000,dns/UDP/53/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000,dns/UDP/9000 -- 10.0.2.2 10.0.2.3
svc_yaml "$T/manifests/svc6.yaml" web6 ip=fd00:96::10 ports=http/TCP/80/9000,dns/UDP/53/9000
eps_yaml "$T/manifests/eps6.yaml" web6-1 web6 http/TCP/9000,dns/UDP/9000 -- fd00:2::2

# us_ferry_start PATTERN ARGS: ferry (userspace) on N, until its log says
# PATTERN (its listeners are open, or its redirects programmed).
us_ferry_start() {
	local i pat=$1
	shift
	ferry_start "$N" --hostname-override "$NODE_NAME" "$@"
	for i in $(seq 1 50); do
		grep -q "$pat" "$FERRY_LOG" && return 0
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died at start"
		sleep 0.1
	done
	fail "ferry did not log '$pat' within 5 s"
}

# us_ferry_stop: SIGTERM, exit 0 within 2 s.
us_ferry_stop() {
	local i rc
	kill -TERM "$FERRY_PID"
	for i in $(seq 1 40); do
		kill -0 "$FERRY_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$FERRY_PID" 2>/dev/null && fail "ferry still running 2 s after SIGTERM"
	wait "$FERRY_PID"
	rc=$?
	[ "$rc" = 0 ] || fail "ferry exited with $rc after SIGTERM"
}

say "--intercept off: the VIP is routed past the node, nobody answers"
us_ferry_start "listening on 10.96.0.10:53/UDP" --intercept off
expect_silent "$C" tcp 10.96.0.10:80
expect_silent "$C" udp 10.96.0.10:53
ip netns exec "$N" nft list tables 2>/dev/null | grep -q ferry_intercept &&
	fail "--intercept off installed interception tables"
us_ferry_stop

say "--intercept on"
us_ferry_start "intercept: 4 redirects" --intercept on --workers 2
grep -q "listening on 10.96.0.10" "$FERRY_LOG" && fail "an intercepted VIP got a listener of its own"
tcp_relay=$(sed -n 's/.*userspace: relay 0\.0\.0\.0:\([0-9]*\)\/TCP receives intercepted.*/\1/p' "$FERRY_LOG")
[ -n "$tcp_relay" ] || fail "no shared TCP relay socket"
ip netns exec "$N" nft list map ip ferry_intercept relay_ports | grep -q "10.96.0.10 . tcp . 80 : $tcp_relay" ||
	fail "10.96.0.10:80/TCP is not redirected to the shared relay port $tcp_relay"
wait_answer "$C" tcp 10.96.0.10:80
names_count "$C" tcp 10.96.0.10:80 20 >/dev/null
b1=$(echo "$COUNTS" | count_of b1)
b2=$(echo "$COUNTS" | count_of b2)
say "  TCP from the client: b1=$b1 b2=$b2"
[ "$b1" -gt 0 ] && [ "$b2" -gt 0 ] || fail "both endpoints must answer (b1=$b1 b2=$b2)"
seen=$(answer_of "$C" tcp 10.96.0.10:80 | awk '{print $2}')
[ "${seen%:*}" = 10.0.2.1 ] || fail "backend saw $seen, expected the node 10.0.2.1 (the relay)"

wait_answer "$C" udp 10.96.0.10:53
seen=$(answer_of "$C" udp 10.96.0.10:53 | awk '{print $2}')
say "  UDP from the client: backend saw $seen"
[ "${seen%:*}" = 10.0.2.1 ] || fail "UDP: backend saw $seen, expected the node 10.0.2.1"
names_count "$C" udp 10.96.0.10:53 10 >/dev/null

wait_answer "$C" tcp "[fd00:96::10]:80" b1
seen=$(answer_of "$C" tcp "[fd00:96::10]:80" | awk '{print $2}')
say "  TCP over IPv6 from the client: backend saw $seen"
case "$seen" in "[fd00:2::1]:"*) ;; *) fail "IPv6: backend saw $seen, expected the node fd00:2::1" ;; esac
# UDP over IPv6: the flow's service comes from conntrack (IPv6 tuple).
wait_answer "$C" udp "[fd00:96::10]:53" b1

say "from the node itself"
wait_answer "$N" tcp 10.96.0.10:80
wait_answer "$N" udp 10.96.0.10:53
wait_answer "$N" tcp "[fd00:96::10]:80"
wait_answer "$N" udp "[fd00:96::10]:53"

say "SIGTERM removes the interception tables"
ip netns exec "$N" nft list tables | grep -q "ip ferry_intercept" || fail "no ip ferry_intercept table while running"
us_ferry_stop
left=$(ip netns exec "$N" nft list tables | grep ferry_intercept)
[ -z "$left" ] || fail "interception tables left after exit: $left"
expect_silent "$C" tcp 10.96.0.10:80
pass
