#!/bin/bash
# An endpoint whose ready condition is false gets no new connections,
# even though its backend is up and would answer.
. "$(dirname "$0")/lib.sh"
lib_init not_ready_unused

ns_new N main
for i in 1 2 3; do echo_start "$N" "e$i" "127.0.0.1$i:9000"; done

mf_service "$T/manifests/svc.yaml" web 127.0.0.10 tcp/TCP/8080 udp/UDP/8080
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 udp/UDP/9000 -- \
	127.0.0.11 "127.0.0.12,ready=false,serving=false" 127.0.0.13

say "sanity: the not-ready backend itself answers"
probe "$N" tcp 127.0.0.12:9000 >/dev/null || fail "backend e2 does not answer directly"

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.10:8080

for proto in tcp udp; do
	say "$proto: 30 probes, e2 (not ready) must get none"
	names_count "$N" "$proto" 127.0.0.10:8080 30
	[ "$(echo "$COUNTS" | count_of e2)" = 0 ] || fail "$proto: the not-ready endpoint e2 got traffic"
	[ "$(echo "$COUNTS" | count_of e1)" -gt 0 ] || fail "$proto: ready endpoint e1 got nothing"
	[ "$(echo "$COUNTS" | count_of e3)" -gt 0 ] || fail "$proto: ready endpoint e3 got nothing"
done
pass
