#!/bin/bash
# --config FILE: kube-proxy's KubeProxyConfiguration, and kube-proxy's flag
# names, on the nftables topology (nft_topo.sh) with a NodePort service:
# - `ferry plan --config` prints the effective settings (file, flags,
#   defaults; conntrack's max as kube-proxy computes it) and exits 2 on an
#   invalid file, naming the field; mode iptables is refused with the mode
#   to use;
# - `ferry --config FILE ...` (no command, as a kube-proxy DaemonSet starts
#   it) runs with the file's mode, nodePortAddresses (real traffic: the node
#   port opens only on the file's CIDR), conntrack timeouts (sysctls of the
#   node's namespace: nf_conntrack_max, which is global, is never touched
#   here), oomScoreAdj and logging verbosity;
# - a flag overrides the file (--nodeport-addresses);
# - kube-proxy's aliases: --cleanup removes the mode's rules; --proxy-mode
#   userspace --v=4 --iptables-sync-period ... start ferry.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init config_file
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/np.yaml" np type=NodePort ip=10.96.0.10 ports=http/TCP/80/9000/30080
eps_yaml "$T/manifests/np-eps.yaml" np-1 np http/TCP/9000 -- 10.0.2.2

cat >"$T/kp.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: $NODE_NAME
clusterCIDR: 10.0.1.0/24
nodePortAddresses: [10.0.2.0/24]
nftables:
  masqueradeBit: 15
  syncPeriod: 1m0s
  minSyncPeriod: 0s
iptables:
  localhostNodePorts: null
conntrack:
  maxPerCore: 65536
  min: 1000
  tcpEstablishedTimeout: 2h0m0s
  tcpCloseWaitTimeout: 0s
  tcpBeLiberal: true
oomScoreAdj: 321
logging:
  verbosity: 4
winkernel:
  networkName: ""
YAML
# The run's file leaves nf_conntrack_max alone (it is global to the host):
# maxPerCore 0, since left out it would take kube-proxy's default.
sed 's/maxPerCore: 65536/maxPerCore: 0/' "$T/kp.yaml" >"$T/kp-run.yaml"

# plan_ok ARGS...: ferry plan in N, exit 0, stdout in $T/plan.out.
plan_ok() {
	ip netns exec "$N" "$FERRY_BIN" plan --source "dir:$T/manifests" "$@" >"$T/plan.out" 2>"$T/plan.err" ||
		fail "ferry plan $* failed: $(cat "$T/plan.err")"
}
# plan_invalid FILE WANT: ferry plan --config FILE exits 2 and says WANT.
plan_invalid() {
	local rc
	ip netns exec "$N" "$FERRY_BIN" plan --config "$1" --source "dir:$T/manifests" >/dev/null 2>"$T/plan.err"
	rc=$?
	[ "$rc" = 2 ] || fail "ferry plan --config $1: exit $rc, expected 2"
	grep -qF -- "$2" "$T/plan.err" || fail "ferry plan --config $1 does not say '$2': $(cat "$T/plan.err")"
}
has() { grep -qxF -- "$1" "$T/plan.out" || fail "effective settings lack '$1': $(head -n 40 "$T/plan.out")"; }

say "plan --config prints the effective settings before the plan"
plan_ok --config "$T/kp.yaml"
has "mode: nftables (backend nftables)"
has "hostnameOverride: $NODE_NAME"
has "nodePortAddresses: 10.0.2.0/24"
has "masqueradeBit: 15"
has "syncPeriod: 60s"
has "minSyncPeriod: 50ms"
has "conntrack.tcpEstablishedTimeout: 7200s"
has "conntrack.tcpCloseWaitTimeout: unchanged"
has "conntrack.tcpBeLiberal: true"
has "oomScoreAdj: 321"
ncpu=$(nproc)
grep -q "^conntrack.max: $((65536 * ncpu)) (max(maxPerCore 65536 x $ncpu CPUs, min 1000)" "$T/plan.out" ||
	fail "conntrack.max is not max(maxPerCore x CPUs, min): $(grep conntrack.max "$T/plan.out")"
grep -q "^# forwarding plan" "$T/plan.out" || fail "no plan after the settings"
grep -q "10.96.0.10" "$T/plan.out" || fail "the plan lacks the service"

say "a flag overrides the file"
plan_ok --config "$T/kp.yaml" --nodeport-addresses 10.0.1.0/24 --masquerade-bit 9
has "nodePortAddresses: 10.0.1.0/24"
has "masqueradeBit: 9"

