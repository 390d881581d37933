#!/usr/bin/env bash
# Build the proving ground's base disk image: Debian bookworm from Debian's packages only.
#   bash scripts/vm/build-image.sh OUT.img KVER DEBCACHE WHEELHOUSE
# debootstrap into a directory, the Debian kernel's modules copied in, a venv with labcoat's
# dependencies (from a wheelhouse built on the host: the guest has no package index), the
# boot files of scripts/vm/, then `mkfs.ext4 -d` (no loop mount, no root filesystem mounted).
# This file is part of the image's cache key (scripts/vm.sh): edit it and the image is rebuilt.
set -euo pipefail
out=$1 kver=$2 debcache=$3 wheels=$4
here=$(cd "$(dirname "$0")" && pwd)
mirror=${LABCOAT_VM_MIRROR:-http://deb.debian.org/debian}
# podman lane (v2-podman): podman 4.3, catatonit (its --init), crun (podman's default runtime on
# cgroup v2; runc comes with docker.io), netavark (its network backend on a fresh system). Rootful: no uidmap.
packages=systemd-sysv,udev,dbus,docker.io,procps,util-linux,iproute2,kmod,python3,python3-venv,ca-certificates,iptables,apparmor,e2fsprogs,bash,podman,catatonit,crun,netavark
rootfs=$out.rootfs
rm -rf "$rootfs"
mkdir -p "$debcache"
echo "== debootstrap bookworm ($packages)"
debootstrap --variant=minbase --cache-dir="$debcache" --include="$packages" bookworm "$rootfs" "$mirror" \
  > "$out.debootstrap.log" 2>&1 || { tail -20 "$out.debootstrap.log"; exit 1; }
echo "== kernel modules $kver"
mkdir -p "$rootfs/lib/modules"
cp -a "/lib/modules/$kver" "$rootfs/lib/modules/"
echo "== venv with labcoat's dependencies (offline wheelhouse)"
mkdir -p "$rootfs/opt/wheels"
cp "$wheels"/*.whl "$rootfs/opt/wheels/"
chroot "$rootfs" python3 -m venv /opt/venv
# labcoat itself comes with each run (a wheel of the working tree); here only what it needs
chroot "$rootfs" sh -c 'cd /opt/wheels && /opt/venv/bin/pip install -q --no-index --find-links /opt/wheels labcoat && /opt/venv/bin/pip uninstall -q -y labcoat'
rm -rf "$rootfs/opt/wheels"
echo "== boot files"
install -m 0755 "$here/boot-init" "$rootfs/sbin/labcoat-vm-init"
install -m 0644 "$here/labcoat-vm.service" "$rootfs/etc/systemd/system/labcoat-vm.service"
ln -sf /etc/systemd/system/labcoat-vm.service "$rootfs/etc/systemd/system/multi-user.target.wants/labcoat-vm.service"
mkdir -p "$rootfs/payload"
echo labcoat-vm > "$rootfs/etc/hostname"
# no getty fighting over the serial consoles
rm -f "$rootfs"/etc/systemd/system/getty.target.wants/*
rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*
echo "== mkfs.ext4 -d ($(du -sh "$rootfs" | cut -f1))"
rm -f "$out"
truncate -s 8G "$out"
mkfs.ext4 -q -F -L labcoat-root -d "$rootfs" "$out"
rm -rf "$rootfs"
