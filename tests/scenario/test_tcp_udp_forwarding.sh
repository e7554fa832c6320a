#!/bin/bash
# TCP and UDP, IPv4 and IPv6, forwarded through ferry over real routed hops.
#
#   client ns --veth-- proxy ns (ferry) --veth-- backend ns b1
#                                  \\---veth-- backend ns b2
#
# The service addresses (10.200.100.10, fd00:200:100::10) live on the proxy
# namespace's loopback; the client routes to them via the proxy. The proxy
# namespace does not forward packets, so the client cannot reach a backend
# except through ferry; the test checks that too.
. "$(dirname "$0")/lib.sh"
lib_init tcp_udp_forwarding

ns_new C client
ns_new P proxy
ns_new B1 b1
ns_new B2 b2

ns_link "$C" c0 "$P" p0
ns_link "$P" p1 "$B1" b0
ns_link "$P" p2 "$B2" b0
ns_addr "$C" c0 10.200.1.1/24
ns_addr "$C" c0 fd00:200:1::1/64
ns_addr "$P" p0 10.200.1.2/24
ns_addr "$P" p0 fd00:200:1::2/64
ns_addr "$P" p1 10.200.2.1/24
ns_addr "$P" p1 fd00:200:2::1/64
ns_addr "$P" p2 10.200.3.1/24
ns_addr "$P" p2 fd00:200:3::1/64
ns_addr "$P" lo 10.200.100.10/32
ns_addr "$P" lo fd00:200:100::10/128
ns_addr "$B1" b0 10.200.2.11/24
ns_addr "$B1" b0 fd00:200:2::11/64
ns_addr "$B2" b0 10.200.3.11/24
ns_addr "$B2" b0 fd00:200:3::11/64
ip -n "$C" route add default via 10.200.1.2 || fail "client route v4"
ip -n "$C" -6 route add default via fd00:200:1::2 || fail "client route v6"
for b in "$B1" "$B2"; do
	gw4=10.200.2.1; gw6=fd00:200:2::1
	[ "$b" = "$B2" ] && gw4=10.200.3.1 && gw6=fd00:200:3::1
	ip -n "$b" route add default via $gw4 || fail "backend route v4"
	ip -n "$b" -6 route add default via $gw6 || fail "backend route v6"
done
ip netns exec "$P" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

echo_start "$B1" b1 10.200.2.11:9000 "[fd00:200:2::11]:9000"
echo_start "$B2" b2 10.200.3.11:9000 "[fd00:200:3::11]:9000"

mf_service "$T/manifests/svc4.yaml" web4 10.200.100.10 tcp/TCP/80 dns/UDP/53
mf_slice "$T/manifests/web4-eps.yaml" web4-a web4 tcp/TCP/9000 dns/UDP/9000 -- 10.200.2.11 10.200.3.11
mf_service "$T/manifests/svc6.yaml" web6 fd00:200:100::10 tcp/TCP/80 dns/UDP/53
mf_slice "$T/manifests/web6-eps.yaml" web6-a web6 tcp/TCP/9000 dns/UDP/9000 -- fd00:200:2::11 fd00:200:3::11

say "sanity: backends are not reachable from the client except through the proxy"
probe "$C" tcp 10.200.2.11:9000 --timeout-ms 300 >/dev/null 2>&1 &&
	fail "client reached a backend directly; the topology does not isolate them"

ferry_start "$P" --workers 2

check() {
	local proto=$1 target=$2 out names
	say "checking $proto $target"
	wait_answer "$C" "$proto" "$target"
	out=$(probe "$C" "$proto" "$target" --count 10 --timeout-ms 1000) ||
		fail "$proto $target: probe failed (exit $?)"
	names=$(echo "$out" | awk '{print $1}' | sort -u | tr '\n' ' ')
	say "  answers came from: $names(backend saw client as $(echo "$out" | head -n1 | cut -d' ' -f2))"
	echo "$out" | awk '{print $1}' | grep -qvE '^(b1|b2)$' && fail "$proto $target: unexpected answer: $out"
	[ "$names" = "b1 b2 " ] || fail "$proto $target: 10 probes did not reach both backends (got: $names)"
	if [ "$proto" = tcp ]; then
		out=$(probe "$C" tcp "$target" --send "payload-$proto" --timeout-ms 1000) ||
			fail "tcp $target: echo through the relay failed"
		[ "$(echo "$out" | sed -n 2p)" = "payload-$proto" ] ||
			fail "tcp $target: echoed data differs: $out"
	fi
}

check tcp 10.200.100.10:80
check udp 10.200.100.10:53
check tcp "[fd00:200:100::10]:80"
check udp "[fd00:200:100::10]:53"
pass
