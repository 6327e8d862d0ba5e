#!/usr/bin/env bash
# Build (or reuse) the e2e guest image: a minimal Debian (mmdebstrap, else
# debootstrap; variant minbase) with
# openssh-server, python3 and python3-apt (for Ansible's apt module), a Debian kernel booted directly (vmlinuz + a tiny
# busybox initrd), an ext4 root on a qcow2 disk, and the harness's SSH key in
# root's authorized_keys.
#
# Output (printed on stdout): a directory with base.qcow2, vmlinuz, initrd.img,
# cmdline and manifest.json. Everything is cached under
#   ${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/e2e/
# and reused while the inputs (this directory's files, suite, mirror, init,
# SSH key) are unchanged. PRECHANGE_E2E_REBUILD=1 forces a rebuild.
#
# Environment:
#   PRECHANGE_E2E_SUITE   Debian suite (default: bookworm)
#   PRECHANGE_E2E_MIRROR  Debian mirror (default: http://deb.debian.org/debian)
#   PRECHANGE_E2E_INIT    sysvinit (default, boots ~2x faster under TCG) | systemd
#                         (systemd: kept only to measure the difference; it gets
#                         the network but not the test repository line)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}/e2e
SUITE=${PRECHANGE_E2E_SUITE:-bookworm}
MIRROR=${PRECHANGE_E2E_MIRROR:-http://deb.debian.org/debian}
INIT=${PRECHANGE_E2E_INIT:-sysvinit}
DISK_SIZE=2G
# Modules the Debian kernel does not build in but the guest needs before its
# root is mounted (the root fs carries no /lib/modules at all).
MODULES="virtio_pci virtio_blk virtio_net virtio_rng ext4 crc32c_generic"
CMDLINE="console=ttyS0 root=/dev/vda rw quiet net.ifnames=0 tsc=reliable"

log() { echo "[image $(date +%T)] $*" >&2; }

case "$INIT" in
  sysvinit) PKGS=openssh-server,python3,python3-apt,iproute2,sysvinit-core ;;
  systemd) PKGS=openssh-server,python3,python3-apt,iproute2,systemd-sysv,udev ;;
  *) echo "PRECHANGE_E2E_INIT must be sysvinit or systemd" >&2; exit 2 ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "build.sh needs root (debootstrap, device nodes in the image)" >&2
  exit 1
fi

mkdir -p "$CACHE/ssh" "$CACHE/debs/debootstrap" "$CACHE/debs/host" "$CACHE/image"
# One build at a time per cache.
exec 9>"$CACHE/.image.lock"
flock 9

if [ ! -f "$CACHE/ssh/id_ed25519" ]; then
  command -v ssh-keygen >/dev/null || apt-get install -y --no-install-recommends openssh-client >&2
  ssh-keygen -q -t ed25519 -N '' -C prechange-e2e -f "$CACHE/ssh/id_ed25519"
fi

key=$(
  {
    echo "suite=$SUITE mirror=$MIRROR init=$INIT disk=$DISK_SIZE modules=$MODULES cmdline=$CMDLINE pkgs=$PKGS"
    cat "$CACHE/ssh/id_ed25519.pub"
    cd "$HERE" && find . -type f -not -name '*.pyc' | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
)
OUT="$CACHE/image/$key"

if [ -z "${PRECHANGE_E2E_REBUILD:-}" ] && [ -f "$OUT/manifest.json" ]; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

t0=$(date +%s.%N)
missing=()
# mmdebstrap is preferred (faster); debootstrap is the fallback if it cannot be installed.
command -v mmdebstrap >/dev/null || command -v debootstrap >/dev/null || missing+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; } ||
    apt-get install -y --no-install-recommends debootstrap >&2
fi

