#!/bin/bash
# Balancing policies over three endpoints on one namespace's loopback.
#  - round-robin: 30 sequential connections, each backend gets 10 (+-1),
#    and no backend answers twice in a row (one worker, so the order is
#    the relay's own round-robin order).
#  - maglev: a client address always lands on the same backend, and 20
#    different client addresses are spread over more than one backend.
. "$(dirname "$0")/lib.sh"
lib_init distribution

ns_new N main
for i in 1 2 3; do echo_start "$N" "e$i" "127.0.0.1$i:9000" --tcp; done

mf_service "$T/manifests/rr.yaml" rr 127.0.0.10 tcp/TCP/8080 balance=round-robin
mf_slice "$T/manifests/rr-eps.yaml" rr-1 rr tcp/TCP/9000 -- 127.0.0.11 127.0.0.12 127.0.0.13
mf_service "$T/manifests/mg.yaml" mg 127.0.0.20 tcp/TCP/8080 balance=maglev
mf_slice "$T/manifests/mg-eps.yaml" mg-1 mg tcp/TCP/9000 -- 127.0.0.11 127.0.0.12 127.0.0.13

ferry_start "$N" --workers 1
wait_answer "$N" tcp 127.0.0.10:8080
wait_answer "$N" tcp 127.0.0.20:8080

say "round-robin: 30 connections over 3 endpoints"
out=$(probe "$N" tcp 127.0.0.10:8080 --count 30 --timeout-ms 1000) || fail "a probe failed (exit $?)"
seq_names=$(echo "$out" | awk '{print $1}')
COUNTS=$(echo "$seq_names" | sort | uniq -c)
echo "$COUNTS"
for i in 1 2 3; do
	c=$(echo "$COUNTS" | count_of "e$i")
	[ "$c" -ge 9 ] && [ "$c" -le 11 ] || fail "round-robin: e$i got $c of 30 connections (want 9..11)"
done
repeats=$(echo "$seq_names" | awk 'prev == $1 {n++} {prev = $1} END {print n + 0}')
[ "$repeats" = 0 ] || fail "round-robin: $repeats times the same backend answered twice in a row: $(echo $seq_names)"

say "maglev: 20 client addresses x 3 connections each"
declare -A seen=()
for i in $(seq 1 20); do
	src=127.0.1.$i
	names=$(probe "$N" tcp 127.0.0.20:8080 --count 3 --bind "$src" --timeout-ms 1000 | awk '{print $1}' | sort -u)
	[ -n "$names" ] || fail "maglev: client $src got no answer"
	[ "$(echo "$names" | wc -l)" = 1 ] || fail "maglev: client $src was sent to several backends: $(echo $names)"
	seen[$names]=1
done
say "  clients were spread over: ${!seen[*]}"
[ "${#seen[@]}" -ge 2 ] || fail "maglev: 20 client addresses all hashed to one backend (${!seen[*]})"
pass
