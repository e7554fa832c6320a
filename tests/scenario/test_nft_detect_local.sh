#!/bin/bash
# nftables --detect-local-mode InterfaceNamePrefix and BridgeInterface, with
# real TCP connections: a cluster-IP connection that arrives on a pod
# interface (name starting with the prefix, or the pod bridge itself) keeps
# its source address; one that arrives on any other interface is
# masqueraded (the backend sees the node, 10.0.2.1 / fd00:2::1). Interface
# matches hold in both families, for plain and ClientIP-affinity services.
# Also: the CLI refuses a mode without its flag, NodeCIDR and unknown modes.
#
# Extra clients on the node N of nft_topo.sh (C arrives on N's c0):
#   P  10.0.3.2 fd00:3::2  eth0 --- vethp1 (N)  10.0.3.1 fd00:3::1
#   Q  10.0.4.2 fd00:4::2  eth0 --- vq1 (N), a port of bridge cbr0 (N)
#                                    cbr0: 10.0.4.1 fd00:4::1
#   X  10.0.5.2            eth0 --- cbr0x (N)  10.0.5.1 (starts like the bridge)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_detect_local
command -v nft >/dev/null || skip "the nft command is not installed"
nft_topo

ns_new P pod
ns_link "$N" vethp1 "$P" eth0
ns_addr "$N" vethp1 10.0.3.1/24
ns_addr "$N" vethp1 fd00:3::1/64
ns_addr "$P" eth0 10.0.3.2/24
ns_addr "$P" eth0 fd00:3::2/64
ip -n "$P" route add default via 10.0.3.1 || fail "route P"
ip -n "$P" -6 route add default via fd00:3::1 || fail "route6 P"

ns_new Q bpod
ns_link "$N" vq1 "$Q" eth0
ip -n "$N" link add cbr0 type bridge || skip "cannot create a bridge in a namespace here"
ip -n "$N" link set vq1 master cbr0 || fail "vq1 into cbr0"
ip -n "$N" link set cbr0 up || fail "cbr0 up"
ns_addr "$N" cbr0 10.0.4.1/24
ns_addr "$N" cbr0 fd00:4::1/64
ns_addr "$Q" eth0 10.0.4.2/24
ns_addr "$Q" eth0 fd00:4::2/64
ip -n "$Q" route add default via 10.0.4.1 || fail "route Q"
ip -n "$Q" -6 route add default via fd00:4::1 || fail "route6 Q"

ns_new X other
ns_link "$N" cbr0x "$X" eth0
ns_addr "$N" cbr0x 10.0.5.1/24
ns_addr "$X" eth0 10.0.5.2/24
ip -n "$X" route add default via 10.0.5.1 || fail "route X"

echo_start "$B" web 10.0.2.2:9000 "[fd00:2::2]:9000"
echo_start "$B" sticky 10.0.2.3:9000 "[fd00:2::3]:9000"
svc_yaml "$T/manifests/web.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/web-eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/web6.yaml" web6 ip=fd00:96::10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/web6-eps.yaml" web6-1 web6 http/TCP/9000 -- fd00:2::2
svc_yaml "$T/manifests/sticky.yaml" sticky ip=10.96.0.11 affinity=60 ports=http/TCP/80/9000
eps_yaml "$T/manifests/sticky-eps.yaml" sticky-1 sticky http/TCP/9000 -- 10.0.2.3
svc_yaml "$T/manifests/sticky6.yaml" sticky6 ip=fd00:96::11 affinity=60 ports=http/TCP/80/9000
eps_yaml "$T/manifests/sticky6-eps.yaml" sticky6-1 sticky6 http/TCP/9000 -- fd00:2::3

# expect_seen NS TARGET ADDR WHY: one TCP connection from NS to TARGET; the
# backend must have seen the client address ADDR.
expect_seen() {
	local ns=$1 target=$2 want=$3 why=$4 out
	wait_answer "$ns" tcp "$target"
	out=$(answer_of "$ns" tcp "$target" | awk '{print $2}')
	out=${out%:*}
	out=${out#[}
	out=${out%]}
	[ "$out" = "$want" ] || fail "$target from ${ns##*-}: backend saw $out, want $want ($why)"
	say "  $target from ${ns##*-}: backend saw $out ($why)"
}

restart_ferry() {
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	nft_ferry_start "$@"
}

# services_rule FAMILY: the rule of chain services that reads @local_fe.
services_rule() {
	ip netns exec "$N" nft list chain "$1" ferry services | grep '@local_fe'
}

# cli_rejects TEXT ARGS...: `ferry run ARGS` must stop at once with exit 2
# and TEXT on stderr (bounded: a ferry that started would be killed).
cli_rejects() {
	local want=$1 rc
	shift
	ip netns exec "$N" timeout 5 "$FERRY_BIN" run --source "dir:$T/manifests" --backend nftables "$@" \
		>"$T/cli.out" 2>"$T/cli.err"
	rc=$?
	[ "$rc" = 2 ] || fail "ferry run $*: exit $rc, want 2 (usage error): $(head -3 "$T/cli.err")"
	grep -qF -- "$want" "$T/cli.err" || fail "ferry run $*: stderr does not say '$want': $(head -3 "$T/cli.err")"
	say "  ferry run $*: refused ($(grep -F -- "$want" "$T/cli.err" | head -1))"
}

