# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transport faults between the modules and the real test backends, through tests/faults/proxy.py.

Each provider's snapshot module runs in this process (the action plugin's InProcessModule, so the result
is the module's own: failed, changed, msg and the error keys) against fakepve (HTTPS), vcsim (HTTPS) and
the real libvirtd. libvirtd listens on its unix socket only, so libvirt goes
``qemu+tcp://127.0.0.1:<proxy>/system`` -> FaultProxy -> UnixBridge (tests/faults/bridge.py) -> the unix
socket; the daemon's configuration is not changed.

Which request a fault hits is counted, not guessed: a run in check mode makes exactly the reads a real run
makes before its change (the engine runs the same lookups and prechecks), so the number of requests the
proxy saw in check mode, less the ones closing the session, is the index of the change request.

What is asserted: the whole message, ``failed``/``changed``, ``may_have_completed``, and what exists
afterwards, read from the platform's API without the proxy.

    flock /tmp/prechange-libvirt.lock python -m pytest tests/faults/test_transport.py
"""

from __future__ import annotations

import gc
import importlib
import ssl
import time
import uuid

import pytest

from ansible_collections.prechange.snapshots.plugins.plugin_utils._in_process import InProcessModule, ModuleExit
from tests.faults.bridge import UnixBridge
from tests.faults.proxy import FaultProxy

HOST = "127.0.0.1"
LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
# Long enough for any backend to finish what it was asked before the connection broke.
SETTLE = 60


def _module(name, args, check=False):
    """Run prechange.snapshots.<name> in this process; return its result (any raw exception fails the test)."""
    module = importlib.import_module("ansible_collections.prechange.snapshots.plugins.modules." + name)

    def module_class(argument_spec, **kwargs):
        return InProcessModule(argument_spec, task_args=args, check_mode=check, diff=False, name=name, **kwargs)

    with pytest.raises(ModuleExit) as done:
        module.main(module_class=module_class)
    return done.value.result


class Target(object):
    """One provider's backend behind a fault proxy: module arguments, and ground truth without the proxy."""

    def __init__(self, provider, backend_class, vm, direct, proxied, proxy):
        self.provider = provider
        self.backend_class = backend_class
        self.vm = vm
        self.direct = direct  # connection params straight to the backend
        self.proxied = proxied  # the same, through the proxy
        self.proxy = proxy

    def args(self, **extra):
        args = dict(self.proxied, vm=self.vm)
        args.update(extra)
        return args

    def run(self, check=False, info=False, **extra):
        name = "%s_snapshot%s" % (self.provider, "_info" if info else "")
        settle()  # no earlier session's close among this run's requests
        try:
            return _module(name, self.args(**extra), check=check)
        finally:
            settle()  # and this session's close counted now

    def snapshots(self):
        """{name: current} read from the platform's API, not through the proxy."""
        with self.backend_class(dict(self.direct, timeout=30)) as backend:
            vm = backend.find_vm(self.vm)
            return {s.name: s.current for s in backend.list_snapshots(vm)}

    def settles_to(self, predicate):
        """Wait until the platform's state satisfies ``predicate`` (it may still be carrying out the change)."""
        deadline = time.monotonic() + SETTLE
        while True:
            state = self.snapshots()
            if predicate(state) or time.monotonic() > deadline:
                return state
            time.sleep(0.2)

    def close_requests(self):
        """Requests the backend makes to close its session (vSphere Logout, libvirt's close)."""
        backend = self.backend_class(dict(self.proxied, timeout=30))
        before = self.proxy.requests
        backend.close()
        del backend
        settle()
        return self.proxy.requests - before

    def requests_before_change(self, **args):
        """How many requests a real run makes before its change request: a check-mode run's count."""
        closing = self.close_requests()
        before = self.proxy.requests
        result = self.run(check=True, **args)
        settle()
        assert not result.get("failed"), result
        assert result["changed"], "nothing to change in check mode: %r" % result
        return self.proxy.requests - before - closing


def settle():
    """libvirt-python closes a connection (one RPC) only when its last domain object is collected: collect
    now, so that RPC is counted where the session ends and not inside the next run."""
    gc.collect()


@pytest.fixture
def tls12_clients(monkeypatch):
    """Every TLS client of this process speaks TLS 1.2 during the test.

    So the proxy's request count is exact: a TLS 1.3 server (fakepve's Python, vcsim's Go) sends session
    tickets after the handshake at a moment of its own, and a ticket that falls inside the first request on
    a connection makes the count vary (see the proxy's docstring). The modules' own code is unchanged.
    """
    wrap = ssl.SSLContext.wrap_socket

    def wrap_socket(self, sock, *args, **kwargs):
        if not kwargs.get("server_side") and (not args or not args[0]):
            self.maximum_version = ssl.TLSVersion.TLSv1_2
        return wrap(self, sock, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)


