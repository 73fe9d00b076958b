#!/usr/bin/env bash
# `make image`: the appliance's SD-card image for Raspberry Pi 4/5 class boards (Debian bookworm arm64).
#
#   1. the cached base root filesystem (images/base.sh: kernel, firmware, systemd, Python, Mosquitto, chrony…)
#   2. a wheelhouse: this checkout's wheel + every dependency as an aarch64 wheel (images/wheelhouse.sh)
#   3. the app layer, in a chroot under qemu-user: the `qms` user, /opt/qms/venvs/<version> (+ /opt/qms/current),
#      the units and settings of images/overlay, fstab, the boot command line
#   4. the partitions, assembled without loop devices: FAT /boot/firmware (mkfs.vfat + mcopy), ext4 root and ext4
#      data for /var/lib/qms (mke2fs -d), put together in one MBR image with sfdisk + dd
#
# Output ($QMS_IMAGE_OUT, default build/image): qms-appliance-arm64.img (flash this), and for the QEMU boot test
# vmlinuz + initrd.img. Needs root (chroot, file ownership), binfmt_misc with qemu-aarch64, mmdebstrap, mtools,
# dosfstools, fdisk (sfdisk).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${QMS_IMAGE_CACHE:-/var/cache/qms-image}"
out="${QMS_IMAGE_OUT:-$repo/build/image}"
work="$cache/work"
started=$SECONDS
say() { printf '==> image: %s (%ss)\n' "$*" "$((SECONDS - started))" >&2; }

say "base root filesystem"
base="${QMS_IMAGE_BASE:-$("$repo/images/base.sh")}"  # QMS_IMAGE_BASE: another base tarball (e.g. a snapshot)

say "wheelhouse"
rm -rf "$work" && mkdir -p "$work/wheels" "$out"
wheel="$("$repo/images/wheelhouse.sh" "$work/wheels" aarch64)"
version="$(echo "$wheel" | cut -d- -f2)"

say "app layer (qms $version)"
root="$work/rootfs"
mkdir -p "$root"
tar -C "$root" --numeric-owner -xpf "$base"
cp -a "$repo/images/overlay/." "$root/"
mkdir -p "$root/tmp/wheels" && cp "$work/wheels/"*.whl "$root/tmp/wheels/"
cp /etc/resolv.conf "$root/etc/resolv.conf.build" 2>/dev/null || true
cat > "$root/tmp/layer.sh" <<LAYER
set -eu
getent group qms >/dev/null || groupadd --system qms
id qms >/dev/null 2>&1 || useradd --system --gid qms --groups lp,audio --home-dir /var/lib/qms --shell /usr/sbin/nologin qms
id technician >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo technician  # SSH, keys only
passwd -l technician >/dev/null
chmod 0440 /etc/sudoers.d/qms-technician
python3 -m venv --without-pip /opt/qms/venvs/$version
ln -sfn venvs/$version /opt/qms/current
ln -sf /opt/qms/current/bin/qms-edge /usr/local/bin/qms-edge
install -d -o qms -g qms -m 0700 /var/lib/qms /var/lib/qms-backups
systemctl enable qms-edge.service qms-mosquitto.service qms-firstboot.service qms-update.timer \
  qms-ssh-keys.service qms-technician-keys.service ssh.service systemd-networkd.service systemd-resolved.service \
  chrony.service
systemctl disable mosquitto.service || true
ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
LAYER
cat > "$root/etc/systemd/system/qms-ssh-keys.service" <<'UNIT'
# The image ships without SSH host keys (every card would share them): each appliance makes its own at first boot.
[Unit]
Description=Generate this appliance's SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
for fs in proc sys dev; do mount --bind "/$fs" "$root/$fs"; done
trap 'for fs in dev sys proc; do umount -l "$root/$fs" 2>/dev/null || true; done' EXIT
mv "$root/etc/resolv.conf" "$root/etc/resolv.conf.orig" 2>/dev/null || true
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" /bin/sh /tmp/layer.sh
for fs in dev sys proc; do umount -l "$root/$fs"; done
trap - EXIT
# The venv's packages are installed by the build host's pip for the target platform (--platform/--target): the same
# wheels, without running pip under emulation (minutes); then the scripts' #! lines name the target's interpreter.
venv="/opt/qms/venvs/$version"
site="$root$venv/lib/python3.11/site-packages"
py="${PYTHON:-$repo/.venv/bin/python}"
"$py" -m pip download -q --no-deps -d "$work/wheels" "pip==$("$py" -m pip --version | cut -d' ' -f2)" >&2
platforms=()
for p in manylinux2014 manylinux_2_17 manylinux_2_28 manylinux_2_34 linux; do platforms+=(--platform "${p}_aarch64"); done
"$py" -m pip install -q --no-index --find-links "$work/wheels" --only-binary=:all: "${platforms[@]}" \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none --no-compile \
  --target "$site" "qms==$version" pip >&2
