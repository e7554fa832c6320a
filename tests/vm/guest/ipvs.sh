#!/bin/bash
# Guest half of tests/scenario/test_ipvs_vm.sh: runs inside the test VM
# (tests/vm/run_in_vm.sh), whose Debian kernel has IPVS, on the usual
# nft_topo client / node / backend namespaces. ferry runs on the node with
# --backend ipvs, --cluster-cidr 10.0.1.3/32 (the client's .3 address plays
# a pod, .2 an outside client), --service-cluster-ip-range 10.96.0.0/16,
# fd00:96::/112 (the node routes those ranges on to the backends' side, as
# nft_topo sets up) and a 2 s sync period (drained real servers are reaped
# at syncs).
#
# Checked with real connections (and, for what only the kernel's tables
# show, ipvsadm / ipset / nft in the guest):
#   - before ferry: a backend answers directly, the cluster IP does not;
#   - kube-proxy's cluster-ips-check: a cluster IP on a port no service
#     has is refused (TCP and UDP, from a client and from the node itself)
#     although a node process listens on the wildcard address on that port;
#     an address of the service range that is no cluster IP, which the node
#     routed on to an answering host before ferry, gets no answer;
#   - TCP cluster IP spread over both endpoints; an outside client is
#     masqueraded, a "pod" keeps its address, the node's own connection too
#     is masqueraded; UDP, SCTP and IPv6 cluster IPs answer;
#   - node port on the node's addresses, external IP, both masqueraded;
#   - a service without endpoints is refused at once (TCP and UDP);
#   - load-balancer source ranges: the allowed source answers, another is
#     dropped;
#   - externalTrafficPolicy Local: no local endpoint drops, a local one
#     answers with the client's address; internalTrafficPolicy Local with
#     no local endpoint drops;
#   - ClientIP affinity keeps a client on one endpoint; the scheduler
#     follows --ipvs-scheduler and ferry.io/balance (least-conn -> lc), and
#     random-two is a warning naming the service;
#   - graceful termination: a removed endpoint gets weight 0, its held
#     connection keeps working, new connections go elsewhere, and it is
#     deleted once its last connection is gone;
#   - restart under a bounded connect loop: no connection fails, the new
#     ferry takes the table over with no change;
#   - kube-proxy's ipvs section from --config: tcpTimeout, tcpFinTimeout
#     and udpTimeout are IPVS's (ipvsadm -L --timeout); a service leaving
#     the plan loses its cluster IP's virtual server but keeps the one of
#     its external IP in excludeCIDRs, with its real server, across a
#     restart and a cleanup;
#   - cleanup removes ferry's virtual servers, sets, rules and dummy
#     interface, and leaves a foreign virtual server alone.
. "$(dirname "$0")/../../scenario/lib.sh"
. "$(dirname "$0")/../../scenario/nft_topo.sh"
lib_init ipvs
nft_topo
command -v ipvsadm >/dev/null && command -v ipset >/dev/null || skip "ipvsadm or ipset missing in the guest"

ipvs_list() { ip netns exec "$N" ipvsadm -Ln; }

# Emulation is slow, the ASan build slower: generous bounds on the syncs.
ipvs_ferry_start() {
	ferry_start "$N" --backend ipvs --hostname-override "$NODE_NAME" --cluster-cidr 10.0.1.3/32 \
		--service-cluster-ip-range 10.96.0.0/16,fd00:96::/112 --sync-period 2s "$@"
	local i
	for i in $(seq 1 300); do
		grep -Eq "ipvs: took over" "$FERRY_LOG" && return 0
		kill -0 "$FERRY_PID" 2>/dev/null || { cat "$FERRY_LOG"; fail "ferry died at start"; }
		sleep 0.1
	done
	cat "$FERRY_LOG"
	fail "ferry made no first sync within 30 s"
}

# expect_refused_vm NS PROTO TARGET: refused (exit 2), not timed out (3).
# Under emulation even a plain closed port takes up to a second to refuse
# (process start-up), so the bound is the probe's 5 s timeout: a refusal
# answers, a drop never does.
expect_refused_vm() {
	local rc
	probe "$1" "$2" "$3" --timeout-ms 5000 >/dev/null 2>&1
	rc=$?
	[ "$rc" = 2 ] || fail "$2 $3 from $1: expected refused (exit 2), got exit $rc"
}

