#!/bin/bash
# Removing an endpoint does not break connections already relayed to it:
# a connection held open to backend X keeps echoing for its whole duration
# after X is removed from the manifests, while new connections go to the
# remaining backend only.
. "$(dirname "$0")/lib.sh"
lib_init drain_live_connection

HOLD_MS=3000
ns_new N main
echo_start "$N" e1 127.0.0.11:9000 --tcp
echo_start "$N" e2 127.0.0.12:9000 --tcp

mf_service "$T/manifests/svc.yaml" web 127.0.0.10 tcp/TCP/8080
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 -- 127.0.0.11 127.0.0.12

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.10:8080

say "holding one connection for $HOLD_MS ms (ping every 100 ms)"
probe "$N" tcp 127.0.0.10:8080 --hold-ms "$HOLD_MS" --timeout-ms 1000 >"$T/hold.out" 2>"$T/hold.err" &
HOLD_PID=$!
LIB_PIDS+=("$HOLD_PID")
for i in $(seq 1 30); do
	[ -s "$T/hold.out" ] && break
	sleep 0.05
done
held=$(head -n1 "$T/hold.out" | awk '{print $1}')
case "$held" in
e1) keep=e2; keep_addr=127.0.0.12 ;;
e2) keep=e1; keep_addr=127.0.0.11 ;;
*) fail "held connection got no answer: $(cat "$T/hold.out" "$T/hold.err")" ;;
esac
say "  held connection is on $held; removing $held from the slice"
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 -- "$keep_addr"

ok=0
for i in $(seq 1 20); do
	out=$(probe "$N" tcp 127.0.0.10:8080 --count 4 --timeout-ms 500 2>/dev/null | awk '{print $1}' | sort -u)
	[ "$out" = "$keep" ] && ok=1 && break
	sleep 0.1
done
[ "$ok" = 1 ] || fail "new connections still reach $held 2 s after its removal (last: $(echo $out))"
say "  new connections now go to $keep only"
kill -0 "$HOLD_PID" 2>/dev/null || fail "the held connection ended before the removal was checked: $(cat "$T/hold.err")"

wait "$HOLD_PID"
rc=$?
[ "$rc" = 0 ] || fail "held connection to removed endpoint $held broke (exit $rc): $(cat "$T/hold.err")"
grep -q '^held' "$T/hold.out" || fail "hold did not complete: $(cat "$T/hold.out")"
say "  $(tail -n1 "$T/hold.out")"
pass
