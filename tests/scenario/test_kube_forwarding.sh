#!/bin/bash
# End to end through the Kubernetes API source: `ferry run --source kube
# --backend userspace --kubeconfig ...` against the test API server (TLS with
# a CA made here, bearer token), forwarding real TCP traffic, and following
# changes made on the API server (endpoints replaced, service deleted).
# `ferry plan --source kube --format json` is checked on the way, and that
# `ferry plan` with a CA that does not verify fails at once. (A wrong CA,
# token rotation and the other protocol cases are in tests/unit/test_kube_source.c.)
#
#   client ns --veth-- proxy ns (ferry + test API server on its 127.0.0.1)
#                        |--veth-- backend ns b1
#                        \--veth-- backend ns b2
. "$(dirname "$0")/lib.sh"
lib_init kube_forwarding

command -v python3 >/dev/null || skip "python3 (test API server) not installed"
command -v openssl >/dev/null || skip "openssl (test CA) not installed"
KAPI_DIR=${FERRY_TESTS_DIR:-$(dirname "$0")/..}/kapi
[ -f "$KAPI_DIR/kapi_server.py" ] || fail "test API server not found in $KAPI_DIR"

ns_new C client
ns_new P proxy
ns_new B1 b1
ns_new B2 b2
ns_link "$C" c0 "$P" p0
ns_link "$P" p1 "$B1" b0
ns_link "$P" p2 "$B2" b0
ns_addr "$C" c0 10.210.1.1/24
ns_addr "$P" p0 10.210.1.2/24
ns_addr "$P" p1 10.210.2.1/24
ns_addr "$P" p2 10.210.3.1/24
ns_addr "$P" lo 10.210.100.10/32
ns_addr "$B1" b0 10.210.2.11/24
ns_addr "$B2" b0 10.210.3.11/24
ip -n "$C" route add default via 10.210.1.2 || fail "client route"
ip -n "$B1" route add default via 10.210.2.1 || fail "b1 route"
ip -n "$B2" route add default via 10.210.3.1 || fail "b2 route"
ip netns exec "$P" sysctl -qw net.ipv4.ip_forward=0

echo_start "$B1" b1 10.210.2.11:9000
echo_start "$B2" b2 10.210.3.11:9000

say "test API server with TLS and a token, inside the proxy namespace"
bash "$KAPI_DIR/gen_certs.sh" "$T/pki" >/dev/null || fail "cannot make the test CA"
bg_start "$P" "$T/kapi.log" python3 "$KAPI_DIR/kapi_server.py" --port-file "$T/port" \
	--cert "$T/pki/server.crt" --key "$T/pki/server.key" --token s3cret
for i in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "test API server did not start: $(cat "$T/kapi.log")"
PORT=$(cat "$T/port")

# kapi PATH JSON: a control request to the test API server.
kapi() {
	ip netns exec "$P" python3 - "$PORT" "$1" "$2" <<'PY' || fail "control $1 failed"
import json, ssl, sys, urllib.request
ctx = ssl._create_unverified_context()
req = urllib.request.Request("https://127.0.0.1:%s/_control/%s" % (sys.argv[1], sys.argv[2]),
                             data=sys.argv[3].encode(), method="POST")
urllib.request.urlopen(req, context=ctx, timeout=10).read()
PY
}
slice() { # NAME ADDR...
	local name=$1 eps="" a
	shift
	for a in "$@"; do eps="$eps${eps:+,}{\"addresses\":[\"$a\"]}"; done
	kapi apply "{\"objects\":[{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"$name\",\"labels\":{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"endpoints\":[$eps],\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":9000}]}]}"
}

kapi apply '{"objects":[{"kind":"Service","metadata":{"name":"web"},"spec":{"clusterIP":"10.210.100.10","clusterIPs":["10.210.100.10"],"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":9000}]}},{"kind":"Node","metadata":{"name":"node-a","labels":{"topology.kubernetes.io/zone":"z1"}},"status":{"addresses":[{"type":"InternalIP","address":"10.210.1.2"}]}}]}'
slice web-1 10.210.2.11

