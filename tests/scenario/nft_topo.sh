# Topology and manifests for the nftables scenario tests (sourced after
# lib.sh, not run). Three namespaces joined by veth:
#
#   client C            node N (ferry runs here)            backends B
#   10.0.1.2/24  ---c0- 10.0.1.1 | 10.0.2.1 -b0---  10.0.2.2, .3, .4 /24
#   fd00:1::2/64        fd00:1::1 | fd00:2::1          fd00:2::2, ::3, ::4
#
# C and B route everything through N; N forwards and has a route for the
# service CIDRs (10.96.0.0/16, fd00:96::/112) towards B, as a node has.
# Every address lives in namespaces the test made; nothing touches the host.

NODE_NAME=node-a

# nft_topo: build C, N, B (sets $C $N $B). Skips without nft support.
nft_topo() {
	ns_new C client
	ns_new N node
	ns_new B backend
	ns_link "$C" eth0 "$N" c0
	ns_link "$N" b0 "$B" eth0
	ns_addr "$C" eth0 10.0.1.2/24
	ns_addr "$C" eth0 10.0.1.3/24
	ns_addr "$N" c0 10.0.1.1/24
	ns_addr "$N" b0 10.0.2.1/24
	ns_addr "$B" eth0 10.0.2.2/24
	ns_addr "$B" eth0 10.0.2.3/24
	ns_addr "$B" eth0 10.0.2.4/24
	ns_addr "$C" eth0 fd00:1::2/64
	ns_addr "$N" c0 fd00:1::1/64
	ns_addr "$N" b0 fd00:2::1/64
	ns_addr "$B" eth0 fd00:2::2/64
	ns_addr "$B" eth0 fd00:2::3/64
	ip -n "$C" route add default via 10.0.1.1 || fail "route C"
	ip -n "$B" route add default via 10.0.2.1 || fail "route B"
	ip -n "$C" -6 route add default via fd00:1::1 || fail "route6 C"
	ip -n "$B" -6 route add default via fd00:2::1 || fail "route6 B"
	ip -n "$N" route add 10.96.0.0/16 via 10.0.2.2 || fail "service route N"
	ip -n "$N" -6 route add fd00:96::/112 via fd00:2::2 || fail "service route6 N"
	ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 ||
		fail "forwarding on N"
	ip netns exec "$N" nft list tables >/dev/null 2>&1 ||
		skip "nf_tables is not usable in a network namespace here"
}

# nft_ferry_start [args]: ferry with the nftables backend on N, node name
# $NODE_NAME, then wait until its first sync is in the kernel.
nft_ferry_start() {
	ferry_start "$N" --backend nftables --hostname-override "$NODE_NAME" "$@"
	local i
	for i in $(seq 1 50); do
		grep -Eq "nftables: (full sync|took over)" "$FERRY_LOG" && return 0
		kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry died at start"
		sleep 0.1
	done
	fail "ferry made no first sync (full sync or take-over) within 5 s"
}

# expect_refused NS PROTO TARGET: the probe must be refused (exit 2) fast:
# well before its 2 s timeout (1 s leaves room for starting the probe under
# ASan on a loaded machine, which once took 522 ms).
expect_refused() {
	local start rc ms
	start=$(now_ms)
	probe "$1" "$2" "$3" --timeout-ms 2000 >/dev/null 2>&1
	rc=$?
	ms=$(( $(now_ms) - start ))
	[ "$rc" = 2 ] || fail "$2 $3 from $1: expected refused (exit 2), got exit $rc after $ms ms"
	[ "$ms" -le 1000 ] || fail "$2 $3: refusal took $ms ms"
}

# expect_silent NS PROTO TARGET: no answer (timeout, exit 3).
expect_silent() {
	local rc
	probe "$1" "$2" "$3" --timeout-ms 500 >/dev/null 2>&1
	rc=$?
	[ "$rc" = 3 ] || fail "$2 $3 from $1: expected a timeout (exit 3), got exit $rc"
}

# answer_of NS PROTO TARGET: print "NAME CLIENT" of one answer, or fail.
answer_of() {
	local out
	out=$(probe "$1" "$2" "$3" --timeout-ms 1000 2>&1) || fail "$2 $3 from $1 did not answer: $out"
	echo "$out"
}

