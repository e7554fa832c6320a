#!/bin/bash
# nftables: SCTP services carry real SCTP associations (cluster IP, IPv6,
# node port, no endpoints, removal), with a TCP control. This machine's
# kernel has no SCTP sockets, so the test runs in a small VM with a Debian
# kernel (tests/vm/run_in_vm.sh, docs/testing-vm.md); the checks themselves
# are in tests/vm/guest/nft_sctp.sh. Skips (77, reason printed) when qemu
# or the kernel package cannot be had, or the VM does not boot.
# ASAN_OPTIONS / UBSAN_OPTIONS are passed to the guest, so the ASan build's
# run checks the sanitized ferry there too.
here=$(cd "$(dirname "$0")" && pwd)
tests=${FERRY_TESTS_DIR:-$(dirname "$here")}
env_args=()
for v in ASAN_OPTIONS UBSAN_OPTIONS; do
	[ -n "${!v:-}" ] && env_args+=(--env "$v=${!v}")
done
exec bash "$tests/vm/run_in_vm.sh" --timeout "${FERRY_VM_TIMEOUT:-300}" "${env_args[@]}" \
	"$tests/vm/guest/nft_sctp.sh"
