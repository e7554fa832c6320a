#!/bin/bash
# nftables: 1000 endpoint changes while a bounded client loop connects
# without a single failure; then ferry is restarted (SIGTERM, start again)
# under the same load, still without a failure: the rules stay in force
# while ferry is down and the new ferry takes them over in one transaction.
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

say "restart under load"
client_loop 1500 "$T/loop2" &
loop=$!
sleep 0.5
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
sleep 0.3
mv "$FERRY_LOG" "$T/ferry-first.log"
nft_ferry_start
wait "$loop"
[ "$(cat "$T/loop2.rc")" = 0 ] || fail "a connect failed across the restart (exit $(cat "$T/loop2.rc")): $(tail -2 "$T/loop2")"
say "  $(wc -l <"$T/loop2") connects answered across the restart"
wait_answer "$C" tcp 10.96.0.10:80
pass
