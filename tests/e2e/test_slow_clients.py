"""Idle and slow clients against a real ``taskgate serve`` on loopback, bounded in count
and time: 200 idle connections, slowloris senders dribbling headers and slow bodies do not
stop other clients from being served, and the configured timeouts close them.

``server.keepalive_timeout`` is aiohttp's keep-alive timeout: it starts when a connection
opens (and after each answer) and is not reset by partial data, so it also bounds how long
request headers may take. ``server.body_timeout`` bounds reading a body (aiohttp has no such
limit of its own); a body too slow gets 408 in the route's style.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.server import Server, call, session

pytestmark = pytest.mark.e2e

IDLE = 200
SLOWLORIS = 5
SLOW_BODIES = 3
TIMEOUT = 2  # seconds, both timeouts, in the server's configuration
BOUND = 20  # seconds any client here waits before the test fails


async def _dribble_headers(host: str, port: int, stop: asyncio.Event) -> bytes:
    """A request whose headers never end: one header line every 0.2 s. Returns what the
    server sent before closing the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /task-status/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    i = 0
    try:
        while not stop.is_set() and not reader.at_eof():
            i += 1
            writer.write(f"X-Slow-{i}: x\r\n".encode())
            await writer.drain()
            try:
                return await asyncio.wait_for(reader.read(), 0.2)  # EOF (b"") once the server closes
            except TimeoutError:
                continue
    except ConnectionError:
        return b""
    finally:
        writer.close()
    return b"still open"


async def _slow_body(host: str, port: int, head: str, body: bytes) -> tuple[int, dict]:
    """Whole headers, then a body one byte every 0.3 s: the server answers 408 when
    ``body_timeout`` runs out."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((head + f"Host: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n").encode())
    sent = 0
    try:
        while sent < len(body):
            writer.write(body[sent:sent + 1])
            sent += 1
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.3)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("the whole slow body was read: the body timeout did not fire")
        status = int(head.split()[1])
        lines = [line.lower() for line in head.split(b"\r\n")]
        length = int(next(line.split(b":")[1] for line in lines if line.startswith(b"content-length")))
        answer = json.loads(await reader.readexactly(length))
        # the rest of the body cannot be told from a next request: the server closes at once,
        # rather than reading on for aiohttp's lingering time (10 s)
        assert b"connection: close" in lines
        assert await asyncio.wait_for(reader.read(), 2) == b""
        return status, answer
    finally:
        writer.close()


async def test_idle_and_slow_clients_do_not_starve_others_and_are_cut_off(tmp_path: Path) -> None:
    server = Server(tmp_path, env={"TASKGATE_SERVER_KEEPALIVE_TIMEOUT": str(TIMEOUT),
                                   "TASKGATE_SERVER_BODY_TIMEOUT": str(TIMEOUT)}).start()
    host, port = "127.0.0.1", int(server.base_url.rsplit(":", 1)[1])
    try:
        async with session(server) as client:
            status, body, _ = await call(client, "POST", "/task-status/v1",
                                         body={"id": "t1", "type": "QUARTZ", "uniqueName": "t"})
            assert status == 201, body
            idle = [await asyncio.open_connection(host, port) for _ in range(IDLE)]
            stop = asyncio.Event()
            lorises = [asyncio.create_task(_dribble_headers(host, port, stop)) for _ in range(SLOWLORIS)]
            patch = (f"PATCH /task-status/v1/t1 HTTP/1.1\r\nAuthorization: Bearer {server.admin_token}\r\n"
                     "Content-Type: application/json-patch+json\r\n")
            form = "Content-Type: application/x-www-form-urlencoded\r\n"
            slow = [asyncio.create_task(_slow_body(host, port, patch, b'[{"op": "replace", "path": "/progress", '
                                                                       b'"value": "slow"}]'))
                    for _ in range(SLOW_BODIES)]
            slow_login = asyncio.create_task(_slow_body(host, port, "POST /login HTTP/1.1\r\n" + form,
                                                        b"user=admin&password=" + b"x" * 40))
            slow_token = asyncio.create_task(_slow_body(host, port, "POST /oauth/token HTTP/1.1\r\n" + form,
                                                        b"grant_type=client_credentials" + b"&" * 40))
            # meanwhile everyone else is served, each request within the client's bound
            bounded = aiohttp.ClientTimeout(total=BOUND)
            for i in range(30):
                async with client.get("/task-status/v1/t1", timeout=bounded) as resp:
                    assert resp.status == 200
                async with client.patch("/task-status/v1/t1", timeout=bounded,
                                        json=[{"op": "replace", "path": "/percentComplete", "value": i}],
                                        headers={"Content-Type": "application/json-patch+json"}) as resp:
                    assert resp.status == 200
            # the slow bodies get 408 in SailPoint's error body, and change nothing
            for status, body in await asyncio.wait_for(asyncio.gather(*slow), BOUND):
                assert status == 408, body
                assert body["detailCode"] == "408 Request Timeout" and body["causes"] == []
                assert body["messages"][0]["text"] == "the request body did not arrive in time"
            assert await asyncio.wait_for(slow_login, BOUND) == (408, {
                "Error": True, "ErrorType": "RequestTimeoutException",
                "ErrorSource": "SuperOffice.Services.Implementation",
                "ErrorMessage": "the request body did not arrive in time"})
            assert await asyncio.wait_for(slow_token, BOUND) == (408, {
                "error": "invalid_request", "error_description": "the request body did not arrive in time"})
            # the slowloris connections and the idle ones are closed by the server
            answers = await asyncio.wait_for(asyncio.gather(*lorises), BOUND)
            assert answers == [b""] * SLOWLORIS, answers
            closed = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _w in idle)), BOUND)
            assert closed == [b""] * IDLE
            for _r, w in idle:
                w.close()
            status, doc, _ = await call(client, "GET", "/task-status/v1/t1")
            assert (status, doc["percentComplete"], doc["progress"]) == (200, 29, None)
    finally:
        server.stop()
    log = server.log.read_text()
    assert server.admin_token and server.admin_token not in log  # the token sent 200 times is never logged
    assert '"status": 408' in log or '"status":408' in log
