#!/usr/bin/env bash
# The quick-start demo: install, build, start two echo backends and ferry on
# examples/demo, show that connections to the service alternate between the
# backends, then keep ferry running until Ctrl-C.
#   --once   stop after showing the alternation (for scripted checks)
# Everything listens on loopback addresses of this host (127.0.0.10-12).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
once=0
[ "${1:-}" = "--once" ] && once=1

if [ "$(id -u)" -eq 0 ]; then
	bash scripts/install-deps.sh
fi
bash scripts/build.sh "$top/build"
bin=$top/build
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/tests/echo_server" --name backend-a --listen 127.0.0.11:9000 >/dev/null &
pids+=($!)
"$bin/tests/echo_server" --name backend-b --listen 127.0.0.12:9000 >/dev/null &
pids+=($!)
"$bin/ferry" run --source dir:examples/demo --backend userspace &
pids+=($!)

# Wait (at most 5 s) until the service answers.
for _ in $(seq 50); do
	"$bin/tests/probe_client" tcp 127.0.0.10:8080 --timeout-ms 200 >/dev/null 2>&1 && break
	sleep 0.1
done
echo
echo "== four TCP connections to the service default/echo at 127.0.0.10:8080:"
for _ in 1 2 3 4; do "$bin/tests/probe_client" tcp 127.0.0.10:8080; done
echo "== and four UDP datagrams to 127.0.0.10:8080:"
for _ in 1 2 3 4; do "$bin/tests/probe_client" udp 127.0.0.10:8080; done
echo
if [ $once -eq 1 ]; then
	exit 0
fi
echo "ferry is running; try: for i in 1 2 3 4; do build/tests/probe_client tcp 127.0.0.10:8080; done"
echo "edit examples/demo/*.yaml to see changes applied live; Ctrl-C stops the demo."
wait "${pids[2]}"
