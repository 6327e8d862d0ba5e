# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Smoke of the controller-side plugins on whatever ansible-core runs the tests (issue 11, point 6).

tests/cores/run.sh runs this file (with the unit tests) once per ansible-core the collection claims
(meta/runtime.yml); the main pytest stage runs it on the test virtualenv's ansible-core. It covers the
code that leans on ansible-core internals, on Proxmox VE (fakepve, which starts in-process quickly):

- the modules' action plugins (plugin_utils/_in_process.py), both ways: the module code run inside the
  action plugin, and the module shipped as a module process (``prechange_snapshots_in_process: false``);
  the -vvv line of the action plugin proves which way each call went;
- the roles' workflow action (plugins/action/workflow.py) through the maintenance playbook, with one
  host whose checks pass and one whose checks fail.

Every outcome is read back from the Proxmox API (proxmoxer), never from the collection.

    python -m pytest tests/integration/test_cores_smoke.py
"""

from __future__ import annotations

import json
import os
import shlex
import sys

import ansible

from conftest import (  # pylint: disable=import-error
    Findings, Workspace, api_snapshots, new_run_id, proxmox_backend, run_playbook,
)

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "conftest.py")
IN_PROCESS = "running in the action plugin on the controller"
MODULE_PROCESS = "running the module (prechange_snapshots_in_process is false)"

MODULE_TASKS = """
    - name: Take a snapshot, {mode}
      prechange.snapshots.proxmox_snapshot:
        vm: {vm}
        name: {name}
        ticket: CHG-CORES
      vars: {{prechange_snapshots_in_process: {in_process}}}
      register: created_{key}
    - name: List it, {mode}
      prechange.snapshots.proxmox_snapshot_info:
        vm: {vm}
      vars: {{prechange_snapshots_in_process: {in_process}}}
      register: listed_{key}
    - name: Read the VM's snapshots from the API while the snapshot exists
      ansible.builtin.command: {probe}
      changed_when: false
    - name: Delete it, {mode}
      prechange.snapshots.proxmox_snapshot:
        vm: {vm}
        name: {name}
        state: absent
      vars: {{prechange_snapshots_in_process: {in_process}}}
      register: deleted_{key}
"""
MODULE_PLAY = """
- name: The snapshot modules, run in the action plugin and as a module process
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/prechange.snapshots.proxmox: {defaults}
  tasks:
{tasks}
    - name: Keep the module results for the test
      ansible.builtin.copy:
        content: "{{{{ {results_expr} | to_json }}}}"
        dest: {results}
        mode: "0600"
