#!/bin/bash
# IPVS backend: every behaviour with real traffic on a real IPVS kernel
# (cluster IPs over TCP, UDP, SCTP and IPv6, node ports, masquerade and
# local detection, refusal without endpoints, the service-range guards,
# source ranges, Local traffic policies, affinity, schedulers, graceful
# termination, restart under load, cleanup). This machine's kernel has no IPVS, so the test runs in the
# small VM of tests/vm/ (docs/testing-vm.md); the checks are in
# tests/vm/guest/ipvs.sh. ipvsadm and ipset only inspect the guest's
# kernel: ferry itself never runs them. Skips (77, reason printed) when
# qemu, the kernel package or those tools cannot be had.
here=$(cd "$(dirname "$0")" && pwd)
tests=${FERRY_TESTS_DIR:-$(dirname "$here")}
args=()
for v in ASAN_OPTIONS UBSAN_OPTIONS; do
	[ -n "${!v:-}" ] && args+=(--env "$v=${!v}")
done
for t in ipvsadm ipset; do
	p=$(command -v "$t") || { echo "test_ipvs_vm: SKIP: $t is not installed (scripts/install-deps.sh)"; exit 77; }
	args+=(--tool "$p")
done
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_mh ip_vs_sed ip_vs_nq \
	ip_set ip_set_hash_ip ip_set_hash_net ip_set_hash_ipport ip_set_hash_ipportip ip_set_hash_ipportnet \
	xt_set nft_compat dummy; do
	args+=(--module "$m")
done
exec bash "$tests/vm/run_in_vm.sh" --timeout "${FERRY_VM_TIMEOUT:-360}" "${args[@]}" "$tests/vm/guest/ipvs.sh"
