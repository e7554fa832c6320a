#!/bin/bash
# Kubernetes API source benchmark: decode+store and watch-event rates at 1k,
# 10k and 100k endpoints (10 per service), the goal case (10k services, 100k
# endpoints), change-to-plan latency through the test API server, and
# change-to-dataplane latency through a real `ferry run` per backend.
# Usage: sudo bench/kube_informer.sh [BUILD_DIR]   (default: build)
# Root for `unshare -n`: ferry's sockets and rules and all traffic stay in a
# private network namespace whose only interface is its loopback.
#   ROUNDS (200)  changes per size and backend
#   SIZES ("100 1000|1000 10000|10000 100000")  services and endpoints per
#                 size, |-separated; "100000 1000000" is issue 12's goal case
#   BACKENDS ("userspace nftables")  ferry --backend for the e2e part
#   INTERCEPT (on) and WORKERS (ferry's default) for the userspace backend
#   OLD_FERRY     a second ferry binary (e.g. an older commit's) measured
#                 right after each new one, same size, same server data
#   E2E_ONLY (0)  1: only the e2e part (the long one at 100k)
#   FERRY_LOG_LEVEL (info) is ferry's --log-level: debug also reports the
#                 userspace backend's own time per change.
#   TRACE         a directory: per run, TRACE/BACKEND-SERVICES-N (N: 1 for
#                 the new binary, 2 for OLD_FERRY) gets the bench's --trace
#                 (per change: times of the POST, its answer and ferry's sync
#                 line, CPU times, ferry's lines) and .kapi the server's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
b=$build/bench/kube_informer_bench
ferry=$build/ferry
kapi=$here/../tests/kapi/kapi_server.py
rounds=${ROUNDS:-200}
# 65536 descriptors: what a DaemonSet pod commonly gets.
ulimit -n 65536 2>/dev/null || true
IFS='|' read -r -a sizes <<<"${SIZES:-100 1000|1000 10000|10000 100000}"
for size in "${sizes[@]}"; do
	e2e_only=${E2E_ONLY:-0}
	for backend in ${BACKENDS:-userspace nftables}; do
		n=0
		for bin in "$ferry" ${OLD_FERRY:-}; do
			n=$((n + 1))
			echo "== $size, --backend $backend, $bin ($(uptime))"
			extra=()
			[ -n "${WORKERS:-}" ] && extra+=(--workers "$WORKERS")
			[ -n "${TRACE:-}" ] && mkdir -p "$TRACE" &&
				extra+=(--trace "$TRACE/$backend-${size%% *}-$n")
			# shellcheck disable=SC2086 # two words on purpose
			timeout 1800 unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
				"$b" $size --live "$kapi" --e2e "$bin" --rounds "$rounds" --backend "$backend" \
				--intercept "${INTERCEPT:-on}" --ferry-log-level "${FERRY_LOG_LEVEL:-info}" \
				--e2e-only "$e2e_only" "${extra[@]}" || echo "(failed: $?)"
			e2e_only=1 # the source's own figures once per size
		done
	done
done
