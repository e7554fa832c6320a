#!/bin/bash
# nftables, externalTrafficPolicy Local, kube-proxy's short-circuit: a
# connection to an external frontend (node port, external IP, load-balancer
# IP) of an eTP Local service uses only this node's endpoints when it comes
# from outside, but the cluster-wide set when it starts on this node. Its
# external chain is, in order:
#   <pod detection> goto cluster-chain               (a pod keeps its address)
#   fib saddr type local jump mark-for-masquerade     (the node is masqueraded)
#   fib saddr type local goto cluster-chain
#   goto local-chain                                  (the others: Local set)
# Here the only endpoint of "web" is on node-b and ferry runs as node-a, so
# the Local set is empty: an outside client is dropped (silence), while a pod
# (source inside --cluster-cidr) and the node itself are forwarded to the
# remote endpoint, the pod with its address kept, the node masqueraded. The
# same with ClientIP affinity ("sticky"), whose short-circuit has chains of
# its own. Last, --masquerade-all leaves eTP Local external traffic alone
# (kube-proxy: masqueradeAll marks cluster-IP traffic only).
#
#   pod P 10.244.1.2 -p0- node N (ferry) -c0- client C 10.0.1.2
#                              |
#                              b0- backend B 10.0.2.2 (node-b), 10.0.2.3 (node-a)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_short_circuit
nft_topo
ns_new P pod
ns_link "$N" p0 "$P" eth0
ns_addr "$N" p0 10.244.1.1/24
ns_addr "$P" eth0 10.244.1.2/24
ip -n "$P" route add default via 10.244.1.1 || fail "route P"
# The node needs a route to the external and load-balancer IPs to connect at
# all. Through C's side: its connections then leave from 10.0.1.1, and the
# backend, reached through b0 after the DNAT, sees 10.0.2.1 only when they
# are masqueraded.
ip -n "$N" route add 10.98.0.0/16 via 10.0.1.2 || fail "lb route N"
ip -n "$N" route add 10.99.0.0/16 via 10.0.1.2 || fail "external route N"

echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
svc_yaml "$T/manifests/web.yaml" web type=LoadBalancer etp=Local ip=10.96.0.10 ext=10.99.0.1 lb=10.98.0.1 \
	ports=http/TCP/80/9000/30080
eps_yaml "$T/manifests/web-eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2,node=node-b
svc_yaml "$T/manifests/sticky.yaml" sticky type=NodePort etp=Local ip=10.96.0.11 ext=10.99.0.2 affinity=60 \
	ports=http/TCP/80/9000/30081
eps_yaml "$T/manifests/sticky-eps.yaml" sticky-1 sticky http/TCP/9000 -- 10.0.2.2,node=node-b
svc_yaml "$T/manifests/mixed.yaml" mixed type=NodePort etp=Local ip=10.96.0.12 ext=10.99.0.3 \
	ports=http/TCP/80/9000/30082
eps_yaml "$T/manifests/mixed-eps.yaml" mixed-1 mixed http/TCP/9000 -- 10.0.2.2,node=node-b 10.0.2.3