say "CLI: each mode needs its flag; NodeCIDR and unknown modes are refused"
cli_rejects "--pod-interface-name-prefix" --detect-local-mode InterfaceNamePrefix
cli_rejects "--pod-bridge-interface" --detect-local-mode BridgeInterface
cli_rejects "NodeCIDR is not supported" --detect-local-mode NodeCIDR
cli_rejects "ClusterCIDR, InterfaceNamePrefix or BridgeInterface" --detect-local-mode clustercidr
cli_rejects "--pod-interface-name-prefix: 'veth*' is not an interface name" \
	--detect-local-mode InterfaceNamePrefix --pod-interface-name-prefix 'veth*'
cli_rejects "--pod-bridge-interface: 'a-name-of-16-chr' is not an interface name" \
	--detect-local-mode BridgeInterface --pod-bridge-interface a-name-of-16-chr
"$FERRY_BIN" plan --source "dir:$T/manifests" --backend nftables --detect-local-mode BridgeInterface \
	>/dev/null 2>"$T/cli.err"
[ $? = 2 ] && grep -qF -- "--pod-bridge-interface" "$T/cli.err" ||
	fail "ferry plan accepted BridgeInterface without --pod-bridge-interface: $(head -2 "$T/cli.err")"

say "default (ClusterCIDR, no --cluster-cidr; a prefix flag alone is ignored): nothing masqueraded"
nft_ferry_start --pod-interface-name-prefix veth
grep -q "pod-interface-name-prefix is ignored" "$FERRY_LOG" || fail "no warning that the prefix is ignored"
grep -q "detect-local-mode ClusterCIDR: 0 cluster CIDRs" "$FERRY_LOG" || fail "mode not logged"
services_rule ip >/dev/null && fail "a local_fe rule without detection: $(services_rule ip)"
expect_seen "$C" 10.96.0.10:80 10.0.1.2 "no detection: kept"
expect_seen "$P" 10.96.0.10:80 10.0.3.2 "no detection: kept"

say "InterfaceNamePrefix veth: in on vethp1 is local, in on c0 or cbr0 is not"
restart_ferry --detect-local-mode InterfaceNamePrefix --pod-interface-name-prefix veth
grep -q 'detect-local-mode InterfaceNamePrefix: traffic in on iifname "veth\*" is local' "$FERRY_LOG" ||
	fail "mode not logged"
for fam in ip ip6; do
	services_rule $fam | grep -qF 'iifname != "veth*"' ||
		fail "$fam ferry: the kernel's local_fe rule is not 'iifname != \"veth*\"': $(services_rule $fam)"
done
expect_seen "$P" 10.96.0.10:80 10.0.3.2 "local: kept"
expect_seen "$P" "[fd00:96::10]:80" fd00:3::2 "local, IPv6: kept"
expect_seen "$P" 10.96.0.11:80 10.0.3.2 "local, affinity: kept"
expect_seen "$P" "[fd00:96::11]:80" fd00:3::2 "local, IPv6 affinity: kept"
expect_seen "$C" 10.96.0.10:80 10.0.2.1 "not local: masqueraded"
expect_seen "$C" "[fd00:96::10]:80" fd00:2::1 "not local, IPv6: masqueraded"
expect_seen "$C" 10.96.0.11:80 10.0.2.1 "not local, affinity: masqueraded"
expect_seen "$C" "[fd00:96::11]:80" fd00:2::1 "not local, IPv6 affinity: masqueraded"
expect_seen "$Q" 10.96.0.10:80 10.0.2.1 "cbr0 does not start with veth: masqueraded"

say "BridgeInterface cbr0: in on the bridge is local, in on vethp1 or cbr0x is not"
restart_ferry --detect-local-mode BridgeInterface --pod-bridge-interface cbr0
grep -q 'detect-local-mode BridgeInterface: traffic in on iifname "cbr0" is local' "$FERRY_LOG" ||
	fail "mode not logged"
for fam in ip ip6; do
	services_rule $fam | grep -qF 'iifname != "cbr0"' ||
		fail "$fam ferry: the kernel's local_fe rule is not 'iifname != \"cbr0\"': $(services_rule $fam)"
done
expect_seen "$Q" 10.96.0.10:80 10.0.4.2 "local: kept"
expect_seen "$Q" "[fd00:96::10]:80" fd00:4::2 "local, IPv6: kept"
expect_seen "$Q" 10.96.0.11:80 10.0.4.2 "local, affinity: kept"
expect_seen "$Q" "[fd00:96::11]:80" fd00:4::2 "local, IPv6 affinity: kept"
expect_seen "$P" 10.96.0.10:80 10.0.2.1 "vethp1 is not the bridge: masqueraded"
expect_seen "$P" "[fd00:96::10]:80" fd00:2::1 "vethp1 is not the bridge, IPv6: masqueraded"
expect_seen "$X" 10.96.0.10:80 10.0.2.1 "cbr0x is not cbr0 (exact name): masqueraded"
expect_seen "$X" 10.96.0.11:80 10.0.2.1 "cbr0x, affinity: masqueraded"
expect_seen "$C" 10.96.0.10:80 10.0.2.1 "not local: masqueraded"
pass
