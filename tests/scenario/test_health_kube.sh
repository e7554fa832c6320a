#!/bin/bash
# kube-proxy's node eligibility and ferry's API counters, through the
# Kubernetes API source (the test API server, plain HTTP, in ferry's own
# namespace): /healthz answers 503 with "nodeEligible": false while this
# node's Node object is being deleted or carries the cluster autoscaler's
# ToBeDeletedByClusterAutoscaler taint, /livez stays 200; /metrics counts
# the API's watches and, after a dropped watch and a compacted history,
# a relist.
. "$(dirname "$0")/lib.sh"
lib_init health_kube
command -v curl >/dev/null || skip "curl not installed"
KAPI_DIR=${FERRY_TESTS_DIR:-$(dirname "$0")/..}/kapi
[ -f "$KAPI_DIR/kapi_server.py" ] || fail "test API server not found in $KAPI_DIR"

ns_new N main
bg_start "$N" "$T/kapi.log" python3 "$KAPI_DIR/kapi_server.py" --port-file "$T/port"
for i in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "test API server did not start: $(cat "$T/kapi.log")"
PORT=$(cat "$T/port")

# kapi PATH JSON: a control request to the test API server.
kapi() {
	ip netns exec "$N" python3 - "$PORT" "$1" "$2" <<'PY' || fail "control $1 failed"
import sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/_control/%s" % (sys.argv[1], sys.argv[2]),
                             data=sys.argv[3].encode(), method="POST")
urllib.request.urlopen(req, timeout=10).read()
PY
}
node() { # extra metadata and spec JSON members for Node node-a
	kapi apply "{\"objects\":[{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-a\"$1},\"spec\":{$2},\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.0.2\"}]}}]}"
}

get() { # URL: "STATUS BODY"
	local code
	code=$(ip netns exec "$N" curl -s -m 2 -o "$T/body" -w '%{http_code}' "$1" 2>/dev/null)
	echo "${code:-000} $(cat "$T/body" 2>/dev/null)"
}
# wait_for URL PATTERN: poll (10 s) until "STATUS BODY" matches the glob PATTERN.
wait_for() {
	local out
	for i in $(seq 1 100); do
		out=$(get "$1")
		# shellcheck disable=SC2053
		[[ "$out" == $2 ]] && { say "  $(echo "$out" | head -c 160)"; return 0; }
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died"
		sleep 0.1
	done
	fail "$1: want '$2', got: $out"
}
metric() {
	get http://127.0.0.1:10249/metrics | awk -v k="$1" '$1 == k {print $2}'
}

kapi apply '{"objects":[{"kind":"Service","metadata":{"name":"web"},"spec":{"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":9000}]}}]}'
node "" ""
cat >"$T/kubeconfig" <<EOF2
apiVersion: v1
kind: Config
current-context: test
contexts:
- name: test
  context: {cluster: kapi, user: proxy}
clusters:
- name: kapi
  cluster: {server: "http://127.0.0.1:$PORT"}
users:
- name: proxy
  user: {}
EOF2

FERRY_LOG=$T/ferry.log
bg_start "$N" "$FERRY_LOG" "$FERRY_BIN" run --source kube --kubeconfig "$T/kubeconfig" \
	--backend userspace --intercept off --hostname-override node-a --log-level debug
FERRY_PID=$BG_PID

say "an ordinary Node: /healthz 200, nodeEligible true"
wait_for http://127.0.0.1:10256/healthz '200 *"nodeEligible": true}'

say "the Node is being deleted: /healthz 503, nodeEligible false; /livez 200"
node ',"deletionTimestamp":"2026-12-06T08:00:00Z","finalizers":["x"]' ""
wait_for http://127.0.0.1:10256/healthz '503 *"nodeEligible": false}'
wait_for http://127.0.0.1:10256/livez '200 *"currentTime"*'

say "deletion cancelled: 200 again"
node "" ""
wait_for http://127.0.0.1:10256/healthz '200 *"nodeEligible": true}'

say "the autoscaler's ToBeDeletedByClusterAutoscaler taint: 503"
node "" '"taints":[{"key":"ToBeDeletedByClusterAutoscaler","value":"1","effect":"NoSchedule"}]'
wait_for http://127.0.0.1:10256/healthz '503 *"nodeEligible": false}'
node "" '"taints":[{"key":"node.kubernetes.io/unschedulable","effect":"NoSchedule"}]'
wait_for http://127.0.0.1:10256/healthz '200 *"nodeEligible": true}'

say "/metrics counts the API's watches, and a relist after a compacted history"
w=$(metric ferry_api_watches_total)
[ "${w:-0}" -gt 0 ] || fail "no API watches counted: '$w'"
r0=$(metric ferry_api_relists_total)
[ -n "$r0" ] || fail "no ferry_api_relists_total"
kapi compact '{}'
kapi drop '{}'
node "" ""
kapi compact '{}'
for i in $(seq 1 100); do
	r=$(metric ferry_api_relists_total)
	[ "${r:-0}" -gt "$r0" ] && break
	sleep 0.1
done
[ "${r:-0}" -gt "$r0" ] || fail "relists did not grow ($r0 -> $r)"
say "  relists $r0 -> $r, watches $w -> $(metric ferry_api_watches_total)"
pass