# seen_by NS TARGET NAME ADDR WHY: one TCP connection from NS to TARGET must
# reach NAME (- : any), which must have seen the client address ADDR.
seen_by() {
	local ns=$1 target=$2 name=$3 want=$4 why=$5 out got
	out=$(probe "$ns" tcp "$target" --timeout-ms 1000 2>&1) ||
		fail "$target from ${ns##*-}: no answer, want $name ($why): $out"
	got=${out#* }
	got=${got%:*}
	[ "$name" = - ] && name=${out%% *}
	[ "${out%% *}" = "$name" ] || fail "$target from ${ns##*-}: answered by '${out%% *}', want $name ($why)"
	[ "$got" = "$want" ] || fail "$target from ${ns##*-}: $name saw $got, want $want ($why)"
	say "  $target from ${ns##*-}: $name saw $got ($why)"
}

nft_ferry_start --cluster-cidr 10.244.0.0/16
say "the cluster IP (internalTrafficPolicy Cluster) answers: ferry is programmed"
wait_answer "$C" tcp 10.96.0.10:80 b1
wait_answer "$C" tcp 10.96.0.12:80

say "outside client, no local endpoint: dropped (goto local-chain, empty: drop)"
for t in 10.99.0.1:80 10.98.0.1:80 10.0.1.1:30080 10.99.0.2:80 10.0.1.1:30081; do
	expect_silent "$C" tcp "$t"
done

say "pod: the short-circuit to the cluster-wide set, source kept (<pod detection> goto cluster-chain)"
seen_by "$P" 10.99.0.1:80 b1 10.244.1.2 "external IP"
seen_by "$P" 10.98.0.1:80 b1 10.244.1.2 "load-balancer IP"
seen_by "$P" 10.244.1.1:30080 b1 10.244.1.2 "node port"
seen_by "$P" 10.99.0.2:80 b1 10.244.1.2 "external IP, affinity"
seen_by "$P" 10.244.1.1:30081 b1 10.244.1.2 "node port, affinity"

say "node: the short-circuit, masqueraded (fib saddr type local: mark-for-masquerade, goto cluster-chain)"
seen_by "$N" 10.99.0.1:80 b1 10.0.2.1 "external IP"
seen_by "$N" 10.98.0.1:80 b1 10.0.2.1 "load-balancer IP"
seen_by "$N" 10.0.1.1:30080 b1 10.0.2.1 "node port"
seen_by "$N" 10.99.0.2:80 b1 10.0.2.1 "external IP, affinity"
seen_by "$N" 10.0.1.1:30081 b1 10.0.2.1 "node port, affinity"

say "with a local endpoint, outside clients still use the Local set only, client kept (goto local-chain)"
names_count "$C" tcp 10.99.0.3:80 10 >/dev/null
[ "$(echo "$COUNTS" | count_of b2)" = 10 ] || fail "eTP Local from outside must use only the local endpoint b2: $COUNTS"
seen_by "$C" 10.0.1.1:30082 b2 10.0.1.2 "node port, Local"
say "  while pods reach both endpoints (the cluster-wide set)"
names_count "$P" tcp 10.99.0.3:80 40 >/dev/null
[ "$(echo "$COUNTS" | count_of b1)" -gt 0 ] && [ "$(echo "$COUNTS" | count_of b2)" -gt 0 ] ||
	fail "a pod's connections to an eTP Local external IP must reach the whole cluster: $COUNTS"
seen_by "$P" 10.96.0.12:80 - 10.244.1.2 "cluster IP from a pod: kept"

say "--masquerade-all: eTP Local external traffic from outside keeps its client (masqueradeAll: cluster IPs only)"
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
nft_ferry_start --cluster-cidr 10.244.0.0/16 --masquerade-all
seen_by "$C" 10.99.0.3:80 b2 10.0.1.2 "external IP, Local, --masquerade-all"
seen_by "$C" 10.0.1.1:30082 b2 10.0.1.2 "node port, Local, --masquerade-all"
seen_by "$P" 10.96.0.12:80 - 10.0.2.1 "cluster IP from a pod, --masquerade-all: masqueraded"
say "the restart took the tables over; the short-circuits hold"
grep -q "took over the tables" "$FERRY_LOG" || fail "the restart did not take the tables over"
expect_silent "$C" tcp 10.99.0.1:80
seen_by "$P" 10.99.0.1:80 b1 10.244.1.2 "external IP"
seen_by "$N" 10.0.1.1:30081 b1 10.0.2.1 "node port, affinity"

say "the remote endpoint moves (an update, not a full sync): the short-circuit follows the cluster-wide set"
eps_yaml "$T/manifests/web-eps.yaml.tmp" web-1 web http/TCP/9000 -- 10.0.2.3,node=node-b
mv "$T/manifests/web-eps.yaml.tmp" "$T/manifests/web-eps.yaml"
wait_answer "$P" tcp 10.99.0.1:80 b2
wait_answer "$N" tcp 10.0.1.1:30080 b2
seen_by "$P" 10.99.0.1:80 b2 10.244.1.2 "external IP"
expect_silent "$C" tcp 10.99.0.1:80
grep -q "nftables: update:" "$FERRY_LOG" || fail "the endpoint change was not an update"
pass
