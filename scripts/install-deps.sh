#!/usr/bin/env bash
# Install every Debian package ferry's build, tests, demo and benchmarks need.
# Idempotent: safe to run again; it is what a fresh Debian 12 machine runs first.
set -euo pipefail

packages=(
	build-essential cmake pkg-config   # toolchain
	libyaml-dev libjansson-dev         # manifest decoding (YAML, JSON)
	libcriterion-dev                   # unit tests
	iproute2 procps psmisc             # scenario tests: ip netns, veth, pkill
	haproxy                            # relay benchmark baseline
	gnuplot-nox                        # benchmark plots
	python3 python3-yaml               # scenario tests: JSON checks, deploy/ manifests (yaml)
	libnftnl-dev libmnl-dev            # nftables backend (netlink)
	nftables                           # nftables tests: nft -c -f, nft list
	iptables conntrack                 # nftables benchmark baselines, conntrack checks
	libmicrohttpd-dev                  # health check node ports (HTTP)
	libcap-ng-dev                      # ferry run drops to the capabilities its backend needs
	libnl-3-dev libnl-genl-3-dev libnl-route-3-dev  # IPVS backend (generic netlink)
	libipset-dev                       # IPVS backend (ipset membership sets)
	ipvsadm ipset                      # IPVS VM tests inspect the guest's tables with them (ferry never runs them)
	libcurl4-openssl-dev openssl       # Kubernetes API source (libcurl); test CA for the test API server
	clang libclang-rt-14-dev           # fuzz targets (tests/fuzz/): clang and its libFuzzer + sanitizer runtimes
	# VM tests (tests/vm/, docs/testing-vm.md): kernel features this host's
	# kernel lacks (SCTP, IPVS). The Debian kernel image itself is not
	# installed: tests/vm/build_vm.sh fetches it with `apt-get download`
	# into the build tree on first use.
	qemu-system-x86                    # VM tests: boots the Debian kernel (software emulation)
	busybox-static                     # VM tests: the guest's shell and commands (static: no libraries)
	kmod                               # VM tests: depmod and modprobe --show-depends on the kernel's modules
	cpio                               # VM tests: packs the initramfs (newc)
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (it installs Debian packages)" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
