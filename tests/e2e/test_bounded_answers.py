"""The largest list answers an ordinary user can ask for, against a real ``taskgate serve``:
memory stays bounded and other clients keep their latency while they are sent.

The database is filled through ``taskgate import`` (the store's import path, much faster
than HTTP) with tasks of the largest size the limits allow: 250 SailPoint TaskStatus (a
full page of ``GET /task-status/v1``) and 100 webMethods tasks with a megabyte TaskData
each, about 350 MB in all. While ``curl`` takes the whole answer, a thread asks
``/healthz`` every 20 ms and reads the server's resident memory from ``/proc``. Then a
client that stops reading halfway, and one that closes its connection: the server holds
no more than a chunk, logs either at info, and goes on serving.

``TASKGATE_BOUNDED_REPORT=1`` prints the figures (docs/performance.md quotes them).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gateway.apis import sailpoint, webmethods
from gateway.limits import MAX_DOCUMENT_BYTES, dumps
from tests.e2e.server import Server

SAILPOINT_TASKS = 250  # the largest page SailPoint's list answers (limit's maximum)
WEBMETHODS_TASKS = 100
NOW = "2024-05-06T07:08:09.000Z"
#: the bounds of the acceptance test
MAX_HEALTHZ_SECONDS = 0.050
MAX_RSS_BYTES = 300 * 1024 * 1024
SEND_TIMEOUT = 3.0


def _import_file(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """JSON Lines for ``taskgate import``; the stored size of each task, by style and id."""
    sizes: dict[str, dict[str, int]] = {"sailpoint": {}, "webmethods": {}}
    with open(path, "w", encoding="utf-8") as out:
        for n in range(SAILPOINT_TASKS):
            def sp(filler: str, n: int = n) -> dict:
                return {"id": f"sp{n:04}", "type": "QUARTZ", "uniqueName": "Aggregation", "launcher": "svc",
                        "created": NOW, "description": filler}
            room = MAX_DOCUMENT_BYTES - len(dumps(sailpoint.import_task(sp(""), NOW)[1]).encode()) - 64
            task = sp(f"{n}:" + "d" * (room - len(f"{n}:")))
            task_id, doc = sailpoint.import_task(task, NOW)
            sizes["sailpoint"][task_id] = len(dumps(doc).encode())
            out.write(dumps({"style": "sailpoint", "task": task}) + "\n")
        for n in range(WEBMETHODS_TASKS):
            def wm(filler: str, n: int = n) -> dict:
                return {"TaskInfo": {"taskID": str(1000 + n), "taskTypeID": "T", "createdBy": "alice",
                                     "createdDate": NOW}, "TaskData": {"blob": filler}}
            room = MAX_DOCUMENT_BYTES - len(dumps(webmethods.import_task(wm(""), NOW)[1]).encode()) - 64
            task = wm(f"{n}:" + "x" * (room - len(f"{n}:")))
            task_id, doc = webmethods.import_task(task, NOW)
            sizes["webmethods"][task_id] = len(dumps(doc).encode())
            out.write(dumps({"style": "webmethods", "task": task}) + "\n")
    return sizes["sailpoint"], sizes["webmethods"]


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


class Watch(threading.Thread):
    """``/healthz`` every 20 ms on one keep-alive connection, and the server's RSS."""

    def __init__(self, base_url: str, pid: int) -> None:
        super().__init__(daemon=True)
        host, port = base_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.pid = pid
        self.latencies: list[float] = []
        self.rss: list[int] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            started = time.perf_counter()
            try:
                self.conn.request("GET", "/healthz")
                reply = self.conn.getresponse()
                body = reply.read()
                if (reply.status, body) != (200, b'{"status":"ok"}'):
                    self.failures.append(f"{reply.status} {body[:80]!r}")
            except OSError as exc:
                self.failures.append(repr(exc))
            self.latencies.append(time.perf_counter() - started)
            self.rss.append(_rss(self.pid))
            self.done.wait(0.020)
        self.conn.close()

    def __enter__(self) -> Watch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(10)


def _report(name: str, watch: Watch, extra: str = "") -> None:
    if os.environ.get("TASKGATE_BOUNDED_REPORT"):
        print(f"\n{name}: {len(watch.latencies)} /healthz, worst {max(watch.latencies) * 1000:.1f} ms, "
              f"peak RSS {max(watch.rss) / 2**20:.0f} MiB {extra}")


def _curl(url: str, token: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--fail", "-o", str(out), "-w", "%{http_code} %{size_download}",
                           "-H", f"Authorization: Bearer {token}", url],
                          capture_output=True, text=True, timeout=120)


