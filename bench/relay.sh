#!/bin/bash
# Relay benchmark: direct path vs ferry's userspace relay vs HAProxy (mode tcp),
# measured in one run on the same topology.
#
#   sudo bench/relay.sh [BUILD_DIR]        (default BUILD_DIR: ./build)
#
# Comparing two builds in one run (before/after a change): BASE=OTHER_BUILD
# adds the path ferry-base, the same ferry measured from OTHER_BUILD.
# INTERCEPT=on adds ferry-intercept (and ferry-base-intercept): ferry with
# --intercept on, reached at a cluster IP no interface holds
# (10.201.101.10:8080), which nftables redirects to the relay. PLAIN=off
# and HAPROXY=off leave out the ferry path on a local VIP and HAProxy (for
# many short alternating runs of one comparison).
#
# Topology, three network namespaces made here and removed on exit:
#
#   client 10.201.1.1 --veth-- 10.201.1.2 proxy 10.201.2.1 --veth-- 10.201.2.2 server
#                              VIP 10.201.100.10 (proxy lo)
#
# direct:  client -> 10.201.2.2:9000, routed by the proxy namespace's kernel
#          (same two veth hops as the proxied paths, no userspace relay);
# ferry:   client -> 10.201.100.10:8080, `ferry run --backend userspace`;
# ferry-intercept: client -> 10.201.101.10:8080 (not local: redirected);
# haproxy: client -> 10.201.100.10:8081, `haproxy -f cfg -db`, mode tcp.
# The proxies run with the same number of threads (WORKERS).
#
# Measurements, per path:
#   throughput:  BULK_CONNS parallel connections move BULK_BYTES in total;
#   conn/s:      CRR_CONNS short connections (64-byte request and answer)
#                over CRR_CLIENTS concurrent clients;
#   CPU:         the proxy process's utime+stime (/proc/PID/stat) across each
#                phase, as CPU-seconds per GB relayed and CPU-µs per connection.
# Results go to stdout as a markdown table and to $OUT/relay.{md,csv}.
#
# Every phase stops after MAX_S seconds; the whole run is bounded by the
# `timeout` around this script's body (BENCH_TIMEOUT, default 170 s).
# Only namespaces created here carry traffic; the host's network is untouched.
set -u

BUILD=${1:-./build}
WORKERS=${WORKERS:-1}
BULK_BYTES=${BULK_BYTES:-8589934592}
BULK_CONNS=${BULK_CONNS:-4}
CRR_CONNS=${CRR_CONNS:-10000}
CRR_CLIENTS=${CRR_CLIENTS:-8}
MAX_S=${MAX_S:-20}
OUT=${OUT:-/tmp/ferry-relay-results}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-170}
BASE=${BASE:-}
INTERCEPT=${INTERCEPT:-off}
PLAIN=${PLAIN:-on}
HAPROXY=${HAPROXY:-on}

RB=$BUILD/bench/relay_bench
FERRY=$BUILD/ferry
TAG=ferry-bench-$$
NS_C=$TAG-c
NS_P=$TAG-p
NS_S=$TAG-s
TMP=
PIDS=()

die() { echo "relay.sh: $*" >&2; exit 1; }

cleanup() {
	local p ns
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for ns in "$NS_C" "$NS_P" "$NS_S"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "$TMP" ] && rm -rf "$TMP"
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$RB" ] || die "$RB not built (make relay_bench)"
[ "$HAPROXY" = off ] || command -v haproxy >/dev/null || die "haproxy not installed"

# Re-run the body under a hard time limit (the trap cleans up either way).
if [ -z "${RELAY_BENCH_INNER:-}" ]; then
	RELAY_BENCH_INNER=1 exec timeout --kill-after=5 "$BENCH_TIMEOUT" "$0" "$@"
fi

trap cleanup EXIT
trap 'exit 1' INT TERM
TMP=$(mktemp -d /tmp/ferry-relay-bench.XXXXXX)
mkdir -p "$OUT" "$TMP/manifests"

