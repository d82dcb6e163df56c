"""Durability and concurrency of the one write path, against a real ``taskgate serve``.

Real HTTP over loopback, a real SQLite file, no mocks:

* compare-and-swap PATCHes (``test`` + ``replace`` of ``percentComplete``) fired
  concurrently: every 2xx is one committed step, and the audit trail agrees;
* ``kill -9`` in the middle of a burst of PATCHes, then a restart: nothing that was
  acknowledged is lost, nothing is half-applied, and the file is intact — with
  ``synchronous=FULL`` and ``NORMAL`` (WAL survives a process crash either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import jsonpatch
import pytest

from tests.e2e.server import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(name="live")
def _live(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()

PATCH_CTYPE = "application/json-patch+json"
STYLE = "sailpoint"


# -- HTTP helpers ------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _session(server: Server) -> AsyncIterator[aiohttp.ClientSession]:
    """A session with no connection cap (so 200 requests really are in flight together)."""
    assert server.base_url.startswith("http://127.0.0.1:")
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
            base_url=server.base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=30),
            headers={"Authorization": f"Bearer {server.admin_token}"}) as session:
        yield session


async def _call(session: aiohttp.ClientSession, method: str, path: str, *, body: Any = None,
                ctype: str = "application/json", rid: str | None = None) -> tuple[int, Any, Any]:
    headers = {}
    if rid is not None:
        headers["X-Request-ID"] = rid
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = ctype
    async with session.request(method, path, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None), resp.headers


def _version(headers: Any) -> int:
    tag = headers["ETag"]
    assert tag[0] == tag[-1] == '"', tag
    return int(tag[1:-1])


async def _create(session: aiohttp.ClientSession, task_id: str) -> None:
    status, body, headers = await _call(session, "POST", "/task-status/v1",
                                        body={"id": task_id, "type": "QUARTZ", "uniqueName": "x"})
    assert status == 201, body
    assert body["percentComplete"] == 0 and body["attributes"] == {}
    assert _version(headers) == 1


async def _get(session: aiohttp.ClientSession, task_id: str) -> tuple[dict[str, Any], int]:
    status, body, headers = await _call(session, "GET", f"/task-status/v1/{task_id}")
    assert status == 200, body
    return body, _version(headers)


def _assert_conflict_body(body: Any, rid: str) -> None:
    """SailPoint's ErrorResponseDto for a 409."""
    assert set(body) == {"detailCode", "trackingId", "messages", "causes"}, body
    assert body["detailCode"] == "409 Conflict"
    assert body["trackingId"] == rid
    assert body["causes"] == []
    assert len(body["messages"]) == 1
    message = body["messages"][0]
    assert message["locale"] == "en-US" and message["localeOrigin"] == "DEFAULT"
    assert message["text"].startswith("test failed"), message


def _audit_via_cli(server: Server, task_id: str) -> list[dict[str, Any]]:
    """The task's audit rows, oldest first, read with ``taskgate audit``."""
    out = server.cli("audit", "--task", task_id, "--limit", "1000")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(rows) < 1000, "audit output may be truncated"
    return sorted(rows, key=lambda r: r["seq"])


