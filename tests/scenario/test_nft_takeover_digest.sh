#!/bin/bash
# nftables take-over by content digest, with many elements (300 services x
# 10 endpoints without nodeName: slots, hairpin pairs, cluster IPs, digests).
# A restart with nothing changed finds its plan's content digest in the
# kernel and reads no set; so does one after incremental updates (the
# digest follows every change). A change made while ferry was down is not
# found: the sets are read and only the difference is sent; the hairpin
# pairs only when they changed (their own digest). After every
# take-over the kernel holds exactly what a full sync from empty writes
# for the same manifests (tables compared element by element).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_takeover_digest
nft_topo

# gen SKIP SHIFT FIRST LAST [PORTSVC]: services FIRST..LAST (but SKIP) as
# one JSON list, each with 10 endpoints (no nodeName); service SHIFT's
# endpoints moved to other addresses; service PORTSVC on port 81, not 80.
gen() {
	awk -v skip="$1" -v shift_="$2" -v first="$3" -v last="$4" -v portsvc="${5:--1}" 'BEGIN {
		printf "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n"
		sep = ""
		for (i = first; i <= last; i++) {
			if (i == skip)
				continue
			ip = sprintf("10.96.%d.%d", int(i / 250) + 1, i % 250 + 1)
			printf "%s{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s%d\",\"namespace\":\"t\"},", sep, i
			printf "\"spec\":{\"clusterIP\":\"%s\",\"ports\":[{\"name\":\"p\",\"protocol\":\"TCP\",\"port\":%d,\"targetPort\":9000}]}}\n", ip, i == portsvc ? 81 : 80
			printf ",{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"s%d-1\",\"namespace\":\"t\",", i
			printf "\"labels\":{\"kubernetes.io/service-name\":\"s%d\"}},\"addressType\":\"IPv4\",", i
			printf "\"ports\":[{\"name\":\"p\",\"protocol\":\"TCP\",\"port\":9000}],\"endpoints\":["
			for (j = 0; j < 10; j++) {
				k = i * 10 + j + (i == shift_ ? 5000 : 0)
				printf "%s{\"addresses\":[\"10.3.%d.%d\"],\"conditions\":{\"ready\":true}}", j ? "," : "", int(k / 250), k % 250 + 1
			}
			printf "]}\n"
			sep = ","
		}
		printf "]}\n"
	}'
}
put_manifests() {
	gen "$@" >"$T/manifests/.svc.tmp" && mv "$T/manifests/.svc.tmp" "$T/manifests/svc.json"
}

# snapshot: both of ferry's tables, one element or line per line, sorted
# (the kernel lists set elements in hash order).
snapshot() {
	local fam
	for fam in ip ip6; do
		ip netns exec "$N" nft list table "$fam" ferry | tr ',' '\n' | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//' |
			grep -v '^$'
	done | sort
}

restart() {
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	[ -n "${WHILE_DOWN:-}" ] && eval "$WHILE_DOWN"
	mv "$FERRY_LOG" "$T/ferry-$(date +%s%N).log"
	nft_ferry_start
}

# full_state: the tables a full sync from empty writes for the current
# manifests (ferry restarted on emptied tables), into $T/full.
full_state() {
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	ip netns exec "$N" nft delete table ip ferry
	ip netns exec "$N" nft delete table ip6 ferry
	mv "$FERRY_LOG" "$T/ferry-$(date +%s%N).log"
	nft_ferry_start
	grep -q "nftables: full sync:" "$FERRY_LOG" || fail "no full sync on empty tables"
	snapshot >"$T/full"
}

took_over_reading_nothing() {
	grep -q "nftables: took over the tables of an earlier ferry: [0-9]* elements kept, 0 removed, 0 added" "$FERRY_LOG" ||
		fail "$1: not taken over unchanged: $(grep -E 'nftables: (took over|full sync)' "$FERRY_LOG")"
	grep -q "the kernel's sets hold this plan .*none read" "$FERRY_LOG" ||
		fail "$1: the sets were read although the kernel held the plan: $(grep 'taking over' "$FERRY_LOG")"
}

