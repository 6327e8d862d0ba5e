# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX / Automation Platform job semantics, proven with ansible-runner (what AWX runs a job with).

Every job gets its own private data dir and a fresh HOME, as an AWX job in a new container does: nothing
is kept between jobs but what AWX keeps (the job's artifacts, from ``set_stats``) and the hypervisor.
The snapshots are read back from the Proxmox API (fakepve), never through the collection.

    python -m pytest tests/integration/test_awx_runner.py
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys

import pytest

from conftest import LINK, api_snapshots, proxmox_backend  # pylint: disable=import-error

ansible_runner = pytest.importorskip("ansible_runner")

MARKER = re.compile(r"\[prechange\.snapshots v1 ([^\]]*)\]")
CHANGE = ("- name: My change | deploy v2\n"
          "  ansible.builtin.copy: {dest: '{{ job_state }}/{{ inventory_hostname }}', content: v2}\n")


def marker(description):
    found = MARKER.findall(description or "")
    return dict(item.split("=", 1) for item in found[-1].split()) if found else {}


def job(tmp_path, name, playbook, hosts, backend, extravars, limit=None):
    """One AWX-like job: a fresh private data dir and HOME; returns (runner, artifact_data, artifact dir)."""
    pdd = tmp_path / name
    home = pdd / "home"
    (pdd / "project").mkdir(parents=True)
    home.mkdir()
    (pdd / "project" / "change.yml").write_text(CHANGE)
    inventory = {"all": {"hosts": {h: {"prechange_vm": vm} for h, vm in hosts.items()},
                         "vars": dict(backend.inventory_vars, ansible_connection="local",
                                      ansible_python_interpreter=sys.executable, prechange_provider=backend.provider,
                                      guard_change_tasks=str(pdd / "project" / "change.yml"),
                                      verify_no_failed_units=False, job_state=str(tmp_path / "state"))}}
    (tmp_path / "state").mkdir(exist_ok=True)
    envvars = {"HOME": str(home), "ANSIBLE_COLLECTIONS_PATH": os.path.dirname(os.path.dirname(os.path.dirname(LINK))),
               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               "ANSIBLE_LOCAL_TEMP": str(home / ".ansible" / "tmp")}
    runner = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, inventory=json.dumps(inventory),
                                extravars=extravars, envvars=envvars, limit=limit, quiet=True, ident=name)
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    artifacts = stats[-1]["event_data"].get("artifact_data", {}) if stats else {}
    return runner, artifacts, pdd / "artifacts" / name


def test_maintenance_job_then_revert_job_from_artifacts_and_hypervisor_alone(tmp_path, pve):
    backend = proxmox_backend(pve, vms=(100, 101))
    hosts = {"web01": 100, "web02": 101}
    # Two slices of one sliced job (AWX runs them as one workflow job: the same awx_workflow_job_id).
    slices = []
    for index, host in enumerate(sorted(hosts), 1):
        runner, artifacts, artifact_dir = job(
            tmp_path, "maintenance-slice%d" % index, "prechange.snapshots.maintenance", hosts, backend,
            {"awx_workflow_job_id": 4242, "awx_job_id": 600 + index, "revert_or_prune_on_success": "keep"},
            limit=host)
        assert runner.rc == 0, runner.stdout.read()
        slices.append((runner, artifacts, artifact_dir))
    run_ids = {artifacts["prechange_run_id"] for _r, artifacts, _d in slices}
    assert run_ids == {"awx-wf-4242"}, "every slice of one workflow job must share the run id"
    for (runner, artifacts, artifact_dir), host in zip(slices, sorted(hosts)):
        assert artifacts["prechange_status"] == "ok"
        report = artifacts["prechange_report"]
        assert report["hosts"][host]["outcome"] == "ok" and report["hosts"][host]["action"] == "kept"
        # The report lands with the job's artifacts, and its summary is in the job output.
        written = glob.glob(str(artifact_dir / "prechange-reports" / "maintenance-awx-wf-4242.json"))
        assert written and json.load(open(written[0], encoding="utf-8"))["hosts"]
        assert report["report"] == written[0]
        stdout = open(artifact_dir / "stdout", encoding="utf-8").read()
        assert "PRECHANGE_STATUS=ok run=awx-wf-4242" in stdout
    # Read from the hypervisor: each VM holds exactly one snapshot of that run, kept and verified.
    kept = {}
    for host, vm in hosts.items():
        ours = {n: marker(s["description"]) for n, s in api_snapshots("proxmox", backend.conn, vm).items()
                if marker(s["description"]).get("run") == "awx-wf-4242"}
        assert list(ours) == ["prechange-awx-wf-4242"], ours
        assert ours["prechange-awx-wf-4242"]["phase"] == "verified"
        kept[host] = ours
    # The next workflow node: a revert job in a new container, given only the artifacts (AWX passes
    # set_stats data to the next node as extra vars).
    handed_on = {"prechange_run_id": slices[0][1]["prechange_run_id"]}
    runner, artifacts, artifact_dir = job(tmp_path, "revert", "prechange.snapshots.revert", hosts, backend, handed_on)
    assert runner.rc == 0, runner.stdout.read()
    assert artifacts["prechange_status"] == "reverted"
    assert {h: r["outcome"] for h, r in artifacts["prechange_report"]["hosts"].items()} == {
        "web01": "reverted", "web02": "reverted"}
    assert os.path.exists(artifact_dir / "prechange-reports" / "revert-awx-wf-4242.json")
    for host, vm in hosts.items():
        ours = {n: marker(s["description"]) for n, s in api_snapshots("proxmox", backend.conn, vm).items()
                if marker(s["description"]).get("run") == "awx-wf-4242"}
        assert ours["prechange-awx-wf-4242"]["phase"] == "reverted", (host, ours)
