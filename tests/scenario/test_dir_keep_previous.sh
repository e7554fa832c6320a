#!/bin/bash
# A live edit that makes an object invalid leaves its last valid version in
# force (issue 14): service web answers from e1 on 127.0.0.10:8080, then
#  1. svc.yaml gets `port: 80800`: 8080 keeps answering from e1; the log
#     names the file, the object, the field and "keeping the previous
#     version"; `ferry plan` on the directory exits 2;
#  2. svc.yaml moves to port 8081 with an unknown ferry.io/balance: 8080
#     still answers, 8081 does not;
#  3. the slice gets an invalid address: e1 keeps answering;
#  4. both files fixed (port 8081, endpoint e2): the new version applies;
#  5. svc.yaml is made unparsable: 8081 keeps answering from e2.
. "$(dirname "$0")/lib.sh"
lib_init dir_keep_previous

ns_new N main
echo_start "$N" e1 127.0.0.11:9000 --tcp
echo_start "$N" e2 127.0.0.12:9000 --tcp

M=$T/manifests
mf_service "$M/svc.yaml" web 127.0.0.10 http/TCP/8080
mf_slice "$M/eps.yaml" web-1 web http/TCP/9000 -- 127.0.0.11

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.10:8080 e1

# wait_log PATTERN...: poll (at most 5 s) until one line of ferry's log
# matches every pattern (fixed strings); print it.
wait_log() {
	local i line
	for i in $(seq 1 50); do
		line=$(grep -F -- "$1" "$FERRY_LOG" | grep -F -- "${2:-}" | grep -F -- "${3:-}" | tail -n 1)
		[ -n "$line" ] && { echo "$line"; return 0; }
		sleep 0.1
	done
	return 1
}

# kept WHAT FILE OBJECT FIELD: after an invalid edit, the error is logged
# (its line says "keeping the previous version") and service web on
# 127.0.0.10:8080 still answers from e1, once the change had time to apply.
kept() {
	local what=$1 file=$2 object=$3 field=$4 line
	line=$(wait_log "$file" "$object" "$field") || fail "$what: no log line names $file, $object and $field"
	say "  log: ${line#* error }"
	sleep 1
	names_count "$N" tcp 127.0.0.10:8080 10
	[ "$(echo "$COUNTS" | count_of e1)" = 10 ] || fail "$what: expected e1 only, got: $COUNTS"
	case "$line" in
	*"keeping the previous version"*) ;;
	*) fail "$what: the log line does not say \"keeping the previous version\": $line" ;;
	esac
}

say "step 1: port 80800"
mf_service "$M/svc.yaml" web 127.0.0.10 http/TCP/80800
kept "step 1" svc.yaml "Service default/web" "spec.ports[0].port"
say "  ferry plan on the directory still exits 2"
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$M" --backend userspace >"$T/plan.out" 2>"$T/plan.err"
rc=$?
[ "$rc" = 2 ] || fail "ferry plan exit $rc, want 2; stderr: $(cat "$T/plan.err")"
grep -q 'spec.ports\[0\].port' "$T/plan.err" || fail "ferry plan does not name the field: $(cat "$T/plan.err")"

say "step 2: port 8081 with ferry.io/balance: fastest"
mf_service "$M/svc.yaml" web 127.0.0.10 http/TCP/8081 balance=fastest
kept "step 2" svc.yaml "Service default/web" 'ferry.io/balance'
probe "$N" tcp 127.0.0.10:8081 --timeout-ms 300 >/dev/null 2>&1 && fail "step 2: the invalid version (port 8081) is served"

say "step 3: the slice gets address 127.0.0.300"
mf_slice "$M/eps.yaml" web-1 web http/TCP/9000 -- 127.0.0.300
kept "step 3" eps.yaml "EndpointSlice default/web-1" "endpoints[0].addresses[0]"

say "step 4: fixed: port 8081, endpoint e2"
mf_service "$M/svc.yaml" web 127.0.0.10 http/TCP/8081 balance=least-conn
mf_slice "$M/eps.yaml" web-1 web http/TCP/9000 -- 127.0.0.12
wait_answer "$N" tcp 127.0.0.10:8081 e2
names_count "$N" tcp 127.0.0.10:8081 10
[ "$(echo "$COUNTS" | count_of e2)" = 10 ] || fail "step 4: expected e2 only, got: $COUNTS"
probe "$N" tcp 127.0.0.10:8080 --timeout-ms 300 >/dev/null 2>&1 && fail "step 4: the old port 8080 still answers"

say "step 5: svc.yaml made unparsable"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: web\nspec: [\n' >"$M/svc.yaml"
line=$(wait_log "svc.yaml" "keeping the objects it had before") ||
	fail "step 5: no log line says svc.yaml keeps its objects"
say "  log: ${line#* error }"
sleep 1
names_count "$N" tcp 127.0.0.10:8081 10
[ "$(echo "$COUNTS" | count_of e2)" = 10 ] || fail "step 5: expected e2 only, got: $COUNTS"
kill -0 "$FERRY_PID" || fail "ferry exited"
pass
