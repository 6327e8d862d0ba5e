# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role behaviour on the real libvirtd, read back with libvirt-python (never through the collection).

The molecule scenarios cover the whole maintenance workflow; this covers what a user's own playbook
does with the roles: a verdict counts only for the snapshot it was taken after.
"""

from __future__ import annotations

import json
import sys
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest

from conftest import run_target  # pylint: disable=import-error

MARKER = "[prechange.snapshots v1 "


def _snapshots(conn, name):
    """{snapshot name: (marker dict or None)} of one domain, and its current snapshot's name."""
    dom = conn.lookupByName(name)
    out = {}
    for snap in dom.listAllSnapshots():
        text = (ET.fromstring(snap.getXMLDesc()).findtext("description") or "").strip()
        last = text.split("\n")[-1].strip()
        marker = None
        if last.startswith(MARKER) and last.endswith("]"):
            marker = {}
            for pair in last[len(MARKER):-1].split():
                key, _sep, value = pair.partition("=")
                marker[key] = unquote(value)
        out[snap.getName()] = marker
    current = dom.snapshotCurrent().getName() if dom.hasCurrentSnapshot() else None
    return out, current


def _title(conn, name):
    import libvirt  # pylint: disable=import-outside-toplevel
    try:
        return conn.lookupByName(name).metadata(libvirt.VIR_DOMAIN_METADATA_TITLE, None)
    except libvirt.libvirtError:
        return ""


def test_revert_or_prune_keeps_the_snapshot_without_a_verdict_of_its_own(libvirtd, libvirt_guests, tmp_path):
    import libvirt  # pylint: disable=import-outside-toplevel
    guests = libvirt_guests
    tag = uuid.uuid4().hex[:6]
    names = {key: "%snoverdict-%s-%s" % (guests.PREFIX, key.split("_")[1], tag)
             for key in ("nv_before", "nv_none", "nv_failed")}
    guests.cleanup(guests.PREFIX + "noverdict-")
    conn = libvirt.open(libvirtd)
    try:
        for name in names.values():
            guests.create("blank", name, start=True, uri=libvirtd)
            conn.lookupByName(name).setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, "app v1", None, None,
                                                libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        out = tmp_path / "run.json"
        variables = dict(names, libvirt_uri=libvirtd, nv_out=str(out), ansible_python_interpreter=sys.executable)
        run_target("revert_or_prune_no_verdict", variables)
        run = json.loads(out.read_text())
        mine = run["name"]

        # nv_before: verify passed BEFORE the snapshot, then the change failed in block/always: the
        # snapshot is still there (not deleted), its marker records a verdict-less keep, nothing
        # holds the VM any more, and the half-applied change is still on the VM (nobody reverted).
        snaps, current = _snapshots(conn, names["nv_before"])
        assert list(snaps) == [mine], snaps
        assert snaps[mine]["run"] == run["run_id"], snaps
        assert snaps[mine]["phase"] == "kept", snaps
        assert "lease" not in snaps[mine] and "holder" not in snaps[mine], snaps
        assert current == mine
        assert _title(conn, names["nv_before"]) == "app v2 HALF"

        # nv_none: no verdict at all: kept, not reverted, not deleted.
        snaps, _current = _snapshots(conn, names["nv_none"])
        assert list(snaps) == [mine], snaps
        assert snaps[mine]["phase"] == "kept", snaps
        assert _title(conn, names["nv_none"]) == "app v1"

        # nv_failed: the failed change (seen by a rescue) was reverted: the VM is back on "app v1", at
        # this run's snapshot, which the marker records as reverted.
        snaps, current = _snapshots(conn, names["nv_failed"])
        assert list(snaps) == [mine], snaps
        assert snaps[mine]["phase"] == "reverted", snaps
        assert current == mine
        assert _title(conn, names["nv_failed"]) == "app v1"
        assert conn.lookupByName(names["nv_failed"]).isActive()
    except libvirt.libvirtError as error:
        pytest.fail("libvirt: %s" % error, pytrace=False)
    finally:
        conn.close()
        guests.cleanup(guests.PREFIX + "noverdict-")