@pytest.fixture(params=["proxmox", "vmware", "libvirt"])
def target(request, tls12_clients):
    provider = request.param
    if provider == "proxmox":
        pytest.importorskip("proxmoxer")
        from ansible_collections.prechange.snapshots.plugins.module_utils._proxmox import ProxmoxBackend
        cluster = request.getfixturevalue("pve")
        with FaultProxy(cluster.host, cluster.port) as proxy:
            direct = {"api_host": cluster.host, "api_port": cluster.port, "api_user": cluster.user,
                      "api_password": cluster.password, "ca_path": cluster.cafile, "validate_certs": True}
            proxied = dict(direct, api_host=HOST, api_port=proxy.port)
            yield Target(provider, ProxmoxBackend, "web01", direct, proxied, proxy)
    elif provider == "vmware":
        pytest.importorskip("pyVmomi")
        from ansible_collections.prechange.snapshots.plugins.module_utils._vmware import VmwareBackend
        info = request.getfixturevalue("vcsim")
        with FaultProxy(HOST, info["port"]) as proxy:
            direct = {"hostname": HOST, "port": info["port"], "username": info["username"],
                      "password": info["password"], "validate_certs": False}
            proxied = dict(direct, port=proxy.port)
            target = Target(provider, VmwareBackend, "DC0_H0_VM0", direct, proxied, proxy)
            yield target
            _cleanup(target)
    else:
        pytest.importorskip("libvirt")
        from ansible_collections.prechange.snapshots.plugins.module_utils._libvirt import LibvirtBackend
        guest = request.getfixturevalue("libvirt_guest")("blank")
        with UnixBridge(LIBVIRT_SOCKET) as bridge, FaultProxy(HOST, bridge.port) as proxy:
            direct = {"uri": "qemu:///system"}
            proxied = {"uri": "qemu+tcp://%s:%d/system" % (HOST, proxy.port)}
            yield Target(provider, LibvirtBackend, guest.name, direct, proxied, proxy)


def _cleanup(target):
    """vcsim lives for the session: remove what a test made on its VM."""
    for name in target.snapshots():
        if name.startswith("tr-"):
            _module("vmware_snapshot", dict(target.direct, vm=target.vm, name=name, state="absent",
                                            remove_children=True))


def new_name():
    return "tr-%s" % uuid.uuid4().hex[:8]


CLOSED = "the connection closed before the whole answer arrived"


def reset_cause(target):
    """What a reset reads as: through TLS (Proxmox, vSphere) Python's ssl takes the reset for the end of the
    stream, so the client cannot tell it from a connection closed early; libvirt's plain RPC sees the RST."""
    return ("connection reset", "reset") if target.provider == "libvirt" else (CLOSED, "closed")


def lost(target, action, name, cause):
    return ("Failed to %s snapshot '%s' of VM '%s' on %s: lost the connection to %s (%s); the %s may still "
            "complete on the platform. Check with %s_snapshot_info before retrying."
            % (action, name, target.vm, target.provider, HOST, cause, action, target.provider))


def assert_failed(result, message, may_have_completed, transport):
    assert result.get("failed") is True, result
    assert not result.get("changed")
    assert result["msg"] == message
    assert result["error"] == "ConnectionLost"
    assert result["may_have_completed"] is may_have_completed
    assert result["transport"] == transport


# --- create -------------------------------------------------------------------------------------


def test_reset_of_the_create_request_may_have_completed(target):
    name = new_name()
    index = target.requests_before_change(name=name)
    target.proxy.set_fault("reset", after_requests=index)
    result = target.run(name=name)
    assert target.proxy.hits == 1
    cause, kind = reset_cause(target)
    assert_failed(result, lost(target, "create", name, cause), True, kind)
    # The request had reached the platform: the snapshot is made there.
    assert name in target.settles_to(lambda state: name in state)


def test_reset_while_waiting_for_the_create_may_have_completed(target):
    name = new_name()
    index = target.requests_before_change(name=name)
    # The request after the create: a task poll (Proxmox, vSphere) or the listing that follows it (libvirt).
    target.proxy.set_fault("reset", after_requests=index + 1)
    result = target.run(name=name)
    assert target.proxy.hits == 1
    cause, kind = reset_cause(target)
    assert_failed(result, lost(target, "create", name, cause), True, kind)
    assert name in target.settles_to(lambda state: name in state)


