#!/usr/bin/env bash
# Run one guest script inside the test VM and exit with its exit code.
#
#   run_in_vm.sh [--timeout S] [--mem SIZE] [--log FILE] [--module M]...
#                [--bin PATH]... [--tool PATH]... [--env N=V]... GUEST_SCRIPT [ARGS...]
#
# Builds an initramfs (tests/vm/build_vm.sh: Debian kernel from the cache,
# fetched on first use) holding $FERRY_BIN, $FERRY_HELPERS/echo_server and
# probe_client, ip, nft, bash and the shell scripts of tests/scenario and
# tests/vm, then boots it with qemu under software emulation (no network
# device: all traffic stays in the guest's own namespaces) and a hard
# timeout. Inside, the script runs as root with FERRY_BIN, FERRY_HELPERS and
# FERRY_TESTS_DIR pointing at the guest copies, so tests/scenario/lib.sh
# works unchanged.
#
# GUEST_SCRIPT is a host path; under $FERRY_TESTS_DIR it keeps its place
# (so `. "$(dirname "$0")/../scenario/lib.sh"` works), elsewhere it is
# copied to /ferry/extra/.
#
# Environment: FERRY_BIN, FERRY_HELPERS (required), FERRY_TESTS_DIR
# (default: the tests/ beside this script), FERRY_VM_CACHE (kernel cache,
# default ./vm-cache), FERRY_VM_ACCEL (default tcg: KVM fails on the
# development machines), FERRY_VM_SMP (default 1).
#
# Exit: the guest script's code (77 = it skipped); 77 also when qemu, the
# kernel package or a tool is missing, or the VM never reached userspace;
# 1 when the guest booted but timed out or crashed. The serial console is
# saved to --log (default $FERRY_VM_CACHE/logs/NAME.console.log) and the
# guest's output is printed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'run_in_vm: %s\n' "$*"; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "FAIL: $*"; exit 1; }

timeout_s=240 mem=512M log='' build_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout_s=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--module | --bin | --tool | --env) build_args+=("$1" "$2"); shift 2 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see the top of $0)" ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || die "usage: run_in_vm.sh [options] GUEST_SCRIPT [ARGS...]"
script=$(realpath "$1") || die "no script $1"
shift

tests_dir=$(realpath "${FERRY_TESTS_DIR:-$here/..}")
cache=${FERRY_VM_CACHE:-$PWD/vm-cache}
mkdir -p "$cache/logs" || die "cannot make $cache"
name=$(basename "$script" .sh)
log=${log:-$cache/logs/$name.console.log}
[ -n "${FERRY_BIN:-}" ] && [ -x "$FERRY_BIN" ] || die "FERRY_BIN ('${FERRY_BIN:-}') is not an executable"
[ -n "${FERRY_HELPERS:-}" ] && [ -x "$FERRY_HELPERS/echo_server" ] && [ -x "$FERRY_HELPERS/probe_client" ] ||
	die "FERRY_HELPERS ('${FERRY_HELPERS:-}') lacks echo_server/probe_client"
qemu=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not installed (package qemu-system-x86)"
ip=$(command -v ip) || skip "ip (iproute2) not installed"

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-vm.XXXXXX") || die "mktemp"
trap 'rm -rf "$work"' EXIT

case "$script" in
"$tests_dir"/*) guest=/ferry/tests/${script#"$tests_dir"/} ;;
*)
	mkdir -p "$work/extra"
	cp "$script" "$work/extra/"
	build_args+=(--tree "$work/extra:/ferry/extra")
	guest=/ferry/extra/$(basename "$script")
	;;
esac
for a in "$@"; do build_args+=(--arg "$a"); done
nft=$(command -v nft) && build_args+=(--tool "$nft")

start=$(date +%s)
bash "$here/build_vm.sh" initramfs --cache "$cache" --out "$work/initramfs.gz" --run "$guest" \
	--bin "$FERRY_BIN" --bin "$FERRY_HELPERS/echo_server" --bin "$FERRY_HELPERS/probe_client" \
	--tool "$ip" --tree "$tests_dir/scenario:/ferry/tests/scenario" --tree "$tests_dir/vm:/ferry/tests/vm" \
	"${build_args[@]}"
rc=$?
[ $rc = 77 ] && exit 77
[ $rc = 0 ] || die "build_vm.sh initramfs failed (exit $rc)"
read -r kver vmlinuz _ < <(bash "$here/build_vm.sh" kernel --cache "$cache") || die "build_vm.sh kernel"
built=$(date +%s)
say "kernel $kver, initramfs $(du -h "$work/initramfs.gz" | cut -f1), built in $((built - start)) s; booting (timeout ${timeout_s} s)"

# No network device, no disk, no display: the serial port on stdio is all
# the guest has. The kernel's own messages stay quiet unless they matter.
timeout --kill-after=10 "$timeout_s" "$qemu" \
	-accel "${FERRY_VM_ACCEL:-tcg}" -cpu max -smp "${FERRY_VM_SMP:-1}" -m "$mem" \
	-nodefaults -no-user-config -display none -no-reboot \
	-serial stdio -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 panic=-1 quiet" </dev/null >"$log" 2>&1
qrc=$?
end=$(date +%s)
tr -d '\r' <"$log" >"$log.txt" && mv "$log.txt" "$log"

# The guest's output: everything after the boot marker.
sed -n '/^FERRY-VM-BOOTED/,$p' "$log"
if ! grep -q '^FERRY-VM-BOOTED' "$log"; then
	echo "---- console ($log), last lines ----"
	tail -n 40 "$log"
	[ $qrc = 124 ] && skip "the VM did not reach userspace within $timeout_s s"
	skip "the VM did not boot (qemu exit $qrc)"
fi
code=$(sed -n 's/^FERRY-VM-EXIT \([0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ -z "$code" ]; then
	[ $qrc = 124 ] && die "the guest script did not finish within $timeout_s s (console: $log)"
	die "the VM stopped before the guest script ended (qemu exit $qrc; console: $log)"
fi
say "guest exit $code; boot + test $((end - built)) s"
exit "$code"
