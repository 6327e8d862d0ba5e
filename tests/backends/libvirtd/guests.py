# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test guests for the real libvirt layer (libvirtd + QEMU, software emulation).

Module and CLI. Every guest this file defines carries a name prefix (default ``pcstest-``)
*and* a ``<metadata>`` marker, and ``cleanup`` removes only domains that have both, so it can
never touch a VM it did not make. Each guest's files live in ``$PRECHANGE_TEST_STATE/guests/NAME/``
(default state dir ``/var/lib/prechange-test``): disk, UEFI nvram, serial log, and any external
snapshot overlays libvirt puts next to the disk by default.

Kinds:
  blank    no OS, 1 GiB qcow2, 128 MiB RAM, sits in SeaBIOS
  raw      the same with a raw disk image (internal snapshots are refused on raw)
  agent    blank + a qemu-guest-agent virtio-serial channel (no agent runs inside)
  uefi     blank on q35 with OVMF as a read-only pflash loader plus a per-guest nvram
  counter  boots a Debian kernel + a busybox initramfs whose init prints
           ``COUNTER <n> boot=<id>`` to ttyS0 five times a second, forever

CLI:
  guests.py create KIND NAME [--start]    (NAME gets the prefix if it lacks it)
  guests.py destroy NAME
  guests.py cleanup [PREFIX]
  guests.py counter NAME [--wait]         print the latest counter value
  guests.py assets                        build/cache the counter kernel + initramfs
  guests.py list
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import escape

import libvirt

URI = os.environ.get("PRECHANGE_LIBVIRT_URI", "qemu:///system")
STATE = os.environ.get("PRECHANGE_TEST_STATE", "/var/lib/prechange-test")
CACHE = os.environ.get("PRECHANGE_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "prechange-snapshots"
)
PREFIX = "pcstest-"
KINDS = ("blank", "raw", "agent", "uefi", "counter", "backing")
META_NS = "https://github.com/prechange/snapshots/test-guest"
META_KEY = "pcstest"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
BUSYBOX = "/bin/busybox"
COUNTER_RE = re.compile(rb"COUNTER (\d+) boot=(\w+)\r?\n")

# The counter guest's init. The kernel gives it /dev/console (from the cpio) as stdin/out;
# with console=ttyS0 that is the first serial port, which libvirt writes to a file.
INIT_SCRIPT = """#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
boot=$(cut -c1-8 /proc/sys/kernel/random/uuid)
echo "COUNTER-GUEST READY boot=$boot"
i=0
while :; do
    i=$((i + 1))
    echo "COUNTER $i boot=$boot"
    usleep 200000
done
"""
KERNEL_CMDLINE = "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off no_timer_check"


class GuestError(RuntimeError):
    pass


@dataclasses.dataclass
class Guest:
    name: str
    kind: str
    dir: str
    disk: str
    serial: str
    uri: str = URI

    # Counter-guest helpers (see the module functions of the same names).
    def read_counter(self) -> int | None:
        return read_counter(self.name)

    def counter_mark(self) -> tuple[int, int]:
        return counter_mark(self.name)

    def counter_lines(self, since: tuple[int, int] | None = None) -> list[tuple[int, str]]:
        return counter_lines(self.name, since)

    def wait_for_counter(self, above: int | None = None, timeout: float = 180.0,
                         since: tuple[int, int] | None = None) -> int:
        return wait_for_counter(self.name, above=above, timeout=timeout, since=since)


def guest_dir(name: str) -> str:
    return os.path.join(STATE, "guests", name)


def serial_path(name: str) -> str:
    return os.path.join(guest_dir(name), "serial.log")


def _connect(uri: str | None = None) -> libvirt.virConnect:
    try:
        return libvirt.open(uri or URI)
    except libvirt.libvirtError as e:
        raise GuestError(
            f"cannot connect to {uri or URI}: {e} "
            "(is libvirtd running? bash tests/backends/libvirtd/ctl.sh start)"
        ) from e


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if p.returncode != 0:
        raise GuestError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


# --------------------------------------------------------------------------- counter assets


def _cpio_newc(entries: list[tuple]) -> bytes:
    """A newc cpio archive, written here so no root (mknod) and no cpio tool are needed.

    entries: (path, mode, data_bytes, rdevmajor, rdevminor)."""
    out = io.BytesIO()

    def pad4(n: int) -> None:
        out.write(b"\0" * ((4 - n % 4) % 4))

    for ino, (path, mode, data, rmaj, rmin) in enumerate(entries + [("TRAILER!!!", 0, b"", 0, 0)], 1):
        name = path.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(name), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(hdr + name)
        pad4(len(hdr) + len(name))
        out.write(data)
        pad4(len(data))
    return out.getvalue()


