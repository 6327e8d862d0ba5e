# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Self-tests of the real libvirt test layer: fixtures, guest kinds, counter rollback.

Run: python -m pytest tests/backends/libvirtd (as root; starts libvirtd if needed, ~30 s).
"""

from __future__ import annotations

import importlib.util
import os
import sys

_name = "prechange_pytest_libvirtd"
if _name not in sys.modules:  # the same module object whether or not -p loaded it by name
    _spec = importlib.util.spec_from_file_location(
        _name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytest_libvirtd.py"))
    sys.modules[_name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_name])
libvirtd = sys.modules[_name].libvirtd
libvirt_guest = sys.modules[_name].libvirt_guest
libvirt_guests = sys.modules[_name].libvirt_guests

SNAP = "<domainsnapshot><name>{}</name></domainsnapshot>"


def test_internal_snapshot_roundtrip_shut_off(libvirtd, libvirt_guest):
    import libvirt

    g = libvirt_guest("blank")
    conn = libvirt.open(libvirtd)
    try:
        dom = conn.lookupByName(g.name)
        assert not dom.isActive()
        snap = dom.snapshotCreateXML(SNAP.format("before"), 0)
        assert dom.snapshotListNames() == ["before"]
        dom.revertToSnapshot(snap)
        snap.delete(0)
        assert dom.snapshotNum() == 0
    finally:
        conn.close()


def test_raw_disk_refuses_internal_snapshot(libvirtd, libvirt_guest):
    import libvirt
    import pytest

    g = libvirt_guest("raw")
    conn = libvirt.open(libvirtd)
    try:
        with pytest.raises(libvirt.libvirtError, match="unsupported for storage type raw"):
            conn.lookupByName(g.name).snapshotCreateXML(SNAP.format("s"), 0)
    finally:
        conn.close()


def test_counter_guest_ram_rolls_back(libvirtd, libvirt_guest):
    import libvirt

    g = libvirt_guest("counter", start=True)
    first = g.wait_for_counter()
    g.wait_for_counter(above=first + 3)
    conn = libvirt.open(libvirtd)
    try:
        dom = conn.lookupByName(g.name)
        lo = g.read_counter()
        dom.snapshotCreateXML(SNAP.format("mem"), 0)
        hi = g.read_counter()  # the snapshot's counter is in [lo, hi]
        later = g.wait_for_counter(above=hi + 10)
        mark = g.counter_mark()
        dom.revertToSnapshot(dom.snapshotLookupByName("mem"))
        after = g.wait_for_counter(since=mark)  # first value printed after the revert
        assert lo <= after <= hi + 1 < later
        assert g.wait_for_counter(above=after) > after  # and it keeps counting
    finally:
        conn.close()


def test_cleanup_spares_unmarked_domains(libvirtd, libvirt_guests):
    import libvirt

    g = libvirt_guests
    name = g.PREFIX + "pt-unmarked"
    conn = libvirt.open(libvirtd)
    try:
        for dom in conn.listAllDomains():
            if dom.name() == name:
                dom.undefine()
        xml = g._domain_xml("blank", name, "/nonexistent", "/nonexistent/disk.qcow2")
        xml = xml.replace(xml[xml.index("<metadata>"):xml.index("</metadata>") + 11], "")
        conn.defineXML(xml)
        try:
            assert name not in g.cleanup(g.PREFIX + "pt-unmarked")
            assert name in [d.name() for d in conn.listAllDomains()]
        finally:
            conn.lookupByName(name).undefine()
    finally:
        conn.close()
