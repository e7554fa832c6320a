#!/bin/bash
# The command line tells the truth:
# - a usage error prints the error and one line pointing to --help (exit 2),
#   not the whole usage; a missing option value says so;
# - `ferry help run` shows run's help; `ferry version` prints the version,
#   the git commit and the backends compiled in;
# - `ferry cleanup --backend NAME` with an unknown NAME is an error;
# - an annotation the backend cannot honour (ferry.io/balance on nftables)
#   is a warning naming the service;
# - a second `ferry run` on the same network namespace and backend refuses to
#   start, naming the running process (a lock under /run/ferry).
. "$(dirname "$0")/lib.sh"
lib_init cli_usage

# expect_usage_error DESCRIPTION PATTERN CMD...: exit 2, stderr has PATTERN
# and the --help hint, and is short (no usage dump).
expect_usage_error() {
	local what=$1 pat=$2 rc lines
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" = 2 ] || fail "$what: exit $rc, want 2"
	grep -q -- "$pat" "$T/err" || fail "$what: stderr lacks '$pat': $(cat "$T/err")"
	grep -q -- "--help" "$T/err" || grep -q "ferry help" "$T/err" || fail "$what: no pointer to --help: $(cat "$T/err")"
	lines=$(wc -l <"$T/err")
	[ "$lines" -le 3 ] || fail "$what: $lines lines on stderr (the whole usage?): $(cat "$T/err")"
	[ -s "$T/out" ] && fail "$what: wrote to stdout: $(cat "$T/out")"
	say "  $what: $(head -1 "$T/err")"
}

say "usage errors"
expect_usage_error "unknown option" "unknown option '--bogus'" "$FERRY_BIN" run --bogus
expect_usage_error "missing value" "option '--source' needs a value" "$FERRY_BIN" run --source
expect_usage_error "missing value (plan)" "option '--backend' needs a value" "$FERRY_BIN" plan --backend
expect_usage_error "unknown command" "unknown command 'frobnicate'" "$FERRY_BIN" frobnicate
expect_usage_error "unknown cleanup backend" "unknown backend 'iptables'" "$FERRY_BIN" cleanup --backend iptables

say "ferry help run = ferry run --help"
"$FERRY_BIN" help run >"$T/help1" || fail "ferry help run: exit $?"
"$FERRY_BIN" run --help >"$T/help2" || fail "ferry run --help: exit $?"
cmp -s "$T/help1" "$T/help2" || fail "ferry help run differs from ferry run --help"
grep -q "^Usage: ferry run" "$T/help1" || fail "ferry help run is not run's help"
"$FERRY_BIN" help plan | grep -q "^Usage: ferry plan" || fail "ferry help plan"

say "ferry version: version, commit, backends"
v=$("$FERRY_BIN" version) || fail "ferry version: exit $?"
echo "$v" | grep -qE '^ferry [0-9]+\.[0-9]+' || fail "no version: $v"
echo "$v" | grep -qE '^commit ([0-9a-f]{7,}|unknown)$' || fail "no commit line: $v"
if git -C "$FERRY_TESTS_DIR" rev-parse HEAD >/dev/null 2>&1; then
	echo "$v" | grep -qE '^commit [0-9a-f]{7,}$' || fail "built from git but no commit hash: $v"
fi
for b in nftables ipvs userspace; do
	echo "$v" | grep -q "^backends.* $b" || fail "backend $b not listed: $v"
done

say "annotations the backend cannot honour are a warning naming the service"
mkdir -p "$T/ann"
mf_service "$T/ann/svc.yaml" hashed 127.0.0.10 tcp/TCP/8080 balance=maglev
mf_slice "$T/ann/eps.yaml" hashed-1 hashed tcp/TCP/9000 -- 127.0.0.11
"$FERRY_BIN" plan --source "dir:$T/ann" --backend nftables >/dev/null 2>"$T/ann.err" || fail "plan nftables exit $?"
grep -q "service default/hashed: ferry.io/balance: maglev is not honoured by the nftables backend" "$T/ann.err" ||
	fail "no warning for maglev on nftables: $(cat "$T/ann.err")"
"$FERRY_BIN" plan --source "dir:$T/ann" --backend ipvs >/dev/null 2>"$T/ann.err" || fail "plan ipvs exit $?"
grep -q "not honoured" "$T/ann.err" && fail "ipvs honours maglev (mh) but was warned: $(cat "$T/ann.err")"
"$FERRY_BIN" plan --source "dir:$T/ann" --backend userspace >/dev/null 2>"$T/ann.err" || fail "plan userspace exit $?"
grep -q "not honoured" "$T/ann.err" && fail "userspace honours maglev but was warned: $(cat "$T/ann.err")"

say "a second ferry run in the same namespace and backend refuses to start"
[ "$(id -u)" = 0 ] || skip "the lock test needs root (network namespaces)"
ns_new N main
mf_service "$T/manifests/svc.yaml" echo 127.0.0.10 tcp/TCP/8080
export FERRY_LOCK_DIR=$T/lock
ferry_start "$N"
for i in $(seq 1 30); do
	grep -q "full sync\|userspace:" "$FERRY_LOG" && break
	sleep 0.1
done
second=$T/second.log
ip netns exec "$N" timeout 10 "$FERRY_BIN" run --source "dir:$T/manifests" --backend userspace >"$second" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "the second ferry run did not refuse (exit $rc): $(tail -3 "$second")"
grep -q "another ferry (pid $FERRY_PID) already runs the userspace backend" "$second" ||
	fail "the refusal does not name the running process $FERRY_PID: $(cat "$second")"
kill -0 "$FERRY_PID" 2>/dev/null || fail "the first ferry died"
say "  $(grep 'another ferry' "$second" | sed 's/^.*error *//')"

say "another namespace is another instance: allowed"
ns_new N2 other
bg_start "$N2" "$T/other.log" "$FERRY_BIN" run --source "dir:$T/manifests" --backend userspace
other=$BG_PID
sleep 0.5
kill -0 "$other" 2>/dev/null || fail "a ferry in another namespace was refused: $(cat "$T/other.log")"

say "once the first stops, a new one starts"
kill "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
ferry_start "$N"
sleep 0.3
kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry did not start after the first stopped: $(cat "$FERRY_LOG")"
pass
