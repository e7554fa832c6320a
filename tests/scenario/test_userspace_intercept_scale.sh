#!/bin/bash
# userspace with --intercept on at scale: 5,250 frontends (2,500 services,
# TCP and UDP each, every tenth also a NodePort) and 2 workers. Intercepted frontends share the relay's
# few sockets (per worker, family and protocol) and are found by original
# destination, so ferry's descriptors stay far below one per frontend (the
# relay used to open 4 per frontend with 2 workers: 20,000 here; node
# ports on every address went on having a listener set each). Traffic
# from a client routed through the node reaches the first, a middle and
# the last service over TCP and UDP, and a node port; removing 500 services (an apply)
# makes their VIPs stop answering while the rest keep working, and the
# count stays where it was (give or take a UDP flow's socket).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init userspace_intercept_scale
nft_topo
echo_start "$B" b1 10.0.2.2:9000

N_SVC=2500
PER_FILE=500
# svc_ip I: the cluster IP of service I (1-based), inside 10.96.0.0/16.
svc_ip() { echo "10.96.$(( $1 / 250 + 1 )).$(( $1 % 250 + 2 ))"; }

# gen FILE FIRST LAST: services FIRST..LAST with one slice each, both
# ports on endpoint 10.0.2.2:9000; service I with I % 10 == 0 is a NodePort
# (TCP on node port 30000 + I / 10).
gen() {
	awk -v first="$2" -v last="$3" -v node="$NODE_NAME" 'BEGIN {
		for (i = first; i <= last; i++) {
			ip = sprintf("10.96.%d.%d", int(i / 250) + 1, i % 250 + 2)
			printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d, namespace: default}\n", i
			np = i % 10 == 0
			printf "spec:\n  type: %s\n  ipFamilies: [IPv4]\n  clusterIP: \"%s\"\n  clusterIPs: [\"%s\"]\n", np ? "NodePort" : "ClusterIP", ip, ip
			if (np)
				printf "  ports:\n  - {name: http, protocol: TCP, port: 80, targetPort: 9000, nodePort: %d}\n", 30000 + i / 10
			else
				printf "  ports:\n  - {name: http, protocol: TCP, port: 80, targetPort: 9000}\n"
			printf "  - {name: dns, protocol: UDP, port: 53, targetPort: 9000}\n"
			printf "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s%d-1\n", i
			printf "  namespace: default\n  labels: {kubernetes.io/service-name: s%d}\naddressType: IPv4\n", i
			printf "ports:\n- {name: http, protocol: TCP, port: 9000}\n- {name: dns, protocol: UDP, port: 9000}\n"
			printf "endpoints:\n- addresses: [\"10.0.2.2\"]\n  nodeName: %s\n", node
			printf "  conditions: {ready: true, serving: true, terminating: false}\n"
		}
	}' >"$1"
}

for f in $(seq 0 $(( N_SVC / PER_FILE - 1 ))); do
	gen "$T/manifests/svc-$f.yaml" $(( f * PER_FILE + 1 )) $(( (f + 1) * PER_FILE ))
done

# fds: ferry's open descriptors.
fds() { ls "/proc/$FERRY_PID/fd" | wc -l; }

ferry_start "$N" --hostname-override "$NODE_NAME" --intercept on --workers 2
N_FE=$(( 2 * N_SVC + N_SVC / 10 ))
for i in $(seq 1 300); do
	grep -q "intercept: $N_FE redirects" "$FERRY_LOG" && break
	kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died at start"
	sleep 0.1
done
grep -q "intercept: $N_FE redirects" "$FERRY_LOG" ||
	fail "the $N_FE redirects were not programmed within 30 s"
tcp_relay=$(sed -n 's/.*userspace: relay 0\.0\.0\.0:\([0-9]*\)\/TCP receives intercepted.*/\1/p' "$FERRY_LOG")
[ -n "$tcp_relay" ] || fail "no shared TCP relay socket in the log"

say "traffic from the client reaches the first, a middle and the last service"
wait_answer "$C" tcp "$(svc_ip 1):80" b1
wait_answer "$C" tcp "$(svc_ip 1250):80" b1
wait_answer "$C" tcp "$(svc_ip $N_SVC):80" b1
wait_answer "$C" udp "$(svc_ip 1):53" b1
wait_answer "$C" udp "$(svc_ip $N_SVC):53" b1
wait_answer "$N" tcp "$(svc_ip 777):80" b1
say "a node port (service 10) on the node's address, from the client and from the node"
wait_answer "$C" tcp 10.0.1.1:30001 b1
wait_answer "$N" tcp 127.0.0.1:30002 b1

say "every redirect goes to the one shared TCP relay port $tcp_relay"
ports=$(ip netns exec "$N" nft list map ip ferry_intercept relay_ports |
	grep -o 'tcp \. 80 : [0-9]*' | awk '{print $5}' | sort -u)
[ "$ports" = "$tcp_relay" ] || fail "TCP redirects go to ports '$(echo $ports)', expected only $tcp_relay"
ip netns exec "$N" nft list map ip ferry_intercept node_ports | grep -q "tcp . 30001 : $tcp_relay" ||
	fail "node port 30001 is not redirected to the shared relay port $tcp_relay"

n=$(fds)
say "$N_FE frontends, 2 workers: ferry has $n descriptors open"
[ "$n" -lt 200 ] || fail "$n descriptors for $N_FE frontends: not a constant number of relay sockets"

say "500 services removed: their VIPs go silent, the others answer"
rm "$T/manifests/svc-4.yaml"
for i in $(seq 1 100); do
	grep -q "intercept: $(( N_FE - 2 * PER_FILE - PER_FILE / 10 )) redirects" "$FERRY_LOG" && break
	sleep 0.1
done
expect_silent "$C" tcp "$(svc_ip $N_SVC):80"
wait_answer "$C" tcp "$(svc_ip 1):80" b1
wait_answer "$C" udp "$(svc_ip 1999):53" b1
n2=$(fds)
say "  now $n2 descriptors"
# A UDP flow holds one socket to its endpoint until it idles out.
[ "$n2" -le $(( n + 4 )) ] || fail "descriptors grew from $n to $n2 after removing services"
pass