say "an invalid file: exit 2, naming the field"
sed 's/masqueradeBit: 15/masqueradeBit: 32/' "$T/kp.yaml" >"$T/bad-range.yaml"
plan_invalid "$T/bad-range.yaml" "nftables.masqueradeBit: 32 is out of range [0, 31]"
sed 's/^clusterCIDR:/clusterCidr:/' "$T/kp.yaml" >"$T/bad-field.yaml"
plan_invalid "$T/bad-field.yaml" "clusterCidr: unknown field"
sed 's/tcpBeLiberal: true/tcpBeLiberal: 1/' "$T/kp.yaml" >"$T/bad-type.yaml"
plan_invalid "$T/bad-type.yaml" "conntrack.tcpBeLiberal: must be true or false"
sed 's/^mode: nftables/mode: iptables/' "$T/kp.yaml" >"$T/iptables.yaml"
plan_invalid "$T/iptables.yaml" "mode: iptables is not supported by ferry; use mode: nftables"
say "a known field ferry does not implement: a warning naming it"
sed 's/localhostNodePorts: null/localhostNodePorts: true/' "$T/kp.yaml" >"$T/warn.yaml"
plan_ok --config "$T/warn.yaml"
grep -q "iptables.localhostNodePorts: not implemented by ferry" "$T/plan.err" ||
	fail "no warning naming iptables.localhostNodePorts: $(cat "$T/plan.err")"

answers() { wait_answer "$C" tcp "$1:30080" b1; }
closed() {
	local out
	out=$(probe "$C" tcp "$1:30080" --timeout-ms 500 2>&1) && fail "node port on $1 answered ($out); it should not open there"
	return 0
}
# start ARGS...: ferry in N with exactly ARGS (no --backend: the mode picks
# it), waiting for the first nftables sync.
start() {
	FERRY_LOG=$T/ferry.log
	bg_start "$N" "$FERRY_LOG" "$FERRY_BIN" "$@"
	FERRY_PID=$BG_PID
	local i
	for i in $(seq 1 50); do
		grep -Eq "nftables: (full sync|took over)" "$FERRY_LOG" && return 0
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry $* died at start"
		sleep 0.1
	done
	fail "ferry $* made no first nftables sync within 5 s"
}
stop() {
	kill "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
}

say "ferry --config FILE (no command, as kube-proxy is started): the file's settings apply"
start --config "$T/kp-run.yaml" --source "dir:$T/manifests"
answers 10.0.2.1
closed 10.0.1.1
grep -q "backend nftables" "$FERRY_LOG" || fail "mode nftables did not pick the nftables backend"
[ "$(ip netns exec "$N" sysctl -n net.netfilter.nf_conntrack_tcp_timeout_established)" = 7200 ] ||
	fail "conntrack.tcpEstablishedTimeout not applied in the node's namespace"
[ "$(ip netns exec "$N" sysctl -n net.netfilter.nf_conntrack_tcp_be_liberal)" = 1 ] ||
	fail "conntrack.tcpBeLiberal not applied"
grep -q "conntrack.tcpEstablishedTimeout: set" "$FERRY_LOG" || fail "the log does not say what was set"
[ "$(cat "/proc/$FERRY_PID/oom_score_adj")" = 321 ] || fail "oomScoreAdj not applied"
grep -q " debug " "$FERRY_LOG" || fail "logging.verbosity 4 did not turn debug logging on"
stop

say "a flag overrides the file: --nodeport-addresses"
start run --config "$T/kp-run.yaml" --source "dir:$T/manifests" --nodeport-addresses 10.0.1.0/24
answers 10.0.1.1
closed 10.0.2.1
stop

say "kube-proxy --cleanup: removes the mode's rules and exits"
ip netns exec "$N" nft list table ip ferry >/dev/null 2>&1 || fail "no ferry table to clean up"
ip netns exec "$N" "$FERRY_BIN" --cleanup --proxy-mode=nftables >"$T/cleanup.log" 2>&1 ||
	fail "--cleanup failed: $(cat "$T/cleanup.log")"
ip netns exec "$N" nft list table ip ferry >/dev/null 2>&1 && fail "--cleanup left the ferry table"

say "kube-proxy's flag names start ferry: --proxy-mode=userspace --v=4 ..."
FERRY_LOG=$T/ferry-alias.log
bg_start "$N" "$FERRY_LOG" "$FERRY_BIN" run --source "dir:$T/manifests" --proxy-mode=userspace --v=4 \
	--hostname-override="$NODE_NAME" --iptables-sync-period=10s --iptables-min-sync-period=1s \
	--healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249 --cleanup=false \
	--conntrack-tcp-be-liberal=false --feature-gates=SomeGate=true
FERRY_PID=$BG_PID
answers 10.0.1.1
grep -q "backend userspace" "$FERRY_LOG" || fail "--proxy-mode=userspace did not pick the userspace backend"
grep -q " debug " "$FERRY_LOG" || fail "--v=4 did not turn debug logging on"
grep -q -- "--feature-gates SomeGate=true: not implemented by ferry" "$FERRY_LOG" || fail "no warning for --feature-gates"
stop
ip netns exec "$N" "$FERRY_BIN" run --source "dir:$T/manifests" --proxy-mode iptables >/dev/null 2>"$T/ipt.err"
rc=$?
[ "$rc" = 2 ] || fail "--proxy-mode iptables: exit $rc, expected 2"
grep -q "use --proxy-mode nftables" "$T/ipt.err" || fail "--proxy-mode iptables does not say which mode to use"
pass
