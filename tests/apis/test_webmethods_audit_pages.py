"""webMethods' audit view in pages: ``maxRes`` and ``afterAuditEntryID``, streamed when long."""

from __future__ import annotations

import json

import pytest

from gateway.apis import webmethods
from tests.apis.test_webmethods_fixtures import BASE, WmApi, _make_wm, _wm, create, envelope  # noqa: F401

UPDATES = 30


async def _trail(wm: WmApi, tid: str, query: str = "") -> list[dict]:
    status, audit, _ = await wm.request("GET", f"{BASE}/{tid}/audit{query}", token=wm.user)
    assert status == 200, audit
    return audit["taskAudits"]


async def _updated(wm: WmApi, n: int, data: str = "") -> str:
    tid = await create(wm, taskInfo={"name": "v0", "assignedToList": ["alice"]})
    for step in range(1, n + 1):
        body = {"TaskInfo": {"name": f"v{step}"}, **({"TaskData": {"d": f"{step}{data}"}} if data else {})}
        assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body=body))[0] == 200
    return tid


async def test_pages_follow_the_whole_trail_oldest_first(wm: WmApi):
    tid = await _updated(wm, UPDATES)
    whole = await _trail(wm, tid)
    assert [e["taskVersionNumber"] for e in whole] == list(range(1, UPDATES + 2))
    pages, after = [], 0
    while True:
        page = await _trail(wm, tid, f"?maxRes=7&afterAuditEntryID={after}")
        pages.append(page)
        if len(page) < 7:
            break
        after = page[-1]["id"]
    assert [len(p) for p in pages] == [7, 7, 7, 7, 3]
    assert [e for p in pages for e in p] == whole
    assert await _trail(wm, tid, f"?afterAuditEntryID={whole[-1]['id']}") == []
    assert await _trail(wm, tid, "?maxRes=2") == whole[:2]


async def test_a_page_starts_at_the_latest_creation(wm: WmApi):
    tid = await _updated(wm, 2)
    assert (await wm.request("DELETE", f"{BASE}/{tid}", token=wm.admin))[0] == 200
    old = [row[0] for row in await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? ORDER BY seq", tid)]
    webmethods_doc = {"TaskInfo": {"taskID": tid, "taskTypeID": "T", "assignedToList": ["alice"]}, "TaskData": {}}
    task_id, doc = webmethods.import_task(webmethods_doc, "2024-05-17T19:33:16.470Z")
    await wm.store.create("webmethods", task_id, doc, actor="import", request_id="again")
    trail = await _trail(wm, tid, "?afterAuditEntryID=0")
    assert [e["operation"] for e in trail] == [0] and trail[0]["id"] > old[-1]
    status, err, _ = await wm.request("GET", f"{BASE}/{tid}/audit/{old[0]}", token=wm.user)
    assert (status, err["$error"]) == (404, f"audit entry {old[0]} of task {tid} not found")


async def test_a_long_trail_of_large_changes_is_streamed(wm: WmApi):
    tid = await _updated(wm, 12, data="x" * 100_000)
    resp = await wm.client.get(f"{BASE}/{tid}/audit", headers=wm.auth(wm.user))
    body = await resp.read()
    assert (resp.status, resp.headers["Transfer-Encoding"]) == (200, "chunked")
    entries = json.loads(body)["taskAudits"]
    assert [e["taskVersionNumber"] for e in entries] == list(range(1, 14))
    one = await wm.client.get(f"{BASE}/{tid}/audit/{entries[5]['id']}", headers=wm.auth(wm.user))
    assert json.loads(await one.read()) == {"taskAudits": [entries[5]]}


@pytest.mark.parametrize(("query", "text"), [
    ("maxRes=0", "maxRes must be a whole number from 1 to 1000; got 0"),
    ("maxRes=1001", "maxRes must be a whole number from 1 to 1000; got 1001"),
    ("maxRes=ten", "maxRes must be a whole number of at least 0; got 'ten'"),
    ("afterAuditEntryID=-1", "afterAuditEntryID must be an audit entry id; got '-1'"),
    ("afterAuditEntryID=x", "afterAuditEntryID must be an audit entry id; got 'x'"),
])
async def test_bad_page_parameters_are_refused(wm: WmApi, query: str, text: str):
    tid = await _updated(wm, 1)
    status, err, _ = await wm.request("GET", f"{BASE}/{tid}/audit?{query}", token=wm.user)
    assert (status, err) == (400, envelope(text, user="alice", time=err["$errorInfo"]["$time"]))


async def test_a_rollback_deep_in_a_long_trail_replays_it_in_parts(wm: WmApi):
    tid = await _updated(wm, 20, data="y" * 50_000)  # the trail is read eight rows at a time
    entries = await _trail(wm, tid)
    target = entries[17]  # the change to v17: rolled back to v16's TaskInfo name and TaskData
    status, _, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{target['id']}", token=wm.user)
    assert status == 200
    status, now, _ = await wm.request("GET", f"{BASE}/{tid}?includeTaskData=true", token=wm.user)
    assert (status, now["TaskInfo"]["name"], now["TaskData"]) == (200, "v16", {"d": "16" + "y" * 50_000})
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entries[-1]['id'] + 100}", token=wm.user)
    assert (status, err["$error"]) == (404, f"audit entry {entries[-1]['id'] + 100} of task {tid} not found")
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entries[0]['id']}", token=wm.user)
    assert (status, err["$error"]) == (409, f"audit entry {entries[0]['id']} is the task's creation; there is no "
                                            "earlier state to roll back to (delete the task instead)")
