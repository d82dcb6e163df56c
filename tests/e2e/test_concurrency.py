"""Concurrent conflicting updates in all three styles, against a real ``taskgate serve``.

* ``If-Match`` races: many updates sent together, all naming the same version: exactly
  one wins, every other gets 412 in its style's error body, and the audit trail holds
  exactly the winner.
* JSON Patch ``test`` races (SuperOffice; SailPoint's are in test_durability.py).
* A mixed, seeded workload over several hundred tasks of the three styles, with stale
  preconditions and deletes among it, ends in exactly the state of a serial replay of its
  audit trail, and every acknowledged write is the audit row at the version it was told.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from tests.audit_replay import assert_replays
from tests.e2e.server import Server, call, session, version

pytestmark = pytest.mark.e2e


@pytest.fixture(name="server")
def _server(workers_server: Server) -> Server:
    """Every result here must hold across worker processes as it does in one."""
    return workers_server

RACERS = 40


async def _new_task(client, style: str, k: int) -> tuple[str, str]:
    """Create one task of *style*; returns its id and its GET path."""
    if style == "sailpoint":
        status, body, _ = await call(client, "POST", "/task-status/v1",
                                     body={"id": f"sp{k}", "type": "QUARTZ", "uniqueName": f"sp{k}"})
        assert status == 201, body
        return f"sp{k}", f"/task-status/v1/sp{k}"
    if style == "superoffice":
        status, body, _ = await call(client, "POST", "/api/v1/BatchTask",
                                     body={"Name": f"so{k}", "State": "Started", "Description": "start"})
        assert status == 200, body
        return str(body), f"/api/v1/BatchTask/{body}"
    status, body, _ = await call(client, "POST", "/rest/pub/opentask",
                                 body={"taskTypeID": "T", "taskQueueInfo": {"name": f"wm{k}"}})
    assert status == 200, body
    return body["taskID"], f"/rest/pub/opentask/{body['taskID']}"


def _update(style: str, path: str, i: int) -> tuple[str, Any, str]:
    if style == "sailpoint":
        return "PATCH", [{"op": "replace", "path": "/progress", "value": f"w{i}"}], "application/json-patch+json"
    if style == "superoffice":
        return "PUT", {"Description": f"w{i}"}, "application/json"
    return "PUT", {"TaskInfo": {"description": f"w{i}"}}, "application/json"


def _assert_error_shape(style: str, status: int, body: Any, rid: str) -> None:
    """The style's error body for a 409 or 412."""
    if style == "sailpoint":
        assert set(body) == {"detailCode", "trackingId", "messages", "causes"}, body
        assert body["detailCode"] == {409: "409 Conflict", 412: "412 Precondition Failed"}[status]
        assert body["trackingId"] == rid
    elif style == "superoffice":
        assert set(body) == {"Error", "ErrorType", "ErrorMessage", "ErrorSource"}, body
        assert body["ErrorType"] == {409: "SoConflictException", 412: "SoPreconditionFailedException"}[status]
    else:
        assert {"$error", "$errorType", "$errorDump", "$errorInfo"} <= set(body), body
        assert body["$errorType"] == "com.wm.app.b2b.server.ServiceException"


async def _race(client, sends) -> list[tuple[int, Any, Any]]:
    start = asyncio.Event()

    async def one(send):
        await start.wait()
        return await send()
    fired = [asyncio.create_task(one(send)) for send in sends]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*fired)