"""
WAYS = {"in_process": (True, IN_PROCESS), "module_process": (False, MODULE_PROCESS)}


def test_ansible_core_under_test(capsys):
    """Name the ansible-core and Python that this run tested (the matrix's log shows it)."""
    with capsys.disabled():
        print("\n[cores] ansible-core %s on Python %s" % (ansible.__version__, sys.version.split()[0]))
    assert ansible.__version__


def test_modules_in_process_and_as_a_module_process(pve, tmp_path):
    backend = proxmox_backend(pve)
    vm = 100
    names = {key: "cores-" + key.replace("_", "-") for key in WAYS}
    tasks, results = [], tmp_path / "results.json"
    for key, (in_process, _line) in WAYS.items():
        probe = "%s %s snapshots proxmox %s %s %s" % (
            shlex.quote(sys.executable), shlex.quote(PROBE), shlex.quote(json.dumps(backend.conn)), vm,
            tmp_path / ("during-%s.json" % key))
        tasks.append(MODULE_TASKS.format(mode=key.replace("_", " "), key=key, in_process=json.dumps(in_process),
                                         vm=vm, name=names[key], probe=json.dumps(probe)))
    results_expr = "{%s}" % ", ".join("'%s_%s': %s_%s" % (what, key, what, key)
                                      for key in WAYS for what in ("created", "listed", "deleted"))
    play = tmp_path / "modules.yml"
    play.write_text(MODULE_PLAY.format(defaults=json.dumps(backend.module_args), tasks="".join(tasks),
                                       results_expr=results_expr, results=json.dumps(str(results))))
    before = api_snapshots("proxmox", backend.conn, vm)
    assert not set(names.values()) & set(before), before

    proc = run_playbook(str(play), verbosity=3)

    findings = Findings("proxmox_snapshot and proxmox_snapshot_info in process and as a module process")
    findings.expect(proc.returncode == 0, "the play failed (rc=%s)" % proc.returncode)
    out = json.loads(results.read_text()) if results.exists() else None
    findings.expect(out is not None, "the play wrote no results")
    after = api_snapshots("proxmox", backend.conn, vm)
    for key, (_in_process, line) in WAYS.items():
        name = names[key]
        findings.expect(proc.stdout.count(line) == 3, "%d of the 3 module calls said %r (-vvv), not 3"
                        % (proc.stdout.count(line), line))
        during = tmp_path / ("during-%s.json" % key)
        seen = json.loads(during.read_text()) if during.exists() else {}
        findings.expect(name in seen.get("snapshots", {}), "%s: the API showed no snapshot %s after the create "
                        "task: %s" % (key, name, seen))
        findings.expect("CHG-CORES" in seen.get("snapshots", {}).get(name, {}).get("description", ""),
                        "%s: the snapshot's description on the API has no marker with the ticket: %s" % (key, seen))
        findings.expect(name not in after, "%s: the snapshot %s is still on the API after the absent task"
                        % (key, name))
        if out is not None:
            created, deleted = out["created_" + key], out["deleted_" + key]
            findings.expect(created.get("changed") is True and deleted.get("changed") is True,
                            "%s: create/delete did not report changed: %s / %s" % (key, created, deleted))
            listed = [s.get("name") for s in (out["listed_" + key].get("snapshots") or [])]
            findings.expect(name in listed, "%s: the info module did not list %s: %s" % (key, name, listed))
    findings.expect(out is None or pve.password not in results.read_text(), "the API password is in a result")
    findings.done(proc.stdout)


def test_maintenance_prunes_the_passing_host_and_reverts_the_failing_one(pve, tmp_path):
    backend = proxmox_backend(pve)
    run_id = new_run_id("cores")
    snapshot = "prechange-" + run_id
    failing_check = tmp_path / "check-fails.yml"
    failing_check.write_text(
        "- name: My check | fails\n"
        "  ansible.builtin.set_fact:\n"
        "    verify_user_failures: \"{{ verify_user_failures + ['my check failed on purpose'] }}\"\n")
    # Both changes power the VM off through the API: only a revert brings a VM back running.
    ws = Workspace(tmp_path, "proxmox", backend.conn, backend.hosts(), change_probe=True, change_stops_vm=True,
                   host_vars={"h2": {"verify_tasks_file": str(failing_check)}}, group_vars=backend.inventory_vars)
    assert ws.power() == {"h1": "running", "h2": "running"}

    result = ws.run("prechange.snapshots.maintenance", {"prechange_run_id": run_id, "snapshot_memory": False})

    findings = Findings("maintenance with a passing host (h1) and a failing host (h2)")
    findings.expect(result.returncode != 0, "the run exited 0 although h2's checks failed")
    findings.expect(ws.changed_hosts() == ["h1", "h2"], "the change ran on %s only" % ws.changed_hosts())
    for host in ws.hosts:
        seen = ws.during(host)
        findings.expect(seen is not None and snapshot in seen["snapshots"],
                        "%s: no snapshot %s on the API during the change" % (host, snapshot))
    snapshots, power = ws.snapshots(), ws.power()
    findings.expect(snapshot not in snapshots["h1"], "h1 passed, yet its snapshot is still on the API")
    findings.expect(power["h1"] == "stopped", "h1 passed, yet its VM is %s (the change left it stopped)"
                    % power["h1"])
    findings.expect(power["h2"] == "running", "h2 failed its checks, yet its VM is %s, not reverted to running"
                    % power["h2"])
    findings.expect(snapshot in snapshots["h2"] and "reverted" in snapshots["h2"][snapshot]["description"],
                    "h2's snapshot is not kept with the phase reverted on the API: %s" % snapshots["h2"])
    findings.done(result.stdout)
