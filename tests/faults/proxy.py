# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TCP fault proxy for the tests: loopback only, pure stdlib, self-stopping.

::

    with FaultProxy("127.0.0.1", backend_port) as proxy:
        # point the module at 127.0.0.1:proxy.port
        proxy.set_fault("reset", after_requests=3)
        ...
        assert proxy.hits == 1

Every accepted client connection gets its own upstream connection; bytes are forwarded untouched in
both directions (it is a TCP proxy: TLS passes through as it is). Faults:

- ``"pass"``: forward everything (the default; clears a lasting fault).
- ``"reset"``: forward the triggering request to the server, then reset the client connection (RST:
  SO_LINGER 0) when the server's answer arrives, after forwarding ``after_bytes`` bytes of it
  (0: as soon as the answer starts). The server did get the request.
- ``"truncate"``: forward the triggering request, then only ``after_bytes`` bytes of the server's
  answer, then close the client connection cleanly (FIN).
- ``"refuse"``: stop accepting: the listening socket is closed (new connections are refused) and the
  open client connections are closed; the triggering request is not forwarded. With
  ``after_requests=0`` and no ``match`` this happens at once in ``set_fault``. Lasts until
  ``set_fault("pass")``, which listens again on the same port.
- ``"stall"``: forward the triggering request but hold the server's answer (the connection stays open)
  until the fault is cleared; every later matching request stalls too. Lasts until ``set_fault("pass")``;
  answers held until then are released.

