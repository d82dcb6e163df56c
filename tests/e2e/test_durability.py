"""Durability and concurrency of the one write path, against a real ``taskgate serve``.

Real HTTP over loopback, a real SQLite file, no mocks:

* compare-and-swap PATCHes (``test`` + ``replace`` of ``percentComplete``) fired
  concurrently: every 2xx is one committed step, and the audit trail agrees;
* ``kill -9`` at seeded random points of a concurrent write burst across the three styles
  (SailPoint multi-operation PATCH, SuperOffice PUT, webMethods PUT of TaskInfo and
  TaskData), then a restart, five times over, with ``synchronous=FULL`` and ``NORMAL``:
  ``integrity_check`` is ok, every acknowledged change is stored at the version its answer
  named, no change is half-applied, and the tasks are exactly the serial replay of the
  audit trail (:mod:`tests.audit_replay`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.audit_replay import Dump, assert_replays
from tests.e2e.server import Server
from tests.e2e.server import call as _call
from tests.e2e.server import session as _session
from tests.e2e.server import version as _version

pytestmark = pytest.mark.e2e


@pytest.fixture(name="server")
def _server(workers_server: Server) -> Server:
    """Every result here must hold across worker processes as it does in one."""
    return workers_server


PATCH_CTYPE = "application/json-patch+json"
STYLE = "sailpoint"


# -- HTTP helpers ------------------------------------------------------------------------
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
async def test_200_concurrent_test_and_replace_patches(server: Server) -> None:
    """200 concurrent PATCHes against one task, each ``test``-ing percentComplete and
    replacing it with the next value: the number of 2xx answers equals the final value,
    equals the number of audit rows, and no answer is a 500."""
    async with _session(server) as session:
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
    for i, (_v, status, body, _h) in enumerate(answers):
        if status == 409:
            _assert_conflict_body(body, f"cas-{i}")
    # every success is one step v → v+1 seen at version v+2, each value stepped exactly once
    for _i, v, body, headers in ok:
        assert body["percentComplete"] == v + 1
        assert _version(headers) == v + 2
    assert sorted(v for _i, v, _b, _h in ok) == list(range(len(ok)))

    rows = _audit_via_cli(server, "c1")
    updated = [r for r in rows if r["action"] == "updated"]
    assert len(ok) >= 1
    assert len(ok) == final["percentComplete"] == len(updated) == version - 1
    _check_counter_audit(rows, "c1", len(ok))
    # and the audit rows are exactly the acknowledged requests, at the versions they were told
    assert {r["request_id"]: r["version"] for r in updated} == \
        {f"cas-{i}": _version(headers) for i, _v, _b, headers in ok}
    print(f"\n[cas] 200 concurrent PATCHes: {statuses[200]} × 200, {statuses[409]} × 409; "
          f"final percentComplete {final['percentComplete']}, version {version}")


async def test_concurrent_increments_with_retry_reach_exactly_100(server: Server) -> None:
    """20 workers each make 5 increments by GET, then ``test``+``replace``, retrying on 409."""
    workers, per_worker = 20, 5
    async with _session(server) as session:
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
    rows = _audit_via_cli(server, "c1")
    _check_counter_audit(rows, "c1", 100)
    print(f"\n[retry] 100 increments by {workers} workers took {statuses[200] + statuses[409]} PATCHes "
          f"({statuses[409]} × 409)")


# -- 2. kill -9 during a burst across the three styles ---------------------------------------
PER_STYLE = 8  # tasks of each style
CYCLES = 5
BURST = 900  # writes at most per cycle; the kill normally lands well before the end
WORKERS = 16
Job = tuple[int, str, str]  # (n, style, task id)


def _write(style: str, task_id: str, n: int) -> tuple[str, str, Any, str]:
    """Job *n*'s request: method, path, body, content type. Each writes two or more members
    that must land together."""
    if style == "sailpoint":
        return "PATCH", f"/task-status/v1/{task_id}", [
            {"op": "add", "path": f"/attributes/k{n}", "value": n},
            {"op": "replace", "path": "/progress", "value": f"step {n}"}], PATCH_CTYPE
    if style == "superoffice":
        return "PUT", f"/api/v1/BatchTask/{task_id}", {"Description": f"d{n}", "Response": f"r{n}"}, "application/json"
    return "PUT", f"/rest/pub/opentask/{task_id}", {"TaskInfo": {"description": f"n{n}"},
                                                    "TaskData": {"n": n, "echo": f"e{n}"}}, "application/json"


def _shows(style: str, doc: dict[str, Any], n: int) -> bool:
    """Whether *doc* carries all of job *n*'s change (not some of it)."""
    if style == "sailpoint":
        return doc["attributes"].get(f"k{n}") == n and doc["progress"] == f"step {n}"
    if style == "superoffice":
        return (doc["Description"], doc["Response"]) == (f"d{n}", f"r{n}")
    return doc["TaskInfo"]["description"] == f"n{n}" and doc["TaskData"] == {"n": n, "echo": f"e{n}"}


async def _create_tasks(session: aiohttp.ClientSession) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {"sailpoint": [], "superoffice": [], "webmethods": []}
    for k in range(PER_STYLE):
        await _create(session, f"t{k:02d}")
        ids["sailpoint"].append(f"t{k:02d}")
        status, body, _ = await _call(session, "POST", "/api/v1/BatchTask", body={"Name": f"so{k}", "State": "Started"})
        assert status == 200, body
        ids["superoffice"].append(str(body))
        status, body, _ = await _call(session, "POST", "/rest/pub/opentask",
                                      body={"taskTypeID": "T", "taskQueueInfo": {"name": f"wm{k}"}})
        assert status == 200, body
        ids["webmethods"].append(body["taskID"])
    return ids


