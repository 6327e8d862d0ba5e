# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the fault tests: the collection importable from the checkout, the simulators (transport tests),
and the campaign's own backends (own vcsim and fakepve with distinctive secrets), ledger and summary line."""

from __future__ import annotations

import copy
import os
import sys

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
ROOT = os.path.join(REPO, "build", "collections")
LINK = os.path.join(ROOT, "ansible_collections", "prechange", "snapshots")
if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(REPO, LINK)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for backend in ("fakepve", "vcsim"):
    path = os.path.join(TESTS, "backends", backend)
    if path not in sys.path:
        sys.path.insert(0, path)

from pve import pve, pve_cluster  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from vcsim import vcsim  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import campaign  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

_LEDGER = campaign.Ledger()


@pytest.fixture(scope="session")
def ledger():
    return _LEDGER


@pytest.fixture(scope="session")
def seeds(ledger):
    return campaign.Seeds(ledger)


@pytest.fixture(scope="session")
def vc(ledger):
    """A vcsim of the campaign's own (20 VMs: DC0_H0_VM0-9, DC0_C0_RP0_VM0-9) with a password nobody else uses."""
    from vcsim import Vcsim, build  # pylint: disable=import-outside-toplevel
    password = campaign.secret()
    ledger.secrets.add(password)
    sim = Vcsim(vms=20, password=password, binary=build())
    try:
        info = sim.start()
        backend = campaign.it.vmware_backend(info, [])
        backend.truth = campaign.Truth("vmware", backend.conn)
        backend.info = info
        yield backend
        backend.truth.close()
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def pv(ledger):
    """A fakepve of the campaign's own: guests.json plus guests 300-309, a secret password and API token."""
    pytest.importorskip("fakepve")
    import pve as pvemod  # pylint: disable=import-outside-toplevel
    password, token = campaign.secret(), campaign.secret()
    ledger.secrets.update((password, token))
    layout = copy.deepcopy(pvemod.read_layout())
    layout["tokens"] = {"root@pam!ci": token}
    for vmid in range(300, 310):
        layout["guests"].append({"vmid": vmid, "type": "qemu", "name": "fault%d" % vmid, "node": "pve%d" % (vmid % 3 + 1),
                                 "status": "running",
                                 "config": {"memory": 512, "scsi0": "local-lvm:vm-%d-disk-0,size=8G" % vmid}})
    with pvemod.serve(layout, password=password) as cluster:
        backend = campaign.it.proxmox_backend(cluster, [])
        backend.truth = campaign.Truth("proxmox", backend.conn)
        backend.cluster = cluster
        yield backend


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
    if any(_LEDGER.count(name) for name in campaign.Ledger.COUNTERS) and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if not _LEDGER.faults:
        return
    terminalreporter.write_sep("=", "fault campaign")
    for line in _LEDGER.report_lines(everything=bool(os.environ.get("FAULTS_VERBOSE"))):
        terminalreporter.write_line(line)
    terminalreporter.write_line(_LEDGER.summary_line())