def _percent_ops(patch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """The patch's operations on /percentComplete, and the paths of all the others."""
    mine = [op for op in patch if op["path"] == "/percentComplete"]
    return mine, {op["path"] for op in patch if op["path"] != "/percentComplete"}


def _check_counter_audit(rows: list[dict[str, Any]], task_id: str, updates: int) -> None:
    """Audit of a counter task: created at version 1, then one row per step v → v+1."""
    assert rows[0]["action"] == "created" and rows[0]["version"] == 1
    updated = [r for r in rows if r["action"] == "updated"]
    assert len(updated) == updates == len(rows) - 1
    assert [r["version"] for r in rows] == list(range(1, updates + 2)), "versions are not consecutive"
    for row in updated:
        assert row["task_id"] == task_id and row["style"] == STYLE
        v = row["version"] - 2  # the value this step tested
        ops, others = _percent_ops(row["patch"])
        assert ops == [{"op": "replace", "path": "/percentComplete", "value": v + 1}], row
        assert others <= {"/modified"}, row
        undo, _ = _percent_ops(row["undo"])
        assert undo == [{"op": "replace", "path": "/percentComplete", "value": v}], row


# -- 1. concurrency ----------------------------------------------------------------------
async def test_200_concurrent_test_and_replace_patches(live: Server) -> None:
    """200 concurrent PATCHes against one task, each ``test``-ing percentComplete and
    replacing it with the next value: the number of 2xx answers equals the final value,
    equals the number of audit rows, and no answer is a 500."""
    async with _session(live) as session:
        await _create(session, "c1")
        start = asyncio.Event()

        async def one(i: int) -> tuple[int, int, Any, Any]:
            v = i // 2  # 0, 0, 1, 1, …, 99, 99: two contenders per value, never past 100
            ops = [{"op": "test", "path": "/percentComplete", "value": v},
                   {"op": "replace", "path": "/percentComplete", "value": v + 1}]
            await start.wait()
            status, body, headers = await _call(session, "PATCH", "/task-status/v1/c1", body=ops,
                                                ctype=PATCH_CTYPE, rid=f"cas-{i}")
            return v, status, body, headers

        fired = [asyncio.create_task(one(i)) for i in range(200)]
        await asyncio.sleep(0)
        start.set()
        answers = await asyncio.gather(*fired)
        final, version = await _get(session, "c1")

    statuses = Counter(status for _v, status, _b, _h in answers)
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 409}, statuses
    ok = [(i, v, body, headers) for i, (v, status, body, headers) in enumerate(answers) if status == 200]
    for i, (v, status, body, _h) in enumerate(answers):
        if status == 409:
            _assert_conflict_body(body, f"cas-{i}")
    # every success is one step v → v+1 seen at version v+2, each value stepped exactly once
    for _i, v, body, headers in ok:
        assert body["percentComplete"] == v + 1
        assert _version(headers) == v + 2
    assert sorted(v for _i, v, _b, _h in ok) == list(range(len(ok)))

    rows = _audit_via_cli(live, "c1")
    updated = [r for r in rows if r["action"] == "updated"]
    assert len(ok) >= 1
    assert len(ok) == final["percentComplete"] == len(updated) == version - 1
    _check_counter_audit(rows, "c1", len(ok))
    # and the audit rows are exactly the acknowledged requests, at the versions they were told
    assert {r["request_id"]: r["version"] for r in updated} == \
        {f"cas-{i}": _version(headers) for i, _v, _b, headers in ok}
    print(f"\n[cas] 200 concurrent PATCHes: {statuses[200]} × 200, {statuses[409]} × 409; "
          f"final percentComplete {final['percentComplete']}, version {version}")


async def test_concurrent_increments_with_retry_reach_exactly_100(live: Server) -> None:
    """20 workers each make 5 increments by GET, then ``test``+``replace``, retrying on 409."""
    workers, per_worker = 20, 5
    async with _session(live) as session:
        await _create(session, "c1")
        statuses: Counter[int] = Counter()

        async def worker(w: int) -> None:
            done = attempt = 0
            while done < per_worker:
                attempt += 1
                assert attempt < 2000, "a worker starved"
                current, _version_seen = await _get(session, "c1")
                v = current["percentComplete"]
                ops = [{"op": "test", "path": "/percentComplete", "value": v},
                       {"op": "replace", "path": "/percentComplete", "value": v + 1}]
                rid = f"w{w}-a{attempt}"
                status, body, headers = await _call(session, "PATCH", "/task-status/v1/c1", body=ops,
                                                    ctype=PATCH_CTYPE, rid=rid)
                statuses[status] += 1
                if status == 200:
                    assert body["percentComplete"] == v + 1 and _version(headers) == v + 2
                    done += 1
                else:
                    assert status == 409, (status, body)
                    _assert_conflict_body(body, rid)

        await asyncio.gather(*(worker(w) for w in range(workers)))
        final, version = await _get(session, "c1")

    assert statuses[200] == workers * per_worker == 100
    assert final["percentComplete"] == 100 and version == 101
    rows = _audit_via_cli(live, "c1")
    _check_counter_audit(rows, "c1", 100)
    print(f"\n[retry] 100 increments by {workers} workers took {statuses[200] + statuses[409]} PATCHes "
          f"({statuses[409]} × 409)")


