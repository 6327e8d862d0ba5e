# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_snapshot and libvirt_snapshot_info, playbook-level, on a real libvirtd with QEMU guests."""

from __future__ import annotations

import os
import sys

from conftest import HERE, run_target  # pylint: disable=import-error

REPO = os.path.dirname(os.path.dirname(HERE))
GUESTS_CLI = os.path.join(REPO, "tests", "backends", "libvirtd", "guests.py")


def test_libvirt_snapshot_target(libvirtd, libvirt_guest):
    guests = {
        "vm_running": libvirt_guest("blank", start=True),
        "vm_stopped": libvirt_guest("blank", start=False),
        "vm_raw": libvirt_guest("raw", start=True),
        "vm_agent": libvirt_guest("agent", start=True),
        "vm_uefi": libvirt_guest("uefi", start=False),
        "vm_backing": libvirt_guest("backing", start=True),
        "vm_counter": libvirt_guest("counter", start=True),
    }
    variables = {key: guest.name for key, guest in guests.items()}
    variables.update(libvirt_uri=libvirtd, guests_cli=GUESTS_CLI, ansible_python_interpreter=sys.executable)
    run_target("libvirt_snapshot", variables)
