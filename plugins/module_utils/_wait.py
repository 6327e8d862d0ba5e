# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting: a monotonic deadline, jittered backoff, and polling with a clear timeout.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.
"""

from __future__ import annotations

import random
import time

from ansible_collections.prechange.snapshots.plugins.module_utils._errors import SnapshotTimeout


class Deadline(object):
    """A timeout measured on the monotonic clock, immune to wall-clock jumps."""

    def __init__(self, timeout, clock=time.monotonic):
        self.timeout = timeout
        self._clock = clock
        self.start = clock()

    @property
    def elapsed(self):
        return self._clock() - self.start

    @property
    def remaining(self):
        if self.timeout is None:
            return float("inf")
        return max(0.0, self.timeout - self.elapsed)

    @property
    def expired(self):
        return self.remaining <= 0


def backoff(initial=0.05, maximum=2.0, factor=1.6, jitter=0.2):
    """Endless delays growing from ``initial`` to ``maximum``, each jittered by +/- ``jitter``."""
    delay = initial
    while True:
        yield delay * random.uniform(1 - jitter, 1 + jitter)
        delay = min(maximum, delay * factor)


def poll(check, timeout, what, initial=0.05, maximum=2.0, sleep=time.sleep, clock=time.monotonic):
    """Call ``check()`` until it returns ``(True, value)``; return value.

    ``check`` returns ``(done, value_or_state)``; while not done, the second item is the
    operation's current state, quoted in the timeout error so the user sees where it stuck.
    Errors raised by ``check`` (a failed hypervisor task) propagate unchanged.
    """
    deadline = Deadline(timeout, clock=clock)
    last_state = None
    for delay in backoff(initial, maximum):
        done, value = check()
        if done:
            return value
        last_state = value
        if deadline.expired:
            raise SnapshotTimeout(
                "timed out after %ss waiting for %s; last state: %s" % (timeout, what, last_state),
                last_state=last_state,
                hint="Raise 'timeout' or check the task on the hypervisor",
            )
        sleep(min(delay, deadline.remaining))
    return None  # pragma: no cover - backoff() never ends