def _stalled_reader(base_url: str, token: str, path: str) -> socket.socket:
    """A client that asks for *path*, takes its first megabyte and then reads no more."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65_536)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    got = 0
    while got < 1_048_576:
        data = sock.recv(65_536)
        assert data, "the server closed the connection early"
        got += len(data)
    return sock


@pytest.fixture(name="filled", scope="module")
def _filled(tmp_path_factory: pytest.TempPathFactory):
    """One server for the module: filling it is most of the time."""
    tmp_path = tmp_path_factory.mktemp("bounded")
    if shutil.disk_usage(tmp_path).free < 3 * 2**30:
        pytest.skip("needs 3 GiB of free disk for about 1 GB of import file, database and answers")
    server = Server(tmp_path, synchronous="NORMAL", env={"TASKGATE_SERVER_SEND_TIMEOUT": str(SEND_TIMEOUT)})
    server.cli("init")
    server.cli("user", "add", "alice")
    server.token = server.cli("token", "create", "alice").strip()  # type: ignore[attr-defined]
    sizes = _import_file(tmp_path / "tasks.jsonl")
    server.cli("import", str(tmp_path / "tasks.jsonl"))
    (tmp_path / "tasks.jsonl").unlink()
    server.sizes = sizes  # type: ignore[attr-defined]
    server.start(allow_new=False)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.log.read_text()[-3000:]
    log = server.log.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


def test_the_largest_lists_stream_in_bounded_memory_while_healthz_stays_fast(filled: Server, tmp_path: Path):
    server = filled
    token = server.token  # type: ignore[attr-defined]
    sp_sizes, wm_sizes = server.sizes  # type: ignore[attr-defined]
    assert _curl(f"{server.base_url}/healthz", token, tmp_path / "warm").returncode == 0
    for name, path, out in [
            ("sailpoint 250 x 1 MiB", "/task-status/v1?limit=250&count=true", tmp_path / "sp.json"),
            ("webmethods includeTaskData", "/rest/pub/opentask?includeTaskData=true", tmp_path / "wm.json")]:
        with Watch(server.base_url, server.proc.pid) as watch:  # type: ignore[union-attr]
            started = time.perf_counter()
            done = _curl(server.base_url + path, token, out)
            took = time.perf_counter() - started
        assert done.returncode == 0, done.stderr
        _report(name, watch, f"{out.stat().st_size / 2**20:.0f} MiB in {took:.1f} s")
        assert watch.failures == []
        assert len(watch.latencies) >= 10, "the answer went by too fast to watch"
        assert max(watch.latencies) < MAX_HEALTHZ_SECONDS, sorted(watch.latencies)[-5:]
        assert max(watch.rss) < MAX_RSS_BYTES, max(watch.rss)
        body = json.loads(out.read_bytes())
        out.unlink()
        if path.startswith("/task-status"):  # every stored TaskStatus, whole, in the list's order
            assert [t["id"] for t in body] == sorted(sp_sizes)
            assert {t["id"]: len(dumps(t).encode()) for t in body} == sp_sizes
        else:
            assert [t["TaskID"] for t in body["Tasks"]] == sorted(wm_sizes, key=int)
            assert all(len(t["TaskData"]["blob"]) > MAX_DOCUMENT_BYTES - 2000 for t in body["Tasks"])
        del body
    assert _rss(server.proc.pid, "VmHWM") < MAX_RSS_BYTES  # type: ignore[union-attr]


def test_a_client_that_stops_reading_costs_a_chunk_and_is_logged_at_info(filled: Server):
    server = filled
    token = server.token  # type: ignore[attr-defined]
    pid = server.proc.pid  # type: ignore[union-attr]
    with Watch(server.base_url, pid) as watch:
        stalled = _stalled_reader(server.base_url, token, "/task-status/v1?limit=250")
        closed = _stalled_reader(server.base_url, token, "/rest/pub/opentask?includeTaskData=true")
        time.sleep(1.0)  # both answers are held up: the server waits, holding a chunk of each
        closed.close()  # unread data: the peer resets the connection
        deadline = time.monotonic() + SEND_TIMEOUT + 5
        abandoned: list[dict] = []
        while time.monotonic() < deadline and len(abandoned) < 2:
            abandoned = [e for e in server.events() if e.get("event") == "answer abandoned"]
            time.sleep(0.1)
        stalled.close()
    _report("stalled and closed readers", watch)
    assert sorted((e["level"], e["path"], e["reason"]) for e in abandoned) == [
        ("info", "/rest/pub/opentask", "the client closed the connection"),
        ("info", "/task-status/v1", f"the client took nothing for {SEND_TIMEOUT:g} s")]
    assert all(0 < e["bytes_sent"] < 50 * 2**20 for e in abandoned)
    assert watch.failures == [] and max(watch.latencies) < MAX_HEALTHZ_SECONDS
    assert max(watch.rss) < MAX_RSS_BYTES
    errors = [e for e in server.events() if e.get("level") in ("error", "critical")]
    assert errors == []