class Burst:
    """One bounded burst of writes across the styles, cut short by SIGKILL."""

    def __init__(self, jobs: list[Job], kill_after: int) -> None:
        self.jobs = list(reversed(jobs))
        # the kill comes after a number of acknowledgements, not after a time, so that it
        # lands mid-burst however fast the server is
        self.kill_after = kill_after
        self.kill_now = asyncio.Event()
        self.acked: list[tuple[str, str, int, int]] = []  # (style, task, n, acknowledged version)
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.sent = 0

    async def worker(self, session: aiohttp.ClientSession) -> None:
        while self.jobs:
            n, style, task = self.jobs.pop()
            method, path, body, ctype = _write(style, task, n)
            self.sent += 1
            try:
                status, answer, headers = await _call(session, method, path, body=body, ctype=ctype, rid=f"b{n}")
            except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
                self.errors[type(exc).__name__] += 1
                return  # the server is gone; stop this worker
            self.statuses[status] += 1
            assert status == 200, (status, answer)
            if style == "sailpoint":
                assert _shows(style, answer, n)
            self.acked.append((style, task, n, _version(headers)))
            if len(self.acked) >= self.kill_after:
                self.kill_now.set()


def _verify_after_crash(dump: Dump, jobs: dict[str, Job], acked: list[tuple[str, str, int, int]]) -> None:
    """Every acknowledged write is the audit row at the version its answer named, and every
    burst row (acknowledged or not) carries its whole change."""
    written: dict[str, tuple[str, str, int]] = {}
    for row in dump.audit:
        if row.request_id not in jobs:
            assert row.action == "created", row  # setup: creations only
            continue
        n, style, task = jobs[row.request_id]
        assert (row.style, row.task_id, row.action) == (style, task, "updated"), row
        after = dump.after[row.seq]
        assert after is not None and _shows(style, after, n), f"b{n} half-applied: {row.patch}"
        assert row.request_id not in written, f"b{n} applied twice"
        written[row.request_id] = (style, task, row.version)
    for style, task, n, version in acked:
        assert written.get(f"b{n}") == (style, task, version), f"acknowledged b{n} ({style} {task} v{version}) lost"


@pytest.mark.parametrize(("synchronous", "workers"), [("FULL", 1), ("NORMAL", 1), ("FULL", 2)])
async def test_kill_9_during_a_burst_loses_nothing_acknowledged(tmp_path: Path, synchronous: str,
                                                                workers: int) -> None:
    """kill -9 at seeded random points of a burst of writes across the three styles, then a
    restart, five times: every write that got a 2xx is stored whole at its version, the
    file passes ``integrity_check``, and the tasks are the replay of the audit trail."""
    rng = random.Random(f"crash-{synchronous}")
    server = Server(tmp_path, synchronous=synchronous, workers=workers).start()
    try:
        async with _session(server) as session:
            ids = await _create_tasks(session)
        targets = [(style, task) for style, tasks in ids.items() for task in tasks]
        acked: list[tuple[str, str, int, int]] = []
        jobs: dict[str, Job] = {}
        n = 0
        for cycle in range(CYCLES):
            burst_jobs = []
            for _ in range(BURST):
                n += 1
                style, task = rng.choice(targets)
                burst_jobs.append((n, style, task))
                jobs[f"b{n}"] = (n, style, task)
            burst = Burst(burst_jobs, kill_after=rng.randint(20, BURST // 3))
            delay = rng.uniform(0, 0.02)  # and a little later still, so it may land inside a commit
            started = time.monotonic()

            async def killer(burst: Burst = burst, started: float = started, delay: float = delay) -> float:
                await asyncio.wait_for(burst.kill_now.wait(), 60)
                await asyncio.sleep(delay)
                server.kill()  # SIGKILL, then reap: the process is gone when this returns
                return time.monotonic() - started

            async with _session(server) as session:
                killed_at = asyncio.create_task(killer())
                try:
                    await asyncio.gather(*(burst.worker(session) for _ in range(WORKERS)))
                finally:
                    at = await killed_at  # even if a worker failed: never leave the kill pending
            assert not [s for s in burst.statuses if s != 200], burst.statuses
            assert burst.jobs or burst.errors, "the kill did not land during the burst"
            acked.extend(burst.acked)
            dump = assert_replays(server.db, verify=False)  # read before the restart touches the file
            _verify_after_crash(dump, jobs, acked)
            server.start()
            async with _session(server) as session:  # and the restarted server serves what the file holds
                for style, path in (("sailpoint", "/task-status/v1/{}"), ("superoffice", "/api/v1/BatchTask/{}"),
                                    ("webmethods", "/rest/pub/opentask/{}")):
                    task = rng.choice(ids[style])
                    status, _body, headers = await _call(session, "GET", path.format(task))
                    assert status == 200 and _version(headers) == dump.tasks[(style, task)][0]
            print(f"\n[{synchronous} cycle {cycle + 1}] killed {at * 1000:.0f} ms in, after {burst.sent} writes sent, "
                  f"{len(burst.acked)} acknowledged, {sum(burst.errors.values())} cut off; "
                  f"audit rows {len(dump.audit)}, acknowledged so far {len(acked)}")
    finally:
        server.stop()
    assert_replays(server.db)  # a clean stop after all that leaves a sound file too
