#!/bin/bash
# healthCheckNodePort: a LoadBalancer service with externalTrafficPolicy
# Local gets an HTTP health endpoint on that port, answering 200 with the
# number of local endpoints while this node has some, 503 when it has none,
# and closed when the service goes away. ferry runs as node "node-a".
. "$(dirname "$0")/lib.sh"
lib_init health_check_node_port

ns_new N main
M=$T/manifests

write_service() {
	cat >"$M/svc.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 127.0.0.10
  externalTrafficPolicy: Local
  healthCheckNodePort: 30999
  ports: [{name: tcp, protocol: TCP, port: 8080, nodePort: 30080}]
status:
  loadBalancer: {ingress: [{ip: 127.0.0.20}]}
YAML
}

# write_slice NODE1 NODE2 [terminating]: two endpoints on the given nodes,
# ready, or serving and terminating.
write_slice() {
	local cond="ready: true"
	[ "$3" = terminating ] && cond="ready: false, serving: true, terminating: true"
	cat >"$M/eps.tmp" <<YAML
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: lb-1
  namespace: default
  labels: {kubernetes.io/service-name: lb}
addressType: IPv4
ports: [{name: tcp, protocol: TCP, port: 9000}]
endpoints:
- {addresses: [127.0.0.11], conditions: {$cond}, nodeName: $1}
- {addresses: [127.0.0.12], conditions: {$cond}, nodeName: $2}
YAML
	mv "$M/eps.tmp" "$M/eps.yaml"
}

# fetch: one HTTP GET to the health port; prints "STATUS BODY" or "closed".
fetch() {
	ip netns exec "$N" timeout 2 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/30999 || exit 1
		printf "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n" >&3
		cat <&3' 2>/dev/null | tr -d '\r' | awk 'NR == 1 {s = $2} /^\{/ {b = $0} END {if (s) print s, b; else print "closed"}'
}

# wait_status CODE LOCAL: poll (20 x 100 ms) until the answer has CODE and
# "localEndpoints":LOCAL.
wait_status() {
	local out
	for i in $(seq 1 20); do
		out=$(fetch)
		case "$out" in
		"$1 "*"\"localEndpoints\":$2,"*) say "  $out"; return 0 ;;
		"closed") [ "$1" = closed ] && { say "  port closed"; return 0; } ;;
		esac
		sleep 0.1
	done
	fail "health port: want $1 with localEndpoints $2, got: $out"
}

write_service
write_slice node-a node-b
ferry_start "$N" --hostname-override node-a
say "one of two endpoints is on this node: 200, localEndpoints 1"
wait_status 200 1
fetch | grep -q '"namespace":"default","name":"lb"' || fail "body does not name the service: $(fetch)"

say "both endpoints on this node: 200, localEndpoints 2"
write_slice node-a node-a
wait_status 200 2

say "both local endpoints terminating: 503, localEndpoints 0 (kube-proxy counts ready ones only)"
# They still serve (the serving+terminating fallback), but the load
# balancer must drain this node.
write_slice node-a node-a terminating
wait_status 503 0

say "no endpoint on this node: 503, localEndpoints 0"
write_slice node-b node-c
wait_status 503 0

say "service removed: the port closes"
rm "$M/svc.yaml"
wait_status closed x
pass
