#!/bin/bash
# nftables: `ferry plan --backend nftables` prints a ruleset that `nft -c -f`
# accepts; a restarted ferry reads back every element it wrote (every set
# and verdict kind) and finds nothing to change; chains an older ferry left
# (a filter base chain jumping to a regular one) are removed by the first
# full sync; `ferry cleanup` removes both tables, saying so (and succeeds,
# saying there was nothing, when absent).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_cleanup_plan
command -v nft >/dev/null || skip "the nft command is not installed"
nft_topo
svc_yaml "$T/manifests/svc.yaml" web type=LoadBalancer ip=10.96.0.10 lb=10.98.0.1 ext=10.99.0.1 \
	ranges=10.0.1.0/24 ports=http/TCP/80/9000/30080,dns/UDP/53/9053/30053
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000,dns/UDP/9053 -- 10.0.2.2 10.0.2.3
svc_yaml "$T/manifests/v6.yaml" v6 ip=fd00:96::10 affinity=30 ports=http/TCP/80/9000
eps_yaml "$T/manifests/v6-eps.yaml" v6-1 v6 http/TCP/9000 -- fd00:2::2
svc_yaml "$T/manifests/empty.yaml" empty ip=10.96.0.11 ports=http/SCTP/80/9000
svc_yaml "$T/manifests/lcl.yaml" lcl type=NodePort ip=10.96.0.12 etp=Local ports=http/TCP/80/9000/30081
svc_yaml "$T/manifests/aff.yaml" aff type=NodePort ip=10.96.0.13 affinity=60 ports=http/TCP/80/9000/30082
eps_yaml "$T/manifests/aff-eps.yaml" aff-1 aff http/TCP/9000 -- 10.0.2.2 10.0.2.3 10.0.2.4

"$FERRY_BIN" plan --source "dir:$T/manifests" --backend nftables --hostname-override "$NODE_NAME" >"$T/plan.txt" ||
	fail "ferry plan failed"
sed -n '/^# backend nftables would program/,$p' "$T/plan.txt" | tail -n +2 >"$T/plan.nft"
grep -q "table ip ferry" "$T/plan.nft" || fail "no nftables ruleset in the plan output"
ip netns exec "$N" nft -c -f "$T/plan.nft" 2>"$T/nft.err" || fail "nft -c -f refused the rendered ruleset: $(head -5 "$T/nft.err")"

# What an older ferry might have left: chains this version does not use.
printf '%s\n' 'table ip ferry {' '	chain old_check { counter; }' \
	'	chain filter_forward { type filter hook forward priority -10; policy accept; jump old_check; }' '}' |
	ip netns exec "$N" nft -f - || fail "cannot create the older table"
nft_ferry_start
grep -q "removing chain ip ferry filter_forward" "$FERRY_LOG" || fail "ferry did not say it removes the old base chain"
for c in filter_forward old_check; do
	ip netns exec "$N" nft list chain ip ferry $c >/dev/null 2>&1 && fail "chain $c of an older ferry survived"
done
ip netns exec "$N" nft list table ip ferry >/dev/null || fail "no ip ferry table while running"
ip netns exec "$N" nft list table ip6 ferry >/dev/null || fail "no ip6 ferry table while running"
kill -TERM "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null
mv "$FERRY_LOG" "$T/ferry-first.log"
nft_ferry_start
grep -q "took over the tables of an earlier ferry: [1-9][0-9]* elements kept, 0 removed, 0 added" "$FERRY_LOG" ||
	fail "the restarted ferry did not read back exactly what it wrote: $(grep -E 'took over|cannot read|other rules|full sync' "$FERRY_LOG")"
kill -TERM "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null
ip netns exec "$N" "$FERRY_BIN" cleanup --backend nftables 2>"$T/cleanup.err" || fail "ferry cleanup failed"
ip netns exec "$N" nft list table ip ferry >/dev/null 2>&1 && fail "ip ferry still there after cleanup"
ip netns exec "$N" nft list table ip6 ferry >/dev/null 2>&1 && fail "ip6 ferry still there after cleanup"
# It says what it removed (issue 14: cleanup tells the truth).
grep -q "cleanup removed table ip ferry" "$T/cleanup.err" || fail "cleanup did not say it removed ip ferry: $(cat "$T/cleanup.err")"
grep -q "cleanup removed table ip6 ferry" "$T/cleanup.err" || fail "cleanup did not say it removed ip6 ferry"
ip netns exec "$N" "$FERRY_BIN" cleanup --backend nftables 2>"$T/cleanup.err" || fail "a second cleanup (nothing to remove) failed"
grep -q "cleanup: no table ip ferry" "$T/cleanup.err" || fail "a cleanup with nothing to remove did not say so: $(cat "$T/cleanup.err")"
pass
