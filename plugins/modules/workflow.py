#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: workflow
short_description: The roles' snapshot, verdict, revert and prune calls, one per endpoint, on the controller
version_added: 1.0.0
description:
  - The call the C(snapshot) and C(revert_or_prune) roles make. Most users want those roles, or the
    C(guard) role, rather than this action.
  - O(step=start) (C(run_once), facts delegated to C(localhost)) fixes one run id and one lease holder for the whole
    play, kept as the C(prechange_run) fact of C(localhost) so that every C(serial) batch shares them.
  - A workflow call has three steps. O(step=request) runs for every host and checks its inputs in the host's
    own variable context; it collects the host's connection variables C(prechange_<provider>_<option>).
    O(step=run) runs once (C(run_once)). It groups the hosts by endpoint. It opens one API session per endpoint
    and acts on every VM at once. O(step=publish) runs for every host. It sets the host's facts, or fails the
    host with the provider's own message.
  - Connection options come from the host's C(prechange_<provider>_<option>) variables. They override the
    play's C(module_defaults) for C(group/prechange.snapshots.<provider>) and for
    C(prechange.snapshots.<provider>_snapshot). Those override the modules' environment variables.
    The modules resolve them the same way.
  - The run's state lives in each snapshot's ownership marker on the hypervisor. The marker keeps the phase
    (C(pending) until a verdict, then C(verified), C(reverted) or C(released)), the lease (until when the run
    holds the VM) and the holder. So another controller, or an AWX job in a fresh container, sees a VM
    held by a live run and refuses it. It also sees an interrupted run, adopted only by the same run id (or
    ticket, when asked).
  - O(kind=snapshot) makes the prechecks, then one pending snapshot per VM, or adopts an interrupted run's
    snapshot of the same change. Two runs that race for one VM never leave two pre-change snapshots.
  - O(kind=settle) decides revert, delete, keep or release from the change's outcome and a verdict that
    belongs to this run's snapshot. It acts on exactly the recorded snapshot (name, id and run checked in the
    same session). It records the phase in the marker before a delete.
  - O(kind=lookup) finds one snapshot of this collection by run id and/or name, then acts as settle does.
  - O(kind=prune) deletes this collection's expired (or all) snapshots of the play's VMs (or of every VM on
    the endpoint), never one under a live lease.
  - O(step=report) (C(run_once)) builds the maintenance run report from every host's facts. It writes it as JSON
    and Markdown in O(report_dir), and returns each host's outcome and the message its final task fails with.
  - O(step=window) (C(run_once)) decides the gates of the window's deadline, whether a serial batch, its
    changes, or its snapshots' deletion may start in the time left (see the maintenance playbook's
    C(maintenance_window_end)).
  - O(step=rehearse) takes the maintenance playbook's rehearsal decisions in this host's context.
    O(rehearsal=plan) names the clone and how to reach it, or fails before anything is cloned.
    O(rehearsal=outcome) gives the rehearsal's verdict and whether the change may go on to the real VM.
    O(rehearsal=clone) makes or removes the clone with the C(<provider>_clone) module of C(request.provider)
    (the other keys of O(request) are its options), connected as that module connects when it is called itself
    (the host's C(prechange_<provider>_*) variables, else the play's C(module_defaults)), and returns its result.
  - O(step=batch) (C(run_once)) says which optional per-host steps the serial batch needs (O(features)), so that
    the maintenance playbook runs a step that no host of the batch needs once, not once per host.
author:
  - prechange.snapshots contributors (@prechange)
