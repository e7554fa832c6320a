#!/bin/bash
# nftables: a malformed Service (bad port) is rejected and named in the log
# while the valid service next to it forwards.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init nft_malformed
nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/good.yaml" good ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/good-eps.yaml" good-1 good http/TCP/9000 -- 10.0.2.2
svc_yaml "$T/manifests/bad.yaml" bad ip=10.96.0.11 ports=http/TCP/99999/9000
nft_ferry_start
wait_answer "$C" tcp 10.96.0.10:80 b1
grep -q "bad" "$FERRY_LOG" || fail "the malformed service is not named in the log"
pass