put_manifests -1 -1 0 299
nft_ferry_start
grep -q "nftables: full sync:" "$FERRY_LOG" || fail "no full sync at the first start"
elems=$(grep -o "[0-9]* elements in one transaction" "$FERRY_LOG" | cut -d' ' -f1)
[ "${elems:-0}" -gt 6000 ] || fail "expected thousands of elements, the full sync wrote ${elems:-none}"
snapshot >"$T/s0"
[ "$(grep -c . "$T/s0")" -gt 6000 ] || fail "the snapshot lists $(grep -c . "$T/s0") lines only"

say "restart, nothing changed: taken over by its digest"
restart
took_over_reading_nothing "restart"
snapshot >"$T/s0b"
diff -q "$T/s0" "$T/s0b" >/dev/null || fail "the tables changed across a restart: $(diff "$T/s0" "$T/s0b" | head -5)"

say "incremental updates, then a restart: the digest followed them"
before=$(grep -c "nftables: update:" "$FERRY_LOG")
put_manifests 5 7 0 300
for i in $(seq 1 100); do
	[ "$(grep -c "nftables: update:" "$FERRY_LOG")" -gt "$before" ] && break
	sleep 0.05
done
[ "$(grep -c "nftables: update:" "$FERRY_LOG")" -gt "$before" ] || fail "the change was not applied"
sleep 0.3
snapshot >"$T/s1"
diff -q "$T/s0" "$T/s1" >/dev/null && fail "the update changed nothing in the kernel"
restart
took_over_reading_nothing "restart after updates"
snapshot >"$T/s1b"
diff -q "$T/s1" "$T/s1b" >/dev/null || fail "the tables changed across a restart: $(diff "$T/s1" "$T/s1b" | head -5)"
full_state
diff -q "$T/s1" "$T/full" >/dev/null ||
	fail "after updates and a take-over the kernel differs from a full sync: $(diff "$T/s1" "$T/full" | head -5)"

say "a change made while ferry was down: the sets are read, the difference sent"
WHILE_DOWN='put_manifests 8 9 0 301'
restart
WHILE_DOWN=
grep -q "do not hold this plan as it is" "$FERRY_LOG" || fail "the changed plan was not looked up and missed"
grep -q "hairpin pairs are this plan's" "$FERRY_LOG" && fail "the hairpin pairs changed, yet their digest was found"
grep "took over" "$FERRY_LOG" | grep -Eq "[1-9][0-9]* removed, [1-9][0-9]* added" ||
	fail "the change made while ferry was down was not sent as a difference: $(grep "took over" "$FERRY_LOG")"
snapshot >"$T/s2"
say "  ... and the next restart finds its digest again"
restart
took_over_reading_nothing "restart after a take-over with a change"
full_state
diff -q "$T/s2" "$T/full" >/dev/null ||
	fail "after a take-over with a change the kernel differs from a full sync: $(diff "$T/s2" "$T/full" | head -5)"

say "a change made while ferry was down that keeps the hairpin pairs: they are not read"
WHILE_DOWN='put_manifests 8 9 0 301 4'
restart
WHILE_DOWN=
grep -q "do not hold this plan as it is" "$FERRY_LOG" || fail "the changed plan was not looked up and missed"
grep -q "hairpin pairs are this plan's" "$FERRY_LOG" || fail "the hairpin pairs were read although unchanged"
grep "took over" "$FERRY_LOG" | grep -Eq "[1-9][0-9]* removed, [1-9][0-9]* added" ||
	fail "the port change was not sent as a difference: $(grep "took over" "$FERRY_LOG")"
snapshot >"$T/s3"
grep -q "10.96.1.5 . tcp . 81" "$T/s3" || fail "service 4 is not on port 81: $(grep 10.96.1.5 "$T/s3" | head -3)"
say "  ... an update, then a restart: both digests followed"
before=$(grep -c "nftables: update:" "$FERRY_LOG")
put_manifests 8 10 0 301 4
for i in $(seq 1 100); do
	[ "$(grep -c "nftables: update:" "$FERRY_LOG")" -gt "$before" ] && break
	sleep 0.05
done
sleep 0.3
snapshot >"$T/s4"
restart
took_over_reading_nothing "restart after a hairpin change"
full_state
diff -q "$T/s4" "$T/full" >/dev/null ||
	fail "after hairpin changes the kernel differs from a full sync: $(diff "$T/s4" "$T/full" | head -5)"
pass