options:
  step:
    description: Which step of the call.
    type: str
    required: true
    choices: [start, window, request, run, publish, report, rehearse, batch]
  at:
    description:
      - With O(step=window) (C(run_once)), which gate of the window's deadline to decide. C(batch) may this serial
        batch start, C(change) may its changes start, C(settle) may its snapshots be deleted, C(end) what the
        batch taught the run (the longest batch, change and revert), kept in the C(prechange_window) fact of
        C(localhost).
    type: str
    choices: [batch, change, settle, end]
  window:
    description:
      - With O(step=window), the window's settings as the maintenance playbook passes them (C(end), C(minutes),
        C(batch_minutes), C(revert_minutes), C(large_delta_gb)).
    type: dict
  features:
    description:
      - With O(step=batch), each optional step by the variable (or list of variables) that turns it on, for example
        the step C(rehearse) by C(maintenance_rehearse). A step is needed when any host of the batch has one of its variables
        at a value that is not off (false, empty), as the host sets it (inventory, extra vars, facts). Only
        variables whose default is off may be named (a host that does not set one has it off).
    type: dict
  plan:
    description:
      - With O(kind=prune) and O(step=run) or O(step=publish), only list the candidates (after the retention policy)
        for the user's veto tasks; nothing is asked or changed.
    type: bool
    default: false
  rehearsal:
    description: With O(step=rehearse), which decision, or C(clone) to make or remove the rehearsal's clone.
    type: str
    choices: [plan, outcome, clone]
  kind:
    description: What the call does (steps request, run and publish).
    type: str
    choices: [snapshot, settle, lookup, prune]
  report_dir:
    description: With O(step=report), where to write C(maintenance-<run id>.json) and C(.md); empty writes nothing.
    type: str
  request:
    description:
      - With O(step=request), this host's inputs. Keys depend on O(kind); the roles pass their documented
        variables.
    type: dict
  hosts:
    description:
      - With O(step=run), the hosts whose requests to act on; default every host of the play that made a request
        for this call.
      - With O(step=report), the hosts to report; default every host of the play.
    type: list
    elements: str
  run_id:
    description:
      - With O(step=start), the run id to use (to resume an interrupted run); generated when empty.
      - With O(step=run), the run id of the snapshots; with O(step=report), the run id the report is named after.
    type: str
  holder:
    description: With O(step=run) and O(kind=snapshot), who holds the lease; generated when empty.
    type: str
  results:
    description: With O(step=publish), the registered result of the run step.
    type: dict
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on
      the controller.
    support: full
    details: All of it runs in the action plugin, on the controller; there is no module process.
  async:
    description: Supports being used with the C(async) keyword.
    support: none
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Runs the same prechecks and decisions as a real run, reports what a real run would do, changes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: all
notes:
  - Runs on the controller, in the controller's Python, which needs the provider's SDK.
  - The step run must be C(run_once). A failure of one VM never fails the others; each host fails only in
    its own publish step.
seealso:
  - module: prechange.snapshots.libvirt_snapshot
  - module: prechange.snapshots.vmware_snapshot
  - module: prechange.snapshots.proxmox_snapshot
"""

EXAMPLES = r"""
- name: Check this host's inputs
  prechange.snapshots.workflow:
    step: request
    kind: snapshot
    request:
      provider: "{{ prechange_provider }}"
      vm: "{{ prechange_vm | default(inventory_hostname) }}"
      name: before-patching
      expires: 7d

- name: One snapshot per VM, one API session per endpoint
  prechange.snapshots.workflow:
    step: run
    kind: snapshot
  run_once: true
  delegate_to: localhost
  delegate_facts: true
  register: snapshots

- name: Publish each host's record (fails a host with the provider's own message)
  prechange.snapshots.workflow:
    step: publish
    kind: snapshot
    results: "{{ snapshots }}"
"""

RETURN = r"""
hosts:
  description:
    - With O(step=run), one result per host (C(failed), C(msg) on failure; the snapshot, the VM, the action and
      the C(record) or C(summary) the role publishes otherwise).
    - With O(step=report), each host's C(outcome) (ok, reverted, error) and C(msg).
  returned: steps run and report
  type: dict
report:
  description: The run report (run id, check mode, hosts with their snapshot, change, verdict, action, outcome, and
    the counts).
  returned: step report
  type: dict
path:
  description: The report's path without the C(.json) / C(.md) suffix; null when no O(report_dir) was given.
  returned: step report
  type: str
run_id:
  description: The run id used.
  returned: step run
  type: str
  sample: 20261122T021500Z-4f2a
needs:
  description: With O(step=batch), each feature of O(features) and whether any host of the batch needs it.
  returned: step batch
  type: dict
  sample: {"rehearse": false, "veto": false}
reverted:
  description: With O(step=run), the hosts whose snapshot was reverted.
  returned: step run
  type: list
  elements: str
failing:
  description: With O(step=report), the hosts of the batch that the playbook fails (the C(fail) of O(hosts)).
  returned: step report
  type: list
  elements: str
holder:
  description: Who holds the lease of this run's VMs (user, controller, process).
  returned: step run
  type: str
  sample: ops@bastion:4242:9f1c2a
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    # Only the action plugin does the work; this module exists for its documentation and argument spec.
    module = AnsibleModule(
        argument_spec=dict(
            step=dict(type="str", required=True,
                      choices=["start", "window", "request", "run", "publish", "report", "rehearse", "batch"]),
            at=dict(type="str", choices=["batch", "change", "settle", "end"]),
            window=dict(type="dict"),
            features=dict(type="dict"),
            plan=dict(type="bool", default=False),
            rehearsal=dict(type="str", choices=["plan", "outcome", "clone"]),
            kind=dict(type="str", choices=["snapshot", "settle", "lookup", "prune"]),
            report_dir=dict(type="str"),
            request=dict(type="dict"),
            hosts=dict(type="list", elements="str"),
            run_id=dict(type="str"),
            holder=dict(type="str"),
            results=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    module.fail_json(msg="prechange.snapshots.workflow runs on the controller, as an action plugin only")


if __name__ == "__main__":
    main()
