# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's state on the hypervisor (issue 10): leases, interrupted runs, races and prune, through the playbooks.

Every run is a separate ansible-playbook process, as a second operator or a fresh AWX container would be;
nothing is shared between them but the hypervisor. Results are read back from the API (pyvmomi,
proxmoxer, libvirt-python), never through the collection.

    python -m pytest tests/integration/test_workflow_state.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from conftest import (  # pylint: disable=import-error
    Findings,
    Workspace,
    ansible_env,
    api_snapshots,
    new_run_id,
    workflow_backend,
)

VMWARE_VMS = ["DC0_H0_VM0", "DC0_H0_VM1"]
MARKER = re.compile(r"\[prechange\.snapshots v1 [^\]]*\]")


def of_run(snapshots, run_id):
    """The names of one run's snapshots among a VM's snapshot names."""
    return [name for name in snapshots if name == "prechange-" + run_id]


def markers(provider, conn, vm):
    """{snapshot name: marker line} read from the platform's own API."""
    return {name: (MARKER.findall(info.get("description") or "") or [""])[-1]
            for name, info in api_snapshots(provider, conn, vm).items()}


def cleanup(ws, run_ids):
    """Release whatever these runs left, so later tests start from a free VM (through the revert playbook)."""
    for run_id in run_ids:
        ws.run("prechange.snapshots.revert", {"revert_or_prune_run_id": run_id, "revert_action": "delete"})


@pytest.mark.parametrize("provider", ["libvirt", "vmware", "proxmox"])
def test_a_live_lease_is_refused_by_another_run_until_released(provider, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    run_a, run_b = new_run_id("lease"), new_run_id("other")
    try:
        held = ws.run("prechange.snapshots.snapshot", {"prechange_run_id": run_a, "prechange_ticket": "CHG-A"})
        assert held.returncode == 0, held.stdout[-6000:]
        refused = ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_b})
        findings = Findings("a second run while run A holds the VMs (%s)" % provider)
        findings.expect(refused.returncode != 0, "the second run exited 0")
        findings.expect(re.search(r"held by maintenance run %s \(ticket CHG-A\) until \d{4}-" % run_a, refused.stdout),
                        "the refusal does not name run A, its ticket and the lease's end")
        findings.expect(ws.changed_hosts() == [], "the change ran on %s" % ws.changed_hosts())
        snaps = ws.snapshots()
        findings.expect(all(of_run(snaps[h], run_b) == [] for h in ws.hosts), "run B made a snapshot: %s" % snaps)
        findings.done(refused.stdout)

        released = ws.run("prechange.snapshots.revert", {"revert_or_prune_run_id": run_a, "revert_action": "release"})
        assert released.returncode == 0, released.stdout[-6000:]
        for host, vm in ws.hosts.items():
            line = markers(provider, backend.conn, vm)["prechange-" + run_a]
            assert "phase=released" in line and "lease=" not in line, (host, line)

        passed = ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_b})
        assert passed.returncode == 0, passed.stdout[-6000:]
        snaps = ws.snapshots()
        assert all(of_run(snaps[h], run_b) == [] and of_run(snaps[h], run_a) for h in ws.hosts), snaps
    finally:
        cleanup(ws, [run_a, run_b])


