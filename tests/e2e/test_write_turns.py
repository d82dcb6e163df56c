"""Turns at large writes on a real ``taskgate serve``, in each way the app is put together:
plainly, with testing on (its namespaces' middleware), and under ``server.base_path`` (a
sub-application). Two of alice's large PUTs whose bodies are still arriving (raw sockets
that sent half of them) hold her two turns; her third large PUT then waits, counted in
``/metrics`` and not timed, as does one whose small gzip body inflates past 64 KiB; a small
PUT of hers and root's large PUT are answered meanwhile. Once the first held body is sent
whole, its PUT and then the waiting one are stored and answered.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.client import HTTPResponse
from pathlib import Path

import pytest

from gateway.turns import LARGE_WRITE_BYTES
from tests.e2e.server import Server, http

MODES = {
    "plain": ("", ""),
    "testing": ("[testing]\nenabled = true\n", ""),
    "base_path": ('[server]\nbase_path = "/tg"\n', "/tg"),
}
BLOB = "x" * (LARGE_WRITE_BYTES + 100)


def _held_put(base_url: str, path: str, token: str, body: bytes) -> socket.socket:
    """A PUT whose headers and first half of the body are sent; the rest is up to the caller."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                 + body[:len(body) // 2])
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    reply = HTTPResponse(sock)
    reply.begin()
    return reply.status, reply.read()


def _turns(server: Server, prefix: str) -> dict[str, float]:
    text = http("GET", f"{server.base_url}{prefix}/metrics", f"Bearer {server.admin_token}").raw.decode()
    return {state: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            for state in ("running", "waiting") if line.startswith(f'taskgate_write_turns{{state="{state}"}}')}


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_users_third_large_write_waits_for_one_of_its_two_turns(tmp_path: Path, mode: str) -> None:
    config, prefix = MODES[mode]
    server = Server(tmp_path, config=config).start()
    try:
        server.cli("user", "add", "alice", "--role", "user")
        alice = server.cli("token", "create", "alice").strip()
        base = f"{server.base_url}{prefix}"
        created = http("POST", f"{base}/rest/pub/opentask", f"Bearer {alice}",
                       {"taskTypeID": "t", "TaskData": {"blob": "a"}})
        assert created.status == 200, created.raw
        path = f"{prefix}/rest/pub/opentask/{created.json['taskID']}"
        held = [_held_put(server.base_url, path, alice, json.dumps({"TaskData": {"blob": f"{n}{BLOB}"}}).encode())
                for n in (1, 2)]
        _until(lambda: _turns(server, prefix) == {"running": 2.0, "waiting": 0.0}, "alice's two turns are held")
        answers: dict[str, object] = {}
        gzipped = gzip.compress(json.dumps({"TaskData": {"blob": f"z{BLOB}"}}).encode())
        assert len(gzipped) < 1000  # on the wire it is small; inflated, it is large
        waiting = [threading.Thread(target=lambda: answers.update(third=http(
                       "PUT", f"{server.base_url}{path}", f"Bearer {alice}", {"TaskData": {"blob": f"3{BLOB}"}}))),
                   threading.Thread(target=lambda: answers.update(gzipped=http(
                       "PUT", f"{server.base_url}{path}", f"Bearer {alice}", data=gzipped,
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})))]
        for thread in waiting:
            thread.start()
        _until(lambda: _turns(server, prefix) == {"running": 2.0, "waiting": 2.0}, "the two large PUTs wait")
        small = http("PUT", f"{server.base_url}{path}", f"Bearer {alice}", {"TaskData": {"blob": "small"}})
        assert (small.status, small.json) == (200, {})  # a small write takes no turn
        large = http("PUT", f"{server.base_url}{path}", f"Bearer {server.admin_token}",
                     {"TaskData": {"blob": f"root{BLOB}"}})
        assert (large.status, large.json) == (200, {})  # root's turns are its own
        assert not answers and _turns(server, prefix) == {"running": 2.0, "waiting": 2.0}
        first = json.dumps({"TaskData": {"blob": f"1{BLOB}"}}).encode()
        held[0].sendall(first[len(first) // 2:])
        assert _answer(held[0]) == (200, b"{}")
        for thread in waiting:  # one takes the freed turn, then the other
            thread.join(30)
        assert {name: (reply.status, reply.json) for name, reply in answers.items()} == {  # type: ignore[attr-defined]
            "third": (200, {}), "gzipped": (200, {})}
        second = json.dumps({"TaskData": {"blob": f"2{BLOB}"}}).encode()
        held[1].sendall(second[len(second) // 2:])
        assert _answer(held[1]) == (200, b"{}")
        stored = http("GET", f"{server.base_url}{path}?includeTaskData=true", f"Bearer {alice}")
        assert stored.json["TaskData"] == {"blob": f"2{BLOB}"}  # the last one answered
        assert _turns(server, prefix) == {"running": 0.0, "waiting": 0.0}
        for sock in held:
            sock.close()
    finally:
        assert server.stop() == 0
