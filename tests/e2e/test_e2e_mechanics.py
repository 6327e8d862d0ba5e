# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The harness's own proof, by hand with libvirt-python (no collection code):
a memory snapshot of the real guest, a change, a revert, and the guest answers
again without a reboot with the change gone. The scenario tests build on this."""


def test_memory_revert_without_reboot(e2e_guest, record_property):
    result = e2e_guest.mechanics()
    for name, secs in result["timings_seconds"].items():
        record_property(name, secs)
    assert result["ok"]
    assert result["boot_id_unchanged"]
    assert result["uptime_after"] >= result["uptime_before"]
    assert e2e_guest.snapshots() == []


def test_inventory_has_the_collection_vars(e2e_guest, tmp_path):
    text = open(e2e_guest.inventory(str(tmp_path / "inv.yml"))).read()
    for line in ("ansible_host: 127.0.0.1", "ansible_user: root", "prechange_provider: libvirt",
                 "prechange_vm: pc-e2e-guest", 'prechange_libvirt_uri: "qemu:///system"'):
        assert line in text
