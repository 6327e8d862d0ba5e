# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Show what the installed libvirt/QEMU does on the snapshot traps, with plain libvirt-python.

Run after setup.sh and ctl.sh start:  python3 tests/backends/libvirtd/probe.py
Prints one line per case with libvirt's exact error text (or "OK"), then proves the counter
guest's RAM rolls back on revert, with timings. Creates guests named pcstest-probe-* and
removes them at the end. Exits non-zero only if the rollback proof fails.
"""

from __future__ import annotations

import os
import sys
import time

import libvirt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guests  # noqa: E402

F = libvirt
SNAP = "<domainsnapshot><name>{}</name></domainsnapshot>"


def attempt(label, fn):
    t = time.monotonic()
    try:
        fn()
        print(f"{label}: OK ({time.monotonic() - t:.2f}s)")
        return None
    except libvirt.libvirtError as e:
        print(f"{label}: ERROR [code {e.get_error_code()}] {e.get_error_message()}")
        return e


def main() -> int:
    libvirt.registerErrorHandler(lambda *_: None, None)  # errors are printed by attempt()
    conn = libvirt.open(guests.URI)
    v = conn.getLibVersion()
    print(f"libvirt {v // 1000000}.{v // 1000 % 1000}.{v % 1000}, "
          f"QEMU {conn.getVersion() // 1000000}.{conn.getVersion() // 1000 % 1000}")
    caps = conn.getCapabilities()
    print(f"getCapabilities() has <externalSnapshot/>: {'externalSnapshot' in caps}")
    guests.cleanup("probe-")
    ok = True
    try:
        def mk(kind, n, start):
            return conn.lookupByName(guests.create(kind, "probe-" + n, start=start).name)

        raw_off = mk("raw", "raw-off", False)
        attempt("internal snapshot, raw disk, shut off",
                lambda: raw_off.snapshotCreateXML(SNAP.format("s1"), 0))
        raw_on = mk("raw", "raw-on", True)
        attempt("internal snapshot, raw disk, running",
                lambda: raw_on.snapshotCreateXML(SNAP.format("s1"), 0))
        attempt("external disk-only snapshot, raw disk, running",
                lambda: raw_on.snapshotCreateXML(SNAP.format("e1"), F.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY))

        blank = mk("blank", "blank", True)
        attempt("QUIESCE without DISK_ONLY (running, no agent channel)",
                lambda: blank.snapshotCreateXML(SNAP.format("q1"), F.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE))
        attempt("DISK_ONLY|QUIESCE, no agent channel configured",
                lambda: blank.snapshotCreateXML(
                    SNAP.format("q2"),
                    F.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | F.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE))
        agent = mk("agent", "agent", True)
        attempt("DISK_ONLY|QUIESCE, agent channel configured but no agent running",
                lambda: agent.snapshotCreateXML(
                    SNAP.format("q3"),
                    F.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | F.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE))
        attempt("LIVE on internal snapshot (running)",
                lambda: blank.snapshotCreateXML(SNAP.format("l1"), F.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE))
        attempt("internal with <memory snapshot='no'/>, running",
                lambda: blank.snapshotCreateXML(
                    "<domainsnapshot><name>m1</name><memory snapshot='no'/>"
                    "<disks><disk name='vda' snapshot='internal'/></disks></domainsnapshot>", 0))
        attempt("internal with memory (default), running",
                lambda: blank.snapshotCreateXML(SNAP.format("i1"), 0))

        ext = mk("blank", "ext", True)
        if attempt("external disk-only snapshot, running",
                   lambda: ext.snapshotCreateXML(SNAP.format("e1"), F.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY)) is None:
            attempt("revert to external snapshot (running)",
                    lambda: ext.revertToSnapshot(ext.snapshotLookupByName("e1")))
            ext.destroy()
            attempt("revert to external snapshot (shut off)",
                    lambda: ext.revertToSnapshot(ext.snapshotLookupByName("e1")))

        uefi_off = mk("uefi", "uefi-off", False)
        attempt("internal snapshot, UEFI pflash guest, shut off",
                lambda: uefi_off.snapshotCreateXML(SNAP.format("u1"), 0))
        uefi_on = mk("uefi", "uefi-on", True)
        attempt("internal snapshot, UEFI pflash guest, running",
                lambda: uefi_on.snapshotCreateXML(SNAP.format("u2"), 0))
        attempt("external disk-only snapshot, UEFI pflash guest, running",
                lambda: uefi_on.snapshotCreateXML(SNAP.format("u3"), F.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY))

        guests.cleanup("probe-")  # idle guests spinning in firmware slow the counter guest's boot
        ok = counter_rollback(conn)
    finally:
        guests.cleanup("probe-")
        conn.close()
    return 0 if ok else 1


def counter_rollback(conn) -> bool:
    t = time.monotonic()
    g = guests.create("counter", "probe-counter", start=True)
    first = guests.wait_for_counter(g.name)
    print(f"counter guest: first counter {first} after {time.monotonic() - t:.1f}s (define+start+boot)")
    dom = conn.lookupByName(g.name)
    guests.wait_for_counter(g.name, above=first + 5)

    # Bracket the snapshot between two reads: the snapshot's counter S satisfies lo <= S <= hi.
    lo, boot = guests.read_counter_state(g.name)
    t = time.monotonic()
    dom.snapshotCreateXML(SNAP.format("mem"), 0)
    t_snap = time.monotonic() - t
    hi = guests.read_counter(g.name)
    later = guests.wait_for_counter(g.name, above=hi + 20)  # let it run well past S
    mark = guests.counter_mark(g.name)
    t = time.monotonic()
    dom.revertToSnapshot(dom.snapshotLookupByName("mem"))
    t_rev = time.monotonic() - t
    restarted = guests.counter_mark(g.name)[0] != mark[0]
    first_after = guests.wait_for_counter(g.name, since=mark)
    after = guests.counter_lines(g.name, since=mark)
    print(f"snapshot with memory {t_snap:.2f}s; counter at snapshot in [{lo}, {hi}]; "
          f"ran on to {later}; revert {t_rev:.2f}s (new QEMU process: {restarted}); "
          f"first values after revert: {after[:3]}")
    ok = lo <= first_after <= hi + 1 and after[0][1] == boot and first_after < later
    print(f"RAM rollback proven: {ok} (same boot id {boot}: the guest did not reboot)")
    return ok


if __name__ == "__main__":
    sys.exit(main())
