#!/bin/bash
# nftables: sessionAffinity ClientIP. Every new connection of one client
# reaches the same endpoint while it keeps coming within the timeout; two
# clients are placed independently; after the timeout a client is placed
# afresh. A service without affinity keeps balancing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_affinity
nft_topo
echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
echo_start "$B" b3 10.0.2.4:9000
svc_yaml "$T/manifests/aff.yaml" sticky ip=10.96.0.10 affinity=2 ports=http/TCP/80/9000
eps_yaml "$T/manifests/aff-eps.yaml" sticky-1 sticky http/TCP/9000 -- 10.0.2.2 10.0.2.3 10.0.2.4
svc_yaml "$T/manifests/np.yaml" stickynp type=NodePort ip=10.96.0.11 affinity=60 ports=http/TCP/80/9000/30080
eps_yaml "$T/manifests/np-eps.yaml" stickynp-1 stickynp http/TCP/9000 -- 10.0.2.2 10.0.2.3 10.0.2.4
echo_start "$B" v1 "[fd00:2::2]:9000"
echo_start "$B" v2 "[fd00:2::3]:9000"
svc_yaml "$T/manifests/v6.yaml" sticky6 ip=fd00:96::10 affinity=60 ports=http/TCP/80/9000
eps_yaml "$T/manifests/v6-eps.yaml" sticky6-1 sticky6 http/TCP/9000 -- fd00:2::2 fd00:2::3
nft_ferry_start
wait_answer "$C" tcp 10.96.0.10:80
wait_answer "$C" tcp "[fd00:96::10]:80"

for target in 10.96.0.10:80 10.0.1.1:30080 "[fd00:96::10]:80"; do
	names_count "$C" tcp "$target" 30 >/dev/null
	say "$target from 10.0.1.2: $(echo $COUNTS)"
	[ "$(echo "$COUNTS" | wc -l)" = 1 ] || fail "$target: one client reached several endpoints: $COUNTS"
done

say "the other client is placed independently (and sticks too)"
out=$(probe "$C" tcp 10.96.0.10:80 --bind 10.0.1.3 --count 20 --timeout-ms 1000) || fail "second client failed"
[ "$(echo "$out" | awk '{print $1}' | sort -u | wc -l)" = 1 ] || fail "second client not sticky: $out"

say "after the 2 s timeout, a client is placed afresh (some of 8 rounds move)"
first=$(answer_of "$C" tcp 10.96.0.10:80 | awk '{print $1}')
moved=0
for i in $(seq 1 8); do
	sleep 2.3
	now=$(answer_of "$C" tcp 10.96.0.10:80 | awk '{print $1}')
	[ "$now" != "$first" ] && moved=$((moved + 1))
	first=$now
done
say "  moved $moved times in 8 rounds"
[ "$moved" -gt 0 ] || fail "the client never moved after its affinity timed out"

say "an endpoint change keeps the service working"
eps_yaml "$T/eps.new" sticky-1 sticky http/TCP/9000 -- 10.0.2.2 10.0.2.3
mv "$T/eps.new" "$T/manifests/aff-eps.yaml"
sleep 1
names_count "$C" tcp 10.96.0.10:80 10 >/dev/null
[ "$(echo "$COUNTS" | count_of b3)" = 0 ] || fail "removed endpoint b3 still answers: $COUNTS"
[ "$(echo "$COUNTS" | wc -l)" = 1 ] || fail "not sticky after the change: $COUNTS"
pass
