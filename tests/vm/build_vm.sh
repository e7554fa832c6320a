#!/usr/bin/env bash
# Assemble a small VM for kernel tests this machine's kernel cannot run
# (SCTP, IPVS, anything that is a module here and absent there): a Debian
# kernel and an initramfs with busybox, the real iproute2 and nft, the
# binaries under test with their shared libraries, the needed modules and
# an /init that runs one guest script. tests/vm/run_in_vm.sh boots it;
# docs/testing-vm.md tells the whole story.
#
#   build_vm.sh kernel    [--cache DIR]
#   build_vm.sh initramfs [--cache DIR] --out FILE --run GUEST_PATH [--arg A]...
#                         [--bin PATH]... [--tool PATH]... [--tree SRC:DST]...
#                         [--module NAME]... [--env NAME=VALUE]...
#
# kernel: make sure the cache holds an unpacked kernel with its module index,
#   and print "KVER VMLINUZ MODROOT". Idempotent: once unpacked, the cached
#   kernel is used without asking the package registry again (set
#   FERRY_VM_REFRESH=1 to look for a newer one). The package is
#   $FERRY_VM_KERNEL_PKG (default linux-image-cloud-amd64, whose modules have
#   sctp, nf_tables + nft_*, nf_nat, ip_vs, veth), resolved to the versioned
#   image package it depends on and fetched with `apt-get download`.
# initramfs: write FILE (cpio newc + gzip):
#   --bin PATH    ELF file copied to /ferry/bin/NAME, with its libraries (ldd)
#   --tool PATH   host program copied to the same path, with its libraries
#   --tree S:D    directory S copied to D (shell scripts, data)
#   --module M    kernel module loaded at boot, with its dependencies
#                 (added to $FERRY_VM_MODULES, the default list below)
#   --run G       guest path of the script /init runs with bash (its args: --arg)
#   --env N=V     exported for the guest script
#
# Exit: 0 done, 77 a prerequisite is missing (reason printed), 1 error.
# Cache layout (DIR, default $FERRY_VM_CACHE or ./vm-cache):
#   debs/*.deb, KVER/ (the unpacked package, depmod done), KVER/.ready,
#   current (one line: KVER).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'build_vm: %s\n' "$*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "ERROR: $*"; exit 1; }

# Modules every VM test gets: nftables with NAT, conntrack, reject, fib,
# numgen and masquerade for both families; conntrack netlink (ferry deletes
# stale UDP entries); veth; SCTP. Anything else through --module.
FERRY_VM_MODULES=${FERRY_VM_MODULES:-"nfnetlink nf_tables nf_conntrack nf_nat nft_nat nft_chain_nat \
nft_ct nft_numgen nft_fib nft_fib_ipv4 nft_fib_ipv6 nft_fib_inet nft_masq nft_redir \
nft_reject nft_reject_ipv4 nft_reject_ipv6 nft_reject_inet nf_conntrack_netlink veth sctp"}

cmd=${1:-}
[ $# -gt 0 ] && shift
cache=${FERRY_VM_CACHE:-$PWD/vm-cache}
out='' run='' bins=() tools=() trees=() modules=() args=() envs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) cache=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--run) run=$2; shift 2 ;;
	--arg) args+=("$2"); shift 2 ;;
	--bin) bins+=("$2"); shift 2 ;;
	--tool) tools+=("$2"); shift 2 ;;
	--tree) trees+=("$2"); shift 2 ;;
	--module) modules+=("$2"); shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	*) die "unknown argument '$1' (see the top of $0)" ;;
	esac
done

# ---- kernel ---------------------------------------------------------------

