#!/bin/bash
# kube-proxy's healthz and metrics servers, on their default addresses in
# ferry's own namespace: /healthz and /livez answer 200 with lastUpdated and
# currentTime while syncs complete, 503 once a queued change has not been
# synced for 2 x --sync-period (a service whose port another process holds
# makes the userspace backend's syncs fail), and 200 again when the sync
# succeeds; a health check node port's serviceProxyHealthy follows. /metrics
# is well-formed Prometheus text whose counters move with syncs (and an
# EndpointSlice's last-change-trigger-time feeds the network programming
# histogram); /configz is JSON.
. "$(dirname "$0")/lib.sh"
lib_init health_metrics
command -v curl >/dev/null || skip "curl not installed"

ns_new N main
M=$T/manifests

# get URL: prints "STATUS" on the first line, then the body.
get() {
	local body=$T/body
	local code
	code=$(ip netns exec "$N" curl -s -m 2 -o "$body" -w '%{http_code}' "$1" 2>/dev/null)
	echo "${code:-000}"
	cat "$body" 2>/dev/null
}

# wait_code URL CODE [SECONDS]: poll until URL answers CODE.
wait_code() {
	local out i n=$(( ${3:-5} * 10 ))
	for i in $(seq 1 "$n"); do
		out=$(get "$1")
		[ "$(head -n1 <<<"$out")" = "$2" ] && { say "  $1: $(echo $out | cut -c1-160)"; return 0; }
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died"
		sleep 0.1
	done
	fail "$1: want $2 within ${3:-5} s, got: $(echo $out)"
}

# metric NAME_AND_LABELS: the value of one sample of /metrics.
metric() {
	get http://127.0.0.1:10249/metrics | awk -v k="$1" '$1 == k {print $2}'
}

