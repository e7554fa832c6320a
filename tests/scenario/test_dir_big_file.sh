#!/bin/bash
# A manifest file over 16 MiB loads whole (issue 14). The directory holds one
# `kubectl get svc,endpointslices -A -o yaml` style dump of about 20 MiB:
# 25,000 headless services (no frontends, so the userspace backend opens
# nothing for them) and, at its very end, service web on 127.0.0.10:8080 with
# its slice (e1). Checks:
#  - `ferry plan` exits 0 and plans web;
#  - `ferry run` serves web from e1 (before, the file was skipped whole and
#    an empty plan was programmed);
#  - an edit of the dump that breaks it leaves web served.
. "$(dirname "$0")/lib.sh"
lib_init dir_big_file

ns_new N main
echo_start "$N" e1 127.0.0.11:9000 --tcp

M=$T/manifests
say "writing the dump"
awk -v n=25000 'BEGIN {
	print "apiVersion: v1"
	print "items:"
	for (i = 0; i < n; i++) {
		printf "- apiVersion: v1\n  kind: Service\n  metadata:\n"
		printf "    annotations:\n      example.com/owner: team-%05d-with-a-long-annotation-value-for-size\n", i
		printf "    creationTimestamp: \"2026-01-01T00:00:00Z\"\n"
		printf "    labels:\n      app: app-%05d\n      tier: backend\n", i
		printf "    name: headless-%05d\n    namespace: ns-%02d\n", i, i % 50
		printf "    resourceVersion: \"%d\"\n    uid: 6c1e0e8a-1f0b-4d4e-9a7e-%012d\n", 1000 + i, i
		printf "  spec:\n    clusterIP: None\n    clusterIPs:\n    - None\n"
		printf "    internalTrafficPolicy: Cluster\n    ipFamilies:\n    - IPv4\n"
		printf "    ipFamilyPolicy: SingleStack\n    ports:\n    - name: http\n      port: 80\n"
		printf "      protocol: TCP\n      targetPort: 8080\n    selector:\n      app: app-%05d\n", i
		printf "    sessionAffinity: None\n    type: ClusterIP\n  status:\n    loadBalancer: {}\n"
	}
	print "- apiVersion: v1"
	print "  kind: Service"
	print "  metadata: {name: web, namespace: default}"
	print "  spec: {type: ClusterIP, clusterIP: 127.0.0.10, clusterIPs: [127.0.0.10], ports: [{name: http, protocol: TCP, port: 8080}]}"
	print "- apiVersion: discovery.k8s.io/v1"
	print "  kind: EndpointSlice"
	print "  metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}"
	print "  addressType: IPv4"
	print "  ports: [{name: http, protocol: TCP, port: 9000}]"
	print "  endpoints: [{addresses: [127.0.0.11], conditions: {ready: true}}]"
	print "kind: List"
	print "metadata:"
	print "  resourceVersion: \"\""
}' >"$M/dump.yaml"
size=$(stat -c %s "$M/dump.yaml")
say "  $size bytes"
[ "$size" -gt $((16 << 20)) ] || fail "the dump is only $size bytes"

say "ferry plan: exit 0, web planned"
ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$M" --backend userspace >"$T/plan.out" 2>"$T/plan.err"
rc=$?
[ "$rc" = 0 ] || fail "ferry plan exit $rc, want 0; stderr: $(tail -n 5 "$T/plan.err")"
grep -q '127\.0\.0\.10' "$T/plan.out" || fail "ferry plan does not plan web (127.0.0.10): $(head -n 20 "$T/plan.out")"

# wait_log PATTERN: poll ferry's log (at most 90 s: a sanitizer build
# parses slowly) for an extended regular expression.
wait_log() {
	local i
	for i in $(seq 1 900); do
		grep -Eq "$1" "$FERRY_LOG" && return 0
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry exited"
		sleep 0.1
	done
	return 1
}

say "ferry run: web answers from e1"
ferry_start "$N"
wait_log 'source dir:.* loaded' || fail "ferry did not load the directory within 90 s"
wait_answer "$N" tcp 127.0.0.10:8080 e1
grep -F 'services and' "$FERRY_LOG" | head -n 1 | sed 's/^/  /'

say "the dump cut short: web keeps answering"
head -c $((size / 2)) "$M/dump.yaml" >"$T/half.yaml"
mv -f "$T/half.yaml" "$M/dump.yaml"
wait_log 'dump.yaml.*keeping the objects it had before' ||
	fail "no log line says dump.yaml keeps its objects"
sleep 0.5
names_count "$N" tcp 127.0.0.10:8080 10
[ "$(echo "$COUNTS" | count_of e1)" = 10 ] || fail "expected e1 only, got: $COUNTS"
pass