@pytest.mark.parametrize("style", ["sailpoint", "superoffice", "webmethods"])
async def test_if_match_races_have_exactly_one_winner(server: Server, style: str) -> None:
    async with session(server) as client:
        task_id, path = await _new_task(client, style, 0)
        status, _body, headers = await call(client, "GET", path)
        assert status == 200
        seen = version(headers)

        def send(i: int):
            method, body, ctype = _update(style, path, i)
            return lambda: call(client, method, path, body=body, ctype=ctype, rid=f"race-{i}",
                                headers={"If-Match": f'"{seen}"'})
        answers = await _race(client, [send(i) for i in range(RACERS)])
    statuses = Counter(status for status, _b, _h in answers)
    assert statuses == {200: 1, 412: RACERS - 1}, statuses
    winner = next(i for i, (status, _b, _h) in enumerate(answers) if status == 200)
    assert version(answers[winner][2]) == seen + 1
    for i, (status, body, _h) in enumerate(answers):
        if status == 412:
            _assert_error_shape(style, status, body, f"race-{i}")
    dump = assert_replays(server.db)
    updates = [r for r in dump.audit if r.action == "updated"]
    assert [(r.task_id, r.version, r.request_id) for r in updates] == [(task_id, seen + 1, f"race-{winner}")]


async def test_superoffice_json_patch_test_races_have_exactly_one_winner(server: Server) -> None:
    async with session(server) as client:
        task_id, path = await _new_task(client, "superoffice", 0)

        def send(i: int):
            ops = [{"op": "test", "path": "/Description", "value": "start"},
                   {"op": "replace", "path": "/Description", "value": f"w{i}"}]
            return lambda: call(client, "PUT", path, body=ops, ctype="application/json-patch+json", rid=f"race-{i}")
        answers = await _race(client, [send(i) for i in range(RACERS)])
    statuses = Counter(status for status, _b, _h in answers)
    assert statuses == {200: 1, 409: RACERS - 1}, statuses
    for i, (status, body, _h) in enumerate(answers):
        if status == 409:
            _assert_error_shape("superoffice", status, body, f"race-{i}")
        else:
            assert body["Description"] == f"w{i}"
    dump = assert_replays(server.db)
    assert [r.request_id for r in dump.audit if r.action == "updated"] == \
        [f"race-{next(i for i, a in enumerate(answers) if a[0] == 200)}"]


# -- a mixed workload -----------------------------------------------------------------------------
TASKS_PER_STYLE = 100
OPERATIONS = 900
CONCURRENCY = 32
SO_STATES = ("New", "Started", "Succeeded", "Failed", "Aquired")


def _so_body(rng: random.Random, n: int) -> tuple[Any, str]:
    state, text = rng.choice(SO_STATES), f"m{n}"
    kind = rng.randrange(5)
    if kind == 0:
        return {"State": state, "Response": text}, "application/json"
    if kind == 1:
        return (f"<BatchTaskInfo><State>{state}</State><Response>{text}</Response></BatchTaskInfo>",
                "application/xml")
    if kind == 2:
        return f"State={state}&Response={text}", "application/x-www-form-urlencoded"
    if kind == 3:
        return [{"op": "replace", "path": "/State", "value": state},
                {"op": "replace", "path": "/Response", "value": text}], "application/json-patch+json"
    return {"State": state, "Response": text}, "application/merge-patch+json"


