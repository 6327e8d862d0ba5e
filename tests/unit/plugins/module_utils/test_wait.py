# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting: a fake clock drives poll(), so no test sleeps or depends on wall-clock time."""

from __future__ import annotations

import pytest

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import ProviderError, SnapshotTimeout
from ansible_collections.prechange.snapshots.plugins.module_utils._wait import backoff, poll


class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_poll_returns_value_when_done():
    clock = FakeClock()
    states = iter([(False, "queued"), (False, "running 40%"), (True, "task-1")])
    assert poll(lambda: next(states), 10, "the task", sleep=clock.sleep, clock=clock) == "task-1"


def test_timeout_names_the_last_state():
    clock = FakeClock()
    with pytest.raises(SnapshotTimeout) as info:
        poll(lambda: (False, "running 40%"), 5, "the snapshot task", sleep=clock.sleep, clock=clock)
    assert "timed out after 5s waiting for the snapshot task; last state: running 40%" in str(info.value)
    assert info.value.last_state == "running 40%"
    assert 5 <= clock.now < 7


def test_task_errors_propagate_unchanged():
    def check():
        raise ProviderError("Insufficient disk space on datastore 'ds1'")
    with pytest.raises(ProviderError, match="Insufficient disk space"):
        poll(check, 5, "the task", sleep=lambda s: None)


def test_backoff_grows_to_its_cap():
    delays = [d for _i, d in zip(range(30), backoff(0.1, 2.0, jitter=0))]
    assert delays[0] == pytest.approx(0.1) and delays[-1] == pytest.approx(2.0)
    assert delays == sorted(delays)
