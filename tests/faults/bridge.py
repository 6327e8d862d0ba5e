# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback TCP port in front of a unix socket, for the tests.

libvirtd here listens on its unix socket only; putting the fault proxy between a libvirt client and the
real libvirtd needs a TCP hop: ``qemu+tcp://127.0.0.1:<proxy>/system`` -> FaultProxy -> UnixBridge ->
/run/libvirt/libvirt-sock. libvirtd sees a unix-socket client (this process, root), so it applies the
unix socket's auth and nothing in the daemon's configuration changes (no TCP listener, no restart).
"""

from __future__ import annotations

import socket
import threading


class UnixBridge:
    """Accepts on 127.0.0.1:``port`` and forwards each connection to the unix socket ``path``."""

    def __init__(self, path):
        self.path = path
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._socks = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="unixbridge").start()

    def _accept(self):
        while True:
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.path)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True, name="unixbridge").start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
