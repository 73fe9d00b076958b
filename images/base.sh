#!/usr/bin/env bash
# The appliance's base root filesystem: Debian bookworm arm64 with the kernel, systemd, Python and the system services
# the appliance uses, and nothing of this project. Built with mmdebstrap under qemu-user (binfmt), then cached as a
# tarball keyed by a hash of this script. The kernel's initramfs under emulation is the slowest step: package
# postinsts (the kernel's, then the triggers) would build it twice, so `update-initramfs` is diverted to a no-op while
# packages install and run once at the end. Nothing here changes when the application does (images/build.sh).
#
# usage: images/base.sh            prints the path of the cached tarball (builds it when missing)
# env:   QMS_IMAGE_CACHE           cache dir (default /var/cache/qms-image)
#        QMS_IMAGE_MIRROR          Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${QMS_IMAGE_CACHE:-/var/cache/qms-image}"
mirror="${QMS_IMAGE_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm

# Why each package: the kernel and Pi firmware boot the board; systemd-sysv is init (networkd/resolved for DHCP);
# python3-venv hosts the app's own venv; mosquitto is the device bus; chrony keeps time (no RTC on a Pi);
# alsa-utils plays announcements; openssh-server lets a technician (and ansible) in; dosfstools checks the boot FAT.
packages=(
  systemd-sysv systemd-resolved udev dbus kmod linux-image-arm64 raspi-firmware
  python3 python3-venv sqlite3 mosquitto mosquitto-clients chrony alsa-utils
  openssh-server sudo ca-certificates iproute2 netbase tzdata dosfstools e2fsprogs curl
)

key="$( { cat "${BASH_SOURCE[0]}"; echo "$mirror"; } | sha256sum | cut -c1-16)"
out="$cache/base-$suite-arm64-$key.tar"
if [ -s "$out" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >&2 || true
fi

include="$(IFS=,; echo "${packages[*]}")"
tmp="$cache/partial-$key.tar"  # mmdebstrap picks the format by the extension
# raspi-firmware's kernel hook copies the kernel to /boot/firmware: the directory must exist in the chroot.
# policy-rc.d keeps package postinsts from starting services inside the build chroot.
# The divert: dpkg-divert moves the real update-initramfs aside before initramfs-tools unpacks; the customize hook
# puts it back and builds the initramfs once (its post-update hook copies it to /boot/firmware for the Pi).
noop='#!/bin/sh\necho "update-initramfs: deferred to the end of the base build" >&2\n'
mmdebstrap --arch=arm64 --variant=minbase --components="main non-free-firmware" \
  --include="$include" \
  --essential-hook='mkdir -p "$1/boot/firmware"' \
  --essential-hook='chroot "$1" dpkg-divert --local --rename --divert /usr/sbin/update-initramfs.real --add /usr/sbin/update-initramfs' \
  --essential-hook="printf '$noop' > \"\$1/usr/sbin/update-initramfs\" && chmod 0755 \"\$1/usr/sbin/update-initramfs\"" \
  --customize-hook='rm -f "$1/usr/sbin/update-initramfs"' \
  --customize-hook='chroot "$1" dpkg-divert --local --rename --divert /usr/sbin/update-initramfs.real --remove /usr/sbin/update-initramfs' \
  --customize-hook='for k in "$1"/lib/modules/*; do chroot "$1" update-initramfs -c -k "${k##*/}"; done' \
  --customize-hook='ls -l "$1"/boot/initrd.img-* "$1"/boot/firmware/initrd.img* >&2' \
  --customize-hook='echo qms-appliance > "$1/etc/hostname"' \
  --customize-hook='rm -f "$1/etc/ssh/ssh_host_"*' \
  "$suite" "$tmp" "$mirror" >&2
mv "$tmp" "$out"
echo "$out"
