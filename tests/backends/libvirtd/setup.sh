#!/usr/bin/env bash
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Prepare a fresh Debian/Ubuntu machine (as root, no systemd) for the real libvirt layer:
# libvirtd + QEMU with software emulation. Idempotent: every step checks first, so a
# re-run on a prepared machine takes well under a second (plus the Python import check).
#
# Usage: bash tests/backends/libvirtd/setup.sh [--no-assets]
#   --no-assets   do not pre-build the counter guest's kernel/initramfs cache
# Environment: PYTHON (default python3), PRECHANGE_CACHE, PRECHANGE_TEST_STATE.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
ASSETS=1
for arg in "$@"; do
    case "$arg" in
        --no-assets) ASSETS=0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "setup.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root (installs packages, writes /etc/libvirt/qemu.conf)"
    exit 1
fi

PACKAGES=(
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils tini
    libvirt-dev pkg-config gcc          # to build libvirt-python (no wheels on PyPI)
    busybox-static                      # userspace of the counter guest's initramfs
    ovmf                                # UEFI firmware for the 'uefi' guest kind
)

# --- 1. packages ------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Always refresh the lists before installing: on a fresh machine they are empty or stale.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "packages: all present"
fi

# --- 2. the libvirt-qemu user ---------------------------------------------------------
# libvirtd 9.0 resolves this user before it reads qemu.conf; without it startup fails with
# "Failed to parse user 'libvirt-qemu'" even though qemu.conf says user=root.
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    useradd --system --no-create-home -g libvirt-qemu -s /usr/sbin/nologin libvirt-qemu

# --- 3. qemu.conf -------------------------------------------------------------------
# No systemd, no AppArmor/SELinux in these containers: QEMU runs as root and libvirt must
# not chown/relabel images (dynamic_ownership=0, remember_owner=0 avoids xattr games).
QEMU_CONF=/etc/libvirt/qemu.conf
WANT_CONF='# Written by prechange.snapshots tests/backends/libvirtd/setup.sh
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"'
mkdir -p /etc/libvirt
if [ ! -f "$QEMU_CONF" ] || [ "$(cat "$QEMU_CONF")" != "$WANT_CONF" ]; then
    if [ -f "$QEMU_CONF" ] && ! grep -q 'prechange.snapshots' "$QEMU_CONF"; then
        cp -p "$QEMU_CONF" "$QEMU_CONF.prechange-orig"
        log "saved the previous $QEMU_CONF as $QEMU_CONF.prechange-orig"
    fi
    printf '%s\n' "$WANT_CONF" >"$QEMU_CONF"
    log "wrote $QEMU_CONF (restart libvirtd if it is already running: ctl.sh stop; ctl.sh start)"
fi

# --- 4. libvirt-python ----------------------------------------------------------------
if ! "$PYTHON" -c 'import libvirt' 2>/dev/null; then
    log "installing libvirt-python for $PYTHON (compiles against libvirt-dev, ~20 s)"
    if ! "$PYTHON" -m pip install -q libvirt-python; then
        # Debian's own python3 refuses pip installs (PEP 668): use its packaged binding.
        case "$(command -v "$PYTHON")" in
            /usr/bin/*)
                apt-get install -y -qq --no-install-recommends python3-libvirt >/dev/null ;;
            *) log "pip install libvirt-python failed for $PYTHON"; exit 1 ;;
        esac
    fi
fi

# --- 5. counter-guest kernel + initramfs (cached under $PRECHANGE_CACHE) ---------------
if [ "$ASSETS" = 1 ]; then
    "$PYTHON" "$HERE/guests.py" assets >/dev/null
fi

log "ok"