def _build_initramfs(dest: str) -> None:
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    d, r, s, c = 0o040755, 0o100755, 0o120777, 0o020600
    entries = [
        ("bin", d, b"", 0, 0),
        ("dev", d, b"", 0, 0),
        ("dev/console", c, b"", 5, 1),
        ("dev/ttyS0", c, b"", 4, 64),
        ("proc", d, b"", 0, 0),
        ("sys", d, b"", 0, 0),
        ("bin/busybox", r, busybox, 0, 0),
        ("init", r, INIT_SCRIPT.encode(), 0, 0),
    ]
    for applet in ("sh", "mount", "cut", "usleep", "echo", "cat"):
        entries.append((f"bin/{applet}", s, b"busybox", 0, 0))
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(gzip.compress(_cpio_newc(entries), 6, mtime=0))
    os.replace(tmp, dest)


def _fetch_kernel(dest: str) -> None:
    """Extract vmlinuz from Debian's current linux-image-amd64 dependency into dest."""
    work = tempfile.mkdtemp(prefix="kernel-", dir=os.path.dirname(dest))
    try:
        def download(pkg: str) -> str:
            try:
                _run(["apt-get", "download", "-q", pkg], cwd=work)
            except GuestError:
                # Stale or empty package lists (fresh machine): refresh once and retry.
                _run(["apt-get", "update", "-qq"])
                _run(["apt-get", "download", "-q", pkg], cwd=work)
            debs = [f for f in os.listdir(work) if f.startswith(pkg + "_") and f.endswith(".deb")]
            if not debs:
                raise GuestError(f"apt-get download {pkg} produced no .deb in {work}")
            return os.path.join(work, debs[0])

        meta = download("linux-image-amd64")
        depends = _run(["dpkg-deb", "-f", meta, "Depends"]).stdout
        m = re.search(r"(linux-image-[0-9][^\s,(]*-amd64)\b", depends)
        if not m:
            raise GuestError(f"cannot find the versioned kernel in Depends: {depends!r}")
        deb = download(m.group(1))
        root = os.path.join(work, "root")
        os.mkdir(root)
        # Extract only /boot (the modules are not needed: serial + initramfs are built in).
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
        _run(["tar", "-x", "-C", root, "--wildcards", "./boot/vmlinuz-*"], stdin=tar.stdout)
        tar.wait()
        kernels = os.listdir(os.path.join(root, "boot"))
        if len(kernels) != 1:
            raise GuestError(f"expected one vmlinuz in {deb}, found {kernels}")
        shutil.copyfile(os.path.join(root, "boot", kernels[0]), dest + ".tmp")
        with open(dest + ".version", "w") as f:
            f.write(kernels[0] + "\n")
        os.replace(dest + ".tmp", dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_counter_assets() -> tuple[str, str]:
    """(kernel, initrd) paths for the counter guest, built once and cached in $PRECHANGE_CACHE."""
    cache = os.path.join(CACHE, "counter-guest")
    os.makedirs(cache, exist_ok=True)
    # One builder at a time (pytest-xdist workers may all want the counter guest at once).
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_counter_assets(cache)


def _ensure_counter_assets(cache: str) -> tuple[str, str]:
    kernel = os.path.join(cache, "vmlinuz")
    if not os.path.exists(kernel):
        _fetch_kernel(kernel)
    if not os.path.exists(BUSYBOX):
        raise GuestError(f"{BUSYBOX} missing: apt-get install busybox-static (setup.sh does)")
    h = hashlib.sha256(INIT_SCRIPT.encode())
    with open(BUSYBOX, "rb") as f:
        h.update(f.read())
    initrd = os.path.join(cache, f"initrd-{h.hexdigest()[:12]}.cpio.gz")
    if not os.path.exists(initrd):
        _build_initramfs(initrd)
    return kernel, initrd


# --------------------------------------------------------------------------------- domains


def _domain_xml(kind: str, name: str, gdir: str, disk: str) -> str:
    fmt = "raw" if kind == "raw" else "qcow2"
    machine = "q35" if kind == "uefi" else "pc"
    os_extra = "    <boot dev='hd'/>\n"
    if kind == "uefi":
        os_extra = (
            f"    <loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>\n"
            f"    <nvram template='{OVMF_VARS}'>{escape(os.path.join(gdir, 'nvram.fd'))}</nvram>\n"
        )
    elif kind == "counter":
        kernel, initrd = ensure_counter_assets()
        os_extra = (
            f"    <kernel>{escape(kernel)}</kernel>\n"
            f"    <initrd>{escape(initrd)}</initrd>\n"
            f"    <cmdline>{KERNEL_CMDLINE}</cmdline>\n"
        )
    channel = ""
    if kind == "agent":
        channel = (
            "    <channel type='unix'>\n"
            "      <target type='virtio' name='org.qemu.guest_agent.0'/>\n"
            "    </channel>\n"
        )
    # Serial to a plain file, truncated whenever a QEMU process starts (append='off').
    # libvirt 9.0 reverts a running guest to an internal snapshot by stopping QEMU and
    # starting a new process with the snapshot loaded (observed: new pid, new domain id),
    # so once revertToSnapshot() returns, the file holds only post-revert output and the
    # first counter line in it is the snapshot-time value + 1. For a libvirt that would
    # `loadvm` in place, the file just continues: counter_mark()/since= handle both.
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <metadata><{META_KEY}:guest xmlns:{META_KEY}='{META_NS}' kind='{kind}'/></metadata>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
{os_extra}  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file='{escape(disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='{escape(os.path.join(gdir, "serial.log"))}' append='off'/>
      <target port='0'/>
    </serial>
{channel}    <memballoon model='none'/>
  </devices>
</domain>
"""


def _lookup(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    # Not lookupByName: its "Domain not found" would also be printed to stderr by
    # libvirt's default error handler, and changing that handler is process-global.
    for dom in conn.listAllDomains():
        if dom.name() == name:
            return dom
    return None


def _marker_kind(dom: libvirt.virDomain) -> str | None:
    """The kind in our <metadata> marker, or None for a domain we did not define.

    Reads the XML rather than calling dom.metadata(): that one reports "metadata not found"
    for every foreign domain through libvirt's default error handler (stderr)."""
    m = re.search(r"<(\w+:)?guest xmlns(:\w+)?=['\"]" + re.escape(META_NS) + r"['\"] kind=['\"](\w+)",
                  dom.XMLDesc(0))
    return m.group(3) if m else None


def _is_ours(dom: libvirt.virDomain) -> bool:
    return _marker_kind(dom) is not None


def create(kind: str, name: str, start: bool = False, uri: str | None = None) -> Guest:
    """Define (and optionally start) a test guest. NAME gets the prefix if it lacks it.

    The counter guest is usually wanted running: pass start=True, then wait_for_counter()."""
    if kind not in KINDS:
        raise GuestError(f"unknown guest kind {kind!r}; kinds: {', '.join(KINDS)}")
    if not name.startswith(PREFIX):
        name = PREFIX + name
    gdir = guest_dir(name)
    conn = _connect(uri)
    try:
        if _lookup(conn, name) is not None:
            raise GuestError(f"domain {name} already exists (guests.py destroy {name})")
        shutil.rmtree(gdir, ignore_errors=True)  # leftovers of an earlier run with this name
        os.makedirs(gdir)
        disk = os.path.join(gdir, "disk.raw" if kind == "raw" else "disk.qcow2")
        if kind == "backing":
            # A VM made from a base image: its qcow2 disk has a backing file, with no snapshot involved.
            base = os.path.join(gdir, "base.qcow2")
            _run(["qemu-img", "create", "-q", "-f", "qcow2", base, "1G"])
            _run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", disk])
        else:
            _run(["qemu-img", "create", "-q", "-f", "raw" if kind == "raw" else "qcow2", disk, "1G"])
        dom = conn.defineXML(_domain_xml(kind, name, gdir, disk))
        if start:
            dom.create()
        return Guest(name, kind, gdir, disk, os.path.join(gdir, "serial.log"), uri or URI)
    finally:
        conn.close()


def _remove(dom: libvirt.virDomain) -> None:
    name = dom.name()
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as e:
        if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # raced: already off
            raise
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    dom.undefineFlags(flags)
    shutil.rmtree(guest_dir(name), ignore_errors=True)


def destroy(name: str, uri: str | None = None) -> bool:
    """Destroy and undefine a test guest and remove its files. False when it did not exist."""
    if not name.startswith(PREFIX):
        name = PREFIX + name
    conn = _connect(uri)
    try:
        dom = _lookup(conn, name)
        if dom is None:
            shutil.rmtree(guest_dir(name), ignore_errors=True)
            return False
        if not _is_ours(dom):
            raise GuestError(f"domain {name} has no test-guest marker: not touching it")
        _remove(dom)
        return True
    finally:
        conn.close()


def cleanup(prefix: str = PREFIX, uri: str | None = None) -> list[str]:
    """Remove every marked test guest whose name starts with prefix (and stray guest dirs)."""
    if not prefix.startswith(PREFIX):
        prefix = PREFIX + prefix
    removed = []
    conn = _connect(uri)
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith(prefix) and _is_ours(dom):
                _remove(dom)
                removed.append(dom.name())
    finally:
        conn.close()
    gdirs = os.path.join(STATE, "guests")
    if os.path.isdir(gdirs):
        for d in os.listdir(gdirs):
            if d.startswith(prefix):
                shutil.rmtree(os.path.join(gdirs, d), ignore_errors=True)
    return removed


def list_guests(uri: str | None = None) -> list[tuple[str, str, bool]]:
    conn = _connect(uri)
    try:
        out = []
        for dom in conn.listAllDomains():
            kind = _marker_kind(dom)
            if kind:
                out.append((dom.name(), kind, bool(dom.isActive())))
        return sorted(out)
    finally:
        conn.close()


# ------------------------------------------------------------------------------ counter


def _full(name: str) -> str:
    return name if name.startswith(PREFIX) else PREFIX + name


def _qemu_pid(name: str) -> int:
    # libvirtd's own record of the guest's QEMU pid (qemu:///system on this host).
    try:
        with open(f"/run/libvirt/qemu/{name}.pid") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return -1


def counter_mark(name: str, uri: str | None = None) -> tuple[int, int]:
    """A point in the guest's serial output: (QEMU process id, serial file size).

    Pass it as since= to read only what was printed after it. When libvirt has started a
    new QEMU process since (which truncates the file), reading restarts at offset 0; with
    the same process, it starts at the marked size. (The libvirt domain id does not tell:
    9.0 keeps it across the QEMU restart of a revert.)"""
    pid = _qemu_pid(_full(name))
    try:
        size = os.path.getsize(serial_path(_full(name)))
    except FileNotFoundError:
        size = 0
    return pid, size


def counter_lines(name: str, since: tuple[int, int] | None = None,
                  uri: str | None = None) -> list[tuple[int, str]]:
    """All complete (counter, boot id) lines printed (after `since`, a counter_mark())."""
    start = 0
    if since is not None:
        pid, size = counter_mark(name, uri)
        if pid == since[0] and size >= since[1]:
            start = since[1]
    try:
        with open(serial_path(_full(name)), "rb") as f:
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return []
    return [(int(a), b.decode()) for a, b in COUNTER_RE.findall(data)]


def read_counter_state(name: str) -> tuple[int, str] | None:
    """(counter, boot id) from the newest complete COUNTER line, or None before the first."""
    try:
        with open(serial_path(_full(name)), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read()
    except FileNotFoundError:
        return None
    found = COUNTER_RE.findall(tail)
    if not found:
        return None
    return int(found[-1][0]), found[-1][1].decode()


def read_counter(name: str) -> int | None:
    """The latest counter value the guest printed, or None if it printed none yet."""
    st = read_counter_state(name)
    return st[0] if st else None


def wait_for_counter(name: str, above: int | None = None, timeout: float = 180.0,
                     since: tuple[int, int] | None = None, uri: str | None = None) -> int:
    """Wait for a counter line and return its value.

    Without since: the latest value, once there is one (greater than `above`, if given).
    With since=counter_mark(...): the FIRST value printed after the mark (e.g. the first
    line after a revert). The timeout is only a hang guard (boot takes a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        if since is not None:
            lines = counter_lines(name, since, uri)
            value = lines[0][0] if lines else None
        else:
            value = read_counter(name)
        if value is not None and (above is None or value > above):
            return value
        if time.monotonic() > deadline:
            tail = ""
            try:
                with open(serial_path(_full(name)), "rb") as f:
                    tail = f.read()[-800:].decode(errors="replace")
            except OSError:
                pass
            raise GuestError(
                f"guest {name} printed no counter{'' if above is None else f' above {above}'} "
                f"within {timeout:.0f}s; serial tail:\n{tail}"
            )
        time.sleep(0.1)


# ----------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uri", default=None, help=f"libvirt URI (default {URI})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("kind", choices=KINDS)
    c.add_argument("name")
    c.add_argument("--start", action="store_true")
    sub.add_parser("destroy").add_argument("name")
    sub.add_parser("cleanup").add_argument("prefix", nargs="?", default=PREFIX)
    k = sub.add_parser("counter")
    k.add_argument("name")
    k.add_argument("--wait", action="store_true", help="wait for the first counter line")
    sub.add_parser("assets")
    sub.add_parser("list")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "create":
            g = create(a.kind, a.name, start=a.start, uri=a.uri)
            print(g.name)
        elif a.cmd == "destroy":
            if not destroy(a.name, uri=a.uri):
                print(f"{a.name}: no such domain (files removed if any)", file=sys.stderr)
        elif a.cmd == "cleanup":
            for n in cleanup(a.prefix, uri=a.uri):
                print(n)
        elif a.cmd == "counter":
            v = wait_for_counter(a.name) if a.wait else read_counter(a.name)
            print("" if v is None else v)
        elif a.cmd == "assets":
            print("\n".join(ensure_counter_assets()))
        elif a.cmd == "list":
            for n, kind, active in list_guests(uri=a.uri):
                print(f"{n}\t{kind}\t{'running' if active else 'shut off'}")
    except (GuestError, libvirt.libvirtError) as e:
        print(f"guests.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