# Resolve the metapackage to the image package it pulls in
# (linux-image-cloud-amd64 -> linux-image-6.1.0-NN-cloud-amd64).
resolve_pkg() {
	local meta=$1 dep
	dep=$(apt-cache depends "$meta" 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$dep" ] && echo "$dep"
}

# update_lists: `apt-get update`, at most once per run and only as root
# (the package lists may be missing, or stale after a kernel ABI bump).
lists_updated=
update_lists() {
	[ -z "$lists_updated" ] && [ "$(id -u)" = 0 ] || return 1
	lists_updated=1
	say "updating the package lists (apt-get update)"
	apt-get update -q >"$cache/debs/update.log" 2>&1
}

# fetch_deb PKG: apt-get download PKG into the cache; prints the .deb's path.
fetch_deb() {
	local pkg=$1
	say "fetching $pkg (apt-get download)"
	(cd "$cache/debs" && apt-get download -q "$pkg" >download.log 2>&1) || return 1
	find "$cache/debs" -name "${pkg}_*.deb" | head -n 1 | grep .
}

kernel_ready() {
	local kver
	[ -f "$cache/current" ] || return 1
	kver=$(cat "$cache/current")
	[ -n "$kver" ] && [ -f "$cache/$kver/.ready" ] || return 1
	echo "$kver"
}

ensure_kernel() {
	local kver meta pkg deb t
	if [ -z "${FERRY_VM_REFRESH:-}" ] && kver=$(kernel_ready); then
		echo "$kver"
		return 0
	fi
	for t in apt-get apt-cache dpkg-deb depmod; do
		command -v "$t" >/dev/null || skip "$t not installed (scripts/install-deps.sh installs it)"
	done
	mkdir -p "$cache/debs"
	meta=${FERRY_VM_KERNEL_PKG:-linux-image-cloud-amd64}
	pkg=$(resolve_pkg "$meta") || { update_lists && pkg=$(resolve_pkg "$meta"); } || pkg=
	if [ -z "$pkg" ]; then
		# Offline with a kernel in the cache: use it.
		kver=$(kernel_ready) && { echo "$kver"; return 0; }
		skip "cannot resolve $meta to a kernel image package (no package registry?)"
	fi
	kver=${pkg#linux-image-}
	if [ ! -f "$cache/$kver/.ready" ]; then
		deb=$(find "$cache/debs" -name "${pkg}_*.deb" | head -n 1)
		if [ -z "$deb" ] && ! deb=$(fetch_deb "$pkg"); then
			# Stale lists name a package the registry no longer has.
			update_lists && pkg=$(resolve_pkg "$meta") && kver=${pkg#linux-image-} &&
				{ [ -f "$cache/$kver/.ready" ] || deb=$(fetch_deb "$pkg"); } ||
				skip "apt-get download $pkg failed: $(tail -n 2 "$cache/debs/download.log" 2>/dev/null)"
		fi
	fi
	if [ ! -f "$cache/$kver/.ready" ]; then
		say "unpacking $(basename "$deb")"
		rm -rf "${cache:?}/$kver.tmp"
		mkdir -p "$cache/$kver.tmp"
		dpkg-deb -x "$deb" "$cache/$kver.tmp" || die "dpkg-deb -x $deb"
		[ -f "$cache/$kver.tmp/boot/vmlinuz-$kver" ] || die "$deb has no boot/vmlinuz-$kver"
		depmod -b "$cache/$kver.tmp" "$kver" || die "depmod for $kver"
		rm -rf "${cache:?}/${kver:?}"
		mv "$cache/$kver.tmp" "$cache/$kver"
		touch "$cache/$kver/.ready"
		# Keep only this version's .deb: older ones are dead weight.
		find "$cache/debs" -name '*.deb' ! -name "$(basename "$deb")" -delete
	fi
	echo "$kver" >"$cache/current"
	echo "$kver"
}

# ---- initramfs ------------------------------------------------------------

# copy_elf SRC DST: copy a binary to DST inside the staging root and every
# shared library ldd names (plus the loader) to the same path as on the host.
copy_elf() {
	local src=$1 dst=$2 lib
	mkdir -p "$root$(dirname "$dst")"
	cp -L "$src" "$root$dst"
	# "name => /path (addr)" and "/lib64/ld-linux... (addr)" lines.
	for lib in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

build_initramfs() {
	local kver=$1 modroot m line busybox work verb path rel
	[ -n "$out" ] || die "initramfs needs --out FILE"
	[ -n "$run" ] || die "initramfs needs --run GUEST_SCRIPT"
	for t in cpio gzip ldd; do
		command -v "$t" >/dev/null || skip "$t not installed (scripts/install-deps.sh installs it)"
	done
	busybox=$(command -v busybox || true)
	[ -n "$busybox" ] || skip "busybox not installed (package busybox-static)"
	# ldd fails on a static binary; a dynamic busybox would need its libraries.
	ldd "$busybox" >/dev/null 2>&1 && skip "$busybox is dynamically linked: install busybox-static"
	modroot=$cache/$kver

	work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-vm-root.XXXXXX")
	root=$work/root
	# Merged /usr, as on Debian 12, so ldd's paths land where the loader looks.
	mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{proc,sys,dev,run,tmp,etc,ferry/bin,root}
	ln -s usr/bin "$root/bin"
	ln -s usr/sbin "$root/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	chmod 1777 "$root/tmp"

	# Real programs first; busybox fills in every other command name.
	copy_elf "$(command -v bash)" /usr/bin/bash
	copy_elf "$(command -v date)" /usr/bin/date   # busybox date has no %N (lib.sh's now_ms)
	for m in "${tools[@]}"; do
		[ -x "$m" ] || skip "tool $m not found"
		copy_elf "$m" "$m"
	done
	for m in "${bins[@]}"; do
		[ -x "$m" ] || die "binary $m not found"
		copy_elf "$m" "/ferry/bin/$(basename "$m")"
	done
	cp "$busybox" "$root/usr/bin/busybox"
	for line in $("$busybox" --list-full); do
		# Paths like "sbin/ip"; keep what is already there (the real ones).
		[ -e "$root/$line" ] || [ -L "$root/$line" ] || ln -s /usr/bin/busybox "$root/$line"
	done
	for m in "${trees[@]}"; do
		mkdir -p "$root${m#*:}"
		cp -r "${m%%:*}/." "$root${m#*:}/"
	done

	# Modules: the closure of the wanted ones (kmod resolves it in the cached
	# tree), an index of just those for busybox modprobe (the kernel's own
	# autoloading goes through it), and the insmod order for /init.
	: >"$root/etc/modules.load"
	for m in $FERRY_VM_MODULES "${modules[@]}"; do
		modprobe -d "$modroot" -S "$kver" --show-depends "$m" >"$work/deps" 2>"$work/deps.err" ||
			die "module $m not in $kver: $(cat "$work/deps.err")"
		while read -r verb path _; do
			[ "$verb" = insmod ] || continue # "builtin NAME": nothing to load
			rel=${path#"$modroot"}
			grep -qxF "$rel" "$root/etc/modules.load" && continue
			mkdir -p "$root$(dirname "$rel")"
			cp "$path" "$root$rel"
			echo "$rel" >>"$root/etc/modules.load"
		done <"$work/deps"
	done
	cp "$modroot/lib/modules/$kver/modules.order" "$modroot/lib/modules/$kver/modules.builtin"* \
		"$root/lib/modules/$kver/"
	depmod -b "$root" "$kver" || die "depmod of the initramfs modules"

	# What /init runs: the script, its arguments and environment, quoted.
	{
		echo "export FERRY_BIN=/ferry/bin/ferry FERRY_HELPERS=/ferry/bin FERRY_TESTS_DIR=/ferry/tests"
		for m in "${envs[@]}"; do printf 'export %q\n' "$m"; done
		printf 'exec bash %q' "$run"
		for m in "${args[@]}"; do printf ' %q' "$m"; done
		echo
	} >"$root/ferry/run.sh"
	cp "$here/init.sh" "$root/init"
	chmod 755 "$root/init"

	mkdir -p "$(dirname "$out")"
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$out.tmp") ||
		die "cpio/gzip of the initramfs"
	mv "$out.tmp" "$out"
	rm -rf "$work"
}

case "$cmd" in
kernel)
	kver=$(ensure_kernel)
	echo "$kver $cache/$kver/boot/vmlinuz-$kver $cache/$kver"
	;;
initramfs)
	kver=$(ensure_kernel)
	build_initramfs "$kver"
	;;
*)
	die "usage: build_vm.sh kernel|initramfs [options] (see the top of $0)"
	;;
esac