cat >"$T/kubeconfig" <<EOF2
apiVersion: v1
kind: Config
current-context: test
contexts:
- name: test
  context: {cluster: kapi, user: proxy}
clusters:
- name: kapi
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority: $T/pki/ca.crt
users:
- name: proxy
  user:
    token: s3cret
EOF2

say "ferry plan --source kube --format json"
ip netns exec "$P" "$FERRY_BIN" plan --kubeconfig "$T/kubeconfig" --hostname-override node-a \
	--format json >"$T/plan.json" 2>"$T/plan.err" || fail "plan exit $?: $(cat "$T/plan.err")"
python3 -c 'import json,sys; json.load(sys.stdin)' <"$T/plan.json" || fail "plan json does not parse"
grep -q 10.210.100.10 "$T/plan.json" && grep -q 10.210.2.11 "$T/plan.json" || fail "plan lacks the service or endpoint: $(cat "$T/plan.json")"
grep -q s3cret "$T/plan.err" && fail "the token appears in plan's log"

say "ferry plan gives up at once on a CA that does not verify the server"
sed "s#$T/pki/ca.crt#$T/pki/other-ca.crt#" "$T/kubeconfig" >"$T/kubeconfig-wrong-ca"
t0=$(date +%s%N)
ip netns exec "$P" timeout 20 "$FERRY_BIN" plan --kubeconfig "$T/kubeconfig-wrong-ca" \
	--hostname-override node-a >/dev/null 2>"$T/plan-wrong-ca.err" &&
	fail "plan succeeded with the wrong CA"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 5000 ] || fail "plan with the wrong CA took $ms ms (should fail at once)"
grep -q "retrying cannot fix this" "$T/plan-wrong-ca.err" ||
	fail "plan with the wrong CA did not say why: $(cat "$T/plan-wrong-ca.err")"

say "ferry run --source kube"
FERRY_LOG=$T/ferry.log
bg_start "$P" "$FERRY_LOG" "$FERRY_BIN" run --source kube --kubeconfig "$T/kubeconfig" \
	--backend userspace --hostname-override node-a --log-level debug
FERRY_PID=$BG_PID
wait_answer "$C" tcp 10.210.100.10:80 b1
grep -q "all informers synced" "$FERRY_LOG" || fail "no 'all informers synced' line"

say "endpoints move to b2 on the API server"
slice web-1 10.210.3.11
wait_answer "$C" tcp 10.210.100.10:80 b2

say "both endpoints: both answer"
slice web-1 10.210.2.11 10.210.3.11
names_count "$C" tcp 10.210.100.10:80 8
[ "$(echo "$COUNTS" | count_of b1)" -gt 0 ] && [ "$(echo "$COUNTS" | count_of b2)" -gt 0 ] ||
	fail "expected both backends"

say "watches dropped and history compacted: ferry relists and keeps following"
kapi compact '{}'
kapi drop '{}'
slice web-1 10.210.2.11
kapi compact '{}'
# Converged when only b1 answers: 8 answers in a row, within 10 s.
streak=0
for i in $(seq 1 100); do
	out=$(probe "$C" tcp 10.210.100.10:80 --timeout-ms 500 2>/dev/null)
	if [ "${out%% *}" = b1 ]; then streak=$((streak + 1)); else streak=0; sleep 0.1; fi
	[ "$streak" -ge 8 ] && break
done
[ "$streak" -ge 8 ] || fail "after the relist answers still come from elsewhere (last: '$out')"
grep -q "relisted" "$FERRY_LOG" || fail "no relist logged"

say "service deleted on the API server: the address stops answering"
kapi delete '{"kind":"Service","name":"web"}'
gone=0
for i in $(seq 1 50); do
	probe "$C" tcp 10.210.100.10:80 --timeout-ms 300 >/dev/null 2>&1 || { gone=1; break; }
	sleep 0.1
done
[ "$gone" = 1 ] || fail "the deleted service still answers"
grep -q s3cret "$FERRY_LOG" && fail "the token appears in ferry's log"
kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died"
pass