mkdir -p "$root$venv/bin"
if [ -d "$site/bin" ]; then cp -a "$site/bin/." "$root$venv/bin/" && rm -rf "$site/bin"; fi
for script in "$root$venv/bin/"*; do
  [ -f "$script" ] && [ ! -L "$script" ] && head -c 2 "$script" | grep -q '#!' && sed -i "1s|^#!.*python.*$|#!$venv/bin/python3|" "$script"
done
rm -rf "$root/tmp/wheels" "$root/tmp/layer.sh" "$root/etc/resolv.conf.build" "$root/etc/resolv.conf.orig"
# Bytecode compiled on the build host (same CPython 3.11 bytecode): the venv is read-only at run time
# (ProtectSystem=strict), so without it every start would parse everything anew — slow on a Pi, very slow in QEMU.
python3 -m compileall -q -j 2 -s "$root" -p / "$root/opt/qms/venvs/$version/lib/python3.11/site-packages" >/dev/null || true
cat > "$root/etc/fstab" <<'FSTAB'
LABEL=QMSROOT  /               ext4  defaults,noatime,errors=remount-ro  0 1
LABEL=QMSBOOT  /boot/firmware  vfat  defaults,nofail,umask=0077          0 2
LABEL=QMSDATA  /var/lib/qms    ext4  defaults,noatime,nofail             0 2
FSTAB
echo "console=serial0,115200 console=tty1 root=LABEL=QMSROOT rw rootwait fsck.repair=yes net.ifnames=0" \
  > "$root/boot/firmware/cmdline.txt"
kernel="$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)"
cp "$kernel" "$out/vmlinuz"
cp "$root/boot/initrd.img-${kernel##*/vmlinuz-}" "$out/initrd.img"
echo "$version" > "$out/version"

say "partitions"
uid="$(chroot "$root" id -u qms)" gid="$(chroot "$root" id -g qms)"
# boot: FAT32 from /boot/firmware, which stays an empty mount point in the root filesystem
boot_mb=256
rm -f "$work/boot.img"
mkfs.vfat -n QMSBOOT -F 32 -C "$work/boot.img" $((boot_mb * 1024)) >/dev/null
mcopy -s -i "$work/boot.img" "$root/boot/firmware/"* ::
mkdir -p "$work/firmware" && mv "$root/boot/firmware/"* "$work/firmware/"
# root: ext4 populated from the directory (no mount, no loop device)
root_mb=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 256 ))
mke2fs -q -F -t ext4 -L QMSROOT -d "$root" "$work/root.img" "${root_mb}M"
# data: /var/lib/qms, owned by the service user
data_mb=512
mke2fs -q -F -t ext4 -L QMSDATA -E "root_owner=$uid:$gid" "$work/data.img" "${data_mb}M"
# The data dir is the partition's root: no root-owned lost+found in it (backups archive every file of the data dir).
debugfs -w -R "rmdir lost+found" "$work/data.img" >/dev/null 2>&1
mv "$work/firmware/"* "$root/boot/firmware/"
# one MBR disk: 4 MiB gap, boot (FAT32 LBA, bootable), root, data
img="$out/qms-appliance-arm64.img"
total_mb=$((4 + boot_mb + root_mb + data_mb + 1))
rm -f "$img" && truncate -s "${total_mb}M" "$img"
sfdisk -q "$img" <<SFDISK
label: dos
start=4MiB, size=${boot_mb}MiB, type=c, bootable
size=${root_mb}MiB, type=83
size=${data_mb}MiB, type=83
SFDISK
dd if="$work/boot.img" of="$img" bs=1M seek=4 conv=notrunc status=none
dd if="$work/root.img" of="$img" bs=1M seek=$((4 + boot_mb)) conv=notrunc status=none
dd if="$work/data.img" of="$img" bs=1M seek=$((4 + boot_mb + root_mb)) conv=notrunc status=none
rm -f "$work/boot.img" "$work/root.img" "$work/data.img"
say "done: $img ($(du -h --apparent-size "$img" | cut -f1), qms $version)"