WORK=$(mktemp -d "$CACHE/image/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- kernel and busybox: downloaded as .debs and unpacked, never installed ---
fetch_deb() { # fetch_deb PACKAGE -> path of the cached .deb
  (cd "$CACHE/debs/host" && apt-get download "$1" >/dev/null 2>&1) ||
    (apt-get update >&2 && cd "$CACHE/debs/host" && apt-get download "$1" >&2)
  # apt-get download names files pkg_version_arch.deb with ':' escaped as %3a (no odd characters)
  # shellcheck disable=SC2012
  ls -t "$CACHE/debs/host/$1"_*.deb | head -1
}
log "kernel + busybox"
meta=$(fetch_deb linux-image-amd64)
kpkg=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
# Debian package file names have no odd characters.
# shellcheck disable=SC2012
kdeb=$(ls "$CACHE/debs/host/${kpkg}"_*.deb 2>/dev/null | head -1 || true)
[ -n "$kdeb" ] || kdeb=$(fetch_deb "$kpkg")
# Debian package file names have no odd characters.
# shellcheck disable=SC2012
bdeb=$(ls "$CACHE/debs/host/busybox-static"_*.deb 2>/dev/null | head -1 || true)
[ -n "$bdeb" ] || bdeb=$(fetch_deb busybox-static)
mkdir -p "$WORK/kernel" "$WORK/busybox"
# Only the kernel and the module trees that hold what MODULES needs (and their
# dependencies): the whole package is ~400 MB unpacked.
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$WORK/kernel" --wildcards './boot/vmlinuz-*' \
  './lib/modules/*/kernel/drivers/virtio' './lib/modules/*/kernel/drivers/block' \
  './lib/modules/*/kernel/drivers/net' './lib/modules/*/kernel/drivers/char' \
  './lib/modules/*/kernel/fs' './lib/modules/*/kernel/lib' './lib/modules/*/kernel/crypto' \
  './lib/modules/*/kernel/net/core'
for m in $MODULES; do
  [ -n "$(find "$WORK/kernel/lib/modules" -name "$m.ko" -o -name "${m//_/-}.ko" | head -1)" ] ||
    { echo "module $m not found in $kdeb" >&2; exit 1; }
done
dpkg-deb -x "$bdeb" "$WORK/busybox"
kver=${kpkg#linux-image-}
cp "$WORK/kernel/boot/vmlinuz-$kver" "$WORK/vmlinuz"

log "initrd ($kver)"
I="$WORK/initrd"
mkdir -p "$I/bin" "$I/dev" "$I/proc" "$I/sys" "$I/modules" "$I/newroot"
cp "$WORK/busybox/bin/busybox" "$I/bin/busybox"
ln -s busybox "$I/bin/sh"   # the interpreter of init (#!/bin/sh)
cp "$HERE/initrd-init" "$I/init"
chmod 755 "$I/init"
moddir="$WORK/kernel/lib/modules/$kver"
# shellcheck disable=SC2086
python3 "$HERE/modorder.py" "$moddir" $MODULES > "$WORK/modlist"
: > "$I/modules/order"
while read -r rel; do
  cp "$moddir/$rel" "$I/modules/"
  basename "$rel" >> "$I/modules/order"
done < "$WORK/modlist"
(cd "$I" && find . | "$I/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$WORK/initrd.img"

# --- root filesystem ---
R="$WORK/root"
if command -v mmdebstrap >/dev/null; then
  # mmdebstrap: same minbase result as debootstrap for ~40% of its CPU time
  # (measured: 15 s vs 37 s user CPU; wall 115 s vs 192 s on a loaded host).
  # The .deb cache is synced in and out with its documented hooks.
  log "mmdebstrap $SUITE ($INIT): $PKGS"
  mkdir -p "$CACHE/debs/mmdebstrap"
  # "$1" is expanded by mmdebstrap in its hook, not here.
  # shellcheck disable=SC2016
  mmdebstrap --variant=minbase --include="$PKGS" \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs/mmdebstrap /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs/mmdebstrap" \
    "$SUITE" "$R" "$MIRROR" > "$WORK/bootstrap.log" 2>&1 ||
    { tail -30 "$WORK/bootstrap.log" >&2; exit 1; }
else
  log "debootstrap $SUITE ($INIT): $PKGS"
  debootstrap --variant=minbase --cache-dir="$CACHE/debs/debootstrap" \
    --include="$PKGS" "$SUITE" "$R" "$MIRROR" > "$WORK/bootstrap.log" 2>&1 ||
    { tail -30 "$WORK/bootstrap.log" >&2; exit 1; }
fi

log "configure"
cp -a "$HERE/rootfs/." "$R/"
: > "$R/etc/apt/sources.list" # only the test repository; the guest has no other network
install -d -m 700 "$R/root/.ssh"
install -m 600 "$CACHE/ssh/id_ed25519.pub" "$R/root/.ssh/authorized_keys"
if [ "$INIT" = sysvinit ]; then
  # No gettys on virtual consoles nobody looks at; a root shell-less serial
  # console is not needed either (the serial log is kept by libvirt).
  sed -i -E '/^[1-6]:[0-9]+:respawn:\/sbin\/getty/d' "$R/etc/inittab"
  # Our own sysinit instead of /etc/init.d/rcS (see e2e-sysinit for why).
  sed -i 's|^si::sysinit:.*|si::sysinit:/usr/local/sbin/e2e-sysinit|' "$R/etc/inittab"
  rm -f "$R/etc/network/interfaces" 2>/dev/null || true
else
  mkdir -p "$R/etc/systemd/network"
  printf '[Match]\nName=eth0\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n' > "$R/etc/systemd/network/10-eth0.network"
  ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
  rm -f "$R/etc/network/interfaces" 2>/dev/null || true
  : > "$R/etc/machine-id"
fi
chroot "$R" passwd -dl root >/dev/null 2>&1 || true
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* \
  "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/*
# Keep later package installs small too.
printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' \
  > "$R/etc/dpkg/dpkg.cfg.d/01-prechange-e2e-nodoc"

log "disk"
mkfs.ext4 -q -F -L pc-e2e-root -d "$R" "$WORK/disk.raw" "$DISK_SIZE" >&2
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/base.qcow2"
rm -f "$WORK/disk.raw"
# The base image is only ever used as a read-only backing file.
chmod 444 "$WORK/base.qcow2"

mkdir -p "$OUT.tmp"
mv "$WORK/base.qcow2" "$WORK/vmlinuz" "$WORK/initrd.img" "$OUT.tmp/"
echo "$CMDLINE" > "$OUT.tmp/cmdline"
secs=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
cat > "$OUT.tmp/manifest.json" <<EOF
{"key": "$key", "suite": "$SUITE", "init": "$INIT", "kernel": "$kver",
 "packages": "$PKGS", "cmdline": "$CMDLINE", "build_seconds": $secs,
 "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
# Drop images built from older inputs.
find "$CACHE/image" -mindepth 1 -maxdepth 1 -type d -not -name "$key" -not -name '.work.*' -exec rm -rf {} +
log "built $OUT in ${secs}s"
echo "$OUT"