Which request triggers: requests are counted per client write burst (client->server data that follows
connection start or data from the server), on any connection. On a TLS connection (the client's first
byte is a TLS handshake record) only application-data records count, so the handshake is not a request
and one HTTP request is one request (the TLS 1.3 client Finished, the first application-data record when
the server's handshake was encrypted, is skipped). The fault hits the first request after
``after_requests`` requests have passed, counting only requests whose first bytes contain ``match``
when it is given. ``match`` needs a plain-text client side: through TLS the bytes are ciphertext and
never match, so against the HTTPS test backends count with ``after_requests`` (``requests`` and ``log``
show what was seen: a run in check mode counts the reads a real run makes before its change). One caveat:
TLS 1.3 servers send session tickets after the handshake, as application data, at a moment of their
own: a ticket that falls between a request's headers and body (urllib3 2 writes them apart) or between
the client's Finished and its first request makes the count vary from run to run. Pin the clients to
TLS 1.2 for exact counts (``tls12_clients`` in tests/faults/test_transport.py does).
"reset" and "truncate" are one-shot (back to "pass" after firing); "refuse" and "stall" last until
``set_fault("pass")``.

``hits`` counts how often the fault fired (for "stall", once per stalled request).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

__all__ = ["FaultProxy"]

_CHUNK = 65536
# How much of a request's start `match` looks at.
_HEAD = 4096
_MODES = ("pass", "reset", "truncate", "refuse", "stall")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _close_listener(sock):
    # shutdown wakes the accept() blocked in the accept thread (Linux); close alone would leave the
    # port accepting until that accept returned.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


_HANDSHAKE = 0x16
_APPDATA = 0x17


class _Records:
    """Splits a TLS byte stream into records; ``feed`` returns the types of the records starting in it."""

    def __init__(self):
        self.head = b""
        self.need = 0

    def feed(self, data):
        types, index = [], 0
        while index < len(data):
            if self.need:
                take = min(self.need, len(data) - index)
                self.need -= take
                index += take
                continue
            part = data[index:index + 5 - len(self.head)]
            self.head += part
            index += len(part)
            if len(self.head) == 5:
                types.append(self.head[0])
                self.need = int.from_bytes(self.head[3:5], "big")
                self.head = b""
        return types


class _Conn:
    """One client connection and its upstream connection."""

    def __init__(self, proxy, client, upstream, number):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.number = number
        # Direction of the last data seen: a client chunk after server data starts a new request.
        self.last_from_client = False
        # TLS (decided on the client's first byte): requests are the client's application-data
        # records, and in TLS 1.3 the first of them is the client's Finished, not a request.
        self.tls = None
        self.client_records = _Records()
        self.server_records = _Records()
        self.client_appdata = 0
        self.server_appdata_first = False
        # Pending action on the server's answer: None, ("reset", n), ("truncate", n), ("stall",).
        self.answer_fault = None
        self.held = []
        self.closed = False
        # Serialises what goes to the client (held answers released by set_fault vs. new data).
        self.send_lock = threading.Lock()

    def start(self):
        for target in (self._client_to_server, self._server_to_client):
            thread = threading.Thread(target=target, daemon=True, name="faultproxy-%d" % self.number)
            thread.start()

    def close(self, rst=False):
        with self.proxy._lock:
            if self.closed:
                return
            self.closed = True
        if rst:
            try:
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        for sock in (self.client, self.upstream):
            # SHUT_RD wakes the other pump's recv without sending anything, so the RST goes out
            # at close (a blocked recv would otherwise hold the socket open).
            try:
                sock.shutdown(socket.SHUT_RD if rst and sock is self.client else socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def _client_to_server(self):
        try:
            while True:
                data = self.client.recv(_CHUNK)
                if not data:
                    break
                action = self.proxy._on_client_data(self, data)
                if action == "drop":
                    return
                self.upstream.sendall(data)
        except OSError:
            pass
        self.close()

    def _server_to_client(self):
        try:
            while True:
                data = self.upstream.recv(_CHUNK)
                if not data:
                    break
                with self.send_lock:
                    if not self._forward_answer(data):
                        return
        except OSError:
            pass
        self.close()

    def _forward_answer(self, data):
        """Send (or hold, or cut) one chunk of the server's answer; False once the connection is cut."""
        with self.proxy._lock:
            self.last_from_client = False
            if self.tls and not self.client_appdata and _APPDATA in self.server_records.feed(data):
                self.server_appdata_first = True  # TLS 1.3: the server's encrypted handshake
            fault = self.answer_fault
            if fault and fault[0] == "stall":
                self.held.append(data)
                return True
        if fault is None:
            self.client.sendall(data)
            return True
        kind, left = fault
        if left > 0:
            self.client.sendall(data[:left])
        if len(data) < left:
            with self.proxy._lock:
                self.answer_fault = (kind, left - len(data))
            return True
        self.close(rst=(kind == "reset"))
        return False

    def release(self):
        """Send the answers held by a stall that was cleared."""
        with self.send_lock:
            with self.proxy._lock:
                if not (self.answer_fault and self.answer_fault[0] == "stall"):
                    return
                self.answer_fault = None
                held, self.held = self.held, []
            try:
                for chunk in held:
                    self.client.sendall(chunk)
            except OSError:
                self.close()


class FaultProxy:
    """A TCP proxy on loopback that injects transport faults (see the module docstring)."""

    def __init__(self, target_host, target_port, listen_host="127.0.0.1"):
        if listen_host not in _LOOPBACK:
            raise ValueError("FaultProxy listens on loopback only, not %r" % (listen_host,))
        self.target = (target_host, int(target_port))
        self.listen_host = listen_host
        self._lock = threading.Lock()
        self._mode = "pass"
        self._after_requests = 0
        self._after_bytes = 0
        self._match = None
        self._skipped = 0
        self._conns = []
        self._closed = False
        self._listener = None
        self._count = 0
        self.hits = 0
        self.requests = 0
        # (connection number, bytes of the request's first chunk) for every request seen.
        self.log = []
        self.port = 0
        self._listen()

    # -- public -------------------------------------------------------------------------------------

    def set_fault(self, mode, after_requests=0, after_bytes=0, match=None):
        if mode not in _MODES:
            raise ValueError("unknown fault mode %r (one of %s)" % (mode, ", ".join(_MODES)))
        if match is not None and not isinstance(match, bytes):
            raise TypeError("match must be bytes")
        relisten = False
        with self._lock:
            was = self._mode
            self._mode = mode
            self._after_requests = int(after_requests)
            self._after_bytes = int(after_bytes)
            self._match = match
            self._skipped = 0
            relisten = mode == "pass" and was == "refuse" and self._listener is None
            conns = list(self._conns) if mode != "stall" else []
        for conn in conns:
            conn.release()
        if relisten:
            self._listen(self.port)
        if mode == "refuse" and not after_requests and match is None:
            self._refuse()

    def close(self):
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
            listener, self._listener = self._listener, None
        if listener is not None:
            _close_listener(listener)
        for conn in conns:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # pylint: disable=broad-except
            pass

    # -- internals ----------------------------------------------------------------------------------

    def _listen(self, port=0):
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for attempt in range(50):
            try:
                sock.bind((self.listen_host, port))
                break
            except OSError:
                if not port or attempt == 49:
                    sock.close()
                    raise
                time.sleep(0.05)
        sock.listen(64)
        self.port = sock.getsockname()[1]
        with self._lock:
            self._listener = sock
        thread = threading.Thread(target=self._accept, args=(sock,), daemon=True, name="faultproxy-accept")
        thread.start()

    def _accept(self, listener):
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._closed or self._listener is not listener
            if refusing:
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                # The backend refused: pass that on as a reset.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._count += 1
                conn = _Conn(self, client, upstream, self._count)
                self._conns = [c for c in self._conns if not c.closed] + [conn]
            conn.start()

    def _refuse(self):
        with self._lock:
            listener, self._listener = self._listener, None
            conns = list(self._conns)
        if listener is not None:
            _close_listener(listener)
        for conn in conns:
            conn.close()

    def _on_client_data(self, conn, data):
        """Count requests and decide the fault for this chunk: None (forward) or "drop"."""
        with self._lock:
            if conn.tls is None:
                conn.tls = data[:1] == bytes([_HANDSHAKE])
            if conn.tls:
                new_request = False
                for kind in conn.client_records.feed(data):
                    if kind != _APPDATA:
                        continue
                    conn.client_appdata += 1
                    if conn.client_appdata == 1 and conn.server_appdata_first:
                        continue  # TLS 1.3 client Finished
                    new_request = new_request or not conn.last_from_client
                    conn.last_from_client = True
            else:
                new_request = not conn.last_from_client
                conn.last_from_client = True
            if not new_request:
                return None
            self.requests += 1
            self.log.append((conn.number, len(data)))
            mode = self._mode
            if mode == "pass" or (self._match is not None and self._match not in data[:_HEAD]):
                return None
            if mode == "refuse" and self._listener is None:
                # Already refusing: a connection opened before is closed without forwarding.
                refuse = True
            elif self._skipped < self._after_requests:
                self._skipped += 1
                return None
            else:
                refuse = mode == "refuse"
            self.hits += 1
            if mode in ("reset", "truncate"):
                conn.answer_fault = (mode, self._after_bytes)
                self._mode = "pass"
            elif mode == "stall":
                conn.answer_fault = ("stall",)
        if refuse:
            self._refuse()
            return "drop"
        return None