# seen_by NS PROTO TARGET [--bind A]: the client address the endpoint saw.
seen_by() {
	local out
	out=$(probe "$@" --timeout-ms 2000 2>&1) || fail "$2 $3 from $1 did not answer: $out"
	out=$(echo "$out" | head -1 | awk '{print $2}')
	echo "${out%:*}"
}

echo_start "$B" s1 10.0.2.2:9000 --tcp --udp --sctp
echo_start "$B" s2 10.0.2.3:9000 --tcp --udp
echo_start "$B" s6 "[fd00:2::2]:9000" --tcp

say "before ferry: a backend answers directly, the cluster IP does not"
wait_answer "$C" tcp 10.0.2.2:9000 s1
expect_silent "$C" tcp 10.96.0.10:80
# For the service-range guards: a node process on the wildcard address
# (port 8081, TCP and UDP), and a host beyond the node answering an
# address of the range no service has (10.96.0.99, routed on by the node).
echo_start "$N" wild 0.0.0.0:8081 --tcp --udp
ip -n "$B" addr add 10.96.0.99/32 dev lo || fail "address 10.96.0.99 on B"
echo_start "$B" free 10.96.0.99:9000 --tcp
say "before ferry: the node routes an address of the service range on, and it answers"
wait_answer "$C" tcp 10.96.0.99:9000 free

M=$T/manifests
svc_yaml "$M/web.yaml" web type=NodePort ip=10.96.0.10 ports=http/TCP/80/9000/30080
eps_yaml "$M/web-eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2 10.0.2.3
svc_yaml "$M/dns.yaml" dns ip=10.96.0.11 ports=dns/UDP/53/9000
eps_yaml "$M/dns-eps.yaml" dns-1 dns dns/UDP/9000 -- 10.0.2.2 10.0.2.3
svc_yaml "$M/sig.yaml" sig ip=10.96.0.20 ports=diameter/SCTP/3868/9000
eps_yaml "$M/sig-eps.yaml" sig-1 sig diameter/SCTP/9000 -- 10.0.2.2
svc_yaml "$M/web6.yaml" web6 ip=fd00:96::10 ports=http/TCP/80/9000
eps_yaml "$M/web6-eps.yaml" web6-1 web6 http/TCP/9000 -- fd00:2::2
svc_yaml "$M/none.yaml" none ip=10.96.0.30 ports=http/TCP/80/9000,dns/UDP/53/9000
eps_yaml "$M/none-eps.yaml" none-1 none http/TCP/9000,dns/UDP/9000 --
svc_yaml "$M/lb.yaml" lb type=LoadBalancer ip=10.96.0.40 ports=http/TCP/80/9000/30081 lb=203.0.113.5 \
	ranges=10.0.1.3/32
eps_yaml "$M/lb-eps.yaml" lb-1 lb http/TCP/9000 -- 10.0.2.2
svc_yaml "$M/far.yaml" far type=LoadBalancer ip=10.96.0.41 ports=http/TCP/80/9000/30082 lb=203.0.113.6 etp=Local
eps_yaml "$M/far-eps.yaml" far-1 far http/TCP/9000 -- 10.0.2.3,node=node-b
svc_yaml "$M/near.yaml" near type=LoadBalancer ip=10.96.0.42 ports=http/TCP/80/9000/30083 lb=203.0.113.7 \
	etp=Local
eps_yaml "$M/near-eps.yaml" near-1 near http/TCP/9000 -- 10.0.2.2
svc_yaml "$M/itp.yaml" itp ip=10.96.0.14 ports=http/TCP/80/9000 itp=Local
eps_yaml "$M/itp-eps.yaml" itp-1 itp http/TCP/9000 -- 10.0.2.3,node=node-b
svc_yaml "$M/aff.yaml" aff ip=10.96.0.12 ports=http/TCP/80/9000 affinity=60
eps_yaml "$M/aff-eps.yaml" aff-1 aff http/TCP/9000 -- 10.0.2.2 10.0.2.3
for b in lc:least-conn two:random-two; do
	svc_yaml "$M/${b%%:*}.yaml" "${b%%:*}" ip=10.96.0.$([ "${b%%:*}" = lc ] && echo 13 || echo 16) \
		ports=http/TCP/80/9000
	sed -i "s|^metadata: {name: \([a-z]*\), namespace: default}|metadata: {name: \1, namespace: default, annotations: {ferry.io/balance: ${b#*:}}}|" \
		"$M/${b%%:*}.yaml"
	eps_yaml "$M/${b%%:*}-eps.yaml" "${b%%:*}-1" "${b%%:*}" http/TCP/9000 -- 10.0.2.2
