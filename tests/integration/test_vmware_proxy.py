# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VMware through an HTTP proxy (issue 11, item 7), on vcsim.

A tiny HTTP CONNECT proxy runs in the test process. The vCenter is addressed by a name only the proxy
can resolve (``vcsim.behind-proxy.invalid``, mapped to the simulator's address inside the proxy), so a
call that succeeds went through the proxy, all of it; the same call without the proxy must fail to
reach that name. Covers ``proxy_host`` / ``proxy_port`` from the environment (``VMWARE_PROXY_HOST`` /
``VMWARE_PROXY_PORT``, as community.vmware) and from the inventory (``prechange_vmware_proxy_*``,
through the roles' workflow).

    python -m pytest tests/integration/test_vmware_proxy.py
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading

import pytest

from conftest import (  # pylint: disable=import-error
    Workspace, module_result, new_run_id, vmware_backend, vsphere_remove_snapshots,
)

ONLY_THE_PROXY_KNOWS = "vcsim.behind-proxy.invalid"


class ConnectProxy(object):
    """An HTTP proxy that only tunnels (CONNECT), records every target and resolves one made-up name."""

    def __init__(self, names):
        self.names = dict(names)
        self.targets = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                method, target = head.split(b"\r\n", 1)[0].decode().split(" ")[:2]
                if method != "CONNECT":
                    self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                proxy.targets.append(target)
                host, port = target.rsplit(":", 1)
                try:
                    upstream = socket.create_connection((proxy.names.get(host, host), int(port)), timeout=10)
                except OSError:
                    self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                    return
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                with upstream:
                    self._relay(self.request, upstream)

            @staticmethod
            def _relay(client, upstream):
                sockets = [client, upstream]
                while True:
                    readable, _w, _x = select.select(sockets, [], [], 30)
                    if not readable:
                        return
                    for sock in readable:
                        data = sock.recv(65536)
                        if not data:
                            return
                        (upstream if sock is client else client).sendall(data)

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(vcsim):
    with ConnectProxy({ONLY_THE_PROXY_KNOWS: vcsim["hostname"]}) as running:
        yield running


def _info_args(vcsim):
    return {"hostname": ONLY_THE_PROXY_KNOWS, "port": vcsim["port"], "username": vcsim["username"],
            "password": vcsim["password"], "validate_certs": False, "vm": "DC0_H0_VM0"}


def test_module_reaches_vcenter_only_through_the_proxy_from_the_environment(vcsim, proxy, tmp_path):
    env = {"VMWARE_PROXY_HOST": "127.0.0.1", "VMWARE_PROXY_PORT": str(proxy.port)}
    result = module_result("vmware_snapshot_info", _info_args(vcsim), tmp_path, env=env)
    assert not result.get("failed"), result.get("msg")
    assert [entry["vm"]["name"] for entry in result["vms"]] == ["DC0_H0_VM0"]
    target = "%s:%s" % (ONLY_THE_PROXY_KNOWS, vcsim["port"])
    assert proxy.targets and set(proxy.targets) == {target}, proxy.targets


def test_without_the_proxy_the_name_is_unreachable(vcsim, proxy, tmp_path):
    """The control: the same call without the proxy cannot reach the made-up name."""
    result = module_result("vmware_snapshot_info", _info_args(vcsim), tmp_path)
    assert result.get("failed") and "cannot reach" in result["msg"], result
    assert proxy.targets == []


def test_proxy_port_without_proxy_host_is_refused(vcsim, proxy, tmp_path):
    result = module_result("vmware_snapshot_info", _info_args(vcsim), tmp_path,
                           env={"VMWARE_PROXY_PORT": str(proxy.port)})
    assert result.get("failed") and "proxy_port is set but proxy_host is not" in result["msg"], result
    assert proxy.targets == []


def test_workflow_takes_the_proxy_from_the_inventory(vcsim, proxy, tmp_path):
    backend = vmware_backend(vcsim, ["DC0_C0_RP0_VM3"])
    group_vars = dict(backend.inventory_vars, prechange_vmware_hostname=ONLY_THE_PROXY_KNOWS,
                      prechange_vmware_proxy_host="127.0.0.1", prechange_vmware_proxy_port=proxy.port)
    ws = Workspace(tmp_path, "vmware", backend.conn, backend.hosts(1), group_vars=group_vars, change_probe=True)
    run_id = new_run_id("proxy")
    before = ws.snapshots()
    try:
        result = ws.run("prechange.snapshots.maintenance",
                        {"prechange_run_id": run_id, "revert_or_prune_on_success": "delete"})
        assert result.returncode == 0, result.stdout[-4000:]
        during = ws.during("h1")
        assert during and "prechange-" + run_id in during["snapshots"], during
        assert ws.snapshots() == before
        assert proxy.targets and set(proxy.targets) == {"%s:%s" % (ONLY_THE_PROXY_KNOWS, vcsim["port"])}
    finally:
        left = set(ws.snapshots()["h1"]) - set(before["h1"])
        if left:
            vsphere_remove_snapshots(backend.conn, "DC0_C0_RP0_VM3", left)
