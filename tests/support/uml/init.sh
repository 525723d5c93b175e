#!/bin/sh
# PID 1 of the User-Mode Linux guest that tests/test_cgroup_v2_guest.py boots on the host's / (hostfs).
# Kernel arguments reach us as variables: hb_script (run as root) and hb_out (a host directory for results).
# Mounts what a Linux userland needs, cgroup v2 on /sys/fs/cgroup, runs the script, records its exit
# status in $hb_out/status and powers the guest off (PID 1 must not exit).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh "$hb_script" >"$hb_out/guest.log" 2>&1
echo $? >"$hb_out/status"
sync
echo o >/proc/sysrq-trigger
while :; do sleep 60; done
