#!/bin/bash
# The sync rhythm on the command line (kube-proxy's): every --sync-period a
# partial sync, which applies what changed and leaves the rest alone, and a
# full sync (whole plan, backend resynced from scratch) at start and then
# every --full-sync-period. With the default full period (1 h) a ferry that
# syncs every 300 ms makes no second full sync; with --full-sync-period 1s
# it makes one about every second, between partial ones. Counted from the
# log's "sync: full sync" lines and the partial-sync histogram of /metrics.
. "$(dirname "$0")/lib.sh"
lib_init sync_periods
command -v curl >/dev/null || skip "curl not installed"

ns_new N main
M=$T/manifests
mf_service "$M/a.yaml" a 127.0.0.10 tcp/TCP/8080
mf_slice "$M/a-eps.yaml" a-1 a tcp/TCP/9000 -- 127.0.0.11

# metric NAME: the value of one sample of ferry's /metrics.
metric() {
	ip netns exec "$N" curl -s -m 2 http://127.0.0.1:10249/metrics 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'
}

full_syncs() { grep -c "sync: full sync" "$FERRY_LOG"; }

# run_for SECONDS ARGS...: ferry with ARGS for SECONDS; sets FULL (full
# syncs logged) and PARTIAL (partial syncs /metrics counted).
run_for() {
	local secs=$1 i
	shift
	ferry_start "$N" "$@"
	for i in $(seq 1 50); do
		[ "$(full_syncs)" -ge 1 ] && break
		sleep 0.1
	done
	[ "$(full_syncs)" -ge 1 ] || fail "no first full sync: $(tail -3 "$FERRY_LOG")"
	sleep "$secs"
	PARTIAL=$(metric kubeproxy_sync_partial_proxy_rules_duration_seconds_count)
	FULL=$(full_syncs)
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	mv "$FERRY_LOG" "$T/ferry-$FULL-$PARTIAL.log"
}

say "--sync-period 300ms, default --full-sync-period (1 h): partial syncs only after the first"
run_for 2.5 --sync-period 300ms
say "  full syncs $FULL, partial syncs ${PARTIAL:-none}"
[ "$FULL" = 1 ] || fail "$FULL full syncs in 2.5 s with the hourly default"
[ "${PARTIAL:-0}" -ge 3 ] || fail "only ${PARTIAL:-0} partial syncs in 2.5 s at a 300 ms period"

say "--sync-period 300ms --full-sync-period 1s: a full sync about every second"
run_for 3.5 --sync-period 300ms --full-sync-period 1s
say "  full syncs $FULL, partial syncs ${PARTIAL:-none}"
[ "$FULL" -ge 3 ] || fail "only $FULL full syncs in 3.5 s at a 1 s full period"
[ "$FULL" -le 6 ] || fail "$FULL full syncs in 3.5 s: every sync is full"
[ "${PARTIAL:-0}" -ge 2 ] || fail "no partial syncs between the full ones (${PARTIAL:-0})"
pass
