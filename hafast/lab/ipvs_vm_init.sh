#!/bin/busybox sh
# hafast IPVS VM, stage 1: the initramfs /init (static busybox, nothing else).
#
# Mounts the host's / (9p, read-only) under a tmpfs overlay, mounts the writable 9p
# shares listed by the host, then switch_root's into the overlay and hands over to
# stage 2 (ipvs_vm_stage2.sh, written by the host into the control share).
#
# switch_root, not chroot: the kernel runs its module autoloader (request_module ->
# /sbin/modprobe) in PID 1's root. After a chroot that root would still be this
# initramfs, which has no ip_vs_rr, and adding an "rr" service fails with ENOENT.
#
# Any failure powers the guest off at once (panic=-1 and qemu -no-reboot turn a dying
# PID 1 into a qemu exit too): the host then reports the console tail.

PATH=/bin
export PATH

say() { echo "hafast-vm: $*" > /dev/console; }
die() {
    say "stage 1 failed: $*"
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}

mount -t proc proc /proc || die "mount /proc"
mount -t sysfs sysfs /sys || die "mount /sys"
mount -t devtmpfs devtmpfs /dev 2>/dev/null

# Modules in dependency order, computed on the host from the kernel's modules.dep.
while read -r ko; do
    [ -n "$ko" ] || continue
    insmod "/modules/$ko" || die "insmod $ko"
done < /modules.load

# The 9p tags are fixed by the host: hafastroot is /, hafastctl is the control share.
NINEP="trans=virtio,version=9p2000.L,msize=512000"
mkdir -p /lower /rw /newroot /ctl
mount -t 9p -o "$NINEP,cache=none" hafastctl /ctl || die "mount the control share"
CTL=/ctl/.hafast-vm
[ -r "$CTL/mounts" ] || die "no $CTL/mounts from the host"

# The root never changes under a run, so the guest may cache it (cache=loose): this
# is what makes Python imports tolerable under TCG.
mount -t 9p -o "$NINEP,ro,cache=loose" hafastroot /lower || die "mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "mount the tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || die "mount the overlay"

# A fresh tmpfs on /run, where the host's own files would only confuse guest programs
# ("ip netns list" would show the host's namespaces, pid files, sockets). Mounted
# before the shares, which may live below it. /tmp stays the overlay: the host's
# files there are seen (a venv or cache folder may live in /tmp) and writes stay here.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || die "mount /run"

# The guest kernel's modules, from the host's cache folder: bound from the lower
# mount, so that no guest mount shadowing that folder can hide them from modprobe.
kver=$(uname -r)
moddir=$(cat "$CTL/modules_dir") || die "no modules_dir"
mkdir -p "/newroot/lib/modules/$kver" || die "mkdir /lib/modules/$kver"
mount --bind "/lower$moddir" "/newroot/lib/modules/$kver" || die "bind $moddir"

# Each line: <9p tag> <ro|rw> <cache mode> <guest path>. The control share itself
# is listed too, and moved rather than mounted twice (a virtio-9p channel takes one
# mount only).
while read -r tag mode cache path; do
    [ -n "$tag" ] || continue
    mkdir -p "/newroot$path" || die "mkdir $path"
    if [ "$tag" = hafastctl ]; then
        continue
    fi
    opts="$NINEP,cache=$cache"
    [ "$mode" = ro ] && opts="$opts,ro"
    mount -t 9p -o "$opts" "$tag" "/newroot$path" || die "mount share $tag at $path"
done < "$CTL/mounts"

ctlpath=$(cat "$CTL/ctl_path") || die "no ctl_path"
mount --move /ctl "/newroot$ctlpath" || die "move the control share"
mount --move /dev /newroot/dev 2>/dev/null
umount /proc /sys 2>/dev/null

say "stage 1 done, switch_root"
exec switch_root /newroot /bin/sh "$ctlpath/.hafast-vm/stage2.sh"
die "switch_root"
