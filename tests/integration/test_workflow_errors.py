# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors reach the user as the module wrote them, and nothing changes (issue 10, item 4).

A user's own small inventory (two stand-in hosts on the local connection, each mapped to a VM), own
change tasks (they write a marker file) and own check tasks, and the collection's playbooks run as a
user runs them: ``ansible-playbook prechange.snapshots.maintenance`` / ``prechange.snapshots.revert``.
Each scenario breaks one thing (wrong credentials, a closed API port, a TLS refusal, an invalid
snapshot name), asks the provider module directly for its own message with the same settings, then
requires of the playbook run: that message's reason in the output, none of the made-up claims seen in
issue 10, the user's change not run, a non-zero exit, and - read back from the hypervisor's own API -
no snapshot created or removed and no power state changed.

    python -m pytest tests/integration/test_workflow_errors.py
"""

from __future__ import annotations

import re

import pytest

from conftest import (  # pylint: disable=import-error
    Findings,
    Workspace,
    free_port,
    in_output,
    merged,
    misleading_claims,
    module_error,
    new_run_id,
    vsphere_remove_snapshots,
    workflow_backend,
)

VMWARE_VMS = ["DC0_H0_VM0", "DC0_H0_VM1"]

MAINTENANCE_CASES = [
    ("libvirt", "unreachable_tcp"),
    ("libvirt", "no_socket"),
    ("libvirt", "bad_name"),
    ("vmware", "auth"),
    ("vmware", "unreachable"),
    ("vmware", "tls"),
    ("vmware", "empty_name"),
    ("proxmox", "auth"),
    ("proxmox", "auth_token"),
    ("proxmox", "unreachable"),
    ("proxmox", "tls"),
    ("proxmox", "bad_name"),
]

REVERT_CASES = [
    ("libvirt", "unreachable_tcp"),
    ("vmware", "auth"),
    ("vmware", "unreachable"),
    ("vmware", "tls"),
    ("proxmox", "auth"),
    ("proxmox", "auth_token"),
    ("proxmox", "unreachable"),
    ("proxmox", "tls"),
]

# A role may refuse an empty snapshot name itself, before any module call; then it must say so.
EMPTY_NAME_SAID = re.compile(r"(snapshot[_ ]name|name template)[^\n]*(empty|''|not (a )?usable|invalid)", re.I)


def bad_settings(backend, case):
    """(inventory overrides, module argument overrides, extra vars, text the module's reason must hold)."""
    port = free_port()
    provider = backend.provider
    if provider == "libvirt":
        if case == "unreachable_tcp":
            uri = "qemu+tcp://127.0.0.1:%d/system" % port
            return {"prechange_libvirt_uri": uri}, {"uri": uri}, {}, "Connection refused"
        if case == "no_socket":
            uri = "qemu+unix:///system?socket=/nonexistent/prechange-errs/libvirt-sock"
            return {"prechange_libvirt_uri": uri}, {"uri": uri}, {}, "No such file or directory"
        if case == "bad_name":
            # libvirt refuses names starting with '.'; QEMU would have taken it.
            return {}, {}, {"snapshot_name": ".prechange-bad"}, "name can't start with '.'"
    if provider == "vmware":
        if case == "auth":
            return ({"prechange_vmware_password": "wrong-password"}, {"password": "wrong-password"}, {},
                    "Login failure")
        if case == "unreachable":
            return {"prechange_vmware_port": port}, {"port": port}, {}, "Connection refused"
        if case == "tls":
            return {"prechange_vmware_validate_certs": True}, {"validate_certs": True}, {}, "CERTIFICATE_VERIFY_FAILED"
        if case == "empty_name":
            return {}, {}, {"snapshot_name": ""}, "needs 'name'"
    if provider == "proxmox":
        if case == "auth":
            return ({"prechange_proxmox_api_password": "wrong-password"}, {"api_password": "wrong-password"}, {},
                    "401")
        if case == "auth_token":
            token = backend.extra
            return ({"prechange_proxmox_api_password": None, "prechange_proxmox_api_user": token["token_user"],
                     "prechange_proxmox_api_token_id": token["token_id"],
                     "prechange_proxmox_api_token_secret": "wrong-token-secret"},
                    {"api_password": None, "api_user": token["token_user"], "api_token_id": token["token_id"],
                     "api_token_secret": "wrong-token-secret"}, {}, "401")
        if case == "unreachable":
            return {"prechange_proxmox_api_port": port}, {"api_port": port}, {}, "Connection refused"
        if case == "tls":
            return ({"prechange_proxmox_ca_path": None, "prechange_proxmox_validate_certs": True},
                    {"ca_path": None, "validate_certs": True}, {}, "CERTIFICATE_VERIFY_FAILED")
        if case == "bad_name":
            return {}, {}, {"snapshot_name": "Bad.Name"}, "not valid on Proxmox"
    raise AssertionError("no case %s for %s" % (case, provider))


def check_nothing_changed(findings, ws, before_snaps, before_power):
    after_snaps, after_power = ws.snapshots(), ws.power()
    for host in ws.hosts:
        findings.expect(
            sorted(after_snaps[host].items()) == sorted(before_snaps[host].items()),
            "%s: the VM's snapshots changed (API): before %s, after %s"
            % (host, sorted(before_snaps[host]), sorted(after_snaps[host])))
        findings.expect(after_power[host] == before_power[host],
                        "%s: the VM's power state changed (API): %s -> %s"
                        % (host, before_power[host], after_power[host]))
    return after_snaps


def check_error_reached_user(findings, result, module_msg, reason, expect_reason=True, alternative=None):
    out = result.stdout
    findings.expect(result.returncode != 0, "ansible-playbook exited 0 although every host failed")
    if expect_reason:
        said = in_output(reason, out) or (alternative is not None and alternative.search(out) is not None)
        findings.expect(said, "the module's own reason is not in the output: %r (module message: %r)"
                        % (reason, module_msg))
    claims = misleading_claims(out)
    findings.expect(not claims, "the output makes claims that are not true here: %s" % claims)


def cleanup_vmware(backend, ws, before):
    """The simulator lives for the whole session: remove whatever snapshot a buggy run left behind."""
    if backend.provider != "vmware":
        return
    for host, vm in ws.hosts.items():
        made = set(backend_snapshots(backend, vm)) - set(before.get(host, {}))
        if made:
            vsphere_remove_snapshots(backend.conn, vm, made)


def backend_snapshots(backend, vm):
    from conftest import api_snapshots  # pylint: disable=import-error,import-outside-toplevel
    return api_snapshots(backend.provider, backend.conn, vm)


@pytest.mark.parametrize("provider,case", MAINTENANCE_CASES)
def test_maintenance_error_reaches_user_and_nothing_changes(provider, case, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    run_id = new_run_id()
    inventory_overrides, arg_overrides, extra_vars, token = bad_settings(backend, case)
    snapshot_name = extra_vars.get("snapshot_name", "prechange-" + run_id)

    args = merged(backend.module_args, arg_overrides)
    args.update(vm=backend.vms[0], name=snapshot_name, state="present")
    module_msg, reason = module_error("%s_snapshot" % provider, args, tmp_path)
    assert token.lower() in reason.lower(), "the module's reason is not the one this case is about: %r" % module_msg

    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(),
                   group_vars=merged(backend.inventory_vars, inventory_overrides))
    before_snaps, before_power = ws.snapshots(), ws.power()
    try:
        result = ws.run("prechange.snapshots.maintenance", merged(extra_vars, {"prechange_run_id": run_id}))
        findings = Findings("maintenance with %s on %s" % (case, provider))
        check_error_reached_user(findings, result, module_msg, reason,
                                 alternative=EMPTY_NAME_SAID if case == "empty_name" else None)
        findings.expect(ws.changed_hosts() == [], "the user's change ran on %s" % ws.changed_hosts())
        check_nothing_changed(findings, ws, before_snaps, before_power)
        findings.done(result.stdout)
    finally:
        cleanup_vmware(backend, ws, before_snaps)


@pytest.mark.parametrize("provider,case", REVERT_CASES)
def test_revert_playbook_error_reaches_user_and_nothing_changes(provider, case, request, tmp_path):
    backend = workflow_backend(provider, request, VMWARE_VMS)
    run_id = new_run_id()
    snapshot_name = "prechange-" + run_id
    ws = Workspace(tmp_path, provider, backend.conn, backend.hosts(), group_vars=backend.inventory_vars)
    before_snaps = ws.snapshots()
    try:
        made = ws.run("prechange.snapshots.snapshot", {"prechange_run_id": run_id})
        assert made.returncode == 0, "the snapshot playbook failed with good settings:\n" + made.stdout[-6000:]
        taken = ws.snapshots()
        assert all(snapshot_name in taken[h] for h in ws.hosts), "no snapshot %s on the API: %s" % (
            snapshot_name, taken)

        inventory_overrides, arg_overrides, _extra, token = bad_settings(backend, case)
        args = merged(backend.module_args, arg_overrides)
        args.update(vm=backend.vms[0], name=snapshot_name, state="reverted")
        module_msg, reason = module_error("%s_snapshot" % provider, args, tmp_path)
        assert token.lower() in reason.lower(), "the module's reason is not the one this case is about: %r" % module_msg

        ws.write_inventory(merged(backend.inventory_vars, inventory_overrides))
        power = ws.power()
        result = ws.run("prechange.snapshots.revert", {"revert_or_prune_run_id": run_id})
        findings = Findings("revert playbook with %s on %s" % (case, provider))
        check_error_reached_user(findings, result, module_msg, reason)
        check_nothing_changed(findings, ws, taken, power)
        findings.done(result.stdout)
    finally:
        cleanup_vmware(backend, ws, before_snaps)
