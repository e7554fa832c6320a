#!/bin/sh
# /init of the ferry test VM (copied there by tests/vm/build_vm.sh; busybox sh).
#
# Mounts the kernel file systems, loads the modules listed in
# /etc/modules.load (dependency order, from build_vm.sh), runs /ferry/run.sh
# (the guest test script), then powers the VM off. The serial console is the
# only channel to the host, so this prints markers that tests/vm/run_in_vm.sh
# reads:
#   FERRY-VM-BOOTED <kernel>     userspace is up (missing: the VM did not boot)
#   FERRY-VM-EXIT <code>         the guest script's exit code (77 = skip)
export PATH=/usr/sbin:/usr/bin
export HOME=/root TMPDIR=/tmp

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
echo "FERRY-VM-BOOTED $(uname -r)"

loaded=0
failed=
while read -r m; do
	if insmod "$m" 2>/tmp/insmod.err; then
		loaded=$((loaded + 1))
	else
		failed="$failed $(basename "$m" .ko)($(cat /tmp/insmod.err))"
	fi
done </etc/modules.load
echo "FERRY-VM: $loaded modules loaded${failed:+, failed:$failed}"
ip link set lo up

cd /tmp || cd /
bash /ferry/run.sh </dev/null 2>&1
rc=$?
echo "FERRY-VM-EXIT $rc"
sync
poweroff -f
# poweroff should not return; if it does, the kernel panics when init exits,
# and with panic=-1 and qemu's -no-reboot that ends the VM too.
sleep 5
exit "$rc"
