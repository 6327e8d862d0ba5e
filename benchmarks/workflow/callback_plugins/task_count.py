# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count task executions per host, for benchmarks/workflow (not part of the collection)."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_count
type: aggregate
short_description: Count task executions per host and write a JSON summary
description:
  - Counts every task result Ansible reports per host (ok, failed, skipped, unreachable), the way the
    strategy executes them. A C(run_once) task executes once and is counted once, for the host it ran on.
    Includes (C(include_role), C(include_tasks)) are counted too, and also reported apart.
  - Writes the summary to the file named by the environment variable E(PRECHANGE_TASK_COUNT_FILE) when
    the playbook ends.
  - Used by benchmarks/workflow; enable with E(ANSIBLE_CALLBACKS_ENABLED=task_count) and
    E(ANSIBLE_CALLBACK_PLUGINS) pointing at this directory.
"""

INCLUDE_ACTIONS = frozenset((
    "include_tasks", "include_role", "include_vars",
    "ansible.builtin.include_tasks", "ansible.builtin.include_role", "ansible.builtin.include_vars",
    "ansible.legacy.include_tasks", "ansible.legacy.include_role",
))


def _host(result):
    host = getattr(result, "host", None) or result._host  # pylint: disable=protected-access
    return host.get_name()


def _task(result):
    return getattr(result, "task", None) or result._task  # pylint: disable=protected-access


def _changed(result):
    data = getattr(result, "result", None)
    if data is None:
        data = result._result  # pylint: disable=protected-access
    return bool(data.get("changed"))


class CallbackModule(CallbackBase):
    """Per host: ok, changed, failed, skipped, unreachable, includes; per task name: executions."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts = defaultdict(Counter)
        self.by_task = Counter()
        self.items = Counter()

    def _count(self, result, status):
        host = _host(result)
        task = _task(result)
        counts = self.hosts[host]
        counts[status] += 1
        counts["executions"] += 1
        if status == "ok" and _changed(result):
            counts["changed"] += 1
        if task.action in INCLUDE_ACTIONS:
            counts["includes"] += 1
        self.by_task[task.get_name()] += 1  # "role : task name" for a role's tasks

    def v2_runner_on_ok(self, result):
        self._count(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._count(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        self.items[_host(result)] += 1

    def v2_runner_item_on_failed(self, result):
        self.items[_host(result)] += 1

    def v2_runner_item_on_skipped(self, result):
        self.items[_host(result)] += 1

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("PRECHANGE_TASK_COUNT_FILE")
        if not path:
            return
        total = Counter()
        for counts in self.hosts.values():
            total.update(counts)
        summary = {
            "hosts": {host: dict(counts) for host, counts in sorted(self.hosts.items())},
            "items": dict(self.items),
            "total": dict(total),
            "by_task": dict(self.by_task.most_common()),
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1, sort_keys=False)
            handle.write("\n")