# ---- topology ----------------------------------------------------------
for ns in "$NS_C" "$NS_P" "$NS_S"; do
	ip netns add "$ns" || die "cannot create namespace $ns"
	ip -n "$ns" link set lo up
	# Room for tens of thousands of short connections in TIME_WAIT.
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
done
ip -n "$NS_C" link add c0 type veth peer name p0 netns "$NS_P" || die "veth"
ip -n "$NS_P" link add p1 type veth peer name s0 netns "$NS_S" || die "veth"
ip -n "$NS_C" addr add 10.201.1.1/24 dev c0
ip -n "$NS_P" addr add 10.201.1.2/24 dev p0
ip -n "$NS_P" addr add 10.201.2.1/24 dev p1
ip -n "$NS_P" addr add 10.201.100.10/32 dev lo
ip -n "$NS_S" addr add 10.201.2.2/24 dev s0
for l in "$NS_C c0" "$NS_P p0" "$NS_P p1" "$NS_S s0"; do
	set -- $l
	ip -n "$1" link set "$2" up
done
ip -n "$NS_C" route add default via 10.201.1.2
ip -n "$NS_S" route add default via 10.201.2.1
ip netns exec "$NS_P" sysctl -qw net.ipv4.ip_forward=1

# ---- server ------------------------------------------------------------
ip netns exec "$NS_S" "$RB" server --listen 10.201.2.2:9000 --threads 2 >"$TMP/server.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 50); do grep -q ready "$TMP/server.log" && break; sleep 0.1; done
grep -q ready "$TMP/server.log" || die "bench server did not start: $(cat "$TMP/server.log")"

# ---- proxies -----------------------------------------------------------
cat >"$TMP/manifests/bench.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: bench
  namespace: default
  annotations:
    ferry.io/balance: round-robin
spec:
  type: ClusterIP
  ipFamilies: [IPv4]
  clusterIP: 10.201.100.10
  clusterIPs: [10.201.100.10]
  ports:
  - name: tcp
    protocol: TCP
    port: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  namespace: default
  labels:
    kubernetes.io/service-name: bench
addressType: IPv4
ports:
- name: tcp
  protocol: TCP
  port: 9000
endpoints:
- addresses: ["10.201.2.2"]
  conditions: {ready: true, serving: true, terminating: false}
---
apiVersion: v1
kind: Service
metadata:
  name: bench-intercepted
  namespace: default
spec:
  type: ClusterIP
  ipFamilies: [IPv4]
  clusterIP: 10.201.101.10
  clusterIPs: [10.201.101.10]
  ports:
  - name: tcp
    protocol: TCP
    port: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-intercepted-1
  namespace: default
  labels:
    kubernetes.io/service-name: bench-intercepted
addressType: IPv4
ports:
- name: tcp
  protocol: TCP
  port: 9000
endpoints:
- addresses: ["10.201.2.2"]
  conditions: {ready: true, serving: true, terminating: false}
EOF

cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 10.201.100.10:8081
    default_backend servers
backend servers
    server s1 10.201.2.2:9000
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

# field NAME LINE: the value of NAME=... in a relay_bench result line.
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# wait_path TARGET: bounded readiness check (50 x 100 ms).
wait_path() {
	for i in $(seq 1 50); do
		ip netns exec "$NS_C" "$RB" crr --target "$1" --clients 1 --conns 1 --max-seconds 2 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

RESULTS=()
# measure NAME TARGET PROXY_PID: run both phases and append a result row
# "name,gbps,cps,p50_us,cpu_s_per_gb,cpu_us_per_conn,status".
measure() {
	local name=$1 target=$2 pid=$3 t0 t1 bulk crr gbps cps p50 bytes conns cpugb="" cpuconn="" status=ok
	if ! wait_path "$target"; then
		RESULTS+=("$name,,,,,,not reachable")
		echo "relay.sh: $name: $target not reachable, skipped" >&2
		return
	fi
	echo "relay.sh: $name: bulk $BULK_BYTES bytes over $BULK_CONNS connections" >&2
	[ -n "$pid" ] && t0=$(cpu_ticks "$pid")
	bulk=$(ip netns exec "$NS_C" "$RB" bulk --target "$target" --conns "$BULK_CONNS" \
		--bytes "$BULK_BYTES" --max-seconds "$MAX_S") || status="bulk errors"
	[ -n "$pid" ] && t1=$(cpu_ticks "$pid")
	echo "  $bulk" >&2
	gbps=$(field gbps "$bulk")
	bytes=$(field bytes "$bulk")
	if [ -n "$pid" ] && [ -n "$bytes" ] && [ "$bytes" -gt 0 ]; then
		cpugb=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v b="$bytes" 'BEGIN {printf "%.2f", d / hz / (b / 1e9)}')
	fi
	echo "relay.sh: $name: $CRR_CONNS short connections over $CRR_CLIENTS clients" >&2
	[ -n "$pid" ] && t0=$(cpu_ticks "$pid")
	crr=$(ip netns exec "$NS_C" "$RB" crr --target "$target" --clients "$CRR_CLIENTS" \
		--conns "$CRR_CONNS" --max-seconds "$MAX_S") || status="${status/ok/}crr errors"
	[ -n "$pid" ] && t1=$(cpu_ticks "$pid")
	echo "  $crr" >&2
	cps=$(field cps "$crr")
	p50=$(field p50_us "$crr")
	conns=$(field conns "$crr")
	if [ -n "$pid" ] && [ -n "$conns" ] && [ "$conns" -gt 0 ]; then
		cpuconn=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$conns" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
	fi
	RESULTS+=("$name,$gbps,$cps,$p50,$cpugb,$cpuconn,$status")
}

