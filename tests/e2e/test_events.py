"""The change feed on real ``taskgate serve`` processes: 100 streams at once with one client
that never reads (the server's memory stays bounded, that client is cut off, and resuming
from its last id misses nothing against the audit rows); a change made by a second
``serve`` on the same file appears in the first one's stream; ``taskgate events tail``
prints every change; a SIGTERM ends open streams at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import Server
from tests.events.sse_client import Frame, SseReader

pytestmark = pytest.mark.e2e

STREAMS = 100
WRITES = 600
#: how far (events) a client may fall behind in these tests
WINDOW = 100
#: the bound on the server's growth in resident memory while the streams run
RSS_BOUND_MIB = 64


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def audit(server: Server) -> list[dict[str, Any]]:
    """The audit rows as events (oldest first), from the command line."""
    rows = [json.loads(line) for line in server.cli("audit", "--limit", "100000").splitlines()]
    return [{"id": r["seq"], "at": r["at"], "style": r["style"], "task_id": r["task_id"], "version": r["version"],
             "action": r["action"], "actor": r["actor"], "request_id": r["request_id"], "patch": r["patch"]}
            for r in reversed(rows)]


def stalled_stream(server: Server, query: str) -> socket.socket:
    """A client that sends its request and then never reads: a small receive buffer, so
    the server meets it soon."""
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /events{query} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.admin_token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    return sock


def frames_of(raw: bytes) -> list[dict[str, Any]]:
    """The whole events in a raw HTTP/1.1 chunked response (a cut-off tail is dropped)."""
    _head, _, body = raw.partition(b"\r\n\r\n")
    text = b""
    while body:  # undo the chunked transfer coding as far as whole chunks go
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0 or len(rest) < size:
            text += rest[:size] if size else b""
            break
        text, body = text + rest[:size], rest[size + 2:]
    events = []
    for block in text.split(b"\n\n")[:-1]:  # the last piece has no blank line after it: not whole
        lines = [line for line in block.decode().split("\n") if line.startswith("data: ")]
        if lines and block.startswith(b"id: "):
            events.append(json.loads(lines[0].removeprefix("data: ")))
    return events


async def read_all(reader: SseReader, count: int, into: list[dict[str, Any]]) -> None:
    for f in await reader.events(count, timeout=120):
        into.append(f.json)


async def test_hundred_streams_one_never_reading_memory_bounded_cut_off_and_resumed(tmp_path: Path):
    # the streams are one user's (the admin's): a capacity test, so the limit per user is raised
    server = Server(tmp_path, env={"TASKGATE_EVENTS_BUFFER_EVENTS": str(WINDOW),
                                   "TASKGATE_EVENTS_HEARTBEAT_SECONDS": "1",
                                   "TASKGATE_EVENTS_MAX_STREAMS_PER_USER": str(STREAMS)}).start()
    try:
        auth = {"Authorization": f"Bearer {server.admin_token}"}
        assert server.proc is not None
        pid = server.proc.pid
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            resp = await http.post(f"{server.base_url}/task-status/v1", headers=auth,
                                   json={"type": "QUARTZ", "uniqueName": "load"})
            task = (await resp.json())["id"]
            readers = []
            for _ in range(STREAMS - 1):
                resp = await http.get(f"{server.base_url}/events?since=0", headers=auth)
                assert resp.status == 200
                readers.append(SseReader(resp))
            stalled = stalled_stream(server, "?since=0")
            await asyncio.sleep(0.5)
            baseline = rss_mib(pid)
            received: list[list[dict[str, Any]]] = [[] for _ in readers]
            reading = [asyncio.ensure_future(read_all(r, WRITES + 1, into))
                       for r, into in zip(readers, received, strict=True)]
            peak = baseline

            async def patch(i: int) -> None:
                body = [{"op": "replace", "path": "/attributes", "value": {"step": f"{i} " + "x" * 8000}}]
                async with http.patch(f"{server.base_url}/task-status/v1/{task}", headers=auth, json=body) as r:
                    assert r.status == 200, await r.text()

            for start in range(0, WRITES, 10):
                await asyncio.gather(*(patch(i) for i in range(start, start + 10)))
                peak = max(peak, rss_mib(pid))
            await asyncio.wait_for(asyncio.gather(*reading), 120)
            peak = max(peak, rss_mib(pid))
            expected = audit(server)
            assert len(expected) == WRITES + 1
            # every reading client got every event, in commit order, equal to the audit rows
            for got in received:
                assert got == expected
            # the client that never read was cut off: what reached it is a prefix, then the connection closed;
            # its stream counts as open until its end frame's grace ran out, so both are waited for
            deadline = time.monotonic() + 30
            metrics = ""
            open_streams = f"taskgate_events_streams {STREAMS - 1}.0"  # the 99 readers, still open
            while not ("taskgate_events_cut_off_total 1.0" in metrics and open_streams in metrics) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                async with http.get(f"{server.base_url}/metrics") as r:
                    metrics = await r.text()
            assert "taskgate_events_cut_off_total 1.0" in metrics, [m for m in metrics.splitlines() if "events" in m]
            stalled.settimeout(10)
            raw = b""
            try:
                while chunk := stalled.recv(1 << 16):
                    raw += chunk
            except ConnectionResetError:  # aborted: it was not reading what was written to it
                pass
            stalled.close()
            seen = frames_of(raw)
            assert len(seen) < len(expected) and seen == expected[:len(seen)]
            # resumed with Last-Event-ID from the last event that reached it: nothing missed
            last = seen[-1]["id"] if seen else 0
            async with http.get(f"{server.base_url}/events", headers={**auth, "Last-Event-ID": str(last)}) as r:
                rest = [f.json for f in await SseReader(r).events(len(expected) - len(seen), timeout=60)]
            assert seen + rest == expected
            assert open_streams in metrics, [m for m in metrics.splitlines() if "events" in m]
            print(f"\nserver VmRSS: {baseline:.1f} MiB with {STREAMS} streams open, peak {peak:.1f} MiB "
                  f"over {WRITES} changes; the stalled client received {len(seen)} events before its cut-off")
            assert peak - baseline < RSS_BOUND_MIB
            for r in readers:
                r.response.close()
        behind = [e for e in server.events() if e.get("event") == "events.client_behind"]
        assert len(behind) == 1 and behind[0]["last_id"] >= last
    finally:
        assert server.stop() == 0, server.log.read_text()


async def test_a_client_that_never_reads_costs_no_more_than_the_window_however_much_it_is_offered(tmp_path: Path):
    """The default window (events.buffer_bytes, 8 MiB) and one client that never reads,
    offered about 100 MB of events: the server's memory grows by far less than that."""
    server = Server(tmp_path).start()
    try:
        auth = {"Authorization": f"Bearer {server.admin_token}"}
        assert server.proc is not None
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.base_url}/task-status/v1", headers=auth,
                                 json={"type": "QUARTZ", "uniqueName": "big"}) as r:
                task = (await r.json())["id"]
            stalled = stalled_stream(server, "")
            await asyncio.sleep(0.5)
            baseline = peak = rss_mib(server.proc.pid)
            offered = 0
            for i in range(400):
                body = [{"op": "replace", "path": "/attributes", "value": {"step": f"{i} " + "x" * 250_000}}]
                async with http.patch(f"{server.base_url}/task-status/v1/{task}", headers=auth, json=body) as r:
                    assert r.status == 200, await r.text()
                offered += 250_000
                if i % 10 == 0:
                    peak = max(peak, rss_mib(server.proc.pid))
            deadline = time.monotonic() + 30
            metrics = ""
            while "taskgate_events_cut_off_total 1.0" not in metrics and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                async with http.get(f"{server.base_url}/metrics") as r:
                    metrics = await r.text()
            peak = max(peak, rss_mib(server.proc.pid))
        stalled.close()
        print(f"\nserver VmRSS {baseline:.1f} MiB, peak {peak:.1f} MiB, while a client that never read was offered "
              f"{offered / 2**20:.0f} MiB of events")
        assert "taskgate_events_cut_off_total 1.0" in metrics
        assert peak - baseline < 48 < offered / 2**20
    finally:
        assert server.stop() == 0, server.log.read_text()


