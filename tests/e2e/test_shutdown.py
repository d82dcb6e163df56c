"""Graceful shutdown of a real ``taskgate serve``: SIGTERM or SIGINT in the middle of a
bounded write burst (16 clients updating tasks of all three styles), with one request
provably in flight (its body half sent when the signal arrives). Every acknowledged
change must be stored at its acknowledged version, the process must exit 0, and the
WAL must be checkpointed away."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.store import SCHEMA_VERSION
from tests.e2e.server import Server
from tests.e2e.server import http as send

WORKERS = 16
#: acknowledged updates before the signal is sent; each worker stops at its first failure
SIGNAL_AFTER = 240
MAX_PER_WORKER = 200


def update(style: str, task_id: str, value: str) -> tuple[str, str, Any, str]:
    """(method, path, body, content type) of one update that stores *value*."""
    if style == "sailpoint":
        return ("PATCH", f"/task-status/v1/{task_id}", [{"op": "replace", "path": "/attributes",
                                                         "value": {"v": value}}],
                "application/json-patch+json")
    if style == "superoffice":
        return "PUT", f"/api/v1/BatchTask/{task_id}", {"Description": value}, "application/json"
    return "PUT", f"/rest/pub/opentask/{task_id}", {"TaskData": {"v": value}}, "application/json"


def create_tasks(base: str, auth: str, count: int = WORKERS + 1) -> list[tuple[str, str]]:
    tasks = []
    for i in range(count):
        style = ("sailpoint", "superoffice", "webmethods")[i % 3]
        if style == "sailpoint":
            task_id = f"{i:032x}"
            reply = send("POST", f"{base}/task-status/v1", auth, {"id": task_id, "type": "QUARTZ", "uniqueName": "u"})
        elif style == "superoffice":
            reply = send("POST", f"{base}/api/v1/BatchTask", auth, {"Name": f"t{i}", "State": "Started"})
            task_id = str(reply.json)
        else:
            reply = send("POST", f"{base}/rest/pub/opentask", auth, {"taskTypeID": "T"})
            task_id = reply.json["taskID"]
        assert reply.status == (201 if style == "sailpoint" else 200), reply.raw  # SailPoint's create is 201
        tasks.append((style, task_id))
    return tasks


def wait_for_log(server: Server, event: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("event") == event for e in server.events()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no {event} in the log:\n{server.log.read_text()}")


def wait_in_progress(base: str, count: int, timeout: float = 30) -> None:
    """Until /metrics shows *count* requests being handled (the scrape is one of them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f"\ntaskgate_http_requests_in_progress {count}.0\n".encode() in send("GET", f"{base}/metrics").raw:
            return
        time.sleep(0.01)
    raise AssertionError(f"never {count} requests in progress")


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_write_burst_keeps_every_acknowledged_change(tmp_path: Path, signum: int):
    server = Server(tmp_path).start()
    assert server.proc is not None
    auth = f"Bearer {server.admin_token}"
    port = int(server.base_url.rsplit(":", 1)[1])
    tasks = create_tasks(server.base_url, auth)
    slow_style, slow_id = tasks.pop()  # its update goes out slowly, below
    acked: list[tuple[str, str, int, str]] = []
    refused: list[Any] = []
    lock = threading.Lock()
    enough = threading.Event()

    def worker(index: int) -> None:
        style, task_id = tasks[index]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for n in range(MAX_PER_WORKER):
                value = f"w{index}-{n}"
                method, path, body, ctype = update(style, task_id, value)
                try:
                    conn.request(method, path, body=json.dumps(body),
                                 headers={"Authorization": auth, "Content-Type": ctype, "Accept": "application/json"})
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException):
                    return  # the server closed the connection: this change was never acknowledged
                if not 200 <= resp.status < 300:
                    refused.append((resp.status, raw))
                    return
                with lock:
                    acked.append((style, task_id, int(resp.headers["ETag"].strip('"')), value))
                    if len(acked) >= SIGNAL_AFTER:
                        enough.set()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    # the request in flight: headers and half the body now, the rest after the signal
    method, path, doc, ctype = update(slow_style, slow_id, "slow")
    body = json.dumps(doc).encode()
    slow = socket.create_connection(("127.0.0.1", port), timeout=30)
    slow.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                 f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:10])
    # a monitor's keep-alive connection, opened before the signal
    monitor = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    monitor.request("GET", "/readyz")
    assert monitor.getresponse().read() == b'{"status":"ready","schema":%d}' % SCHEMA_VERSION
    assert enough.wait(60), f"only {len(acked)} updates were acknowledged in 60 s"
    server.proc.send_signal(signum)
    wait_for_log(server, "stopping")
    monitor.request("GET", "/readyz")  # on the connection it already had
    reply = monitor.getresponse()
    assert (reply.status, reply.read(), reply.headers["Connection"]) == (
        503, b'{"status":"unavailable","reason":"taskgate is shutting down"}', "close")
    monitor.close()
    slow.sendall(body[10:])
    answer = b""
    while chunk := slow.recv(65536):
        answer += chunk
    slow.close()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert server.proc.wait(60) == 0, server.log.read_text()
    server.stop()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in answer, answer
    slow_version = int(answer.split(b'ETag: "', 1)[1].split(b'"', 1)[0])
    acked.append((slow_style, slow_id, slow_version, "slow"))
    assert refused == []
    assert any(e.get("event") == "stopped" for e in server.events()) and "Traceback" not in server.log.read_text()

    # the WAL was checkpointed into the database and removed with the last connection
    wal = tmp_path / "taskgate.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(tmp_path / "taskgate.db") as db:
        stored = {(s, i): v for s, i, v in db.execute("SELECT style, id, version FROM tasks")}
        audit = {(s, i, v): patch for s, i, v, patch in
                 db.execute("SELECT style, task_id, version, patch FROM audit WHERE action = 'updated'")}
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for style, task_id, version, value in acked:
        assert stored[(style, task_id)] >= version
        patch = json.loads(audit[(style, task_id, version)])  # the acknowledged version holds this change
        assert value in json.dumps(patch), (style, task_id, version, value, patch)
    assert len(acked) > SIGNAL_AFTER


@pytest.mark.e2e
def test_a_request_still_running_at_the_timeout_is_cut_short_and_changes_nothing(tmp_path: Path):
    server = Server(tmp_path, config="[server]\nshutdown_timeout = 0.5\n").start()
    assert server.proc is not None
    auth = f"Bearer {server.admin_token}"
    (style, task_id), = create_tasks(server.base_url, auth, 1)
    method, path, doc, ctype = update(style, task_id, "never")
    body = json.dumps(doc).encode()
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as stuck:
        stuck.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])  # the rest never comes
        wait_in_progress(server.base_url, 2)  # it, and the scrape that sees it
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.log.read_text()
        assert stuck.recv(65536) == b""  # closed without an answer: nothing was acknowledged
    server.stop()
    assert [e["requests"] for e in server.events() if e.get("event") == "requests cut short by the shutdown"] == [1]
    with sqlite3.connect(tmp_path / "taskgate.db") as db:
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'updated'").fetchone() == (0,)