# -- 2. kill -9 during a burst -----------------------------------------------------------
TASKS = [f"t{k:02d}" for k in range(20)]
CYCLES = 3
BURST = 600  # PATCHes at most per cycle; the kill normally lands well before the end
WORKERS = 16


class Burst:
    """One bounded burst of two-operation PATCHes, cut short by SIGKILL."""

    def __init__(self, jobs: list[tuple[int, str]], kill_after: int) -> None:
        self.jobs = list(reversed(jobs))
        # the kill comes after a number of acknowledgements, not after a time, so that it
        # lands mid-burst however fast the server is
        self.kill_after = kill_after
        self.kill_now = asyncio.Event()
        self.acked: list[tuple[str, int, int]] = []  # (task, n, acknowledged version)
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.sent = 0

    async def worker(self, session: aiohttp.ClientSession) -> None:
        while self.jobs:
            n, task = self.jobs.pop()
            ops = [{"op": "add", "path": f"/attributes/k{n}", "value": n},
                   {"op": "replace", "path": "/progress", "value": f"step {n}"}]
            self.sent += 1
            try:
                status, body, headers = await _call(session, "PATCH", f"/task-status/v1/{task}", body=ops,
                                                    ctype=PATCH_CTYPE, rid=f"b{n}")
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
                self.errors[type(exc).__name__] += 1
                return  # the server is gone; stop this worker
            self.statuses[status] += 1
            assert status == 200, (status, body)
            assert body["attributes"][f"k{n}"] == n and body["progress"] == f"step {n}"
            self.acked.append((task, n, _version(headers)))
            if len(self.acked) >= self.kill_after:
                self.kill_now.set()