async def test_a_change_by_a_second_serve_on_the_file_appears_in_the_first_ones_stream(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = Server(tmp_path / "a").start()
    second = Server(tmp_path / "b")
    second.db = first.db  # the same file, served by a second process
    second.start(allow_new=False)
    try:
        auth = {"Authorization": f"Bearer {first.admin_token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{first.base_url}/events", headers=auth) as stream:
                reader = SseReader(stream)
                assert (await reader.frame()).retry == "2000"
                started = time.monotonic()
                async with http.post(f"{second.base_url}/rest/pub/opentask", headers=auth,
                                     json={"taskTypeID": "T"}) as r:
                    assert r.status == 200
                (event,) = await reader.events(1, timeout=5)
                waited = time.monotonic() - started
                async with http.post(f"{first.base_url}/rest/pub/opentask", headers=auth,
                                     json={"taskTypeID": "T"}) as r:
                    assert r.status == 200
                (own,) = await reader.events(1, timeout=5)
        assert [event.json, own.json] == audit(first)
        assert (event.json["task_id"], own.json["task_id"]) == ("1", "2")
        assert waited < 3  # the poll interval is 0.5 s
    finally:
        assert second.stop() == 0, second.log.read_text()
        assert first.stop() == 0, first.log.read_text()


async def test_each_caller_sees_its_tasks_filters_apply_and_refused_writes_send_nothing(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        server.cli("user", "add", "alice")
        server.cli("user", "add", "bob")
        admin = {"Authorization": f"Bearer {server.admin_token}"}
        alice = {"Authorization": f"Bearer {server.cli('token', 'create', 'alice').strip()}"}
        bob = {"Authorization": f"Bearer {server.cli('token', 'create', 'bob').strip()}"}
        base = server.base_url
        async with aiohttp.ClientSession() as http:
            streams = {}
            for name, who, query in (("admin", admin, ""), ("alice", alice, ""), ("bob", bob, ""),
                                     ("bob_updates", bob, "?style=webmethods&action=updated")):
                resp = await http.get(f"{base}/events{query}", headers=who)
                assert resp.status == 200
                streams[name] = SseReader(resp)
                assert (await streams[name].frame()).retry == "2000"

            async def call(method: str, path: str, who: dict[str, str], body: Any, want: int) -> Any:
                async with http.request(method, f"{base}{path}", headers=who, json=body) as r:
                    assert r.status == want, await r.text()
                    return await r.json()

            wm = "/rest/pub/opentask"
            alices = (await call("POST", wm, admin, {"taskTypeID": "T", "taskQueueInfo": {
                "assignedTaskList": ["alice"]}}, 200))["taskID"]
            bobs = (await call("POST", wm, admin, {"taskTypeID": "T", "taskQueueInfo": {
                "assignedTaskList": ["bob"]}}, 200))["taskID"]
            # refused: bob may not see alice's task (404), a bad status (400), a stale If-Match (412)
            await call("PUT", f"{wm}/{alices}", bob, {"TaskInfo": {"name": "mine"}}, 404)
            await call("PUT", f"{wm}/{bobs}", bob, {"TaskInfo": {"status": "nonsense"}}, 400)
            async with http.put(f"{base}{wm}/{bobs}", headers={**bob, "If-Match": '"9"'},
                                json={"TaskInfo": {"name": "x"}}) as r:
                assert r.status == 412
            await call("PUT", f"{wm}/{alices}", alice, {"TaskInfo": {"name": "a"}}, 200)
            await call("PUT", f"{wm}/{bobs}", bob, {"TaskInfo": {"name": "b"}}, 200)
            sp = (await call("POST", "/task-status/v1", admin, {"type": "QUARTZ", "uniqueName": "u"}, 201))["id"]
            expected = audit(server)
            assert [(e["task_id"], e["action"]) for e in expected] == [
                (alices, "created"), (bobs, "created"), (alices, "updated"), (bobs, "updated"), (sp, "created")]
            got = {name: [f.json for f in await streams[name].events(count)]
                   for name, count in (("admin", 5), ("alice", 3), ("bob", 3), ("bob_updates", 1))}
            for reader in streams.values():
                reader.response.close()
        assert got == {"admin": expected,
                       "alice": [e for e in expected if e["task_id"] in (alices, sp)],
                       "bob": [e for e in expected if e["task_id"] in (bobs, sp)],
                       "bob_updates": [e for e in expected if e["task_id"] == bobs and e["action"] == "updated"]}
    finally:
        assert server.stop() == 0, server.log.read_text()


async def test_events_tail_prints_every_change_and_stops_on_interrupt(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        auth = {"Authorization": f"Bearer {server.admin_token}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.base_url}/api/v1/BatchTask", headers=auth,
                                 json={"Name": "n", "State": "Started"}) as r:
                assert r.status == 200
            env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
            tails = [subprocess.Popen([sys.executable, "-m", "gateway", "--db", str(server.db), "events", "tail",
                                       *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
                     for args in (("--since", "0"), ("--since", "0", "--json"))]
            async with http.put(f"{server.base_url}/api/v1/BatchTask/1", headers=auth,
                                json={"State": "Failed", "Response": "disk full"}) as r:
                assert r.status == 200
            lines = [[await asyncio.wait_for(asyncio.to_thread(t.stdout.readline), 20) for _ in range(2)]
                     for t in tails if t.stdout is not None]
            for t in tails:
                t.send_signal(signal.SIGINT)
                assert t.wait(timeout=20) == 130
                assert t.stdout is not None
                t.stdout.close()
        expected = audit(server)
        assert [json.loads(line) for line in lines[1]] == expected
        at = [e["at"] for e in expected]
        assert lines[0][0].startswith(f"1 {at[0]} superoffice 1 v1 created admin /Id=1 ")
        assert lines[0][1].startswith(f"2 {at[1]} superoffice 1 v2 updated admin ")
        assert '/State="Failed"' in lines[0][1] and '/Response="disk full"' in lines[0][1]
    finally:
        assert server.stop() == 0, server.log.read_text()


async def test_sigterm_ends_open_streams_at_once_with_the_id_to_resume_from(tmp_path: Path):
    server = Server(tmp_path).start()
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.base_url}/rest/pub/opentask", headers=auth, json={"taskTypeID": "T"}) as r:
            assert r.status == 200
        async with http.get(f"{server.base_url}/events?since=0", headers=auth) as stream:
            reader = SseReader(stream)
            await reader.events(1)
            assert server.proc is not None
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            rest = await reader.rest(timeout=10)
    assert server.stop() == 0
    assert time.monotonic() - started < 5  # not server.shutdown_timeout (10 s)
    assert rest == [Frame(event="end", data=['{"reason":"shutdown","last_id":1}'])]
