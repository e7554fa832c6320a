#!/bin/bash
# The healthz and metrics servers' addresses: a taken port is logged and
# ferry runs on (syncs still happen, the other server still answers);
# --healthz-bind-address / --metrics-bind-address move them; an empty
# address turns one off.
. "$(dirname "$0")/lib.sh"
lib_init health_bind
command -v curl >/dev/null || skip "curl not installed"

ns_new N main
M=$T/manifests
mf_service "$M/a.yaml" a 127.0.0.10 tcp/TCP/8080

code() { # URL: the HTTP status, 000 when nothing answers
	ip netns exec "$N" curl -s -m 2 -o /dev/null -w '%{http_code}' "$1" 2>/dev/null
}
wait_code() { # URL CODE
	local c
	for i in $(seq 1 50); do
		c=$(code "$1")
		[ "$c" = "$2" ] && { say "  $1: $c"; return 0; }
		sleep 0.1
	done
	fail "$1: want $2, got $c"
}
stop_ferry() {
	kill -TERM "$FERRY_PID"
	for i in $(seq 1 50); do kill -0 "$FERRY_PID" 2>/dev/null || return 0; sleep 0.1; done
	fail "ferry did not stop"
}

say "port 10256 taken: ferry starts, logs it, syncs, and serves /metrics"
echo_start "$N" squatter 0.0.0.0:10256
SQUATTER=$BG_PID
ferry_start "$N"
wait_code http://127.0.0.1:10249/metrics 200
kill -0 "$FERRY_PID" || fail "ferry exited"
grep -q "healthz: cannot serve on 0.0.0.0:10256" "$FERRY_LOG" || fail "the taken port was not logged"
grep -q "sync: full sync" "$FERRY_LOG" || fail "no sync with the healthz port taken"
stop_ferry
kill "$SQUATTER"

say "other addresses by flag; metrics off with an empty address (kube-proxy's way)"
ferry_start "$N" --healthz-bind-address 127.0.0.1:12256 --metrics-bind-address ""
wait_code http://127.0.0.1:12256/healthz 200
wait_code http://127.0.0.1:12256/livez 200
[ "$(code http://127.0.0.1:10256/healthz)" = 000 ] || fail "the default healthz port answers"
[ "$(code http://127.0.0.1:10249/metrics)" = 000 ] || fail "metrics answer with an empty --metrics-bind-address"
stop_ferry

ip -n "$N" -6 addr show dev lo 2>/dev/null | grep -q '::1' || pass # no IPv6 here: the rest is IPv6
say "IPv6 address in brackets"
ferry_start "$N" --metrics-bind-address '[::1]:12249' --healthz-bind-address ""
wait_code 'http://[::1]:12249/metrics' 200
[ "$(code http://127.0.0.1:10256/healthz)" = 000 ] || fail "healthz answers with an empty --healthz-bind-address"
pass