@pytest.mark.parametrize("provider", ["vmware", "proxmox"])
def test_an_interrupted_run_is_adopted_only_by_its_own_run_id(provider, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars,
                   change_probe=True)
    run_a, run_b = new_run_id("intr"), new_run_id("other")
    try:
        # Run A takes its snapshots and never reaches a verdict; its lease runs out.
        made = ws.run("prechange.snapshots.snapshot", {"prechange_run_id": run_a, "snapshot_lease": "2s"})
        assert made.returncode == 0, made.stdout[-6000:]
        time.sleep(3)
        refused = ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_b})
        assert refused.returncode != 0
        assert "maintenance run %s was interrupted" % run_a in refused.stdout, refused.stdout[-6000:]
        assert "revert_or_prune_run_id=%s" % run_a in refused.stdout and "revert_action=release" in refused.stdout
        assert ws.changed_hosts() == []

        resumed = ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_a})
        findings = Findings("run A resumed with its run id (%s)" % provider)
        findings.expect(resumed.returncode == 0, "the resumed run failed")
        for host in ws.hosts:
            during = ws.during(host) or {"snapshots": []}
            findings.expect(of_run(during["snapshots"], run_a) == ["prechange-" + run_a],
                            "%s: during the change the VM had %s, not exactly run A's one snapshot"
                            % (host, during["snapshots"]))
        snaps = ws.snapshots()
        findings.expect(all(not of_run(snaps[h], run_a) for h in ws.hosts), "run A's snapshot left: %s" % snaps)
        findings.done(resumed.stdout)
    finally:
        cleanup(ws, [run_a, run_b])


def test_two_runs_with_one_run_id_at_once_leave_at_most_one_snapshot_per_vm(request, tmp_path):
    """vSphere allows two snapshots of one name: the race is real there."""
    backend = workflow_backend("vmware", request, VMWARE_VMS)
    ws = Workspace(tmp_path, "vmware", backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    run_id = new_run_id("race")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "prechange.snapshots.snapshot",
               "-i", str(ws.inventory), "-e", "prechange_run_id=%s" % run_id]
    try:
        runs = [subprocess.Popen(command, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True) for _run in range(2)]
        outputs = [run.communicate(timeout=600)[0] for run in runs]
        codes = [run.returncode for run in runs]
        snaps = ws.snapshots()
        assert all(len(of_run(snaps[h], run_id)) <= 1 for h in ws.hosts), (snaps, outputs)
        # Whoever did not get a VM says so; no run reports success for a VM it does not hold.
        assert 0 not in codes or codes.count(0) == 1, (codes, outputs)
        lines = {h: markers("vmware", backend.conn, vm).get("prechange-" + run_id, "") for h, vm in ws.hosts.items()}
        assert all(not line or "phase=pending" in line for line in lines.values()), lines
    finally:
        cleanup(ws, [run_id])


def test_prune_honours_limit_and_never_touches_a_live_lease(request, tmp_path):
    backend = workflow_backend("proxmox", request, VMWARE_VMS)
    ws = Workspace(tmp_path, "proxmox", backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    run_id = new_run_id("prune")
    try:
        past = ws.run("prechange.snapshots.snapshot",
                      {"prechange_run_id": run_id, "snapshot_expires": "2020-01-01T00:00:00Z"})
        assert past.returncode != 0 and "already in the past" in past.stdout, past.stdout[-4000:]
        assert all(not of_run(s, run_id) for s in ws.snapshots().values())

        made = ws.run("prechange.snapshots.snapshot", {"prechange_run_id": run_id, "snapshot_expires": "2s"})
        assert made.returncode == 0, made.stdout[-6000:]
        time.sleep(3)
        held = ws.run("prechange.snapshots.prune", {})
        assert held.returncode == 0, held.stdout[-6000:]
        assert all(of_run(s, run_id) for s in ws.snapshots().values()), "prune deleted a snapshot under a live lease"

        released = ws.run("prechange.snapshots.revert", {"revert_or_prune_run_id": run_id, "revert_action": "release"})
        assert released.returncode == 0, released.stdout[-6000:]
        first, second = sorted(ws.hosts)
        limited = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "prechange.snapshots.prune",
             "-i", str(ws.inventory), "--limit", first], env=ansible_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True, timeout=600, check=False)
        assert limited.returncode == 0, limited.stdout[-6000:]
        snaps = ws.snapshots()
        assert not of_run(snaps[first], run_id), "prune missed the expired snapshot of %s" % first
        assert of_run(snaps[second], run_id), "prune went past --limit to %s" % second
    finally:
        cleanup(ws, [run_id])
