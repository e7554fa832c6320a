#!/bin/bash
# Edits to the manifest directory reach the dataplane within one second:
#  1. a new EndpointSlice file written in place adds backend e2;
#  2. deleting that file removes e2;
#  3. a slice replaced by write-temp-then-rename swaps e1 for e3.
# Each step is timed from the file operation to the first probe that sees
# the new state (probes every ~50 ms), and must take at most 1000 ms.
. "$(dirname "$0")/lib.sh"
lib_init dir_edit

LIMIT_MS=1000
ns_new N main
for i in 1 2 3; do echo_start "$N" "e$i" "127.0.0.1$i:9000" --tcp; done

mf_service "$T/manifests/svc.yaml" web 127.0.0.10 tcp/TCP/8080
mf_slice "$T/manifests/eps-a.yaml" web-a web tcp/TCP/9000 -- 127.0.0.11

ferry_start "$N"
wait_answer "$N" tcp 127.0.0.10:8080 e1

# until_seen COND: probe (4 connections a round) until COND holds for the
# answers; COND is "has NAME" or "lacks NAME". Prints the elapsed ms.
# Bounded: at most 60 rounds.
until_seen() {
	local what=$1 name=$2 start=$3 i out
	for i in $(seq 1 60); do
		out=$(probe "$N" tcp 127.0.0.10:8080 --count 4 --timeout-ms 500 2>/dev/null | awk '{print $1}')
		case "$what" in
		has) echo "$out" | grep -qx "$name" && break ;;
		lacks) [ -n "$out" ] && ! echo "$out" | grep -qx "$name" && break ;;
		esac
		sleep 0.05
	done
	echo $(( $(now_ms) - start ))
}

say "step 1: write eps-b.yaml (e2) in place"
start=$(now_ms)
mf_slice "$T/manifests/eps-b.yaml" web-b web tcp/TCP/9000 -- 127.0.0.12
ms=$(until_seen has e2 "$start")
say "  e2 answered after $ms ms"
[ "$ms" -le "$LIMIT_MS" ] || fail "step 1: new endpoint took $ms ms (limit $LIMIT_MS)"

say "step 2: delete eps-b.yaml"
start=$(now_ms)
rm -f "$T/manifests/eps-b.yaml"
ms=$(until_seen lacks e2 "$start")
say "  e2 gone after $ms ms"
[ "$ms" -le "$LIMIT_MS" ] || fail "step 2: removed endpoint still used after $ms ms (limit $LIMIT_MS)"
names_count "$N" tcp 127.0.0.10:8080 10 >/dev/null
[ "$(echo "$COUNTS" | count_of e2)" = 0 ] || fail "step 2: e2 came back: $COUNTS"

say "step 3: replace eps-a.yaml (e1 -> e3) by writing a temp file and renaming it"
mf_slice "$T/eps-a.yaml.new" web-a web tcp/TCP/9000 -- 127.0.0.13
start=$(now_ms)
mv -f "$T/eps-a.yaml.new" "$T/manifests/eps-a.yaml"
ms=$(until_seen lacks e1 "$start")
say "  e1 replaced after $ms ms"
[ "$ms" -le "$LIMIT_MS" ] || fail "step 3: renamed-in slice took $ms ms (limit $LIMIT_MS)"
names_count "$N" tcp 127.0.0.10:8080 10
[ "$(echo "$COUNTS" | count_of e3)" = 10 ] || fail "step 3: expected only e3, got: $COUNTS"
pass
