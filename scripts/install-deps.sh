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
	python3                            # scenario tests: JSON checks
	libnftnl-dev libmnl-dev            # nftables backend (netlink)
	nftables                           # nftables tests: nft -c -f, nft list
	iptables conntrack                 # nftables benchmark baselines, conntrack checks
	libmicrohttpd-dev                  # health check node ports (HTTP)
	libcurl4-openssl-dev openssl       # Kubernetes API source (libcurl); test CA for the test API server
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
