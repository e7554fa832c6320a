#!/bin/bash
# The offline commands on the shipped demo: `ferry plan` (text and json)
# exits 0 and shows the demo service and its endpoints, the json parses,
# `--format rules` is what nft -c -f (nftables) and ipvsadm-restore (ipvs) read,
# `ferry version` prints a version and `ferry help` succeeds.
. "$(dirname "$0")/lib.sh"
lib_init plan_cli

DEMO=${FERRY_TESTS_DIR:-$(dirname "$0")/..}/../examples/demo
[ -d "$DEMO" ] || fail "demo manifests not found at $DEMO"
# plan needs no privileges or network, but runs in a fresh namespace anyway
# so nothing it might do can reach the host's.
ns_new N main

say "ferry plan --format text"
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$DEMO" --backend userspace --format text >"$T/plan.txt" 2>"$T/plan.err"
rc=$?
sed 's/^/  | /' "$T/plan.txt" | head -n 30
[ "$rc" = 0 ] || fail "plan text exit $rc; stderr: $(cat "$T/plan.err")"
for want in 127.0.0.10 8080 127.0.0.11 127.0.0.12 9000; do
	grep -q "$want" "$T/plan.txt" || fail "plan text lacks $want"
done
grep -qi tcp "$T/plan.txt" && grep -qi udp "$T/plan.txt" || fail "plan text does not show both TCP and UDP"

say "ferry plan --format json"
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$DEMO" --format json >"$T/plan.json" 2>"$T/plan.err"
rc=$?
[ "$rc" = 0 ] || fail "plan json exit $rc; stderr: $(cat "$T/plan.err")"
[ -s "$T/plan.json" ] || fail "plan json printed nothing"
if command -v python3 >/dev/null && python3 -c 'import json' 2>/dev/null; then
	python3 -c 'import json,sys; json.load(sys.stdin)' <"$T/plan.json" || fail "plan json does not parse (python3)"
elif command -v jq >/dev/null; then
	jq empty <"$T/plan.json" || fail "plan json does not parse (jq)"
else
	say "  neither python3 nor jq: json syntax not checked"
fi
for want in 127.0.0.10 127.0.0.11 127.0.0.12; do
	grep -q "$want" "$T/plan.json" || fail "plan json lacks $want"
done

say "ferry plan --format rules: only what the backend programs, in its tool's syntax"
# nftables: nft checks it (-c: parse and validate against the kernel of this
# namespace, install nothing).
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$DEMO" --backend nftables --format rules >"$T/rules.nft" 2>"$T/rules.err" ||
	fail "plan rules (nftables) exit $?: $(cat "$T/rules.err")"
grep -q "forwarding plan" "$T/rules.nft" && fail "rules output carries the plan, not only the ruleset"
if ip netns exec "$N" nft list tables >/dev/null 2>&1; then
	ip netns exec "$N" nft -c -f - <"$T/rules.nft" || fail "nft -c -f rejects ferry plan --format rules"
	say "  nft -c -f accepts it ($(wc -l <"$T/rules.nft") lines)"
else
	say "  nf_tables unusable here: syntax not checked by nft"
fi
# ipvs: ipvsadm-restore lines only (-A virtual server, -a real server).
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$DEMO" --backend ipvs --format rules >"$T/rules.ipvs" 2>"$T/rules.err" ||
	fail "plan rules (ipvs) exit $?: $(cat "$T/rules.err")"
sed 's/^/  | /' "$T/rules.ipvs"
grep -q -- "^-A -t 127.0.0.10:8080 -s rr$" "$T/rules.ipvs" || fail "no TCP virtual server line"
grep -q -- "^-A -u 127.0.0.10:8080 -s rr$" "$T/rules.ipvs" || fail "no UDP virtual server line"
grep -q -- "^-a -t 127.0.0.10:8080 -r 127.0.0.11:9000 -m -w 1$" "$T/rules.ipvs" || fail "no real server line"
bad=$(grep -v -E '^-[Aa] (-t|-u|--sctp-service) ' "$T/rules.ipvs")
[ -z "$bad" ] || fail "lines ipvsadm-restore would not read: $bad"

say "ferry version"
v=$("$FERRY_BIN" version 2>&1) || fail "ferry version exit $?"
echo "  $v"
echo "$v" | grep -qE '[0-9]+\.[0-9]+' || fail "ferry version printed no version number: $v"

say "ferry help"
"$FERRY_BIN" help >"$T/help.out" 2>&1 || fail "ferry help exit $?"
grep -q 'run' "$T/help.out" && grep -q 'plan' "$T/help.out" || fail "ferry help does not mention run and plan"
pass
