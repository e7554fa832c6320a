#!/bin/bash
# Terminating-endpoint fallback:
#  1. no endpoint is ready, two are serving+terminating: those two are used;
#  2. a ready endpoint appears: only it is used, the terminating ones not;
#  3. terminating but not serving endpoints are never used (service refuses).
. "$(dirname "$0")/lib.sh"
lib_init terminating_fallback

ns_new N main
for i in 1 2 3; do echo_start "$N" "e$i" "127.0.0.1$i:9000" --tcp; done

mf_service "$T/manifests/svc.yaml" web 127.0.0.10 tcp/TCP/8080
# A second service, always healthy, tells us when ferry has loaded the dir.
mf_service "$T/manifests/marker.yaml" marker 127.0.0.20 tcp/TCP/8080
mf_slice "$T/manifests/marker-eps.yaml" marker-1 marker tcp/TCP/9000 -- 127.0.0.13
TERM_EP=ready=false,serving=true,terminating=true
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 -- \
	"127.0.0.11,$TERM_EP" "127.0.0.12,$TERM_EP"

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.20:8080

say "step 1: only serving+terminating endpoints: they take the traffic"
wait_answer "$N" tcp 127.0.0.10:8080
names_count "$N" tcp 127.0.0.10:8080 20
[ "$(echo "$COUNTS" | count_of e1)" -gt 0 ] || fail "step 1: terminating endpoint e1 unused"
[ "$(echo "$COUNTS" | count_of e2)" -gt 0 ] || fail "step 1: terminating endpoint e2 unused"

say "step 2: a ready endpoint e3 appears; terminating ones must stop getting new connections"
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 -- \
	"127.0.0.11,$TERM_EP" "127.0.0.12,$TERM_EP" 127.0.0.13
wait_answer "$N" tcp 127.0.0.10:8080 e3
sleep 0.2
names_count "$N" tcp 127.0.0.10:8080 20
[ "$(echo "$COUNTS" | count_of e3)" = 20 ] || fail "step 2: with a ready endpoint, terminating ones still used"

say "step 3: terminating and not serving: not used, the service refuses"
mf_slice "$T/manifests/eps.yaml" web-1 web tcp/TCP/9000 -- \
	"127.0.0.11,ready=false,serving=false,terminating=true"
ok=0
for i in $(seq 1 20); do
	probe "$N" tcp 127.0.0.10:8080 --timeout-ms 500 >/dev/null 2>&1
	rc=$?
	[ "$rc" = 2 ] && ok=1 && break
	sleep 0.1
done
[ "$ok" = 1 ] || fail "step 3: a non-serving terminating endpoint still gets traffic (last probe exit $rc)"
pass