# check_prometheus FILE: every sample's family has HELP and TYPE; every
# histogram has _bucket{le="+Inf"}, _sum and _count.
check_prometheus() {
	awk '
	/^# HELP / {help[$3] = 1; next}
	/^# TYPE / {type[$3] = $4; next}
	/^#/ || /^$/ {next}
	{
		name = $1; sub(/\{.*/, "", name)
		fam = name
		if (!(fam in type)) { sub(/_(bucket|sum|count)$/, "", fam) }
		if (!(fam in type) || !(fam in help)) { print "no HELP/TYPE for " name; bad = 1 }
		if (NF != 2 || $2 !~ /^[-+0-9.eE]+$|^[+-]Inf$|^NaN$/) { print "bad sample: " $0; bad = 1 }
		if ($1 ~ /_bucket\{le="\+Inf"\}$/) inf[fam] = 1
		if (name ~ /_sum$/) sum[fam] = 1
		if (name ~ /_count$/) cnt[fam] = 1
		n++
	}
	END {
		for (f in type) if (type[f] == "histogram" && !(inf[f] && sum[f] && cnt[f])) {
			print "histogram " f " lacks +Inf bucket, _sum or _count"; bad = 1
		}
		if (n < 10) { print "only " n " samples"; bad = 1 }
		exit bad
	}' "$1"
}

cat >"$M/lb.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 127.0.0.10
  externalTrafficPolicy: Local
  healthCheckNodePort: 30999
  ports: [{name: tcp, protocol: TCP, port: 8080, nodePort: 30080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: lb-1
  namespace: default
  labels: {kubernetes.io/service-name: lb}
addressType: IPv4
ports: [{name: tcp, protocol: TCP, port: 9000}]
endpoints:
- {addresses: [127.0.0.11], conditions: {ready: true}, nodeName: node-a}
YAML

ferry_start "$N" --hostname-override node-a --sync-period 1s

say "/healthz and /livez answer 200 with lastUpdated and currentTime"
wait_code http://127.0.0.1:10256/healthz 200
out=$(get http://127.0.0.1:10256/healthz)
grep -q '"lastUpdated": "[0-9-]* [0-9:.]* +0000 UTC"' <<<"$out" || fail "no lastUpdated: $out"
grep -q '"currentTime": "[0-9-]* [0-9:.]* +0000 UTC"' <<<"$out" || fail "no currentTime: $out"
wait_code http://127.0.0.1:10256/livez 200
grep -q '"lastUpdated".*"currentTime"' <<<"$(get http://127.0.0.1:10256/livez)" || fail "livez body"
wait_code http://127.0.0.1:10256/nothing 404
wait_code http://127.0.0.1:30999/ 200
get http://127.0.0.1:30999/ | grep -q '"serviceProxyHealthy":true' || fail "health check port not healthy"

say "/metrics is Prometheus text: HELP and TYPE, histograms complete"
wait_code http://127.0.0.1:10249/metrics 200
get http://127.0.0.1:10249/metrics | tail -n +2 >"$T/metrics.txt"
check_prometheus "$T/metrics.txt" || fail "/metrics is not well-formed (see above)"
for m in kubeproxy_sync_proxy_rules_duration_seconds kubeproxy_sync_full_proxy_rules_duration_seconds \
	kubeproxy_sync_partial_proxy_rules_duration_seconds kubeproxy_sync_proxy_rules_last_timestamp_seconds \
	kubeproxy_sync_proxy_rules_no_local_endpoints_total kubeproxy_sync_proxy_rules_endpoint_changes_total \
	kubeproxy_sync_proxy_rules_service_changes_pending process_resident_memory_bytes \
	process_cpu_seconds_total process_open_fds process_start_time_seconds ferry_programmed_frontends; do
	grep -q "^# TYPE $m " "$T/metrics.txt" || fail "/metrics lacks $m"
done
grep -q '^kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.001"} ' "$T/metrics.txt" ||
	fail "sync duration buckets are not kube-proxy's"
wait_code http://127.0.0.1:10249/configz 200
get http://127.0.0.1:10249/configz | tail -n +2 | python3 -c 'import json,sys; c=json.load(sys.stdin); assert c["kubeproxy.config.k8s.io"]["syncPeriod"] == "1000ms", c' ||
	fail "/configz is not the configuration as JSON"

say "a manifest change moves the counters"
syncs=$(metric 'ferry_syncs_total{backend="userspace",result="ok"}')
svc_total=$(metric kubeproxy_sync_proxy_rules_service_changes_total)
mf_service "$M/b.yaml" b 127.0.0.20 tcp/TCP/8081
for i in $(seq 1 50); do
	now=$(metric kubeproxy_sync_proxy_rules_service_changes_total)
	[ "${now:-0}" -gt "${svc_total:-0}" ] && [ "$(metric kubeproxy_sync_proxy_rules_service_changes_pending)" = 0 ] && break
	sleep 0.1
done
[ "${now:-0}" -gt "${svc_total:-0}" ] || fail "service changes total did not grow ($svc_total -> $now)"
now=$(metric 'ferry_syncs_total{backend="userspace",result="ok"}')
[ "${now:-0}" -gt "${syncs:-0}" ] || fail "sync count did not grow ($syncs -> $now)"
[ "$(metric ferry_programmed_frontends'{backend="userspace"}')" -ge 2 ] || fail "programmed frontends"
[ "$(metric 'ferry_backend_objects{backend="userspace",kind="listener_sets"}')" -ge 2 ] ||
	fail "the backend's listener sets are not counted"
for k in relay_flows_active endpoints_checked_healthy endpoints_checked_unhealthy; do
	[ -n "$(metric "ferry_backend_objects{backend=\"userspace\",kind=\"$k\"}")" ] || fail "no $k count"
done
say "  syncs $syncs -> $now"

say "an EndpointSlice with a last-change-trigger-time feeds the network programming histogram"
[ "$(metric kubeproxy_network_programming_duration_seconds_count)" = 0 ] || fail "programming latency before any change"
cat >"$M/b-eps.yaml" <<YAML
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: b-1
  namespace: default
  labels: {kubernetes.io/service-name: b}
  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"}
addressType: IPv4
ports: [{name: tcp, protocol: TCP, port: 9000}]
endpoints:
- {addresses: [127.0.0.21], conditions: {ready: true}}
YAML
for i in $(seq 1 50); do
	[ "$(metric kubeproxy_network_programming_duration_seconds_count)" = 1 ] && break
	sleep 0.1
done
[ "$(metric kubeproxy_network_programming_duration_seconds_count)" = 1 ] ||
	fail "network programming duration not observed: $(metric kubeproxy_network_programming_duration_seconds_count)"
[ "$(metric 'kubeproxy_network_programming_duration_seconds_bucket{le="5"}')" = 1 ] ||
	fail "programming latency above 5 s"

say "syncs that keep failing for 2 x sync period: 503, serviceProxyHealthy false"
echo_start "$N" blocker 127.0.0.30:7000
mf_service "$M/c.yaml" c 127.0.0.30 tcp/TCP/7000
wait_code http://127.0.0.1:10256/healthz 503 8
out=$(get http://127.0.0.1:10256/healthz)
grep -q '"lastUpdated": "[0-9-]* [0-9:.]* +0000 UTC","currentTime"' <<<"$out" || fail "503 body: $out"
wait_code http://127.0.0.1:10256/livez 503
wait_code http://127.0.0.1:30999/ 503
get http://127.0.0.1:30999/ | grep -q '"serviceProxyHealthy":false' || fail "health check port still healthy"
[ "$(metric 'ferry_sync_proxy_rules_failures_total{backend="userspace"}')" -gt 0 ] || fail "no sync failure counted"
[ "$(metric 'kubeproxy_proxy_healthz_total{code="503"}')" -gt 0 ] || fail "healthz 503 not counted"

say "the port is free again: the retried sync succeeds, 200"
kill "$BG_PID"
wait_code http://127.0.0.1:10256/healthz 200 20
wait_code http://127.0.0.1:30999/ 200
pass
