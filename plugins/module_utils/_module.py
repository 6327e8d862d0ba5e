# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Module glue shared by every ``*_snapshot`` and ``*_snapshot_info`` module.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

A module is: its provider's backend class and connection spec, handed to
``run_snapshot_module`` or ``run_info_module``. Argument specs are merged here, errors are
mapped to ``fail_json`` here and only here.
"""

from __future__ import annotations

import getpass
import secrets
import socket

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.prechange.snapshots.plugins.module_utils._capacity import (
    CAPACITY_ACTIONS,
    CapacityPolicy,
    storages,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._errors import InvalidRequest, SnapshotError
from ansible_collections.prechange.snapshots.plugins.module_utils._marker import (
    isoformat,
    make_marker,
    parse_duration,
    resolve_expiry,
    utcnow,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._snapshot import (
    ACTIONS,
    DELETE_ALL_CHOICES,
    REVERT_POWER_STATES,
    STATES,
    SnapshotParams,
    ensure,
    ensure_many,
    error_fields,
    select,
)
from ansible_collections.prechange.snapshots.plugins.module_utils._workflow import check_expiry


def snapshot_argument_spec():
    """Options every ``<provider>_snapshot`` module shares (documented in the snapshot fragment)."""
    return dict(
        vm=dict(type="str"),
        vms=dict(type="list", elements="str"),
        name=dict(type="str"),
        description=dict(type="str"),
        state=dict(type="str", default="present", choices=list(STATES)),
        memory=dict(type="bool"),
        quiesce=dict(type="bool", default=False),
        strict=dict(type="bool", default=False),
        remove_children=dict(type="bool", default=False),
        revert_power_state=dict(type="str", default="snapshot", choices=list(REVERT_POWER_STATES)),
        new_name=dict(type="str"),
        delete_all=dict(type="str", choices=list(DELETE_ALL_CHOICES)),
        run_id=dict(type="str"),
        ticket=dict(type="str"),
        expires=dict(type="str"),
        creator=dict(type="str"),
        timeout=dict(type="int", default=600),
        lock_timeout=dict(type="int", default=0),
        concurrency=dict(type="int", default=10),
        capacity_policy=dict(type="str", default="fail", choices=list(CAPACITY_ACTIONS)),
        capacity_growth=dict(type="float", default=0.1),
        capacity_reserve_gb=dict(type="float", default=0),
        capacity_min_free_gb=dict(type="float", default=0),
    )


def info_argument_spec():
    """Options every ``<provider>_snapshot_info`` module shares."""
    return dict(
        vm=dict(type="str"),
        vms=dict(type="list", elements="str"),
        name_pattern=dict(type="str"),
        owned=dict(type="bool"),
        run_id=dict(type="str"),
        older_than=dict(type="str"),
        expired=dict(type="bool"),
        timeout=dict(type="int", default=600),
    )


def _merge(*specs):
    merged = {}
    for spec in specs:
        merged.update(spec or {})
    return merged


def new_run_id(now=None):
    """A run id that sorts by time and is unique enough for one maintenance window."""
    return "%s-%s" % ((now or utcnow()).strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(2))


def default_creator():
    try:
        user = getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        user = "unknown"
    return "%s@%s" % (user, socket.gethostname())


def _validate_snapshot_params(module):
    p = module.params
    if p["state"] == "absent" and not (p["name"] or p["delete_all"]):
        raise InvalidRequest("state=absent needs 'name' or 'delete_all'", action="delete",
                             hint="Name the snapshot to delete with 'name', or set 'delete_all' to owned, expired or "
                                  "all; nothing was changed")
    if p["state"] != "absent" and not p["name"]:
        raise InvalidRequest("state=%s needs 'name'" % p["state"],
                             hint="Name the snapshot with 'name'; nothing was changed")
    if p["delete_all"] and p["state"] != "absent":
        raise InvalidRequest("'delete_all' only works with state=absent",
                             hint="Set state: absent, or remove 'delete_all'; nothing was changed")
    if p["new_name"] and p["state"] != "present":
        raise InvalidRequest("'new_name' only works with state=present", snapshot=p["name"],
                             hint="Set state: present to rename, or remove 'new_name'; nothing was changed")
    if p["timeout"] is not None and p["timeout"] <= 0:
        raise InvalidRequest("'timeout' must be a positive number of seconds", snapshot=p["name"],
                             hint="Set timeout to the seconds to wait, for example 600; nothing was changed")
    if p["lock_timeout"] is not None and p["lock_timeout"] < 0:
        raise InvalidRequest("'lock_timeout' must be 0 or a positive number of seconds", snapshot=p["name"],
                             hint="Set lock_timeout to 0 to refuse a VM held by another job at once, or to the "
                                  "seconds to wait for it; nothing was changed")
    if p["concurrency"] < 1:
        raise InvalidRequest("'concurrency' must be at least 1", snapshot=p["name"],
                             hint="Set concurrency to 1 or more; nothing was changed")
    try:
        expires = resolve_expiry(p["expires"])
    except ValueError as error:
        raise InvalidRequest(str(error), snapshot=p["name"],
                             hint="Use 'expires: 7d' or an ISO 8601 timestamp; nothing was changed")
    if p["state"] == "present":
        # A snapshot that expires at once would be pruned as soon as it is made.
        check_expiry(expires)
    return expires


def params_from_module(module, provider_options=()):
    """Turn module params into the engine's ``SnapshotParams`` (raises InvalidRequest).

    ``provider_options``: the names the backend declares (``SnapshotBackend.provider_options``).
    """
    p = module.params
    expires = _validate_snapshot_params(module)
    marker = None
    if p["state"] == "present":
        marker = make_marker(run=p["run_id"] or new_run_id(), creator=p["creator"] or default_creator(),
                             expires=isoformat(expires), ticket=p["ticket"])
    return SnapshotParams(
        state=p["state"], name=p["name"], description=p["description"], memory=p["memory"],
        quiesce=p["quiesce"], strict=p["strict"], remove_children=p["remove_children"],
        revert_power_state=p["revert_power_state"], new_name=p["new_name"], delete_all=p["delete_all"],
        marker=marker, timeout=p["timeout"], lock_timeout=p["lock_timeout"] or 0,
        options={key: p.get(key) for key in provider_options},
        capacity=CapacityPolicy(action=p["capacity_policy"], growth=p["capacity_growth"],
                                reserve_gb=p["capacity_reserve_gb"], min_free_gb=p["capacity_min_free_gb"]).validate())


def fail(module, error, without=(), **extra):
    """The one place an engine error becomes a failed task; ``without``: keys the module does not return."""
    result = dict(extra)
    result.update(error_fields(error))
    for key in without:
        result.pop(key, None)
    module.fail_json(msg=error.message, **result)


def _new_module(argument_spec, connection_spec, module_kwargs, requirements, module_class):
    kwargs = dict(module_kwargs or {})
    kwargs.setdefault("supports_check_mode", True)
    module = (module_class or AnsibleModule)(argument_spec=_merge(argument_spec, connection_spec), **kwargs)
    for library, import_error in requirements or ():
        if import_error:
            module.fail_json(msg=missing_required_lib(library), exception=import_error)
    return module


def run_snapshot_module(backend_class, connection_spec, extra_spec=None, module_kwargs=None, requirements=(),
                        module_class=None):
    """Entry point of every ``<provider>_snapshot`` module.

    ``module_class`` replaces AnsibleModule when the action plugin runs the module in its own
    process (plugins/plugin_utils/_in_process.py); it has the same constructor and the same
    params, check_mode, _diff, warn, exit_json and fail_json.
    """
    module_kwargs = dict(module_kwargs or {})
    module_kwargs.setdefault("mutually_exclusive", []).append(("vm", "vms"))
    module_kwargs.setdefault("required_one_of", []).append(("vm", "vms"))
    module = _new_module(_merge(snapshot_argument_spec(), extra_spec), connection_spec, module_kwargs, requirements,
                         module_class)
    provider = getattr(backend_class, "provider", None)
    try:
        params = params_from_module(module, sorted(getattr(backend_class, "provider_options", {})))
    except SnapshotError as error:
        fail(module, error.bind(action=ACTIONS[module.params["state"]], vm=module.params["vm"],
                                snapshot=module.params["name"], provider=provider))
    want_diff = module._diff  # pylint: disable=protected-access
    try:
        with backend_class(module.params, warn=module.warn) as backend:
            if module.params["vm"] is not None:
                vm = backend.find_vm(module.params["vm"])
                outcome = ensure(backend, vm, params, module.check_mode)
                module.exit_json(**outcome.to_result(diff=want_diff))
            results = ensure_many(backend, module.params["vms"], params, module.check_mode,
                                  module.params["concurrency"])
    except SnapshotError as error:
        fail(module, error.bind(action=ACTIONS[module.params["state"]], vm=module.params["vm"],
                                snapshot=module.params["name"], provider=provider))

    rows = [r.to_result(diff=want_diff) for r in results]
    failed = [r for r in results if r.error is not None]
    summary = dict(changed=any(r["changed"] for r in rows), results=rows,
                   failed_vms=[r.ref for r in failed])
    if failed:
        module.fail_json(
            msg="Failed on %d of %d VMs: %s" % (len(failed), len(rows), "; ".join(r.error.message for r in failed)),
            **summary)
    module.exit_json(**summary)


def run_info_module(backend_class, connection_spec, extra_spec=None, module_kwargs=None, requirements=(),
                    module_class=None):
    """Entry point of every ``<provider>_snapshot_info`` module (``module_class``: see run_snapshot_module)."""
    module_kwargs = dict(module_kwargs or {})
    module_kwargs.setdefault("mutually_exclusive", []).append(("vm", "vms"))
    module = _new_module(_merge(info_argument_spec(), extra_spec), connection_spec, module_kwargs, requirements,
                         module_class)
    p = module.params
    provider = getattr(backend_class, "provider", None)
    try:
        if p["timeout"] is not None and p["timeout"] <= 0:
            raise InvalidRequest("'timeout' must be a positive number of seconds", action="list",
                                 hint="Set timeout to the seconds to wait for the API, for example 60")
        if p["older_than"]:
            try:
                parse_duration(p["older_than"])
            except ValueError as error:
                raise InvalidRequest(str(error), action="list", hint="Use a duration like 30m, 12h, 7d or 2w")
        with backend_class(p, warn=module.warn) as backend:
            if p["vm"] is not None:
                vms = [backend.find_vm(p["vm"])]
            elif p["vms"]:
                found = backend.find_vms(p["vms"])
                missing = [v for v in found.values() if isinstance(v, SnapshotError)]
                if missing:
                    raise missing[0]
                vms = [found[ref] for ref in p["vms"]]
            else:
                vms = backend.list_vms()
            now = utcnow()
            entries = [vm_entry(vm, backend.list_snapshots(vm), p, now, backend) for vm in vms]
    except SnapshotError as error:
        # A listing names no snapshot: no 'snapshot' key (always null) in its failure.
        fail(module, error.bind(action="list", vm=p["vm"], provider=provider), without=("snapshot",))
    result = dict(changed=False, vms=entries)
    if p["vm"] is not None:
        result["vm"] = entries[0]["vm"]
        result["snapshots"] = entries[0]["snapshots"]
    module.exit_json(**result)


def vm_entry(vm, snapshots, p, now, backend=None):
    """One VM's info: all matching snapshots plus tree facts for policy checks, its storage and the snapshots' sizes."""
    chosen = select(snapshots, name_pattern=p.get("name_pattern"), owned=p.get("owned"), run_id=p.get("run_id"),
                    older_than=p.get("older_than"), expired=p.get("expired"), now=now)
    current = next((s.name for s in snapshots if s.current), None)
    ages = [s.age_seconds(now) for s in snapshots if s.created is not None]
    capacity, sizes, _note = backend.measure_storage(vm, chosen) if backend is not None else (None, {}, None)
    rows = []
    for snap in chosen:
        row = snap.to_result(now)
        size, note = sizes.get(snap.id, (None, "%s does not measure snapshot sizes" % getattr(backend, "provider", "")))
        row.update(size_bytes=size, size_note=note)
        rows.append(row)
    return {
        "vm": vm.to_result(),
        "snapshots": rows,
        "storage": [{key: row[key] for key in ("storage", "free_bytes", "total_bytes", "disks", "provisioned_bytes",
                                               "used_bytes")}
                    for row in storages(capacity)] if capacity is not None else [],
        "disks": [disk.to_result() for disk in capacity.disks] if capacity is not None else [],
        "storage_note": capacity.note if capacity is not None else None,
        "count": len(snapshots),
        "current": current,
        "max_depth": max([s.depth for s in snapshots] or [0]),
        "oldest_age_seconds": max(ages) if ages else None,
    }
