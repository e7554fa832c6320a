#!/bin/bash
# SIGHUP re-reads the whole source without disturbing the dataplane: ferry
# logs the reload, keeps running, an established connection survives it, and
# the service keeps answering on both endpoints afterwards.
. "$(dirname "$0")/lib.sh"
lib_init sighup_reload

ns_new N main
echo_start "$N" e1 127.0.0.11:9000 --tcp
echo_start "$N" e2 127.0.0.12:9000 --tcp

mf_service "$T/manifests/svc.yaml" web 127.0.0.10 tcp/TCP/8080
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 -- 127.0.0.11 127.0.0.12

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.10:8080

probe "$N" tcp 127.0.0.10:8080 --hold-ms 1500 --timeout-ms 1000 >"$T/hold.out" 2>"$T/hold.err" &
HOLD_PID=$!
LIB_PIDS+=("$HOLD_PID")
sleep 0.3

say "sending SIGHUP twice"
kill -HUP "$FERRY_PID"
sleep 0.2
kill -HUP "$FERRY_PID"
n=0
loads=0
for i in $(seq 1 20); do
	n=$(grep -c 'SIGHUP: reloading' "$FERRY_LOG")
	loads=$(grep -c 'source dir:.* loaded' "$FERRY_LOG")
	[ "$n" -ge 2 ] && [ "$loads" -ge 3 ] && break
	sleep 0.05
done
[ "$n" -ge 2 ] || fail "ferry did not log two reloads (saw $n)"
[ "$loads" -ge 3 ] || fail "the source was not re-read on SIGHUP ($loads loads logged, want 3)"
kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry exited on SIGHUP"

wait "$HOLD_PID"
rc=$?
[ "$rc" = 0 ] || fail "a connection established before the reload broke (exit $rc): $(cat "$T/hold.err")"
say "  held connection survived the reloads"

names_count "$N" tcp 127.0.0.10:8080 6
c1=$(echo "$COUNTS" | count_of e1)
c2=$(echo "$COUNTS" | count_of e2)
[ "$c1" -ge 1 ] && [ "$c2" -ge 1 ] || fail "after the reload both endpoints should answer (e1 $c1, e2 $c2)"
pass
