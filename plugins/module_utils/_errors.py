# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Typed errors of the snapshot engine.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Every error carries the action, the VM, the snapshot and the provider, and renders one
message grammar:

    Failed to <action> snapshot '<name>' of VM '<vm>' on <provider>: <reason>

Providers translate SDK exceptions into these at their boundary; ``_module.py`` maps them
to ``fail_json`` in exactly one place.
"""

from __future__ import annotations


class SnapshotError(Exception):
    """Base of every error the engine reports to the user."""

    def __init__(self, reason, action=None, vm=None, snapshot=None, provider=None, hint=None, details=None):
        super().__init__(reason)
        self.reason = reason
        self.action = action
        self.vm = vm
        self.snapshot = snapshot
        self.provider = provider
        # What the user can do about it; appended to the message.
        self.hint = hint
        # Structured extras returned next to msg (for example the candidates of an ambiguous name).
        self.details = details or {}

    def bind(self, action=None, vm=None, snapshot=None, provider=None):
        """Fill in context that the raising code did not know; never overwrite what it did."""
        self.action = self.action or action
        self.vm = self.vm or vm
        self.snapshot = self.snapshot or snapshot
        self.provider = self.provider or provider
        return self

    @property
    def message(self):
        action = self.action or "manage"
        subject = "snapshot '%s'" % self.snapshot if self.snapshot else "snapshots"
        text = "Failed to %s %s" % (action, subject)
        if self.vm:
            text += " of VM '%s'" % self.vm
        if self.provider:
            text += " on %s" % self.provider
        text += ": %s" % self.reason
        if self.hint:
            text += ". %s" % self.hint.rstrip(".") + "."
        return text

    def __str__(self):
        return self.message


class VmNotFound(SnapshotError):
    """The VM named by the user does not exist on the endpoint."""


class AmbiguousVm(SnapshotError):
    """The VM name matches more than one VM; ``details['candidates']`` lists them."""


class SnapshotNotFound(SnapshotError):
    """The snapshot named by the user does not exist (only an error where it must exist)."""


class AmbiguousSnapshot(SnapshotError):
    """Two or more snapshots of one VM share the name; the engine never guesses."""


class PrecheckFailed(SnapshotError):
    """The platform would refuse or corrupt this operation; nothing was changed."""


class GuestBusy(PrecheckFailed):
    """Another job (a backup, a migration, a running task) holds the VM; ``details['busy']`` says which."""


class InvalidRequest(SnapshotError):
    """The module arguments contradict each other or the platform's rules."""


class SnapshotTimeout(SnapshotError):
    """An asynchronous operation did not finish in time; ``last_state`` is what it last reported."""

    def __init__(self, reason, last_state=None, **kwargs):
        super().__init__(reason, **kwargs)
        self.last_state = last_state
        if last_state is not None:
            self.details.setdefault("last_state", last_state)


class ProviderError(SnapshotError):
    """The hypervisor or its API failed; ``reason`` is its own error text."""


class ConnectionFailed(ProviderError):
    """The endpoint could not be reached or refused the credentials."""