def test_reset_before_the_create_changes_nothing(target):
    name = new_name()
    index = target.requests_before_change(name=name)
    target.proxy.set_fault("reset", after_requests=index - 1)  # the last read before the create
    result = target.run(name=name)
    assert target.proxy.hits == 1
    cause, kind = reset_cause(target)
    assert_failed(result, "Failed to create snapshot '%s' of VM '%s' on %s: lost the connection to %s (%s). Retry "
                          "when %s answers again; nothing was changed."
                  % (name, target.vm, target.provider, HOST, cause, HOST), False, kind)
    assert name not in target.snapshots()


def test_truncated_answer_to_the_create_may_have_completed(target):
    name = new_name()
    index = target.requests_before_change(name=name)
    # 60 bytes: inside the first TLS record or libvirt's reply header, whatever the backend answers.
    target.proxy.set_fault("truncate", after_requests=index, after_bytes=60)
    result = target.run(name=name)
    assert target.proxy.hits == 1
    assert_failed(result, lost(target, "create", name, CLOSED), True, "closed")
    assert name in target.settles_to(lambda state: name in state)


def test_stalled_answer_to_the_create_is_given_up_after_the_timeout(target):
    name = new_name()
    index = target.requests_before_change(name=name)
    target.proxy.set_fault("stall", after_requests=index)
    try:
        result = target.run(name=name, timeout=3)
    finally:
        target.proxy.set_fault("pass")
    assert target.proxy.hits >= 1
    assert_failed(result, "Failed to create snapshot '%s' of VM '%s' on %s: no answer from %s within 3s; the create "
                          "may still complete on the platform. Check with %s_snapshot_info before retrying."
                  % (name, target.vm, target.provider, HOST, target.provider), True, "no_answer")
    assert name in target.settles_to(lambda state: name in state)


def test_stalled_listing_changes_nothing(target):
    name = new_name()
    index = target.requests_before_change(name=name)
    target.proxy.set_fault("stall", after_requests=index - 1)
    try:
        result = target.run(name=name, timeout=3)
    finally:
        target.proxy.set_fault("pass")
    assert_failed(result, "Failed to create snapshot '%s' of VM '%s' on %s: no answer from %s within 3s. Retry when "
                          "%s answers again; nothing was changed." % (name, target.vm, target.provider, HOST, HOST),
                  False, "no_answer")
    assert name not in target.snapshots()


CONNECT_HINTS = {"proxmox": "Check 'api_host' and 'api_port'", "vmware": "Check 'hostname' and 'port'",
                 "libvirt": "Check 'uri' and that libvirtd is running"}


def test_refused_connection_changes_nothing(target):
    name = new_name()
    target.proxy.set_fault("refuse")
    result = target.run(name=name)
    assert_failed(result, "Failed to create snapshot '%s' of VM '%s' on %s: cannot connect to %s (connection "
                          "refused). %s; nothing was changed."
                  % (name, target.vm, target.provider, HOST, CONNECT_HINTS[target.provider]), False, "refused")
    target.proxy.set_fault("pass")
    assert name not in target.snapshots()


# --- delete and revert --------------------------------------------------------------------------


def test_reset_of_the_delete_request_may_have_completed(target):
    name = new_name()
    assert target.run(name=name)["changed"]
    index = target.requests_before_change(name=name, state="absent")
    target.proxy.set_fault("reset", after_requests=index)
    result = target.run(name=name, state="absent")
    assert target.proxy.hits == 1
    cause, kind = reset_cause(target)
    assert_failed(result, lost(target, "delete", name, cause), True, kind)
    assert name not in target.settles_to(lambda state: name not in state)


def test_reset_of_the_revert_request_may_have_completed(target):
    first, second = new_name(), new_name()
    assert target.run(name=first)["changed"]
    assert target.run(name=second)["changed"]
    assert target.snapshots()[second] is True
    index = target.requests_before_change(name=first, state="reverted")
    target.proxy.set_fault("reset", after_requests=index)
    result = target.run(name=first, state="reverted")
    assert target.proxy.hits == 1
    cause, kind = reset_cause(target)
    assert_failed(result, lost(target, "revert", first, cause), True, kind)
    assert target.settles_to(lambda state: state.get(first))[first] is True


# --- listing ------------------------------------------------------------------------------------


def test_reset_of_the_listing_is_a_list_error(target):
    closing = target.close_requests()
    before = target.proxy.requests
    assert not target.run(info=True).get("failed")
    settle()
    listing = target.proxy.requests - before - closing - 1  # the last read is the snapshot listing
    target.proxy.set_fault("reset", after_requests=listing)
    result = target.run(info=True)
    assert target.proxy.hits == 1
    assert result.get("failed") is True
    assert result["msg"] == ("Failed to list snapshots of VM '%s' on %s: lost the connection to %s (%s). Retry when "
                             "%s answers again." % (target.vm, target.provider, HOST, reset_cause(target)[0], HOST))
    assert result["may_have_completed"] is False
