# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's "your own change, guarded" example, run exactly as printed, on the real libvirtd.

The playbook is the README's YAML block, byte for byte; only the inventory and the two task files
it names are the user's. The change edits each guest's libvirt description (a stand-in for what a
change does to a VM); the checks fail on one host. Read back with libvirt-python, not through the
collection: the failing host's VM is reverted (its description is the old one again) and its
snapshot kept and marked reverted; the passing host keeps its change and its snapshot is gone.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from conftest import REPO, run_playbook  # pylint: disable=import-error

libvirt = pytest.importorskip("libvirt")

MARKER = re.compile(r"\[prechange\.snapshots v1 [^\]]*\]")


def readme_block(after):
    """The first ```yaml block after the line containing ``after`` in README.md."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    start = text.index(after)
    match = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert match, "no yaml block after %r in README.md" % after
    return match.group(1)


def description(dom):
    try:
        return dom.metadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, None, 0)
    except libvirt.libvirtError:
        return ""


def test_readme_guard_example_reverts_the_failed_host_and_prunes_the_good_one(libvirtd, libvirt_guest, tmp_path):
    good, bad = libvirt_guest("blank", start=True), libvirt_guest("blank", start=True)
    conn = libvirt.open(libvirtd)
    try:
        for guest in (good, bad):
            conn.lookupByName(guest.name).setMetadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, "before", None, None,
                                                      libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        (tmp_path / "site.yml").write_text(readme_block("the `guard` role runs your change guarded by a snapshot"))
        (tmp_path / "tasks").mkdir()
        (tmp_path / "tasks" / "upgrade.yml").write_text(
            "- name: Upgrade (a stand-in that changes the VM)\n"
            "  ansible.builtin.command: virsh -c {{ prechange_libvirt_uri }} desc {{ prechange_vm }} --live --config"
            " --new-desc after\n"
            "  changed_when: true\n")
        (tmp_path / "tasks" / "checks.yml").write_text(
            "- name: The app answers\n"
            "  ansible.builtin.assert:\n"
            "    that: not (app_broken | default(false))\n")
        (tmp_path / "inventory.yml").write_text(
            "app:\n"
            "  vars:\n"
            "    ansible_connection: local\n"
            "    ansible_python_interpreter: %s\n"
            "    prechange_provider: libvirt\n"
            "    prechange_libvirt_uri: %s\n"
            "    verify_reachable: false\n"
            "    verify_no_failed_units: false\n"
            "  hosts:\n"
            "    good: {prechange_vm: %s}\n"
            "    bad: {prechange_vm: %s, app_broken: true}\n" % (sys.executable, libvirtd, good.name, bad.name))
        result = run_playbook(str(tmp_path / "site.yml"), inventory=str(tmp_path / "inventory.yml"))
        out = result.stdout
        assert result.returncode == 2, out  # the reverted host fails, as the README says
        assert re.search(r"good\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", out), out
        assert re.search(r"bad\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1", out), out
        assert "the change was reverted to snapshot" in out and "the checks failed" in out

        good_dom, bad_dom = conn.lookupByName(good.name), conn.lookupByName(bad.name)
        assert description(good_dom) == "after"
        assert good_dom.snapshotListNames() == []
        assert description(bad_dom) == "before"
        assert bad_dom.isActive() == 1  # back in the power state it had
        snaps = bad_dom.listAllSnapshots()
        assert len(snaps) == 1
        marker = MARKER.findall(snaps[0].getXMLDesc())
        assert marker and "phase=reverted" in marker[0] and "lease=" not in marker[0]
    finally:
        conn.close()