done
svc_yaml "$M/ext.yaml" ext ip=10.96.0.17 ports=http/TCP/80/9000 ext=192.0.2.50
eps_yaml "$M/ext-eps.yaml" ext-1 ext http/TCP/9000 -- 10.0.2.2
svc_yaml "$M/drain.yaml" drain ip=10.96.0.15 ports=http/TCP/80/9000
eps_yaml "$M/drain-eps.yaml" drain-1 drain http/TCP/9000 -- 10.0.2.3
svc_yaml "$M/gone.yaml" gone ip=10.96.0.18 ports=http/TCP/80/9000 ext=198.51.100.10
eps_yaml "$M/gone-eps.yaml" gone-1 gone http/TCP/9000 -- 10.0.2.2
# kube-proxy's file, ipvs section: timeouts other than the kernel's
# 900/120/300 and an excluded CIDR holding gone's external IP.
cat >"$T/kp.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
ipvs:
  tcpTimeout: 10m0s
  tcpFinTimeout: 1m30s
  udpTimeout: 45s
  excludeCIDRs: [198.51.100.0/24]
YAML

say "a foreign virtual server, made before ferry"
ip netns exec "$N" ipvsadm -A -t 10.0.1.1:7777 -s wlc || fail "ipvsadm -A"

ipvs_ferry_start --ipvs-scheduler wrr --config "$T/kp.yaml"

say "ipvs.tcpTimeout, tcpFinTimeout, udpTimeout: IPVS's timeouts"
ip netns exec "$N" ipvsadm -L --timeout | grep -q 'Timeout (tcp tcpfin udp): 600 90 45' ||
	fail "IPVS timeouts: $(ip netns exec "$N" ipvsadm -L --timeout)"

say "kube-proxy's IPVS sysctls; strict ARP only when asked"
for k in conntrack expire_nodest_conn expire_quiescent_template; do
	[ "$(ip netns exec "$N" cat /proc/sys/net/ipv4/vs/$k)" = 1 ] || fail "net.ipv4.vs.$k must be 1"
done
[ "$(ip netns exec "$N" cat /proc/sys/net/ipv4/conf/all/arp_ignore)" = 0 ] ||
	fail "arp_ignore changed without --ipvs-strict-arp"

say "service-range guards (kube-proxy's cluster-ips-check)"
wait_answer "$C" tcp 10.96.0.10:80
# The wildcard listener is alive: it answers on the node's own address.
wait_answer "$C" tcp 10.0.1.1:8081 wild
# "Reject traffic to invalid ports of ClusterIPs": the VIP is local, so
# without the guard the wildcard listener would answer for the cluster IP.
expect_refused_vm "$C" tcp 10.96.0.10:8081
expect_refused_vm "$C" udp 10.96.0.10:8081
# The node's own connection too (it comes from the VIP itself, so the
# reset goes back to a cluster IP on a port no service has).
expect_refused_vm "$N" tcp 10.96.0.10:8081
# "Drop traffic to unallocated ClusterIPs": no answer, although the node
# routed it to an answering host before ferry.
expect_silent "$C" tcp 10.96.0.99:9000
ip netns exec "$N" ipset list FERRY-SERVICE-CIDRS | grep -qx '10.96.0.0/16' ||
	fail "FERRY-SERVICE-CIDRS: $(ip netns exec "$N" ipset list FERRY-SERVICE-CIDRS)"