# svc_yaml FILE NAME key=value...: a Service. Keys: type (ClusterIP),
# ip (cluster IP), fam (IPv4/IPv6), ports ("name/PROTO/port/targetPort[/nodePort]"
# comma separated), etp, itp (Cluster/Local), affinity (seconds), ext
# (externalIPs, comma separated), lb (ingress IPs), ranges (source ranges).
svc_yaml() {
	local file=$1 name=$2 kv type=ClusterIP ip= fam= ports= etp= itp= aff= ext= lb= ranges=
	shift 2
	for kv in "$@"; do
		case "$kv" in
		type=*) type=${kv#type=} ;;
		ip=*) ip=${kv#ip=} ;;
		fam=*) fam=${kv#fam=} ;;
		ports=*) ports=${kv#ports=} ;;
		etp=*) etp=${kv#etp=} ;;
		itp=*) itp=${kv#itp=} ;;
		affinity=*) aff=${kv#affinity=} ;;
		ext=*) ext=${kv#ext=} ;;
		lb=*) lb=${kv#lb=} ;;
		ranges=*) ranges=${kv#ranges=} ;;
		esac
	done
	[ -n "$fam" ] || { case "$ip" in *:*) fam=IPv6 ;; *) fam=IPv4 ;; esac; }
	{
		echo "apiVersion: v1"
		echo "kind: Service"
		echo "metadata: {name: $name, namespace: default}"
		echo "spec:"
		echo "  type: $type"
		echo "  ipFamilies: [$fam]"
		echo "  clusterIP: \"$ip\""
		echo "  clusterIPs: [\"$ip\"]"
		[ -n "$etp" ] && echo "  externalTrafficPolicy: $etp"
		[ -n "$itp" ] && echo "  internalTrafficPolicy: $itp"
		if [ -n "$aff" ]; then
			echo "  sessionAffinity: ClientIP"
			echo "  sessionAffinityConfig: {clientIP: {timeoutSeconds: $aff}}"
		fi
		[ -n "$ext" ] && echo "  externalIPs: [\"${ext//,/\",\"}\"]"
		[ -n "$ranges" ] && echo "  loadBalancerSourceRanges: [\"${ranges//,/\",\"}\"]"
		echo "  ports:"
		local p
		IFS=, read -ra plist <<<"$ports"
		for p in "${plist[@]}"; do
			IFS=/ read -r pn pp pport ptarget pnode <<<"$p"
			echo "  - {name: $pn, protocol: $pp, port: $pport, targetPort: $ptarget${pnode:+, nodePort: $pnode}}"
		done
		if [ -n "$lb" ]; then
			echo "status:"
			echo "  loadBalancer:"
			echo "    ingress:"
			IFS=, read -ra l <<<"$lb"
			for p in "${l[@]}"; do echo "    - ip: \"$p\""; done
		fi
	} >"$file"
}

# eps_yaml FILE NAME SERVICE PORTS -- ADDR[,node=N][,ready=..][,serving=..][,terminating=..]...
#   PORTS: "name/PROTO/port" comma separated. Endpoints default to node $NODE_NAME.
eps_yaml() {
	local file=$1 name=$2 svc=$3 ports=$4 fam=IPv4 e p
	shift 4
	[ "$1" = "--" ] && shift
	case "${1%%,*}" in *:*) fam=IPv6 ;; esac
	{
		echo "apiVersion: discovery.k8s.io/v1"
		echo "kind: EndpointSlice"
		echo "metadata:"
		echo "  name: $name"
		echo "  namespace: default"
		echo "  labels: {kubernetes.io/service-name: $svc}"
		echo "addressType: $fam"
		echo "ports:"
		IFS=, read -ra plist <<<"$ports"
		for p in "${plist[@]}"; do
			IFS=/ read -r pn pp pport <<<"$p"
			echo "- {name: $pn, protocol: $pp, port: $pport}"
		done
		[ $# = 0 ] && echo "endpoints: []" || echo "endpoints:"
		for e in "$@"; do
			local addr=${e%%,*} node=$NODE_NAME ready=true serving=true terminating=false kv
			if [ "$addr" != "$e" ]; then
				IFS=, read -ra kvs <<<"${e#*,}"
				for kv in "${kvs[@]}"; do
					case "$kv" in
					node=*) node=${kv#node=} ;;
					ready=*) ready=${kv#ready=} ;;
					serving=*) serving=${kv#serving=} ;;
					terminating=*) terminating=${kv#terminating=} ;;
					esac
				done
			fi
			echo "- addresses: [\"$addr\"]"
			[ -n "$node" ] && echo "  nodeName: $node"
			echo "  conditions: {ready: $ready, serving: $serving, terminating: $terminating}"
		done
	} >"$file"
}

# put FILE: write stdin to FILE atomically (the source may be watching).
put() {
	cat >"$1.tmp" && mv "$1.tmp" "$1"
}
