#!/bin/bash
# nftables local-traffic detection: cluster-IP traffic from inside
# --cluster-cidr keeps its source address; from outside it is masqueraded
# (the backend sees the node); --masquerade-all masquerades everything.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_cluster_cidr
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2

# seen_from: the client address the backend saw for one connection from C.
seen_from() {
	local out
	wait_answer "$C" tcp 10.96.0.10:80
	out=$(answer_of "$C" tcp 10.96.0.10:80 | awk '{print $2}')
	echo "${out%:*}"
}

restart_ferry() {
	kill -TERM "$FERRY_PID"
	wait "$FERRY_PID" 2>/dev/null
	nft_ferry_start "$@"
}

say "--cluster-cidr 10.0.1.0/24 (the client's subnet): no masquerade"
nft_ferry_start --cluster-cidr 10.0.1.0/24
seen=$(seen_from)
say "  backend saw $seen"
[ "$seen" = 10.0.1.2 ] || fail "client inside the cluster CIDR was masqueraded (backend saw $seen)"

say "--cluster-cidr 10.244.0.0/16 (not the client's): masqueraded to the node"
restart_ferry --cluster-cidr 10.244.0.0/16
seen=$(seen_from)
say "  backend saw $seen"
[ "$seen" = 10.0.2.1 ] || fail "client outside the cluster CIDR kept its address (backend saw $seen)"

say "--masquerade-all: masqueraded even from inside the cluster CIDR"
restart_ferry --cluster-cidr 10.0.1.0/24 --masquerade-all
seen=$(seen_from)
say "  backend saw $seen"
[ "$seen" = 10.0.2.1 ] || fail "--masquerade-all did not masquerade (backend saw $seen)"
pass