say "TCP cluster IP: spread over both endpoints"
wait_answer "$C" tcp 10.96.0.10:80
names_count "$C" tcp 10.96.0.10:80 10 >/dev/null
s1=$(echo "$COUNTS" | count_of s1)
s2=$(echo "$COUNTS" | count_of s2)
[ "$s1" -gt 0 ] && [ "$s2" -gt 0 ] || fail "both endpoints must answer (s1=$s1 s2=$s2)"
say "masquerade: outside client -> node address, pod -> its own, node -> node address"
[ "$(seen_by "$C" tcp 10.96.0.10:80)" = 10.0.2.1 ] || fail "an outside client must be masqueraded"
[ "$(seen_by "$C" tcp 10.96.0.10:80 --bind 10.0.1.3)" = 10.0.1.3 ] || fail "a pod keeps its address"
[ "$(seen_by "$N" tcp 10.96.0.10:80)" = 10.0.2.1 ] || fail "the node's own connection is masqueraded"
say "UDP, SCTP and IPv6 cluster IPs"
wait_answer "$C" udp 10.96.0.11:53
wait_answer "$C" sctp 10.96.0.20:3868 s1
wait_answer "$C" tcp "[fd00:96::10]:80" s6
say "node port on the node's addresses, masqueraded"
[ "$(seen_by "$C" tcp 10.0.1.1:30080)" = 10.0.2.1 ] || fail "node port must be masqueraded"
say "external IP: answered, masqueraded (externalTrafficPolicy Cluster)"
[ "$(seen_by "$C" tcp 192.0.2.50:80)" = 10.0.2.1 ] || fail "an external IP must be masqueraded"
say "no endpoint: refused at once"
expect_refused_vm "$C" tcp 10.96.0.30:80
expect_refused_vm "$C" udp 10.96.0.30:53
say "source ranges: allowed source answers, another is dropped"
[ "$(seen_by "$C" tcp 203.0.113.5:80 --bind 10.0.1.3)" = 10.0.2.1 ] || fail "allowed source, masqueraded"
expect_silent "$C" tcp 203.0.113.5:80
say "externalTrafficPolicy Local: none local drops, local keeps the client's address"
expect_silent "$C" tcp 203.0.113.6:80
[ "$(seen_by "$C" tcp 203.0.113.7:80)" = 10.0.1.2 ] || fail "eTP Local must keep the client address"
say "internalTrafficPolicy Local without a local endpoint drops"
expect_silent "$C" tcp 10.96.0.14:80
say "ClientIP affinity: one endpoint for a client"
names_count "$C" tcp 10.96.0.12:80 8 >/dev/null
[ "$(echo "$COUNTS" | wc -l)" = 1 ] || fail "affinity: more than one endpoint answered: $COUNTS"
say "schedulers: --ipvs-scheduler wrr, least-conn -> lc, random-two warned"
ipvs_list | grep -Eq '^TCP +10\.96\.0\.10:80 wrr' || fail "web must use wrr: $(ipvs_list)"
ipvs_list | grep -Eq '^TCP +10\.96\.0\.13:80 lc' || fail "least-conn must be lc: $(ipvs_list)"
ipvs_list | grep -Eq '^TCP +10\.96\.0\.12:80 wrr persistent 60' || fail "affinity must be persistence: $(ipvs_list)"
grep -q "service default/two asks for ferry.io/balance random-two" "$FERRY_LOG" ||
	fail "random-two must be a warning naming the service"

say "ipvs.excludeCIDRs: a service leaves; its excluded external IP's virtual server stays"
ipvs_list | grep -Eq '^TCP +198\.51\.100\.10:80 ' || fail "no virtual server for gone's external IP: $(ipvs_list)"
rm "$M/gone.yaml" "$M/gone-eps.yaml"
for i in $(seq 1 100); do
	ipvs_list | grep -Eq '^TCP +10\.96\.0\.18:80 ' || break
	sleep 0.1
done
ipvs_list | grep -Eq '^TCP +10\.96\.0\.18:80 ' && fail "gone's cluster IP virtual server outlived the service"
ipvs_list | awk '/^TCP +198\.51\.100\.10:80 /{f=1;next} /^[TUS]/{f=0} f' | grep -q '10\.0\.2\.2:9000' ||
	fail "the excluded virtual server or its real server was deleted: $(ipvs_list)"
grep -q "in ipvs.excludeCIDRs" "$FERRY_LOG" || fail "the log does not say what it left"
ip netns exec "$N" ipset list FERRY-SERVICES | grep -q '198\.51\.100\.10' &&
	fail "FERRY-SERVICES still lists the excluded virtual server (ferry must forget it)"

say "graceful termination: a held connection outlives its endpoint's removal"
probe "$C" tcp 10.96.0.15:80 --hold-ms 6000 --reset --timeout-ms 3000 >"$T/hold.out" 2>&1 &
hold_pid=$!
for i in $(seq 1 50); do grep -q '^s2 ' "$T/hold.out" && break; sleep 0.1; done
grep -q '^s2 ' "$T/hold.out" || fail "the held connection did not reach s2: $(cat "$T/hold.out")"
eps_yaml "$T/drain-eps.yaml" drain-1 drain http/TCP/9000 -- 10.0.2.2
mv "$T/drain-eps.yaml" "$M/drain-eps.yaml"
wait_answer "$C" tcp 10.96.0.15:80 s1
for i in $(seq 1 20); do
	ipvs_list | awk '/10\.96\.0\.15:80/{f=1;next} /^[TUS]/{f=0} f' | grep -Eq '10\.0\.2\.3:9000 +Masq +0 ' && break
	sleep 0.2
