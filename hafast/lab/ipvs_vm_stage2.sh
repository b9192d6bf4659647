#!/bin/sh
# hafast IPVS VM, stage 2: PID 1 inside the overlay of the host's root.
#
# The host copies this file into <control share>/.hafast-vm/ for every run, next to
# command.sh (the command with its environment), guest_timeout and modules_dir.
# Writes exitcode there, the command's output to command.log, then powers off.
# Markers on the console ("hafast-vm: ...") let the host time the boot.

CTL=$(dirname "$0")
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { echo "hafast-vm: $*" > /dev/console; }
halt_now() {
    sync
    # busybox-static's poweroff -f is reboot(2) directly: the host's own poweroff
    # would ask systemd, which is not running here.
    /bin/busybox poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# TMPDIR for the command: private and empty, unlike /tmp, which shows the host's.
mkdir -p -m 1777 /run/tmp

ip link set lo up
# The IPVS generic-netlink family does not autoload its module; the schedulers
# (ip_vs_rr, ...) do autoload once ip_vs is in.
if ! modprobe ip_vs; then
    say "modprobe ip_vs failed"
fi

say "command start uptime=$(cut -d' ' -f1 /proc/uptime)"
timeout -k 5 "$(cat "$CTL/guest_timeout")" /bin/sh "$CTL/command.sh" \
    > "$CTL/../command.log" 2>&1 < /dev/null
rc=$?
echo "$rc" > "$CTL/exitcode.tmp" && mv "$CTL/exitcode.tmp" "$CTL/exitcode"
say "command done rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
halt_now
