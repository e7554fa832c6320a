#!/bin/bash
# conntrack settings when nothing sets them: kube-proxy applies its
# defaults (maxPerCore 32768, min 131072, TCP established 24h, close-wait
# 1h) both without --config (its flags' defaults) and with a file that has
# no conntrack section. ferry does the same whenever it stands in for
# kube-proxy (--config given, or the API source), and leaves the host's
# conntrack alone as a standalone balancer (a manifest directory, no
# --config). A field written as 0 keeps the kernel's value. Checked on the
# per-namespace sysctls of the namespace ferry runs in.
. "$(dirname "$0")/lib.sh"
lib_init config_conntrack_defaults
ns_new N node
NF=/proc/sys/net/netfilter
ip netns exec "$N" test -w $NF/nf_conntrack_tcp_timeout_established ||
	skip "no per-namespace conntrack sysctls here (nf_conntrack not loaded?)"
mf_service "$T/manifests/a.yaml" a 127.0.0.10 tcp/TCP/8080

get() { ip netns exec "$N" cat "$NF/nf_conntrack_tcp_timeout_$1"; }
reset() {
	ip netns exec "$N" sh -c "echo 1234 >$NF/nf_conntrack_tcp_timeout_established && \
		echo 567 >$NF/nf_conntrack_tcp_timeout_close_wait" || fail "cannot set the sysctls in N"
}
# run ARGS...: ferry run (userspace) in N until its first sync, then stop it.
run() {
	ferry_start "$N" --healthz-bind-address "" --metrics-bind-address "" "$@"
	local i
	for i in $(seq 1 50); do
		grep -q "sync: full sync" "$FERRY_LOG" && break
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry $* died: $(tail -3 "$FERRY_LOG")"
		sleep 0.1
	done
	grep -q "sync: full sync" "$FERRY_LOG" || fail "ferry $* made no sync"
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
}

say "standalone (dir:, no --config): the host's values stay"
reset
run
[ "$(get established)" = 1234 ] || fail "established changed to $(get established) without --config"
[ "$(get close_wait)" = 567 ] || fail "close_wait changed to $(get close_wait) without --config"
grep -q "conntrack\." "$FERRY_LOG" && fail "conntrack touched: $(grep conntrack "$FERRY_LOG")"

say "--config without a conntrack section: kube-proxy's defaults, 24h and 1h"
cat >"$T/kp.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: userspace
YAML
reset
run --config "$T/kp.yaml"
[ "$(get established)" = 86400 ] || fail "established is $(get established), not 86400"
[ "$(get close_wait)" = 3600 ] || fail "close_wait is $(get close_wait), not 3600"
grep -q "conntrack.tcpEstablishedTimeout: set .* to 86400" "$FERRY_LOG" || fail "the log does not say it"

say "a field written as 0s keeps the kernel's value; the others default"
cat >>"$T/kp.yaml" <<YAML
conntrack:
  tcpCloseWaitTimeout: 0s
YAML
reset
run --config "$T/kp.yaml"
[ "$(get established)" = 86400 ] || fail "established is $(get established), not 86400"
[ "$(get close_wait)" = 567 ] || fail "close_wait is $(get close_wait): tcpCloseWaitTimeout 0s must leave it"

say "a flag sets one, kube-proxy's default the other"
reset
run --config "$T/kp.yaml" --conntrack-tcp-timeout-established=2h
[ "$(get established)" = 7200 ] || fail "established is $(get established), not 7200"

say "plan --config says the defaults apply"
ip netns exec "$N" "$FERRY_BIN" plan --config "$T/kp.yaml" --source "dir:$T/manifests" >"$T/plan.out" 2>&1 ||
	fail "ferry plan failed: $(cat "$T/plan.out")"
grep -q "^conntrack.tcpEstablishedTimeout: 86400s" "$T/plan.out" || fail "plan: $(grep conntrack "$T/plan.out")"
grep -q "^conntrack defaults: kube-proxy's" "$T/plan.out" || fail "plan does not say the defaults apply"


pass
