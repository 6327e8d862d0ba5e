# -*- coding: utf-8 -*-
# Copyright: prechange.snapshots contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Typed errors of the snapshot engine.

This is an internal module of the prechange.snapshots collection; it is not a public API
and may change without notice.

Every error carries the action, the VM, the snapshot and the provider, and renders one
message grammar:

    Failed to <action> snapshot '<name>' of VM '<vm>' on <provider>: <reason>

An error about another object than a snapshot (a clone VM) names it with ``subject`` in place of
"snapshot '<name>'", in the same grammar: "Failed to remove clone VM 'db01' on proxmox: <reason>".

Providers translate SDK exceptions into these at their boundary; ``_module.py`` maps them
to ``fail_json`` in exactly one place.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from xml.parsers.expat import ExpatError


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
        # What the action was done to, when it is not a snapshot (e.g. "clone VM 'db01'"); None: the snapshot.
        self.subject = None

    def __copy__(self):
        # One error reported on many hosts is copied per host (each binds its own VM): copy the attributes
        # rather than calling __init__ again, whose signature differs between subclasses.
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        clone.args = self.args
        clone.details = dict(self.details)
        return clone

    def bind(self, action=None, vm=None, snapshot=None, provider=None, subject=None):
        """Fill in context that the raising code did not know; never overwrite what it did."""
        self.action = self.action or action
        self.subject = self.subject or subject
        self.vm = self.vm or vm
        self.snapshot = self.snapshot or snapshot
        self.provider = self.provider or provider
        return self

    @property
    def message(self):
        action = self.action or "manage"
        subject = self.subject or ("snapshot '%s'" % self.snapshot if self.snapshot else "snapshots")
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


# How a connection broke, as the message says it ("lost the connection to <host> (<cause>)").
TRANSPORT_CAUSES = {
    "reset": "connection reset",
    # A reset through TLS reads the same: Python's ssl takes it for the end of the stream.
    "closed": "the connection closed before the whole answer arrived",
    "refused": "connection refused",
    "tls": "TLS error",
}


class ConnectionLost(ConnectionFailed):
    """The connection to the API broke during a call: reset, an answer cut short, refused, or no answer in time.

    Built by providers with ``connection_lost`` from their SDK's exception; the wording is here only, so every
    provider says it the same way. ``details``: ``transport`` (reset, closed, refused, tls,
    no_answer), ``host``, ``may_have_completed``: True when a change had been asked for when the connection
    broke (the platform may still carry it out), False when nothing was changed. Until a provider or the
    engine knows (``during_change``), it is None and reads as False.
    """

    def __init__(self, host, kind, cause=None, timeout=None, sent=None, **kwargs):
        # A provider's own advice for when nothing was changed (for example on the first connection).
        self.retry_hint = kwargs.pop("hint", None)
        details = kwargs.pop("details", None) or {}
        details.setdefault("transport", kind)
        details.setdefault("host", host)
        details.setdefault("may_have_completed", None)
        super().__init__("", details=details, **kwargs)
        self.host = host
        self.kind = kind
        self.cause = cause or TRANSPORT_CAUSES.get(kind, kind)
        self.timeout = timeout
        # Whether the request that failed may have reached the server: not when the connection was refused.
        self.sent = (kind != "refused") if sent is None else sent

    def during_change(self, after_request=False):
        """The call that failed asked for the change (``after_request``: the change had been asked for
        before it, for example a task poll). Keeps what is already known."""
        if self.details.get("may_have_completed") is None:
            self.details["may_have_completed"] = bool(after_request or self.sent)
        return self

    @property
    def may_have_completed(self):
        return bool(self.details.get("may_have_completed"))

    @property
    def message(self):
        if self.kind == "no_answer":
            reason = "no answer from %s within %ss" % (self.host, _seconds(self.timeout))
        elif self.kind == "refused":
            reason = "cannot connect to %s (%s)" % (self.host, self.cause)
        else:
            reason = "lost the connection to %s (%s)" % (self.host, self.cause)
        action = self.action or "manage"
        if self.may_have_completed:
            reason += "; the %s may still complete on the platform" % action
            hint = "Check with %s_snapshot_info before retrying" % (self.provider or "the provider's")
        else:
            hint = self.retry_hint or "Retry when %s answers again" % self.host
            if action != "list":
                hint += "; nothing was changed"
        self.reason = reason
        self.hint = hint
        return super().message


def _seconds(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return ("%g" % value) if isinstance(value, float) else str(value)


def connection_lost(host, kind, cause=None, timeout=None, sent=None, **kwargs):
    """The one ``ConnectionLost`` every provider raises for a transport fault (see the class)."""
    return ConnectionLost(host, kind, cause=cause, timeout=timeout, sent=sent, **kwargs)


# Exception class names (of requests and urllib3, which the engine does not import) that mean a
# connection was never made: nothing was sent.
_CONNECT_PHASE = ("ConnectTimeout", "ConnectTimeoutError", "NewConnectionError")


def _kind_of(error):
    if isinstance(error, http.client.RemoteDisconnected):  # before ConnectionResetError, its base
        return "closed"
    if isinstance(error, (http.client.IncompleteRead, ExpatError)):
        return "closed"  # the answer was cut short
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(error, (socket.timeout, TimeoutError)) or type(error).__name__ in ("ReadTimeout", "ReadTimeoutError"):
        return "no_answer"
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "closed"  # the TLS stream ended in the middle: the answer was cut short
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLCertVerificationError):
        return "tls"
    if isinstance(error, (http.client.BadStatusLine, EOFError)):
        return "closed"
    return None


def transport_fault(error):
    """``(kind, sent)`` when ``error`` (or an exception it wraps) is a transport failure, else None.

    Kinds as ``ConnectionLost`` has them; ``sent`` is False when the connection was never made (refused,
    connect timeout). Walks ``__cause__``, ``__context__``, ``reason`` and exception ``args``: requests,
    urllib3, http.client and pyvmomi wrap the socket's own error in their own.
    """
    seen, queue, connect_phase, found = set(), [error], False, None
    while queue:
        current = queue.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        connect_phase = connect_phase or type(current).__name__ in _CONNECT_PHASE
        kind = _kind_of(current)
        if kind == "no_answer":
            # A read that timed out is the root cause, even when the client then reports the connection it
            # closed because of it (pyvmomi's stub does): never call a stall a reset.
            found = (kind, current)
            break
        if kind is not None and found is None:
            found = (kind, current)
        queue.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        queue.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    if found is None:
        return None
    kind, current = found
    sent = kind != "refused" and not connect_phase and not (kind == "tls" and _in_handshake(current))
    return kind, sent


def _in_handshake(error):
    return "handshake" in str(error).lower() or isinstance(error, ssl.SSLCertVerificationError)


def as_connection_lost(error, host, timeout=None, **kwargs):
    """``error`` as a ``ConnectionLost`` when it is a transport failure (``transport_fault``), else None."""
    fault = transport_fault(error)
    if fault is None:
        return None
    kind, sent = fault
    return ConnectionLost(host, kind, timeout=timeout, sent=sent, **kwargs)
