#!/bin/bash
# ferry run raises its soft descriptor limit to the hard one at start, as
# the Go runtime does for kube-proxy: a standalone balancer of 300 frontends
# (userspace backend, no interception: a listening socket per frontend and
# worker) started under a soft limit of 256 syncs them all, and the last one
# answers. Without the raise every sync fails with EMFILE.
. "$(dirname "$0")/lib.sh"
lib_init fd_limit

[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 4096 ] || skip "hard descriptor limit $(ulimit -Hn) < 4096"
ns_new N main
ip netns exec "$N" ip addr add 10.96.0.0/16 dev lo
M=$T/manifests
for i in $(seq 1 300); do
	ip=10.96.$((i / 250)).$((i % 250 + 1))
	mf_service "$M/s$i.yaml" "s$i" "$ip" tcp/TCP/80
	mf_slice "$M/s$i-eps.yaml" "s$i-1" "s$i" tcp/TCP/9000 -- 127.0.0.11
done
echo_start "$N" backend 127.0.0.11:9000

ulimit -Sn 256
ferry_start "$N" --workers 2
for i in $(seq 1 100); do
	grep -q "sync: full sync userspace: 300 frontends" "$FERRY_LOG" && break
	sleep 0.1
done
grep -q "sync: full sync userspace: 300 frontends" "$FERRY_LOG" ||
	fail "no full sync of the 300 frontends under a soft limit of 256: $(grep -m2 -E 'Too many|error' "$FERRY_LOG")"
grep -q "descriptor limit raised from 256" "$FERRY_LOG" || fail "the raise is not logged"
say "  $(grep -o 'descriptor limit raised.*' "$FERRY_LOG")"
wait_answer "$N" tcp 10.96.1.51:80 backend
pass