measure direct 10.201.2.2:9000 ""

# ferry_path NAME FERRY_BIN TARGET [ARGS]: run that ferry in the proxy
# namespace, measure TARGET, stop it.
ferry_path() {
	local name=$1 bin=$2 target=$3 fpid i
	shift 3
	if [ ! -x "$bin" ]; then
		RESULTS+=("$name,,,,,,$bin not built")
		return
	fi
	ip netns exec "$NS_P" "$bin" run --source "dir:$TMP/manifests" --backend userspace \
		--workers "$WORKERS" --log-level warn "$@" >"$TMP/$name.log" 2>&1 &
	fpid=$!
	PIDS+=("$fpid")
	sleep 0.3
	if kill -0 "$fpid" 2>/dev/null; then
		measure "$name" "$target" "$fpid"
		kill -TERM "$fpid" 2>/dev/null
		for i in $(seq 1 30); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
	else
		RESULTS+=("$name,,,,,,ferry run exited: $(tail -n1 "$TMP/$name.log" | tr ',' ' ')")
	fi
}

if [ "$PLAIN" = on ]; then
	ferry_path ferry "$FERRY" 10.201.100.10:8080
	[ -n "$BASE" ] && ferry_path ferry-base "$BASE/ferry" 10.201.100.10:8080
fi
if [ "$INTERCEPT" = on ]; then
	ferry_path ferry-intercept "$FERRY" 10.201.101.10:8080 --intercept on
	[ -n "$BASE" ] && ferry_path ferry-base-intercept "$BASE/ferry" 10.201.101.10:8080 --intercept on
fi

if [ "$HAPROXY" = on ]; then
	ip netns exec "$NS_P" haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
	HPID=$!
	PIDS+=("$HPID")
	sleep 0.2
	measure haproxy 10.201.100.10:8081 "$HPID"
	kill -TERM "$HPID" 2>/dev/null
fi

# ---- report ------------------------------------------------------------
base_gbps=$(echo "${RESULTS[0]}" | cut -d, -f2)
base_cps=$(echo "${RESULTS[0]}" | cut -d, -f3)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print ""; else printf "%.0f%%", 100 * a / b }'; }

CSV=$OUT/relay.csv
MD=$OUT/relay.md
echo "path,gbps,gbps_vs_direct,conn_per_s,cps_vs_direct,p50_connect_rr_us,proxy_cpu_s_per_gb,proxy_cpu_us_per_conn,status" >"$CSV"
{
	echo "Relay benchmark, $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, workers/nbthread=$WORKERS"
	echo "bulk: $BULK_BYTES bytes over $BULK_CONNS connections; conn/s: $CRR_CONNS connections, $CRR_CLIENTS concurrent clients, 64-byte request and answer"
	echo
	echo "| path | Gbit/s | vs direct | conn/s | vs direct | p50 conn+RR µs | proxy CPU s/GB | proxy CPU µs/conn | status |"
	echo "|---|---|---|---|---|---|---|---|---|"
} >"$MD"
for r in "${RESULTS[@]}"; do
	IFS=, read -r name gbps cps p50 cpugb cpuconn status <<<"$r"
	rg=$(ratio "$gbps" "$base_gbps")
	rc=$(ratio "$cps" "$base_cps")
	echo "$name,$gbps,$rg,$cps,$rc,$p50,$cpugb,$cpuconn,$status" >>"$CSV"
	echo "| $name | ${gbps:--} | ${rg:--} | ${cps:--} | ${rc:--} | ${p50:--} | ${cpugb:--} | ${cpuconn:--} | $status |" >>"$MD"
done
cat "$MD"
echo
cat "$CSV"
