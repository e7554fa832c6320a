#!/bin/bash
# Kubernetes API source benchmark: decode+store and watch-event rates at 1k,
# 10k and 100k endpoints (10 per service), the goal case (10k services, 100k
# endpoints), change-to-plan latency through the test API server, and
# change-to-dataplane latency through a real `ferry run --backend userspace`.
# Usage: sudo bench/kube_informer.sh [BUILD_DIR]   (default: build)
# Root for `unshare -n`: ferry's listeners (one per service, on the bench's
# cluster IPs) and all traffic stay in a private network namespace whose
# only interface is its loopback. ROUNDS (default 200) changes per size.
# INTERCEPT (default off) is ferry's --intercept: on adds a relay listener
# set per service and does not fit 20k descriptors at 10k services.
# FERRY_LOG_LEVEL (default info) is ferry's --log-level: debug also reports
# the userspace backend's own time per change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
b=$build/bench/kube_informer_bench
ferry=$build/ferry
kapi=$here/../tests/kapi/kapi_server.py
rounds=${ROUNDS:-200}
ulimit -n 20000 2>/dev/null || true # 10k listeners
for size in "100 1000" "1000 10000" "10000 100000"; do
	# shellcheck disable=SC2086 # two words on purpose
	timeout 900 unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
		"$b" $size --live "$kapi" --e2e "$ferry" --rounds "$rounds" \
		--intercept "${INTERCEPT:-off}" --ferry-log-level "${FERRY_LOG_LEVEL:-info}"
done
