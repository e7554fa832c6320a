#!/bin/bash
# Bad input is reported and skipped; nothing else is disturbed.
# The manifest directory holds a good service, a file that is not YAML at
# all, and a Service "broken" whose port is 70000. Checks:
#  - `ferry run` forwards the good service;
#  - its log names garbage.yaml, and names object "broken" and its port field;
#  - `ferry plan` on the same directory exits 2, prints the good service,
#    and names the rejected objects on stderr.
. "$(dirname "$0")/lib.sh"
lib_init bad_file

ns_new N main
echo_start "$N" e1 127.0.0.11:9000 --tcp

M=$T/manifests
mf_service "$M/good.yaml" good 127.0.0.10 tcp/TCP/8080
mf_slice "$M/good-eps.yaml" good-1 good tcp/TCP/9000 -- 127.0.0.11
printf 'kind: Service\n  this: is: not [valid yaml\n\t{{{\n' >"$M/garbage.yaml"
mf_service "$M/broken.yaml" broken 127.0.0.30 tcp/TCP/70000

say "ferry plan on the directory: expect exit 2 and the good service printed"
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$M" --backend userspace >"$T/plan.out" 2>"$T/plan.err"
rc=$?
say "  exit $rc"
[ "$rc" = 2 ] || fail "ferry plan exit $rc, want 2; stderr: $(cat "$T/plan.err")"
grep -q '127\.0\.0\.10' "$T/plan.out" || fail "ferry plan did not print the good service (127.0.0.10): $(cat "$T/plan.out")"
grep -q 'garbage\.yaml' "$T/plan.err" || fail "ferry plan stderr does not name garbage.yaml: $(cat "$T/plan.err")"
grep -q 'broken' "$T/plan.err" || fail "ferry plan stderr does not name object broken: $(cat "$T/plan.err")"
grep -q '127\.0\.0\.30' "$T/plan.out" && fail "ferry plan printed the rejected service broken (127.0.0.30)"

say "ferry run: the good service forwards despite the bad files"
ferry_start "$N"
wait_answer "$N" tcp 127.0.0.10:8080 e1
sleep 0.3
kill -0 "$FERRY_PID" || fail "ferry exited"

say "the log names the bad file, object and field"
grep 'garbage\.yaml' "$FERRY_LOG" | head -n 1 | sed 's/^/  /'
grep -q 'garbage\.yaml' "$FERRY_LOG" || fail "no log line names garbage.yaml"
line=$(grep 'broken' "$FERRY_LOG" | grep -i 'port' | head -n 1)
echo "  $line"
[ -n "$line" ] || fail "no log line names object 'broken' and its port field"
probe "$N" tcp 127.0.0.30:8080 --timeout-ms 300 >/dev/null 2>&1 && fail "the invalid service broken is being served"
pass
