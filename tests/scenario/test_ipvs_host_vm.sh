#!/bin/bash
# IPVS host mechanism (backends/ipvs/ipvs_host.c): the dummy interface that
# holds the VIPs, local delivery of IPv4 and IPv6 VIPs bound on it, node
# addresses, restart take-over and the sysctls, against a real dummy driver
# and IPVS. This machine's kernel has neither, so the test runs in a small
# VM with a Debian kernel (tests/vm/run_in_vm.sh, docs/testing-vm.md); the
# checks are in tests/vm/guest/ipvs_host.sh and tests/helpers/ipvs_host_check.c.
# Skips (77, reason printed) when qemu or the kernel package cannot be had,
# or the VM does not boot. ASAN_OPTIONS / UBSAN_OPTIONS are passed to the
# guest, so the ASan build's run checks the sanitized helper there too.
here=$(cd "$(dirname "$0")" && pwd)
tests=${FERRY_TESTS_DIR:-$(dirname "$here")}
[ -x "${FERRY_HELPERS:-}/ipvs_host_check" ] || {
	echo "test_ipvs_host_vm: FAIL: FERRY_HELPERS ('${FERRY_HELPERS:-}') lacks ipvs_host_check"
	exit 1
}
env_args=()
for v in ASAN_OPTIONS UBSAN_OPTIONS; do
	[ -n "${!v:-}" ] && env_args+=(--env "$v=${!v}")
done
exec bash "$tests/vm/run_in_vm.sh" --timeout "${FERRY_VM_TIMEOUT:-300}" "${env_args[@]}" \
	--module dummy --module ip_vs --bin "$FERRY_HELPERS/ipvs_host_check" \
	"$tests/vm/guest/ipvs_host.sh"
