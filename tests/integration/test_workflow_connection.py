# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection settings from anywhere (issue 10, item 8), on VMware (vcsim) and Proxmox VE (fakepve).

The same good workflow (snapshot, the user's change, the user's check, prune on success) must work
whether the connection comes only from the inventory's ``prechange_*`` variables, only from a play's
``module_defaults`` groups in the user's own playbook (include_role snapshot / revert_or_prune), or only
from the modules' environment variables (VMWARE_* / PROXMOX_*, as the doc fragments say). The user's
change task reads the VM's snapshots from the hypervisor's API while it runs, so the test sees that the
snapshot really existed during the change; after the run the API must show it gone again.

    python -m pytest tests/integration/test_workflow_connection.py
"""

from __future__ import annotations

import json

import pytest

from conftest import (  # pylint: disable=import-error
    Findings, Workspace, new_run_id, proxmox_backend, vmware_backend, vsphere_remove_snapshots,
)

VMWARE_VMS = ["DC0_H0_VM2", "DC0_H0_VM3"]
SOURCES = ["inventory", "module_defaults", "environment"]

OWN_PLAYBOOK = """
- name: My own maintenance play, connection settings in module_defaults only
  hosts: all
  gather_facts: false
  module_defaults:
    group/prechange.snapshots.{provider}: {defaults}
  tasks:
    - name: Take the pre-change snapshot
      ansible.builtin.include_role:
        name: prechange.snapshots.snapshot
    - name: My change, checked
      block:
        - name: My change
          ansible.builtin.include_tasks: {change}
        - name: My checks
          ansible.builtin.include_role:
            name: prechange.snapshots.verify
      rescue:
        - name: Note the failed change
          ansible.builtin.set_fact:
            my_change_failed: true
      always:
        - name: Revert or prune
          ansible.builtin.include_role:
            name: prechange.snapshots.revert_or_prune
          vars:
            revert_or_prune_change_failed: "{{{{ my_change_failed | default(false) }}}}"
"""


def make_backend(provider, request):
    if provider == "proxmox":
        return proxmox_backend(request.getfixturevalue("pve"))
    return vmware_backend(request.getfixturevalue("vcsim"), VMWARE_VMS)


def environment_for(backend):
    """The modules' own environment variables (plugins/doc_fragments/{vmware,proxmox}.py)."""
    args = backend.module_args
    if backend.provider == "vmware":
        return {"VMWARE_HOST": args["hostname"], "VMWARE_PORT": str(args["port"]), "VMWARE_USER": args["username"],
                "VMWARE_PASSWORD": args["password"], "VMWARE_VALIDATE_CERTS": "false"}
    return {"PROXMOX_HOST": args["api_host"], "PROXMOX_PORT": str(args["api_port"]),
            "PROXMOX_USER": args["api_user"], "PROXMOX_PASSWORD": args["api_password"],
            "PROXMOX_CA_PATH": args["ca_path"]}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("provider", ["vmware", "proxmox"])
def test_good_workflow_with_connection_from(provider, source, request, tmp_path):
    backend = make_backend(provider, request)
    run_id = new_run_id("conn")
    snapshot_name = "prechange-" + run_id
    group_vars = backend.inventory_vars if source == "inventory" else {}
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=group_vars, change_probe=True)
    before_snaps, before_power = ws.snapshots(), ws.power()
    extra = {"prechange_run_id": run_id, "revert_or_prune_on_success": "delete"}
    try:
        if source == "module_defaults":
            playbook = tmp_path / "my-maintenance.yml"
            playbook.write_text(OWN_PLAYBOOK.format(provider=provider, defaults=json.dumps(backend.module_args),
                                                    change=json.dumps(str(ws.change))))
            result = ws.run(str(playbook), extra)
        elif source == "environment":
            result = ws.run("prechange.snapshots.maintenance", extra, env=environment_for(backend))
        else:
            result = ws.run("prechange.snapshots.maintenance", extra)

        findings = Findings("good workflow on %s with the connection from %s" % (provider, source))
        findings.expect(result.returncode == 0, "ansible-playbook exited %s" % result.returncode)
        findings.expect(ws.changed_hosts() == sorted(ws.hosts), "the change ran on %s only" % ws.changed_hosts())
        after_snaps, after_power = ws.snapshots(), ws.power()
        for host in ws.hosts:
            during = ws.during(host)
            findings.expect(during is not None and snapshot_name in during["snapshots"],
                            "%s: the API did not show snapshot %s while the change ran (it showed %s)"
                            % (host, snapshot_name, sorted((during or {}).get("snapshots", {}))))
            findings.expect(snapshot_name not in after_snaps[host],
                            "%s: snapshot %s is still there after a passing run with on_success delete"
                            % (host, snapshot_name))
            findings.expect(sorted(after_snaps[host]) == sorted(before_snaps[host]),
                            "%s: other snapshots changed: before %s, after %s"
                            % (host, sorted(before_snaps[host]), sorted(after_snaps[host])))
            findings.expect(after_power[host] == before_power[host], "%s: power state %s -> %s"
                            % (host, before_power[host], after_power[host]))
        findings.done(result.stdout)
    finally:
        if provider == "vmware":
            for host, vm in ws.hosts.items():
                left = set(ws.snapshots()[host]) - set(before_snaps[host])
                if left:
                    vsphere_remove_snapshots(backend.conn, vm, left)
