# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test fault proxy (tests/faults/proxy.py) against a tiny local HTTP/1.1 server."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading

import pytest

from tests.faults.proxy import FaultProxy

BIG = b"x" * 200000


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests on one connection

    def _answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.seen.append(("GET", self.path))
        self._answer(BIG if self.path == "/big" else b"hello")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append(("POST", self.path))
        self._answer(b"created")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def proxy(server):
    with FaultProxy("127.0.0.1", server.server_address[1]) as prox:
        yield prox


def _get(conn, path="/"):
    conn.request("GET", path)
    return conn.getresponse().read()


def _raw(proxy, request=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5):
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.sendall(request)
    return sock


def _read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_pass_forwards_and_counts_requests(proxy, server):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn) == b"hello"
    assert _get(conn, "/big") == BIG
    conn.close()
    assert proxy.requests == 2
    assert proxy.hits == 0
    assert [entry[0] for entry in proxy.log] == [1, 1]  # both on the first connection


def test_reset_after_requests_is_one_shot(proxy, server):
    proxy.set_fault("reset", after_requests=1)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn) == b"hello"
    with pytest.raises(ConnectionResetError):
        _get(conn)
    assert proxy.hits == 1
    # The server did get the request that was reset.
    assert server.seen == [("GET", "/"), ("GET", "/")]
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn) == b"hello"
    assert proxy.hits == 1


def test_reset_mid_answer(proxy):
    proxy.set_fault("reset", after_bytes=1000)
    sock = _raw(proxy, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    with pytest.raises(ConnectionResetError):
        while True:
            chunk = sock.recv(65536)
            assert chunk, "the connection was closed cleanly instead of reset"
            got += chunk
    assert len(got) <= 1000
    sock.close()


def test_match_only_counts_matching_requests(proxy, server):
    proxy.set_fault("reset", match=b"POST /create")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn) == b"hello"
    conn.request("POST", "/create", body=b"{}")
    with pytest.raises(ConnectionResetError):
        conn.getresponse()
    assert proxy.hits == 1
    assert ("POST", "/create") in server.seen


def test_match_with_after_requests_skips_matching_ones(proxy, server):
    proxy.set_fault("reset", after_requests=1, match=b"POST")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    for _request in range(3):
        assert _get(conn) == b"hello"
    conn.request("POST", "/a", body=b"1")
    assert conn.getresponse().read() == b"created"
    conn.request("POST", "/b", body=b"1")
    with pytest.raises(ConnectionResetError):
        conn.getresponse()
    assert proxy.hits == 1


def test_truncate_forwards_after_bytes_then_closes_cleanly(proxy):
    proxy.set_fault("truncate", after_bytes=50)
    sock = _raw(proxy, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    data = _read_all(sock)
    sock.close()
    assert len(data) == 50
    assert data.startswith(b"HTTP/1.1 200")
    assert proxy.hits == 1
    # One-shot: the next answer is whole.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn, "/big") == BIG


def test_truncate_in_http_client(proxy):
    proxy.set_fault("truncate", after_bytes=1000)  # into the body
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", "/big")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()


def test_refuse_at_once_and_back(proxy):
    port = proxy.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert _get(conn) == b"hello"
    proxy.set_fault("refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    # The open connection was closed too: the keep-alive client must reconnect, and is refused.
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        _get(conn)
    proxy.set_fault("pass")
    assert proxy.port == port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert _get(conn) == b"hello"


def test_refuse_after_requests_does_not_forward_the_trigger(proxy, server):
    proxy.set_fault("refuse", after_requests=1)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn) == b"hello"
    conn.request("POST", "/create", body=b"{}")
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        conn.getresponse()
    assert ("POST", "/create") not in server.seen
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert proxy.hits == 1


def test_stall_holds_the_answer_until_cleared(proxy, server):
    proxy.set_fault("stall")
    sock = _raw(proxy, timeout=0.3)
    with pytest.raises(socket.timeout):
        sock.recv(65536)
    # Lasting: a second connection stalls too.
    other = _raw(proxy, timeout=0.3)
    with pytest.raises(socket.timeout):
        other.recv(65536)
    assert proxy.hits == 2
    assert server.seen == [("GET", "/"), ("GET", "/")]  # the requests went through, the answers did not
    proxy.set_fault("pass")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()
    other.close()


def test_close_stops_listening(server):
    proxy = FaultProxy("127.0.0.1", server.server_address[1])
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert _get(conn) == b"hello"
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        _get(conn)


def test_loopback_only_and_known_modes(server):
    with pytest.raises(ValueError):
        FaultProxy("127.0.0.1", server.server_address[1], listen_host="0.0.0.0")
    with FaultProxy("127.0.0.1", server.server_address[1]) as proxy:
        with pytest.raises(ValueError):
            proxy.set_fault("explode")
        with pytest.raises(TypeError):
            proxy.set_fault("reset", match="text")


@pytest.fixture
def tls_server(tmp_path):
    certs = pytest.importorskip("fakepve.certs")
    import ssl  # pylint: disable=import-outside-toplevel
    certfile, keyfile, _der = certs.make_cert(str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.seen = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("tls_version", ["TLSv1_2", "TLSv1_3"])
def test_through_tls_one_request_is_one_http_request(tls_server, tls_version):
    import ssl  # pylint: disable=import-outside-toplevel
    context = ssl._create_unverified_context()  # pylint: disable=protected-access
    context.maximum_version = context.minimum_version = getattr(ssl.TLSVersion, tls_version)
    with FaultProxy("127.0.0.1", tls_server.server_address[1]) as proxy:
        # The handshakes are not requests: two connections, five HTTP requests.
        for requests in (3, 2):
            conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=5, context=context)
            for _request in range(requests):
                assert _get(conn) == b"hello"
            conn.close()
        assert proxy.requests == 5
        # So after_requests counts HTTP requests: the third one of a new connection is reset.
        proxy.set_fault("reset", after_requests=2)
        conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=5, context=context)
        assert _get(conn) == b"hello"
        assert _get(conn, "/big") == BIG
        with pytest.raises(ConnectionResetError):
            _get(conn)
        assert proxy.hits == 1
        assert len(tls_server.seen) == 8
