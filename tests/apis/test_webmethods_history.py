"""webMethods audit, rollback, the clock's rules (with a ManualClock, no sleeps) and search."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from gateway.apis import webmethods
from gateway.query import Query
from tests.apis.test_webmethods_fixtures import BASE, START_ISO, WmApi, _make_wm, _wm, create, envelope, stored  # noqa: F401

FIELDS_BUMPED = ("taskVersionNumber", "lastModifiedDate", "lastModifiedBy")


def without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {**doc, "TaskInfo": {k: v for k, v in doc["TaskInfo"].items() if k not in keys}}


# -- audit and rollback --------------------------------------------------------------------------
async def test_three_updates_then_roll_back_to_the_first(wm: WmApi):
    tid = await create(wm, taskInfo={"name": "v1", "assignedToList": ["alice"]}, taskData={"step": 1})
    first = await stored(wm, tid)
    for body in ({"TaskInfo": {"name": "v2"}, "TaskData": {"step": 2}},
                 {"TaskInfo": {"status": "suspended", "acceptedByList": ["alice"]}},
                 {"TaskInfo": {"priority": "high"}, "TaskData": {"step": 3, "extra": True}}):
        wm.clock.advance(minutes=1)
        assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body=body))[0] == 200

    status, audit, _ = await wm.request("GET", f"{BASE}/{tid}/audit?jsonDateEncoding=ISO8601", token=wm.user)
    assert status == 200
    entries = audit["taskAudits"]
    assert [(e["operation"], e["taskVersionNumber"], e["userID"], e["TaskURI"]) for e in entries] == [
        (0, 1, "root", f"/rest/pub/opentask/{tid}"), (3, 2, "alice", f"/rest/pub/opentask/{tid}"),
        (2, 3, "alice", f"/rest/pub/opentask/{tid}"), (3, 4, "alice", f"/rest/pub/opentask/{tid}")]
    assert sorted(entries[1]["difference"]) == sorted([
        'replace /TaskData/step 2', 'replace /TaskInfo/name "v2"',
        'replace /TaskInfo/lastModifiedBy "alice"', 'replace /TaskInfo/lastModifiedDate "2024-05-17T19:34:16.470Z"',
        'replace /TaskInfo/taskVersionNumber 2'])
    status, one, _ = await wm.request("GET", f"{BASE}/{tid}/audit/{entries[1]['id']}?jsonDateEncoding=ISO8601",
                                      token=wm.user)
    assert (status, one) == (200, {"taskAudits": [entries[1]]})

    wm.clock.advance(minutes=1)
    status, body, headers = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entries[1]['id']}", token=wm.user)
    assert (status, body, headers["ETag"]) == (200, {}, '"5"')
    now = await stored(wm, tid)
    assert without(now, *FIELDS_BUMPED) == without(first, *FIELDS_BUMPED)
    assert {k: now["TaskInfo"][k] for k in FIELDS_BUMPED} == {
        "taskVersionNumber": 5, "lastModifiedDate": "2024-05-17T19:37:16.470Z", "lastModifiedBy": "alice"}

    status, audit, _ = await wm.request("GET", f"{BASE}/{tid}/audit", token=wm.user)
    last = audit["taskAudits"][-1]
    assert len(audit["taskAudits"]) == 5
    assert (last["operation"], last["taskVersionNumber"], last["userID"]) == (14, 5, "alice")  # REVERTED
    # audit rows are stamped by the store's own (system) clock, written in IS's default form
    assert re.fullmatch(r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d UTC \d{4}", last["createdDate"])
    (rid,) = await wm.db_rows("SELECT request_id FROM audit WHERE task_id = ? AND version = 5", tid)
    assert rid[0].endswith(f"#rollback:{entries[1]['id']}")


async def test_rollback_of_the_creation_and_of_unknown_entries_is_refused(wm: WmApi):
    tid = await create(wm)
    await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"name": "x"}})
    (created,), = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? AND action = 'created'", tid)
    before = await wm.snapshot()
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{created}")
    assert (status, err) == (409, envelope(f"audit entry {created} is the task's creation; there is no earlier "
                                           "state to roll back to (delete the task instead)"))
    for entry in ("999", "abc"):
        status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entry}")
        assert (status, err) == (404, envelope(f"audit entry {entry} of task {tid} not found"))
        status, err, _ = await wm.request("GET", f"{BASE}/{tid}/audit/{entry}")
        assert status == 404
    assert await wm.snapshot() == before


async def test_a_rollback_obeys_the_status_rules(wm: WmApi):
    tid = await create(wm)
    await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "suspended"}})
    rows = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? ORDER BY seq", tid)
    await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "active"}})
    await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "completed"}})
    before = await wm.snapshot()
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{rows[1][0]}")
    assert status == 409 and err["$error"].startswith("a task in status completed cannot be updated")
    assert await wm.snapshot() == before


# -- the clock ------------------------------------------------------------------------------------
async def test_a_scheduled_task_starts_when_read_after_its_schedule_date(wm: WmApi):
    tid = await create(wm, taskInfo={"taskScheduleDate": "2024-05-17T20:00:00Z", "assignedToList": ["alice"]})
    status, got, _ = await wm.request("GET", f"{BASE}/{tid}?jsonDateEncoding=ISO8601", token=wm.user)
    assert got["TaskInfo"]["status"] == "scheduled"
    wm.clock.advance(minutes=27)  # 20:00:16.470, just past
    status, got, headers = await wm.request("GET", f"{BASE}/{tid}", token=wm.user)
    assert (status, got["TaskInfo"]["status"], got["TaskInfo"]["taskVersionNumber"], headers["ETag"]) == (
        200, "active", 2, '"2"')
    info = (await stored(wm, tid))["TaskInfo"]
    assert (info["lastModifiedBy"], info["lastModifiedDate"]) == ("system", "2024-05-17T20:00:16.470Z")
    assert await wm.db_rows("SELECT version, action, actor FROM audit WHERE task_id = ? ORDER BY seq", tid) == [
        (1, "created", "root"), (2, "updated", "system")]
    status, audit, _ = await wm.request("GET", f"{BASE}/{tid}/audit", token=wm.user)
    assert audit["taskAudits"][-1]["operation"] == 11  # TASK_OPERATION_SCHEDULE_RULE_FIRED


async def test_an_overdue_task_expires_before_an_update_is_judged(wm: WmApi):
    tid = await create(wm, taskInfo={"expireDate": "2024-05-17T19:34:00Z"})
    wm.clock.advance(minutes=1)
    before = await wm.snapshot()
    status, err, _ = await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "completed"}})
    assert (status, err) == (409, envelope(
        "a task in status expired cannot be updated; only tasks in status active, error, scheduled, suspended can "
        "(webmethods.update_completed_task is false)", time="2024-05-17 19:34:16 UTC"))
    # the expiry and the refused change were one write: neither is stored; the next read expires the task
    assert await wm.snapshot() == before
    status, got, _ = await wm.request("GET", f"{BASE}/{tid}")
    assert (got["TaskInfo"]["status"], got["TaskInfo"]["lastModifiedBy"], got["TaskInfo"]["taskVersionNumber"]) == (
        "expired", "system", 2)


async def test_schedule_then_expiry_are_two_audited_changes(wm: WmApi):
    tid = await create(wm, taskInfo={"taskScheduleDate": "2024-05-18T00:00:00Z", "expireDate": "2024-05-19T00:00:00Z"})
    wm.clock.advance(days=3)
    status, got, _ = await wm.request("GET", f"{BASE}/{tid}")
    assert got["TaskInfo"]["status"] == "expired"
    assert await wm.db_rows("SELECT version, actor FROM audit WHERE task_id = ? ORDER BY seq", tid) == [
        (1, "root"), (2, "system"), (3, "system")]


async def test_lists_and_searches_sweep_first(wm: WmApi):
    tid = await create(wm, taskInfo={"expireDate": "2024-05-17T19:34:00Z"})
    wm.clock.advance(minutes=1)
    status, got, _ = await wm.request("GET", BASE)
    assert [t["TaskInfo"]["status"] for t in got["Tasks"]] == ["expired"]
    assert (await stored(wm, tid))["TaskInfo"]["lastModifiedBy"] == "system"
    later = await create(wm, taskInfo={"expireDate": "2024-05-17T19:36:00Z"})  # the search alone must expire it
    status, got, _ = await wm.request("GET", "/rest/pub/opentasksearch")
    assert got == {"Tasks": [{"TaskID": later, "TaskInfo": got["Tasks"][0]["TaskInfo"]}]}
    wm.clock.advance(minutes=2)
    status, got, _ = await wm.request("GET", "/rest/pub/opentasksearch")
    assert got == {"Tasks": []}
    assert (await stored(wm, later))["TaskInfo"]["lastModifiedBy"] == "system"


async def test_the_background_sweeper_applies_the_rules_without_any_request(make_wm):
    api = await make_wm(sweep_interval_seconds=0.05)
    due = await create(api, taskInfo={"taskScheduleDate": "2024-05-17T19:40:00Z"})
    later = await create(api, taskInfo={"expireDate": "2024-05-18T00:00:00Z"})
    api.clock.advance(minutes=10)
    await asyncio.wait_for(api.client.app[webmethods.SWEEPER].next_pass(), timeout=10)
    assert (await stored(api, due))["TaskInfo"]["status"] == "active"
    assert (await stored(api, later))["TaskInfo"]["status"] == "active"
    assert await api.db_rows("SELECT task_id, actor, request_id FROM audit WHERE actor = 'system'") == [
        (due, "system", "sweeper")]


async def test_the_sweep_reads_only_due_tasks_through_the_date_indexes(wm: WmApi, monkeypatch):
    """It runs every second and before every list and search: it must not read every task."""
    await create(wm, taskInfo={"expireDate": "2024-06-01T00:00:00Z"})
    await create(wm, taskInfo={"taskScheduleDate": "2024-06-01T00:00:00Z"})
    queries: list[Query] = []
    original = wm.store.find_ids  # the sweep reads the ids of due tasks, then those tasks by key

    async def spy(style, query):
        queries.append(query)
        return await original(style, query)
    monkeypatch.setattr(wm.store, "find_ids", spy)
    assert await webmethods.sweep(wm.store, wm.clock.now_iso(), "t") == 0
    assert queries
    for query in queries:  # the same WHERE and ORDER BY as Store.find's, read by SQLite's planner
        plan = (await wm.store.explain("webmethods", query)).replace("\n", " | ")
        assert re.fullmatch(r"SEARCH tasks USING INDEX tasks_by_TaskInfo_(expireDate|taskScheduleDate) "
                            r"\(style=\? AND <expr><\?\)", plan), plan


async def test_a_sweep_stops_when_a_batch_changes_nothing(wm: WmApi):
    """A stored date the SQL finds due but the rules do not (an empty string, which no request
    can store) must not make the sweeper, and every list and search behind it, spin forever."""
    await wm.store.create("webmethods", "1", {"TaskInfo": {"status": "scheduled", "taskScheduleDate": ""},
                                              "TaskData": {}}, actor="root", request_id="r")
    assert await asyncio.wait_for(webmethods.sweep(wm.store, wm.clock.now_iso(), "t"), timeout=10) == 0


async def test_lists_and_searches_answer_at_most_max_results(wm: WmApi, monkeypatch):
    monkeypatch.setattr(webmethods, "MAX_RESULTS", 2)
    made = []
    for _ in range(3):
        made.append(await create(wm))
        wm.clock.advance(seconds=1)
    for query, body, expected in (
            ("", None, 2), ("?maxRes=0", None, 2), ("?maxRes=5", None, 2), ("?maxRes=1", None, 1),
            ("", {"taskSearchQuery": {"maxResults": 0}}, 2), ("", {"taskSearchQuery": {"maxResults": 9}}, 2)):
        path = "/rest/pub/opentasksearch" + query
        status, got, _ = await wm.request("POST" if body else "GET", path, body=body)
        assert status == 200 and [t["TaskID"] for t in got["Tasks"]] == made[:expected], (query, body)
    status, got, _ = await wm.request("GET", BASE)
    assert [t["TaskID"] for t in got["Tasks"]] == made[:2]
    # the rest is reached by paging on createdDate
    status, got, _ = await wm.request("POST", "/rest/pub/opentasksearch", body={"taskSearchQuery": {"terms": [
        {"fields": ["createdDate"], "operator": ">", "value": "2024-05-17T19:33:17.470Z"}]}})
    assert [t["TaskID"] for t in got["Tasks"]] == made[2:]


# -- search ------------------------------------------------------------------------------------------
@pytest.fixture(name="tasks")
async def _tasks(wm: WmApi) -> dict[str, str]:
    made = {}
    for name, queue, status in (
            ("alpha report", {"assignedToList": ["alice"], "priority": "high"}, None),
            ("beta review", {"assignedToList": ["alice", "bob"], "acceptedByList": ["bob"]}, None),
            ("gamma report", {"assignedToList": ["alice"], "priority": "low"}, "completed"),
            ("delta", {"assignedToList": ["bob"]}, None)):
        made[name] = await create(wm, taskInfo={"name": name, **queue}, taskData={"n": name})
        if status:
            await wm.request("PUT", f"{BASE}/{made[name]}", body={"TaskInfo": {"status": status}})
        wm.clock.advance(hours=1)
    return made


async def search(api: WmApi, body: dict[str, Any] | None = None, query: str = "",
                 token: str | None = None) -> list[str]:
    if body is None:
        status, got, _ = await api.request("GET", f"/rest/pub/opentasksearch{query}", token=token)
    else:
        status, got, _ = await api.request("POST", f"/rest/pub/opentasksearch{query}", body=body, token=token)
    assert status == 200, got
    return [t["TaskInfo"]["name"] for t in got["Tasks"]]


async def test_simple_search(wm: WmApi, tasks):
    assert await search(wm, token=wm.user) == ["alpha report", "beta review"]
    assert await search(wm, query="?nonActive=true", token=wm.user) == ["alpha report", "beta review", "gamma report"]
    assert await search(wm, {"notOthers": "true"}, token=wm.user) == ["alpha report"]
    assert await search(wm, {"maxRes": 1, "includeTaskData": True}, token=wm.user) == ["alpha report"]
    assert await search(wm) == ["alpha report", "beta review", "delta"]
    assert await search(wm, {"searchUserTasks": "true", "user": "bob"}) == ["beta review", "delta"]


@pytest.mark.parametrize("query, expected", [
    ({"terms": [{"fields": ["status"], "operator": "equals", "value": "completed"}]}, ["gamma report"]),
    ({"terms": [{"fields": ["priority"], "operator": "!=", "value": "none"}]}, ["alpha report", "gamma report"]),
    ({"terms": [{"fields": ["assignedToList"], "operator": "contains", "value": "bob"}]}, ["beta review", "delta"]),
    ({"terms": [{"Fields": ["name"], "Operator": "contains", "Value": "report"}]}, ["alpha report", "gamma report"]),
    ({"terms": [{"fields": ["name", "priority"], "operator": "equals", "value": "delta"}]}, ["delta"]),
    ({"terms": [{"fields": ["createdDate"], "operator": "greater_than_or_equals", "value": "2024-05-17T20:33:16.470Z"},
                {"fields": ["createdDate"], "operator": "<", "value": "Fri May 17 22:33:16 UTC 2024"}]},
     ["beta review", "gamma report"]),
    ({"terms": [{"fields": ["name"], "operator": "contains", "value": "%"}]}, []),
    ({"terms": [], "maxResults": 2}, ["alpha report", "beta review"]),
    ({"terms": [{"fields": ["acceptedByList"], "operator": "equals", "value": "bob"}], "maxResults": "0"},
     ["beta review"]),
])
async def test_task_search_query(wm: WmApi, tasks, query, expected):
    assert await search(wm, {"taskSearchQuery": query}) == expected


async def test_task_search_query_respects_access(wm: WmApi, tasks):
    query = {"terms": [{"fields": ["assignedToList"], "operator": "equals", "value": "bob"}]}
    assert await search(wm, {"TaskSearchQuery": query}, token=wm.user) == ["beta review"]
    assert await search(wm, {"TaskSearchQuery": {**query, "doNotShowAcceptedByOthers": True}}, token=wm.user) == []


@pytest.mark.parametrize("body, message", [
    ({"taskSearchQuery": {"terms": [{"fields": ["colour"], "value": "red"}]}},
     "terms[0].fields: 'colour' is not searchable here; searchable: acceptedByList, assignedToList, createdBy, "
     "createdDate, customTaskID, description, expireDate, lastAcceptedBy, lastModifiedBy, lastModifiedDate, name, "
     "priority, processInstanceID, status, taskID, taskTypeID"),
    ({"taskSearchQuery": {"terms": [{"fields": ["status"], "value": "done"}]}},
     "terms[0].value: 'done' is not a status; use one of active, completed, cancelled, expired, error, suspended, "
     "scheduled"),
    ({"taskSearchQuery": {"terms": [{"fields": ["status"], "operator": "like", "value": "a"}]}},
     "terms[0].operator 'like' is not supported; use equals, not_equals, contains, greater_than, "
     "greater_than_or_equals, less_than, less_than_or_equals"),
    ({"taskSearchQuery": {"terms": [{"fields": ["status"], "operator": ">", "value": "a"}]}},
     "terms[0]: operator '>' does not apply to status"),
    ({"taskSearchQuery": {"terms": [{"fields": ["createdDate"], "operator": ">", "value": "soon"}]}},
     "terms[0].value: 'soon' is not a date; use ISO 8601 (2024-05-17T19:33:16.470Z), epoch milliseconds, or "
     "EEE MMM dd HH:mm:ss zzz yyyy (Fri May 17 19:33:16 UTC 2024)"),
    ({"taskSearchQuery": {"terms": [{"value": "a"}]}}, "terms[0].fields is required"),
    ({"taskSearchQuery": {"bogus": 1}}, "invalid taskSearchQuery: bogus: Unknown field."),
    ({"taskSearchQuery": [1]}, "taskSearchQuery must be a JSON object"),
    ({"maxRes": -1}, "maxRes must be a whole number of at least 0; got -1"),
    ({"nonActive": "yes"}, "nonActive must be true or false; got 'yes'"),
    ({"max": 1}, "unknown input 'max'; expected any of TaskSearchQuery, includeTaskData, maxRes, nonActive, "
                 "notOthers, searchUserTasks, taskSearchQuery, user"),
])
async def test_bad_searches(wm: WmApi, body, message):
    status, err, _ = await wm.request("POST", "/rest/pub/opentasksearch", body=body)
    assert (status, err) == (400, envelope(message))


async def test_searches_use_the_indexes(wm: WmApi):
    from gateway.query import Compare, Query
    plan = await wm.store.explain("webmethods", Query(Compare("$.TaskInfo.status", "eq", ("active",))))
    assert "tasks_by_TaskInfo_status" in plan
