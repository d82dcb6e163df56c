"""``server.max_connections`` on a real ``taskgate serve``: idle connections up to the
limit are kept, one beyond it is answered 503 at once and closed, and once an idle one
closes a new request succeeds. Bounded by deadlines, no timing assertions."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.e2e.server import Server

LIMIT = 5


def _port(server: Server) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def _get_healthz(port: int) -> bytes:
    """One request on a new connection; what came back before the server closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:  # closed before our request was read: refused all the same
            return b""
    return answer


def test_connections_beyond_max_connections_are_refused_until_one_closes(tmp_path: Path):
    server = Server(tmp_path, config=f"[server]\nmax_connections = {LIMIT}\nkeepalive_timeout = 60\n").start()
    idle: list[socket.socket] = []
    try:
        port = _port(server)
        assert _get_healthz(port).startswith(b"HTTP/1.1 200 OK")
        deadline = time.monotonic() + 20
        # the connection that answered may take a moment to be forgotten: fill up to the limit
        # with idle connections (each proven open by one answered request) until the next is refused
        while True:
            assert time.monotonic() < deadline, "the limit never took effect"
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: stays open, idle
            first = conn.recv(65536)
            if first.startswith(b"HTTP/1.1 200 OK"):
                idle.append(conn)
                assert len(idle) <= LIMIT, "more idle connections kept than server.max_connections"
                continue
            conn.close()
            assert first == b"" or first.startswith(b"HTTP/1.1 503 Service Unavailable"), first
            break
        assert len(idle) == LIMIT
        refused = _get_healthz(port)  # the 6th
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), refused
        assert b"Retry-After: 1\r\n" in refused and b"Connection: close\r\n" in refused
        assert refused.endswith(b'{"error":"too many connections; try again later"}'), refused
        idle.pop().close()
        deadline = time.monotonic() + 20
        while not (answer := _get_healthz(port)).startswith(b"HTTP/1.1 200 OK"):
            assert time.monotonic() < deadline, answer
            time.sleep(0.05)
        assert answer.endswith(b'{"status":"ok"}')
    finally:
        for conn in idle:
            conn.close()
        assert server.stop() == 0, server.log.read_text()
    warnings = [e for e in server.events() if e.get("event") == "connections refused over server.max_connections"]
    assert warnings and warnings[0]["max_connections"] == LIMIT and warnings[0]["level"] == "warning"
