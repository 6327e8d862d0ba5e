#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only module: arrange and inspect the vCenter simulator from a playbook (not part of the collection).

It talks pyvmomi directly, never through the collection's code, so the asserts of a target check the
collection against the server's own view. Operations (``op``):

- ``read``: the VM's snapshot names, current snapshot, power state, consolidationNeeded
- ``hook``: arm/disarm a simulator task hook (``task``, ``delay_ms``, ``fault``; see tests/backends/vcsim)
- ``extra``: set one extraConfig ``key`` to ``value`` ("" clears)
- ``snapshot``: create a snapshot without the collection (no marker; duplicates allowed)
- ``revert``: revert to the first snapshot called ``name`` (to grow sibling branches)
- ``power``: ``state`` poweredOn / poweredOff
- ``clone``: clone ``vm`` as ``name`` into ``folder`` (created under the datacenter's VM folder)
- ``destroy``: power off and destroy ``vm``
- ``clear``: delete every snapshot of ``vm``
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: vcsim_control
short_description: Test-only control of the vCenter simulator
description: Test-only; see the module docstring.
options: {}
author: prechange.snapshots contributors
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

try:
    from pyVim.connect import Disconnect, SmartConnect
    from pyVim.task import WaitForTask
    from pyVmomi import vim
except ImportError:
    IMPORT_ERROR = traceback.format_exc()
else:
    IMPORT_ERROR = None


def walk(nodes):
    for node in nodes or []:
        yield node
        yield from walk(node.childSnapshotList)


def find_vm(si, ref):
    index = si.content.searchIndex
    vm = index.FindByInventoryPath(ref if "/" in ref else "DC0/vm/" + ref)
    if vm is None:
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        try:
            matches = [v for v in view.view if v.name == ref]
        finally:
            view.Destroy()
        vm = matches[0] if matches else None
    return vm


def state_of(vm):
    snaps = list(walk(vm.snapshot.rootSnapshotList)) if vm.snapshot else []
    current = vm.snapshot.currentSnapshot if vm.snapshot else None
    return dict(
        snapshots=[n.name for n in snaps],
        current=next((n.name for n in snaps if current is not None and n.snapshot == current), None),
        power_state=str(vm.runtime.powerState),
        consolidation_needed=bool(vm.runtime.consolidationNeeded),
        moid=vm._moId,  # pylint: disable=protected-access
        uuid=vm.config.uuid,
        instance_uuid=vm.config.instanceUuid,
    )


def main():
    module = AnsibleModule(argument_spec=dict(
        hostname=dict(type="str", required=True), port=dict(type="int", required=True),
        username=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True),
        op=dict(type="str", required=True,
                choices=["read", "hook", "extra", "snapshot", "revert", "power", "clone", "destroy", "clear"]),
        vm=dict(type="str", required=True), name=dict(type="str"), folder=dict(type="str"),
        task=dict(type="str", default="*"), delay_ms=dict(type="int"), fault=dict(type="str"),
        key=dict(type="str", no_log=False), value=dict(type="str"), state=dict(type="str"),
        memory=dict(type="bool", default=False),
    ), supports_check_mode=True)
    if IMPORT_ERROR:
        module.fail_json(msg="pyvmomi is needed", exception=IMPORT_ERROR)
    p = module.params
    si = SmartConnect(host=p["hostname"], port=p["port"], user=p["username"], pwd=p["password"],
                      disableSslCertValidation=True)
    try:
        vm = find_vm(si, p["vm"])
        if vm is None:
            module.fail_json(msg="vcsim_control: no VM %s" % p["vm"])
        op = p["op"]
        changed = op != "read"
        if op == "hook":
            opts = []
            if p["delay_ms"] is not None:
                opts.append(vim.option.OptionValue(key="vcsim.taskDelay." + p["task"],
                                                   value=str(p["delay_ms"]) if p["delay_ms"] else ""))
            if p["fault"] is not None:
                opts.append(vim.option.OptionValue(key="vcsim.taskFault." + p["task"], value=p["fault"]))
            WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=opts)), si=si)
        elif op == "extra":
            opt = vim.option.OptionValue(key=p["key"], value=p["value"] or "")
            WaitForTask(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[opt])), si=si)
        elif op == "snapshot":
            WaitForTask(vm.CreateSnapshot_Task(p["name"], "made by vcsim_control", p["memory"], False), si=si)
        elif op == "revert":
            node = next(n for n in walk(vm.snapshot.rootSnapshotList) if n.name == p["name"])
            WaitForTask(node.snapshot.RevertToSnapshot_Task(), si=si)
        elif op == "power":
            if str(vm.runtime.powerState) != p["state"]:
                start = vm.PowerOnVM_Task if p["state"] == "poweredOn" else vm.PowerOffVM_Task
                WaitForTask(start(), si=si)
        elif op == "clone":
            dc = si.content.searchIndex.FindByInventoryPath("DC0")
            folder = dc.vmFolder
            for part in (p["folder"] or "").split("/"):
                if not part:
                    continue
                child = si.content.searchIndex.FindChild(folder, part)
                folder = child or folder.CreateFolder(part)
            existing = si.content.searchIndex.FindChild(folder, p["name"])
            if existing is None:
                spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), powerOn=False)
                WaitForTask(vm.CloneVM_Task(folder=folder, name=p["name"], spec=spec), si=si)
                vm = si.content.searchIndex.FindChild(folder, p["name"])
            else:
                vm, changed = existing, False
        elif op == "destroy":
            if str(vm.runtime.powerState) == "poweredOn":
                WaitForTask(vm.PowerOffVM_Task(), si=si)
            result = dict(changed=True, moid=vm._moId)  # pylint: disable=protected-access
            WaitForTask(vm.Destroy_Task(), si=si)
            module.exit_json(**result)
        elif op == "clear":
            WaitForTask(vm.RemoveAllSnapshots_Task(), si=si)
        module.exit_json(changed=changed, **state_of(vm))
    finally:
        Disconnect(si)


if __name__ == "__main__":
    main()
