#!/bin/bash
# nftables: the guards of the service range, as kube-proxy's nftables mode
# has them in chain cluster-ips-check (jumped with "ct state new" from the
# filter forward and output hooks, after the DNAT, so a connection a service
# took is no longer judged):
#   - a new connection to a cluster IP on a port no service defines is
#     rejected at once ("ip daddr @cluster-ips reject"): TCP refused, UDP
#     answered with ICMP port unreachable;
#   - one to an address of --service-cluster-ip-range that is no cluster IP
#     is dropped ("ip daddr { service CIDRs } drop"): silence.
# Both from a client routed through the node and from the node itself,
# IPv4 and IPv6; they follow services that come and go, stay in force while
# ferry is down and survive a restart (take-over), where a changed range is
# applied too.
#
# N routes the service CIDRs to B (nft_topo.sh), and B holds the guarded
# addresses with an echo server ("stray") on them: without the guards every
# check below that expects a refusal or silence gets stray's answer instead.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_service_range
command -v nft >/dev/null || skip "the nft command is not installed"
nft_topo
for a in 10.96.0.10 10.96.0.20 10.96.0.30 10.96.0.99; do
	ns_addr "$B" lo "$a/32"
done
for a in fd00:96::10 fd00:96::99; do
	ns_addr "$B" lo "$a/128"
done
echo_start "$B" web 10.0.2.2:9000 "[fd00:2::2]:9000"
echo_start "$B" stray 10.96.0.10:81 10.96.0.20:80 10.96.0.30:80 10.96.0.30:81 10.96.0.99:80 \
	"[fd00:96::10]:81" "[fd00:96::99]:80"

svc_yaml "$T/manifests/web.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000,dns/UDP/53/9000
eps_yaml "$T/manifests/web-eps.yaml" web-1 web http/TCP/9000,dns/UDP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/web6.yaml" web6 ip=fd00:96::10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/web6-eps.yaml" web6-1 web6 http/TCP/9000 -- fd00:2::2
svc_yaml "$T/manifests/gone.yaml" gone ip=10.96.0.20 ports=http/TCP/80/9000
eps_yaml "$T/manifests/gone-eps.yaml" gone-1 gone http/TCP/9000 -- 10.0.2.2

# until_rc NS PROTO TARGET RC: poll (50 x 100 ms) until a probe exits RC
# (0 answered, 2 refused, 3 silent): a change has reached the kernel.
until_rc() {
	local i rc
	for i in $(seq 1 50); do
		probe "$1" "$2" "$3" --timeout-ms 300 >/dev/null 2>&1
		rc=$?
		[ "$rc" = "$4" ] && return 0
		sleep 0.1
	done
	fail "$2 $3 from ${1##*-}: still exit $rc after 5 s, want $4"
}

# guards FROM: the guard checks from namespace FROM (C, or N itself).
guards() {
	local ns=$1 who=${1##*-}
	say "from $who: defined ports answer (the guard runs after the DNAT)"
	wait_answer "$ns" tcp 10.96.0.10:80 web
	wait_answer "$ns" tcp "[fd00:96::10]:80" web
	say "from $who: a cluster IP's undefined port is refused (cluster-ips-check: ip daddr @cluster-ips reject)"
	expect_refused "$ns" tcp 10.96.0.10:81
	expect_refused "$ns" tcp "[fd00:96::10]:81"
	say "from $who: an unallocated address of the range is dropped (cluster-ips-check: ip daddr { CIDRs } drop)"
	expect_silent "$ns" tcp 10.96.0.99:80
	expect_silent "$ns" tcp "[fd00:96::99]:80"
}

nft_ferry_start --service-cluster-ip-range 10.96.0.0/16,fd00:96::/112
guards "$C"
say "from client: UDP to an undefined port gets ICMP port unreachable (cluster-ips-check reject)"
wait_answer "$C" udp 10.96.0.10:53 web
expect_refused "$C" udp 10.96.0.10:81
say "from client: TCP to a port the cluster IP defines for UDP only is refused (cluster-ips-check reject)"
expect_refused "$C" tcp 10.96.0.10:53
guards "$N"

say "a cluster IP added later answers, and its other ports are refused (@cluster-ips follows the services)"
expect_silent "$C" tcp 10.96.0.30:80
svc_yaml "$T/manifests/late.yaml.tmp" late ip=10.96.0.30 ports=http/TCP/80/9000
eps_yaml "$T/manifests/late-eps.yaml.tmp" late-1 late http/TCP/9000 -- 10.0.2.2
mv "$T/manifests/late-eps.yaml.tmp" "$T/manifests/late-eps.yaml"
mv "$T/manifests/late.yaml.tmp" "$T/manifests/late.yaml"
wait_answer "$C" tcp 10.96.0.30:80 web
until_rc "$C" tcp 10.96.0.30:81 2
expect_refused "$C" tcp 10.96.0.30:81

say "a cluster IP removed is an unallocated address of the range: dropped (cluster-ips-check drop)"
wait_answer "$C" tcp 10.96.0.20:80 web
rm "$T/manifests/gone.yaml" "$T/manifests/gone-eps.yaml"
until_rc "$C" tcp 10.96.0.20:80 3
expect_silent "$C" tcp 10.96.0.20:80
expect_silent "$N" tcp 10.96.0.20:80

say "the guards stay in force while ferry is down (kube-proxy's rules outlive it too)"
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
expect_refused "$C" tcp 10.96.0.10:81
expect_silent "$C" tcp 10.96.0.99:80

say "restart: the tables are taken over and the guards hold"
nft_ferry_start --service-cluster-ip-range 10.96.0.0/16,fd00:96::/112
grep -q "took over the tables" "$FERRY_LOG" || fail "the restart did not take the tables over"
guards "$C"
expect_refused "$C" tcp 10.96.0.30:81
expect_silent "$C" tcp 10.96.0.20:80

say "restart with the IPv4 range only: the take-over applies the changed range"
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
nft_ferry_start --service-cluster-ip-range 10.96.0.0/16
grep -q "took over the tables" "$FERRY_LOG" || fail "the restart did not take the tables over"
ip netns exec "$N" nft list chain ip6 ferry service_cidrs_check | grep -q "fd00:96::" &&
	fail "the IPv6 range is still dropped: $(ip netns exec "$N" nft list chain ip6 ferry service_cidrs_check)"
ip netns exec "$N" nft list chain ip ferry service_cidrs_check | grep -qF "ip daddr 10.96.0.0/16 drop" ||
	fail "the IPv4 range rule is gone: $(ip netns exec "$N" nft list chain ip ferry service_cidrs_check)"
wait_answer "$C" tcp "[fd00:96::99]:80" stray
expect_silent "$C" tcp 10.96.0.99:80
say "  with no IPv6 range known only the reject rule guards IPv6 (kube-proxy: no CIDR, no drop rule)"
expect_refused "$C" tcp "[fd00:96::10]:81"
pass