async def test_a_mixed_workload_ends_in_the_state_of_its_audit_replay(server: Server) -> None:
    rng = random.Random(20261122)
    async with session(server) as client:
        paths: dict[tuple[str, str], str] = {}
        for style in ("sailpoint", "superoffice", "webmethods"):
            made = await asyncio.gather(*(_new_task(client, style, k) for k in range(TASKS_PER_STYLE)))
            paths.update({(style, task_id): path for task_id, path in made})
        keys = sorted(paths)
        known: dict[tuple[str, str], int] = dict.fromkeys(keys, 1)  # last version a client saw (may be stale)
        plan = []
        for n in range(OPERATIONS):
            key = rng.choice(keys)
            style, _task = key
            roll = rng.random()
            headers = {}
            if roll < 0.3:
                headers["If-Match"] = "KNOWN"  # filled in when sent, from what is known then
            if roll > 0.97 and style != "sailpoint":
                plan.append((n, key, "DELETE", None, None, headers))
            elif style == "sailpoint":
                ops = [{"op": "add", "path": f"/attributes/k{n}", "value": n},
                       {"op": "replace", "path": "/progress", "value": f"m{n}"}]
                if rng.random() < 0.2:
                    ops.insert(0, {"op": "test", "path": "/percentComplete", "value": 0})
                    ops.append({"op": "replace", "path": "/percentComplete", "value": 1})
                plan.append((n, key, "PATCH", ops, "application/json-patch+json", headers))
            elif style == "superoffice":
                body, ctype = _so_body(rng, n)
                plan.append((n, key, "PUT", body, ctype, headers))
            else:
                body = {"TaskInfo": {"description": f"m{n}", "priority": rng.choice(["low", "high"])}}
                if rng.random() < 0.5:
                    body["TaskData"] = {"n": n}
                plan.append((n, key, "PUT", body, "application/json", headers))
        outcomes: list[tuple[int, tuple[str, str], str, int, Any, Any]] = []
        queue = list(reversed(plan))

        async def worker() -> None:
            while queue:
                n, key, method, body, ctype, headers = queue.pop()
                if headers.get("If-Match") == "KNOWN":
                    headers = {"If-Match": f'"{known[key]}"'}
                kwargs: dict[str, Any] = {"body": body} if not isinstance(body, str) else {"data": body}
                status, answer, hdrs = await call(client, method, paths[key], ctype=ctype or "application/json",
                                                  rid=f"m{n}", headers=headers, **kwargs)
                if status == 200 and method != "DELETE":  # webMethods answers a delete 200 {}
                    known[key] = version(hdrs)
                outcomes.append((n, key, method, status, answer, hdrs))
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    statuses = Counter((key[0], method, status) for _n, key, method, status, _a, _h in outcomes)
    assert not [s for s in statuses if s[2] >= 500], statuses
    assert {s[2] for s in statuses} <= {200, 204, 404, 409, 412}, statuses
    dump = assert_replays(server.db)
    rows = {r.request_id: r for r in dump.audit}
    assert len(rows) == len(dump.audit), "a request id appears twice"
    for n, key, method, status, answer, hdrs in outcomes:
        row = rows.get(f"m{n}")
        if status >= 400:
            assert row is None, f"m{n} was refused with {status} but is in the audit trail"
            if status in (409, 412):
                _assert_error_shape(key[0], status, answer, f"m{n}")
            continue
        if method == "DELETE":
            assert row is not None and row.action == "deleted" and (row.style, row.task_id) == key
            continue
        # a 2xx write that changed something is the audit row at the version it was told
        if row is None:  # an update that changed nothing writes nothing: same version as before
            continue
        assert (row.style, row.task_id, row.version, row.action) == (*key, version(hdrs), "updated")
        if key[0] == "sailpoint":
            assert answer == dump.after[row.seq]
    changed = sum(1 for r in dump.audit if r.action != "created")
    print(f"\n[mixed] {OPERATIONS} requests over {len(paths)} tasks: {changed} audited changes; "
          + ", ".join(f"{s}/{m} {st}: {c}" for (s, m, st), c in sorted(statuses.items())))


@pytest.mark.parametrize("style", ["superoffice", "webmethods"])
async def test_a_delete_naming_a_stale_version_is_refused(server: Server, style: str) -> None:
    async with session(server) as client:
        task_id, path = await _new_task(client, style, 0)
        method, body, ctype = _update(style, path, 1)
        status, _b, headers = await call(client, method, path, body=body, ctype=ctype)
        assert status == 200 and version(headers) == 2
        status, body, _ = await call(client, "DELETE", path, headers={"If-Match": '"1"'}, rid="stale")
        assert status == 412
        _assert_error_shape(style, status, body, "stale")
        status, body, _h = await call(client, "DELETE", path, headers={"If-Match": '"2"'})
        assert (status, body) == ((204, None) if style == "superoffice" else (200, {}))  # each vendor's answer
    dump = assert_replays(server.db)
    assert [(r.task_id, r.action) for r in dump.audit] == [(task_id, "created"), (task_id, "updated"),
                                                           (task_id, "deleted")]