done
ipvs_list | awk '/10\.96\.0\.15:80/{f=1;next} /^[TUS]/{f=0} f' | grep -Eq '10\.0\.2\.3:9000 +Masq +0 ' ||
	fail "the removed real server must stay at weight 0 while its connection lives: $(ipvs_list)"
names_count "$C" tcp 10.96.0.15:80 5 >/dev/null
[ "$(echo "$COUNTS" | count_of s2)" = 0 ] || fail "new connections must not reach a draining endpoint"
wait "$hold_pid" || fail "the held connection broke: $(cat "$T/hold.out")"
say "the drained real server goes once its connection is gone"
for i in $(seq 1 60); do
	ipvs_list | awk '/10\.96\.0\.15:80/{f=1;next} /^[TUS]/{f=0} f' | grep -q '10\.0\.2\.3:9000' || break
	sleep 0.5
done
ipvs_list | awk '/10\.96\.0\.15:80/{f=1;next} /^[TUS]/{f=0} f' | grep -q '10\.0\.2\.3:9000' &&
	fail "the drained real server is still there after 30 s: $(ipvs_list)"

say "restart under a bounded connect loop: no connection fails"
# Batches of 20 connections until told to stop (at most 600 batches):
# exit 1 on a failed connection, 2 when the batches ran out first.
(
	for i in $(seq 1 600); do
		[ -e "$T/stop" ] && exit 0
		probe "$C" tcp 10.96.0.10:80 --count 20 --timeout-ms 3000 >>"$T/loop.out" 2>&1 || exit 1
	done
	exit 2
) &
loop_pid=$!
sleep 1
kill "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
kill -0 "$loop_pid" 2>/dev/null || fail "the connect loop ended before the restart: $(tail -3 "$T/loop.out")"
mv "$FERRY_LOG" "$T/ferry-1.log"
ipvs_ferry_start --ipvs-scheduler wrr --ipvs-strict-arp --config "$T/kp.yaml"
sleep 1
touch "$T/stop"
wait "$loop_pid" || fail "a connection failed across the restart (or the loop ran out): $(tail -3 "$T/loop.out")"
say "$(wc -l <"$T/loop.out") connections across the restart"
grep -E "ipvs: took over the kernel's IPVS table: [0-9]+ frontends, \+0 -0 ~0" "$FERRY_LOG" >/dev/null ||
	fail "the restart must change nothing: $(grep 'took over' "$FERRY_LOG")"
ipvs_list | grep -q '10\.0\.1\.1:7777' || fail "the foreign virtual server must survive the restart"
ipvs_list | grep -Eq '^TCP +198\.51\.100\.10:80 ' || fail "the excluded virtual server must survive the restart"
[ "$(ip netns exec "$N" cat /proc/sys/net/ipv4/conf/all/arp_ignore)" = 1 ] &&
	[ "$(ip netns exec "$N" cat /proc/sys/net/ipv4/conf/all/arp_announce)" = 2 ] ||
	fail "--ipvs-strict-arp must set arp_ignore 1 and arp_announce 2"

say "cleanup removes ferry's objects, and only them"
kill "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
FERRY_PID=
ip netns exec "$N" "$FERRY_BIN" cleanup --backend ipvs || fail "cleanup failed"
ipvs_list | grep -q '10\.0\.1\.1:7777' || fail "cleanup removed the foreign virtual server"
ipvs_list | grep -Eq '^TCP +198\.51\.100\.10:80 ' || fail "cleanup removed the excluded virtual server"
[ "$(ipvs_list | grep -Ec '^(TCP|UDP|SCTP) ')" = 2 ] || fail "virtual servers left: $(ipvs_list)"
ip -n "$N" link show ferry-ipvs0 >/dev/null 2>&1 && fail "ferry-ipvs0 is still there"
ip netns exec "$N" ipset list -n | grep -q '^FERRY' && fail "ipsets left: $(ip netns exec "$N" ipset list -n)"
ip netns exec "$N" nft list tables 2>/dev/null | grep -q ferry_ipvs && fail "rule tables left"
expect_silent "$C" tcp 10.96.0.10:80
pass
