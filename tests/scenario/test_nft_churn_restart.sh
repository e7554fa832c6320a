#!/bin/bash
# nftables: 1000 endpoint changes while a bounded client loop connects
# without a single failure; then ferry is restarted (SIGTERM, start again)
# under the same load, still without a failure: the rules stay in force
# while ferry is down and the new ferry takes them over, reading its table
# once and sending only the difference (rule handles unchanged, a change
# made while it was down applied). Restarted with another configuration,
# it replaces the rules in one transaction, still without a failure.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_churn_restart
nft_topo
echo_start "$B" b1 10.0.2.2:9000
echo_start "$B" b2 10.0.2.3:9000
echo_start "$B" b3 10.0.2.4:9000
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2 10.0.2.3
nft_ferry_start --min-sync-period 10ms
wait_answer "$C" tcp 10.96.0.10:80

# Pre-write the two slice versions, then alternate them 1000 times.
eps_yaml "$T/eps-a" web-1 web http/TCP/9000 -- 10.0.2.2 10.0.2.3
eps_yaml "$T/eps-b" web-1 web http/TCP/9000 -- 10.0.2.2 10.0.2.4

client_loop() {
	# Bounded: N sequential connects, each with a 1 s limit.
	probe "$C" tcp 10.96.0.10:80 --count "$1" --timeout-ms 1000 >"$2" 2>&1
	echo $? >"$2.rc"
}

say "churn: 1000 endpoint changes under a client loop"
client_loop 1500 "$T/loop1" &
loop=$!
for i in $(seq 1 1000); do
	if [ $((i % 2)) = 0 ]; then cp "$T/eps-a" "$T/manifests/.eps.tmp"; else cp "$T/eps-b" "$T/manifests/.eps.tmp"; fi
	mv "$T/manifests/.eps.tmp" "$T/manifests/eps.yaml"
	[ $((i % 100)) = 0 ] && sleep 0.05
done
wait "$loop"
kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died during the churn"
[ "$(cat "$T/loop1.rc")" = 0 ] || fail "a connect failed during the churn (exit $(cat "$T/loop1.rc")): $(tail -2 "$T/loop1")"
syncs=$(grep -c "nftables: update" "$FERRY_LOG")
say "  $(wc -l <"$T/loop1") connects answered, ferry applied $syncs incremental updates"
grep -q "refused by the kernel" "$FERRY_LOG" && fail "the kernel refused a commit during the churn"

# rule_handles: the handle of every rule in both of ferry's tables.
rule_handles() {
	local fam
	for fam in ip ip6; do
		ip netns exec "$N" nft -a list table "$fam" ferry |
			awk -v f="$fam" '/# handle/ && !/^\s*(table|chain|set|map)/ {print f, $NF}'
	done
}

# restart_under_load NAME [ARGS...]: SIGTERM ferry and start it again with
# ARGS while a client loop connects; no connect may fail.
restart_under_load() {
	local name=$1 loop
	shift
	client_loop 1500 "$T/$name" &
	loop=$!
	sleep 0.5
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	[ -n "$WHILE_DOWN" ] && eval "$WHILE_DOWN"
	sleep 0.3
	mv "$FERRY_LOG" "$T/ferry-before-$name.log"
	nft_ferry_start "$@"
	wait "$loop"
	[ "$(cat "$T/$name.rc")" = 0 ] || fail "a connect failed across the restart (exit $(cat "$T/$name.rc")): $(tail -2 "$T/$name")"
	say "  $(wc -l <"$T/$name") connects answered across the restart"
}

say "restart under load, endpoints changed while ferry is down"
handles_before=$(rule_handles)
[ -n "$handles_before" ] || fail "no rule handles listed"
# The slice ends as eps-a (10.0.2.2, 10.0.2.3): swap 10.0.2.3 for 10.0.2.4.
# A stray element (a service that no longer exists) must go as well.
WHILE_DOWN='cp "$T/eps-b" "$T/manifests/eps.yaml";
	ip netns exec "$N" nft add element ip ferry fe "{ 10.96.9.9 . tcp . 99 : goto lb_2 }" ||
	fail "cannot add the stray element"'
restart_under_load loop2
WHILE_DOWN=
grep -q "nftables: took over the tables of an earlier ferry" "$FERRY_LOG" ||
	fail "ferry did not take over its earlier tables: $(grep nftables: "$FERRY_LOG" | head -3)"
grep "took over" "$FERRY_LOG" | grep -Eq "[1-9][0-9]* removed, [1-9][0-9]* added" ||
	fail "the change made while ferry was down was not sent as a difference: $(grep "took over" "$FERRY_LOG")"
grep -q "nftables: full sync" "$FERRY_LOG" && fail "ferry replaced its tables although its rules were current"
[ "$(rule_handles)" = "$handles_before" ] || fail "rule handles changed: the rules were rewritten"
ip netns exec "$N" nft list map ip ferry fe | grep -q 10.96.9.9 && fail "the stray element survived the take-over"
say "  took over: $(grep -o '[0-9]* elements kept.*' "$FERRY_LOG")"
wait_answer "$C" tcp 10.96.0.10:80 b3
names_count "$C" tcp 10.96.0.10:80 60 >/dev/null
[ "$(count_of b2 <<<"$COUNTS")" = 0 ] || fail "b2 (removed while ferry was down) still answers"

say "restart under load with another configuration (masquerade bit)"
restart_under_load loop3 --masquerade-bit 13
grep -q "holds other rules" "$FERRY_LOG" || fail "ferry did not notice its rules differ"
grep -q "nftables: full sync" "$FERRY_LOG" || fail "ferry did not replace its rules"
[ "$(rule_handles)" != "$handles_before" ] || fail "rule handles unchanged: the rules were not replaced"
wait_answer "$C" tcp 10.96.0.10:80
pass
