#!/bin/bash
# A service with no usable endpoint refuses TCP at once (RST, probe exit 2)
# instead of leaving the client to time out (exit 3). Two cases: a slice
# with an empty endpoint list, and a service with no slice at all.
. "$(dirname "$0")/lib.sh"
lib_init no_endpoints_refuses

LIMIT_MS=300
ns_new N main
echo_start "$N" e1 127.0.0.11:9000

mf_service "$T/manifests/marker.yaml" marker 127.0.0.20 tcp/TCP/8080
mf_slice "$T/manifests/marker-eps.yaml" marker-1 marker tcp/TCP/9000 -- 127.0.0.11
mf_service "$T/manifests/empty.yaml" empty 127.0.0.10 tcp/TCP/8080 udp/UDP/8080
mf_slice "$T/manifests/empty-eps.yaml" empty-1 empty tcp/TCP/9000 udp/UDP/9000 --
mf_service "$T/manifests/noslice.yaml" noslice 127.0.0.30 tcp/TCP/8080

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.20:8080
sleep 0.2

for target in 127.0.0.10:8080 127.0.0.30:8080; do
	say "tcp $target has no endpoints: expect refusal within $LIMIT_MS ms"
	start=$(now_ms)
	probe "$N" tcp "$target" --timeout-ms 2000 >/dev/null 2>"$T/probe.err"
	rc=$?
	ms=$(( $(now_ms) - start ))
	say "  probe exit $rc after $ms ms ($(cat "$T/probe.err"))"
	[ "$rc" = 2 ] || fail "tcp $target: expected refused/reset (exit 2), got exit $rc"
	[ "$ms" -le "$LIMIT_MS" ] || fail "tcp $target: refusal took $ms ms (limit $LIMIT_MS)"
done

say "udp 127.0.0.10:8080 has no endpoints: it must not answer"
probe "$N" udp 127.0.0.10:8080 --timeout-ms 500 >"$T/udp.out" 2>&1
rc=$?
say "  udp probe exit $rc"
[ "$rc" != 0 ] || fail "udp with no endpoints answered: $(cat "$T/udp.out")"
pass
