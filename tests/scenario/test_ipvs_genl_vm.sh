#!/bin/bash
# IPVS over generic netlink (backends/ipvs/ipvs_genl.c) against a kernel that
# has IPVS: the mechanism's calls checked one by one, then real TCP
# connections (IPv4 and IPv6) balanced by a virtual server it programmed,
# drained with weight 0 and taken away again. This machine's kernel has no
# IPVS, so the test runs in a small VM with a Debian kernel
# (tests/vm/run_in_vm.sh, docs/testing-vm.md); the checks are in
# tests/vm/guest/ipvs_smoke.sh, driven by the helper tests/helpers/ipvs_smoke.c.
# Skips (77, reason printed) when qemu or the kernel package cannot be had,
# or the VM does not boot. ASAN_OPTIONS / UBSAN_OPTIONS are passed to the
# guest, so the ASan build's run checks the sanitized helper there too.
here=$(cd "$(dirname "$0")" && pwd)
tests=${FERRY_TESTS_DIR:-$(dirname "$here")}
smoke=${FERRY_HELPERS:-}/ipvs_smoke
[ -x "$smoke" ] || { echo "test_ipvs_genl_vm: FAIL: $smoke not built"; exit 1; }
env_args=()
for v in ASAN_OPTIONS UBSAN_OPTIONS; do
	[ -n "${!v:-}" ] && env_args+=(--env "$v=${!v}")
done
# IPVS and the schedulers the checks use (loaded at boot, so nothing
# depends on autoloading), and dummy for the interface holding the VIPs.
modules=()
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ip_vs_sh dummy; do
	modules+=(--module "$m")
done
exec bash "$tests/vm/run_in_vm.sh" --timeout "${FERRY_VM_TIMEOUT:-300}" "${env_args[@]}" \
	"${modules[@]}" --bin "$smoke" "$tests/vm/guest/ipvs_smoke.sh"
