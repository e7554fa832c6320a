#!/bin/bash
# SIGTERM ends `ferry run` cleanly: exit status 0 within 2 s, and its
# listeners are closed afterwards (connections are refused, ss shows none).
. "$(dirname "$0")/lib.sh"
lib_init sigterm

ns_new N main
echo_start "$N" e1 127.0.0.11:9000

mf_service "$T/manifests/svc.yaml" web 127.0.0.10 tcp/TCP/8080 udp/UDP/8080
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 udp/UDP/9000 -- 127.0.0.11

ferry_start "$N" --workers 2
wait_answer "$N" tcp 127.0.0.10:8080
wait_answer "$N" udp 127.0.0.10:8080

# An idle connection left open must not hold up the exit.
probe "$N" tcp 127.0.0.10:8080 --hold-ms 10000 --timeout-ms 1000 >/dev/null 2>&1 &
HOLD_PID=$!
LIB_PIDS+=("$HOLD_PID")
sleep 0.3

say "sending SIGTERM to ferry (pid $FERRY_PID)"
start=$(now_ms)
kill -TERM "$FERRY_PID"
for i in $(seq 1 40); do
	kill -0 "$FERRY_PID" 2>/dev/null || break
	sleep 0.05
done
ms=$(( $(now_ms) - start ))
kill -0 "$FERRY_PID" 2>/dev/null && fail "ferry still running ${ms} ms after SIGTERM"
wait "$FERRY_PID"
rc=$?
say "  ferry exited with $rc after $ms ms"
[ "$rc" = 0 ] || fail "ferry exit status $rc after SIGTERM, want 0"
[ "$ms" -le 2000 ] || fail "ferry took $ms ms to exit (limit 2000)"

say "listeners are gone"
probe "$N" tcp 127.0.0.10:8080 --timeout-ms 500 >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] || fail "tcp 127.0.0.10:8080 after exit: probe exit $rc, want 2 (refused)"
if command -v ss >/dev/null; then
	left=$(ip netns exec "$N" ss -Htlnu 'sport = :8080')
	[ -z "$left" ] || fail "sockets still bound to port 8080: $left"
fi
pass
