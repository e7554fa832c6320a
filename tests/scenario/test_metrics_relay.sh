#!/bin/bash
# /metrics with the userspace relay: its per service port families
# (ferry_relay_connections_total, ferry_relay_active_connections,
# ferry_relay_bytes_total{direction}) move with real connections, and
# ferry_endpoint_healthy says which actively checked endpoint passes its
# checks (one answers, one has nothing listening). Every family has HELP
# and TYPE.
. "$(dirname "$0")/lib.sh"
lib_init metrics_relay
command -v curl >/dev/null || skip "curl not installed"

ns_new N main
M=$T/manifests
cat >"$M/web.yaml" <<YAML
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations:
    ferry.io/health-check: tcp
    ferry.io/health-check-interval: "200"
    ferry.io/health-check-timeout: "200"
    ferry.io/health-check-rise: "1"
    ferry.io/health-check-fall: "1"
spec:
  type: ClusterIP
  clusterIP: 127.0.0.10
  ports:
  - {name: http, protocol: TCP, port: 8080}
YAML
mf_slice "$M/web-eps.yaml" web-1 web http/TCP/9000 -- 127.0.0.2 127.0.0.3
echo_start "$N" b1 127.0.0.2:9000

scrape() { ip netns exec "$N" curl -s -m 2 http://127.0.0.1:10249/metrics; }
LBL='namespace="default",service="web",port="http",protocol="TCP"'
value() { # value METRIC{LABELS}: its sample value, or empty
	scrape | awk -v k="$1" 'index($0, k " ") == 1 {print $2}'
}
wait_value() { # wait_value SAMPLE WANT
	local v
	for i in $(seq 1 50); do
		v=$(value "$1")
		[ "$v" = "$2" ] && { say "  $1 = $v"; return 0; }
		sleep 0.1
	done
	fail "$1 is '$v', not $2: $(scrape | grep -E '^ferry_(relay|endpoint)')"
}

ferry_start "$N"
wait_value "ferry_endpoint_healthy{$LBL,endpoint=\"127.0.0.2:9000\"}" 1
wait_value "ferry_endpoint_healthy{$LBL,endpoint=\"127.0.0.3:9000\"}" 0
scrape >"$T/m1"
for f in ferry_relay_connections_total:counter ferry_relay_active_connections:gauge \
	ferry_relay_bytes_total:counter ferry_endpoint_healthy:gauge; do
	grep -qx "# TYPE ${f%%:*} ${f#*:}" "$T/m1" || fail "no TYPE ${f%%:*} ${f#*:}"
	grep -q "^# HELP ${f%%:*} " "$T/m1" || fail "no HELP for ${f%%:*}"
done
c0=$(value "ferry_relay_connections_total{$LBL}")
[ -n "$c0" ] || fail "no ferry_relay_connections_total for web: $(grep relay "$T/m1")"
in0=$(value "ferry_relay_bytes_total{$LBL,direction=\"in\"}")
out0=$(value "ferry_relay_bytes_total{$LBL,direction=\"out\"}")

say "three connections through the relay"
for i in 1 2 3; do
	out=$(probe "$N" tcp 127.0.0.10:8080 --timeout-ms 2000) || fail "127.0.0.10:8080 did not answer: $out"
	[ "${out%% *}" = b1 ] || fail "answered by '${out%% *}', not the healthy b1"
done
wait_value "ferry_relay_connections_total{$LBL}" $((c0 + 3))
wait_value "ferry_relay_active_connections{$LBL}" 0
in1=$(value "ferry_relay_bytes_total{$LBL,direction=\"in\"}")
out1=$(value "ferry_relay_bytes_total{$LBL,direction=\"out\"}")
[ "$out1" -gt "$out0" ] || fail "bytes out did not move ($out0 -> $out1)"
[ "$in1" -ge "$in0" ] || fail "bytes in went back ($in0 -> $in1)"
say "  bytes in $in0 -> $in1, out $out0 -> $out1"

say "the endpoint that comes up turns healthy"
echo_start "$N" b2 127.0.0.3:9000
wait_value "ferry_endpoint_healthy{$LBL,endpoint=\"127.0.0.3:9000\"}" 1
pass