def _read_db(db: Path) -> tuple[str, dict[str, tuple[int, dict[str, Any]]], list[tuple]]:
    """integrity_check, tasks by id, and audit rows (seq order), read straight from the file."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        check = "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        tasks = {i: (v, json.loads(d)) for i, v, d in
                 conn.execute("SELECT id, version, doc FROM tasks WHERE style = ?", (STYLE,))}
        audit = conn.execute("SELECT seq, task_id, version, action, request_id, patch FROM audit "
                             "WHERE style = ? ORDER BY seq", (STYLE,)).fetchall()
    return check, tasks, audit


def _progress_key_of(row_patch: list[dict[str, Any]]) -> tuple[int, str]:
    """The key a burst PATCH added and the progress it set; both must be in the same row."""
    adds = [op for op in row_patch if op["path"].startswith("/attributes/")]
    progress = [op for op in row_patch if op["path"] == "/progress"]
    assert len(adds) == 1 and adds[0]["op"] == "add", row_patch
    assert len(progress) == 1 and progress[0]["op"] in ("add", "replace"), row_patch
    assert {op["path"] for op in row_patch} <= {adds[0]["path"], "/progress", "/modified"}, row_patch
    n = adds[0]["value"]
    assert adds[0]["path"] == f"/attributes/k{n}"
    return n, progress[0]["value"]


async def _verify_after_restart(server: Server, acked: list[tuple[str, int, int]]) -> dict[str, int]:
    """Everything acknowledged so far is stored, whole, and the file is sound."""
    best: dict[str, int] = defaultdict(int)
    for task, _n, version in acked:
        best[task] = max(best[task], version)
    async with _session(server) as session:
        served = dict(zip(TASKS, await asyncio.gather(*(_get(session, t) for t in TASKS))))
    for task, n, version in acked:
        doc, _version_now = served[task]
        assert doc["attributes"].get(f"k{n}") == n, f"acknowledged PATCH b{n} on {task} was lost"
    for task in TASKS:
        assert served[task][1] >= best[task], f"{task}: version went back below an acknowledged one"

    check, tasks, audit = _read_db(server.db)
    assert check == "ok"
    assert set(tasks) == set(TASKS)
    by_task: dict[str, list[tuple]] = defaultdict(list)
    for row in audit:
        by_task[row[1]].append(row)
    by_rid = {}
    for task in TASKS:
        version, doc = tasks[task]
        assert served[task] == (doc, version), f"{task}: HTTP and the file disagree"
        rows = by_task[task]
        assert [r[2] for r in rows] == list(range(1, version + 1)), f"{task}: audit versions not 1..{version}"
        assert rows[0][3] == "created" and all(r[3] == "updated" for r in rows[1:])
        # replaying the audit trail rebuilds the stored document exactly
        replayed: dict[str, Any] = {}
        for r in rows:
            replayed = jsonpatch.apply_patch(replayed, json.loads(r[5]))
        assert replayed == doc, f"{task}: the audit trail does not add up to the stored document"
        # nothing half-applied: each row added one key and set the progress of the same PATCH
        keys = set()
        for _seq, _t, v, _action, rid, patch in rows[1:]:
            n, progress = _progress_key_of(json.loads(patch))
            assert progress == f"step {n}" and rid == f"b{n}", (task, v, patch)
            keys.add(f"k{n}")
            by_rid[rid] = (task, v)
        assert set(doc["attributes"]) == keys
        if len(rows) > 1:
            assert doc["progress"] == f"step {_progress_key_of(json.loads(rows[-1][5]))[0]}"
    # every acknowledged PATCH is the audit row at exactly the version its answer named
    for task, n, version in acked:
        assert by_rid.get(f"b{n}") == (task, version), f"b{n}: acknowledged as {task} v{version}"
    return {t: tasks[t][0] for t in TASKS}


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_kill_9_during_a_burst_loses_nothing_acknowledged(tmp_path: Path, synchronous: str) -> None:
    """kill -9 of the server during a bounded burst of PATCHes, then a restart: every PATCH
    that got a 2xx is in the store, and ``PRAGMA integrity_check`` is ``ok``."""
    rng = random.Random(1234)
    server = Server(tmp_path, synchronous=synchronous).start()
    try:
        async with _session(server) as session:
            for task in TASKS:
                await _create(session, task)
        acked: list[tuple[str, int, int]] = []
        n = 0
        for cycle in range(CYCLES):
            jobs = []
            for _ in range(BURST):
                n += 1
                jobs.append((n, rng.choice(TASKS)))
            burst = Burst(jobs, kill_after=rng.randint(30, BURST // 2))
            started = time.monotonic()

            async def killer(burst: Burst = burst, started: float = started) -> float:
                await asyncio.wait_for(burst.kill_now.wait(), 60)
                server.kill()  # SIGKILL, then reap: the process is gone when this returns
                return time.monotonic() - started

            async with _session(server) as session:
                killed_at = asyncio.create_task(killer())
                try:
                    await asyncio.gather(*(burst.worker(session) for _ in range(WORKERS)))
                finally:
                    at = await killed_at  # even if a worker failed: never leave the kill pending
            assert not [s for s in burst.statuses if s != 200], burst.statuses
            acked.extend(burst.acked)
            server.start()
            versions = await _verify_after_restart(server, acked)
            print(f"\n[{synchronous} cycle {cycle + 1}] killed at {at * 1000:.0f} ms after "
                  f"{burst.sent} PATCHes sent, {len(burst.acked)} acknowledged, "
                  f"{sum(burst.errors.values())} client errors {dict(burst.errors)}, "
                  f"{BURST - burst.sent} never sent; stored updates {sum(versions.values()) - len(TASKS)} "
                  f"(acknowledged so far {len(acked)})")
            assert burst.jobs or burst.errors, "the kill did not land during the burst"
    finally:
        server.stop()
    # a clean stop after all that leaves a sound file too
    check, _tasks, _audit = _read_db(server.db)
    assert check == "ok"
