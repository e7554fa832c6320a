#!/bin/bash
# Guest half of tests/scenario/test_nft_sctp_vm.sh: runs inside the test VM
# (tests/vm/run_in_vm.sh), whose Debian kernel has SCTP sockets, on the
# usual nft_topo client / node / backend namespaces.
#
# nftables backend, SCTP with real associations from the client namespace:
#   - before ferry runs, SCTP straight to a backend works (the VM, the
#     module and the helpers are fine) but SCTP to the cluster IP does not:
#     whatever answers later was programmed by ferry;
#   - a TCP service answers too: the control, so that a VM or topology
#     problem cannot pass for an SCTP result;
#   - the SCTP cluster IP (IPv4 and IPv6) balances over both endpoints,
#     carries data both ways, and the backend sees the client's address;
#   - the SCTP node port answers, masqueraded (the backend sees the node);
#   - an SCTP service without endpoints is refused (ICMP port unreachable,
#     seen by probe_client as ECONNREFUSED through IP_RECVERR);
#   - removing the SCTP service stops its traffic (ferry's diff path).
. "$(dirname "$0")/../../scenario/lib.sh"
. "$(dirname "$0")/../../scenario/nft_topo.sh"
lib_init nft_sctp
nft_topo

# Software emulation is several times slower than the host, the ASan build
# slower still: the host tests' 5 s bound on the first sync is too tight.
ferry_start_slow() {
	ferry_start "$N" --backend nftables --hostname-override "$NODE_NAME"
	local i
	for i in $(seq 1 300); do
		grep -Eq "nftables: (full sync|took over)" "$FERRY_LOG" && return 0
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died at start"
		sleep 0.1
	done
	fail "ferry made no first sync within 30 s"
}

# SCTP refusal: exit 2 is ECONNREFUSED (ICMP port unreachable or ABORT),
# never a timeout (3); the time it takes depends on the INIT timer
# (probe_client.c), not on the rules, so it is not bounded tighter here.
expect_sctp_refused() {
	local rc
	probe "$1" sctp "$2" --timeout-ms 3000 >/dev/null 2>&1
	rc=$?
	[ "$rc" = 2 ] || fail "sctp $2 from $1: expected refused (exit 2), got exit $rc"
}
echo_start "$B" s1 10.0.2.2:9000 --sctp --tcp
echo_start "$B" s2 10.0.2.3:9000 --sctp --tcp
echo_start "$B" s6 "[fd00:2::2]:9000" --sctp

say "before ferry: SCTP straight to a backend answers"
wait_answer "$C" sctp 10.0.2.2:9000 s1
say "before ferry: SCTP and TCP to the cluster IPs do not"
expect_silent "$C" sctp 10.96.0.20:3868
expect_silent "$C" tcp 10.96.0.10:80

svc_yaml "$T/manifests/web.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/web-eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/sig.yaml" sig type=NodePort ip=10.96.0.20 ports=diameter/SCTP/3868/9000/30868
eps_yaml "$T/manifests/sig-eps.yaml" sig-1 sig diameter/SCTP/9000 -- 10.0.2.2 10.0.2.3
svc_yaml "$T/manifests/sig6.yaml" sig6 ip=fd00:96::20 ports=diameter/SCTP/3868/9000
eps_yaml "$T/manifests/sig6-eps.yaml" sig6-1 sig6 diameter/SCTP/9000 -- fd00:2::2
svc_yaml "$T/manifests/none.yaml" none ip=10.96.0.30 ports=diameter/SCTP/3868/9000
eps_yaml "$T/manifests/none-eps.yaml" none-1 none diameter/SCTP/9000 --
ferry_start_slow

say "control: TCP cluster IP"
wait_answer "$C" tcp 10.96.0.10:80 s1

say "SCTP cluster IP"
wait_answer "$C" sctp 10.96.0.20:3868
# nft prints the inet_proto of a concatenation as a number (132) or a name.
ip netns exec "$N" nft list map ip ferry fe 2>&1 | grep -Eq '10\.96\.0\.20 \. (132|sctp) \. 3868 ' ||
	fail "map ip ferry fe lacks 10.96.0.20 . sctp . 3868: $(ip netns exec "$N" nft list map ip ferry fe 2>&1)"
names_count "$C" sctp 10.96.0.20:3868 20 >/dev/null
s1=$(echo "$COUNTS" | count_of s1)
s2=$(echo "$COUNTS" | count_of s2)
say "20 associations: s1=$s1 s2=$s2"
[ "$s1" -gt 0 ] && [ "$s2" -gt 0 ] || fail "both SCTP endpoints must answer (s1=$s1 s2=$s2)"
seen=$(answer_of "$C" sctp 10.96.0.20:3868 | awk '{print $2}')
[ "${seen%:*}" = 10.0.1.2 ] || fail "SCTP backend saw $seen, expected the client 10.0.1.2"
out=$(probe "$C" sctp 10.96.0.20:3868 --send "hello over sctp" --timeout-ms 2000 2>&1) ||
	fail "SCTP data through the cluster IP: $out"
[ "$(echo "$out" | sed -n 2p)" = "hello over sctp" ] || fail "SCTP echo through the cluster IP: '$out'"

say "SCTP IPv6 cluster IP"
wait_answer "$C" sctp "[fd00:96::20]:3868" s6

say "SCTP node port (masqueraded)"
wait_answer "$C" sctp 10.0.1.1:30868
seen=$(answer_of "$C" sctp 10.0.1.1:30868 | awk '{print $2}')
[ "${seen%:*}" = 10.0.2.1 ] || fail "SCTP node port: backend saw $seen, expected the node 10.0.2.1"

say "SCTP service without endpoints: refused"
expect_sctp_refused "$C" 10.96.0.30:3868

say "SCTP service removed: its cluster IP goes silent, the TCP control stays"
rm "$T/manifests/sig.yaml"
for _ in $(seq 1 50); do
	probe "$C" sctp 10.96.0.20:3868 --timeout-ms 300 >/dev/null 2>&1 || break
	sleep 0.1
done
expect_silent "$C" sctp 10.96.0.20:3868
wait_answer "$C" tcp 10.96.0.10:80 s1
pass
