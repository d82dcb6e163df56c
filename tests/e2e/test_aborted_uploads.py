"""A client that closes its connection in the middle of its body, against a real
``taskgate serve`` (the test server cancels the handler instead, which production does
not): logged at info, counted in /metrics as 499 rather than 500, nothing stored, and
the server keeps answering."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.server import Server, http

pytestmark = pytest.mark.e2e


async def _abort_upload(server: Server, method: str, path: str) -> None:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.admin_token}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"State\"").encode())
    await writer.drain()
    await asyncio.sleep(0.2)  # the server is waiting for the rest of the body
    writer.close()


def _requests(server: Server, path: str) -> list[dict]:
    return [e for e in server.events() if e.get("event") == "request" and e.get("path") == path]


def test_an_aborted_upload_is_logged_at_info_and_not_counted_as_500(fresh_server: Server):
    calls = [("PUT", "/api/v1/BatchTask/1"), ("PUT", "/rest/pub/opentask/1"), ("PATCH", "/task-status/v1/abc")]
    paths = [path for _, path in calls]
    for method, path in calls:
        asyncio.run(_abort_upload(fresh_server, method, path))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_requests(fresh_server, p) for p in paths):
        time.sleep(0.05)
    events = fresh_server.events()
    assert [e for e in events if e.get("level") in ("error", "critical") or "exception" in e] == []
    closed = [e for e in events if e.get("event") == "client closed the connection"]
    assert sorted(e["path"] for e in closed) == sorted(paths)
    assert {e["level"] for e in closed} == {"info"}
    for path in paths:
        assert [(e["status"], e["level"]) for e in _requests(fresh_server, path)] == [(499, "info")]
    metrics = http("GET", fresh_server.base_url + "/metrics").raw.decode()
    counted = [line for line in metrics.splitlines() if line.startswith("taskgate_http_requests_total{")]
    assert not any('status="500"' in line for line in counted), counted
    assert sum('status="499"' in line for line in counted) == 3, counted
    auth = f"Bearer {fresh_server.admin_token}"
    assert http("GET", fresh_server.base_url + "/task-status/v1", auth).json == []
    assert http("GET", fresh_server.base_url + "/api/v1/BatchTask/1", auth).status == 404
