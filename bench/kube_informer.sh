#!/bin/bash
# Kubernetes API source benchmark: decode+store and watch-event rates at 1k,
# 10k and 100k endpoints (10 per service), the goal case (10k services, 100k
# endpoints), and change-to-plan latency through the test API server.
# Usage: bench/kube_informer.sh [BUILD_DIR]   (default: build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
b=${1:-$here/../build}/bench/kube_informer_bench
kapi=$here/../tests/kapi/kapi_server.py
"$b" 100 1000 --live "$kapi" --rounds 200
"$b" 1000 10000 --live "$kapi" --rounds 200
"$b" 10000 100000
