"""The webMethods opentask API in process: PUT semantics, the transition matrix, access,
the error envelope, create/get/list/delete. Whole bodies and stored rows are compared."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gateway.apis import webmethods_rules as rules
from gateway.auth import hash_password
from tests.apis.test_webmethods_fixtures import (  # noqa: F401
    BASE,
    START_IS,
    START_ISO,
    WmApi,
    _make_wm,
    _wm,
    create,
    envelope,
    stored,
)

STATUSES = ("active", "completed", "cancelled", "expired", "error", "suspended", "scheduled")
TYPE_ID = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"
FUTURE = "2024-06-01T00:00:00.000Z"

# the same requests and answers on a SQLite file and on PostgreSQL
pytestmark = pytest.mark.both_backends


def info(task_id: str, **fields: Any) -> dict[str, Any]:
    """A stored TaskInfo as a create by root at START leaves it, with *fields* changed."""
    base = {"taskID": task_id, "taskTypeID": TYPE_ID, "name": None, "description": None, "customTaskID": None,
            "status": "active", "priority": "none", "expireDate": None, "taskScheduleDate": None,
            "assignedToList": [], "acceptedByList": [], "lastAcceptedBy": None, "lastAcceptedDate": None,
            "createdDate": START_ISO, "createdBy": "root", "lastModifiedDate": START_ISO, "lastModifiedBy": "root",
            "errorCode": None, "errorMessage": None, "processInstanceID": None, "rootProcessInstanceID": None,
            "processModelID": None, "processModelVersion": None, "stepID": None, "delegatedFromList": [],
            "delegatedToList": [], "taskVersionNumber": 1}
    return {**base, **fields}


# -- create and get ------------------------------------------------------------------------------
async def test_create_stores_the_task_and_get_returns_it_with_is_dates(wm: WmApi):
    with_data = {"Order": {"id": "42"}}
    status, body, headers = await wm.request("POST", BASE, body={
        "taskTypeID": TYPE_ID, "taskQueueInfo": {"name": "Approve order", "priority": "high",
                                                  "assignedTaskList": ["alice"], "expireDate": "2024-05-20T00:00:00Z"},
        "taskData": with_data})
    assert (status, body) == (200, {"taskID": "1"})  # numeric, handed out in order by the store
    tid = body["taskID"]
    expected = info(tid, name="Approve order", priority="high", assignedToList=["alice"],
                    expireDate="2024-05-20T00:00:00.000Z")
    assert await stored(wm, tid) == {"TaskInfo": expected, "TaskData": with_data}
    assert await wm.db_rows("SELECT version, action, actor FROM audit WHERE task_id = ?", tid) == [
        (1, "created", "root")]

    status, got, headers = await wm.request("GET", f"{BASE}/{tid}?includeTaskData=true", token=wm.user)
    out = {**expected, "createdDate": START_IS, "lastModifiedDate": START_IS,
           "expireDate": "Mon May 20 00:00:00 UTC 2024"}
    assert (status, got, headers["ETag"]) == (200, {"TaskInfo": out, "TaskData": with_data}, '"1"')
    status, got, _ = await wm.request("GET", f"{BASE}?taskID={tid}", token=wm.user)
    assert (status, got) == (200, {"TaskInfo": out})


async def test_create_with_a_future_schedule_date_is_scheduled_and_ignores_read_only_fields(wm: WmApi):
    tid = await create(wm, TaskQueueInfo={"taskScheduleDate": FUTURE, "createdBy": "mallory", "status": "completed",
                                          "taskVersionNumber": 99}, TaskData={"x": 1})
    assert await stored(wm, tid) == {"TaskInfo": info(tid, status="scheduled", taskScheduleDate=FUTURE),
                                     "TaskData": {"x": 1}}


async def test_create_by_a_user_makes_them_the_creator_who_may_see_it(wm: WmApi):
    tid = await create(wm, token=wm.user)
    assert (await stored(wm, tid))["TaskInfo"]["createdBy"] == "alice"
    assert (await wm.request("GET", f"{BASE}/{tid}", token=wm.user))[0] == 200
    assert (await wm.request("GET", f"{BASE}/{tid}", token=wm.bob))[0] == 404


@pytest.mark.parametrize("body, message", [
    ({}, "taskTypeID is required"),
    ({"taskTypeID": ""}, "taskTypeID must be a non-empty string of at most 255 characters; got ''"),
    ({"taskTypeID": "t", "taskData": [1]}, "taskData must be a JSON object"),
    ({"taskTypeID": "t", "taskQueueInfo": "x"}, "taskQueueInfo must be a JSON object"),
    ({"taskTypeID": "t", "taskQueueInfo": {"priority": "High"}},
     "invalid taskQueueInfo: priority: Must be one of: none, low, medium, high, critical (case-sensitive)."),
    ({"taskTypeID": "t", "taskQueueInfo": {"expireDate": "tomorrow"}},
     "invalid taskQueueInfo: expireDate: 'tomorrow' is not a date; use ISO 8601 (2024-05-17T19:33:16.470Z), "
     "epoch milliseconds, or EEE MMM dd HH:mm:ss zzz yyyy (Fri May 17 19:33:16 UTC 2024)"),
    ({"taskTypeID": "t", "TaskInfo": {}, "taskQueueInfo": {}}, "send only one of taskQueueInfo, TaskInfo"),
    ({"taskTypeID": "t", "colour": "red"}, "unknown input 'colour'; expected any of CallbackData, "
     "CallbackServiceName, TaskData, TaskInfo, TaskQueueInfo, ruleSet, taskData, taskInfo, taskQueueInfo, "
     "taskTypeID, user"),
])
async def test_create_refuses_bad_input(wm: WmApi, body, message):
    status, err, _ = await wm.request("POST", BASE, body=body)
    assert (status, err) == (400, envelope(message))
    assert await wm.db_rows("SELECT count(*) FROM tasks") == [(0,)]


# -- PUT semantics --------------------------------------------------------------------------------
async def test_put_merges_task_info_and_replaces_task_data(wm: WmApi):
    tid = await create(wm, taskInfo={"name": "n", "description": "d", "assignedToList": ["alice"]},
                       taskData={"keep": "no", "old": 1})
    wm.clock.advance(minutes=5)
    status, body, headers = await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={
        "TaskInfo": {"description": "changed", "name": None, "createdBy": "mallory", "taskVersionNumber": 77,
                     "taskID": "other"},
        "TaskData": {"new": True}})
    assert (status, body, headers["ETag"]) == (200, {}, '"2"')
    assert await stored(wm, tid) == {
        "TaskInfo": info(tid, name="n", description="changed", assignedToList=["alice"], taskVersionNumber=2,
                         lastModifiedBy="alice", lastModifiedDate="2024-05-17T19:38:16.470Z"),
        "TaskData": {"new": True}}


async def test_put_without_task_data_keeps_it_and_empty_task_data_clears_it(wm: WmApi):
    tid = await create(wm, taskData={"a": 1})
    assert (await wm.request("PUT", f"{BASE}/{tid}", body={"taskInfo": {"priority": "low"}}))[0] == 200
    assert (await stored(wm, tid))["TaskData"] == {"a": 1}
    assert (await wm.request("PUT", f"{BASE}/{tid}", body={"taskData": {}}))[0] == 200
    doc = await stored(wm, tid)
    assert doc["TaskData"] == {} and doc["TaskInfo"]["priority"] == "low" and doc["TaskInfo"]["taskVersionNumber"] == 3


@pytest.mark.parametrize("where", ["path", "query", "body", "path-over-query-and-body"])
@pytest.mark.parametrize("key", ["TaskInfo", "taskInfo"])
async def test_task_id_in_path_query_or_body_and_both_spellings(wm: WmApi, where, key):
    tid = await create(wm)
    other = await create(wm)
    url, body = {"path": (f"{BASE}/{tid}", {}), "query": (f"{BASE}?taskID={tid}", {}),
                 "body": (BASE, {"taskID": tid}),
                 "path-over-query-and-body": (f"{BASE}/{tid}?taskID={other}", {"taskID": other})}[where]
    status, got, _ = await wm.request("PUT", url, body={**body, key: {"name": "renamed"}})
    assert (status, got) == (200, {})
    assert (await stored(wm, tid))["TaskInfo"]["name"] == "renamed"
    assert (await stored(wm, other))["TaskInfo"]["name"] is None


async def test_accepting_records_who_and_when(wm: WmApi):
    tid = await create(wm, taskInfo={"assignedToList": ["alice", "bob"]})
    wm.clock.advance(seconds=1)
    await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"acceptedByList": ["alice"]}})
    got = (await stored(wm, tid))["TaskInfo"]
    assert (got["acceptedByList"], got["lastAcceptedBy"], got["lastAcceptedDate"]) == (
        ["alice"], "alice", "2024-05-17T19:33:17.470Z")
    await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"acceptedByList": []}})
    got = (await stored(wm, tid))["TaskInfo"]
    assert (got["acceptedByList"], got["lastAcceptedBy"], got["lastAcceptedDate"]) == ([], None, None)


async def test_put_accepts_retry_parameters_and_dates_in_every_form(wm: WmApi):
    tid = await create(wm)
    for given in ("2024-05-20T02:00:00+02:00", 1716163200000, "1716163200000", "Mon May 20 00:00:00 UTC 2024",
                  "Mon May 20 02:00:00 CEST 2024", "2024-05-20T00:00:00.000+0000"):
        status, body, _ = await wm.request("PUT", f"{BASE}/{tid}?retryOnFailureCount=2",
                                           body={"TaskInfo": {"expireDate": given}, "retryDelay": "1000"})
        assert (status, body) == (200, {}), given
        assert (await stored(wm, tid))["TaskInfo"]["expireDate"] == "2024-05-20T00:00:00.000Z", given


async def test_put_answers_with_a_json_object_even_without_content_type(wm: WmApi):
    tid = await create(wm)
    resp = await wm.client.put(f"{BASE}/{tid}", data=json.dumps({"TaskInfo": {"name": "x"}}).encode(),
                               headers=wm.auth(), skip_auto_headers={"Content-Type"})
    assert resp.status == 200 and await resp.json() == {}
    assert (await stored(wm, tid))["TaskInfo"]["name"] == "x"


# -- the transition matrix ---------------------------------------------------------------------------------
def expected_outcome(frm: str, to: str, flag: bool, in_process: bool) -> str | None:
    """The reference's matrix and usage notes, written out; None means allowed."""
    if frm == "error" and in_process:
        return "a task in status error that belongs to a process instance cannot be updated"
    if frm in ("completed", "cancelled", "expired") and not flag:
        return (f"a task in status {frm} cannot be updated; only tasks in status active, error, scheduled, "
                "suspended can (webmethods.update_completed_task is false)")
    if frm == "error" and to not in ("error", "completed"):
        return f"a task in status error can only be changed to completed, not {to}"
    if frm == "suspended" and to in ("completed", "expired"):
        return f"a task in status suspended cannot be changed to {to}"
    return None


MATRIX = [(frm, to, flag, in_process) for frm in STATUSES for to in STATUSES for flag in (False, True)
          for in_process in (False, True)]


async def task_in(api: WmApi, status: str, in_process: bool) -> str:
    """A task assigned to alice in *status*, reached the way a client would (active → any)."""
    queue = {"assignedToList": ["alice"], **({"processInstanceID": "pi-1"} if in_process else {})}
    if status == "scheduled":
        queue["taskScheduleDate"] = FUTURE
    tid = await create(api, taskQueueInfo=queue)
    if status not in ("active", "scheduled"):
        status_code, body, _ = await api.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": status}})
        assert status_code == 200, body
    return tid


@pytest.mark.parametrize("frm, to, flag, in_process", MATRIX,
                         ids=[f"{f}->{t}{'-flag' if g else ''}{'-process' if p else ''}" for f, t, g, p in MATRIX])
async def test_transition_matrix(make_wm, frm, to, flag, in_process):
    api = await make_wm(update_completed_task=flag)
    tid = await task_in(api, frm, in_process)
    api.clock.advance(minutes=1)  # not as far as the scheduled task's FUTURE
    before = await api.snapshot()
    old = await stored(api, tid)
    status, body, _ = await api.request("PUT", f"{BASE}/{tid}", token=api.user,
                                        body={"TaskInfo": {"status": to, "errorCode": "E1"}})
    refusal = expected_outcome(frm, to, flag, in_process)
    if refusal is None:
        assert (status, body) == (200, {})
        assert await stored(api, tid) == {**old, "TaskInfo": {
            **old["TaskInfo"], "status": to, "errorCode": "E1", "lastModifiedBy": "alice",
            "lastModifiedDate": "2024-05-17T19:34:16.470Z",
            "taskVersionNumber": old["TaskInfo"]["taskVersionNumber"] + 1}}
    else:
        assert (status, body) == (409, envelope(refusal, user="alice", time="2024-05-17 19:34:16 UTC"))
        assert await api.snapshot() == before


@pytest.mark.parametrize("flag", [False, True], ids=["", "flag"])
@pytest.mark.parametrize("status", STATUSES)
async def test_schedule_date_changes_only_while_scheduled(make_wm, status, flag):
    api = await make_wm(update_completed_task=flag)
    tid = await task_in(api, status, False)
    before = await api.snapshot()
    new_date = "2024-07-01T00:00:00.000Z"
    code, body, _ = await api.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"taskScheduleDate": new_date}})
    if status == "scheduled":
        assert (code, body) == (200, {})
        assert (await stored(api, tid))["TaskInfo"]["taskScheduleDate"] == new_date
    else:  # the status gate speaks first; past it, the schedule rule holds with the setting too
        refusal = expected_outcome(status, status, flag, False) or (
            f"taskScheduleDate can only be changed while the task is scheduled; this task is {status}")
        assert (code, body) == (409, envelope(refusal))
        assert await api.snapshot() == before


async def test_resending_the_same_schedule_date_is_not_a_change(wm: WmApi):
    tid = await task_in(wm, "scheduled", False)
    await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "active"}})
    code, _, _ = await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"taskScheduleDate": FUTURE, "name": "n"}})
    assert code == 200


# -- bad input --------------------------------------------------------------------------------------------
BAD_PUTS = [
    (b'{"TaskInfo": {', "application/json", 400,
     "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 15"),
    (b"[1]", "application/json", 400, "the body must be a JSON object"),
    (b'{"TaskInfo": [1]}', "application/json", 400, "TaskInfo must be a JSON object"),
    (b'{"TaskInfo": "x"}', "application/json", 400, "TaskInfo must be a JSON object"),
    (b'{"TaskData": 3}', "application/json", 400, "TaskData must be a JSON object"),
    (b'{"TaskInfo": {"status": "Active"}}', "application/json", 400,
     "invalid TaskInfo: status: Must be one of: active, completed, cancelled, expired, error, suspended, scheduled."),
    (b'{"TaskInfo": {"status": "closed"}}', "application/json", 400,
     "invalid TaskInfo: status: Must be one of: active, completed, cancelled, expired, error, suspended, scheduled."),
    (b'{"TaskInfo": {"priority": 3}}', "application/json", 400, "invalid TaskInfo: priority: Not a valid string."),
    (b'{"TaskInfo": {"expireDate": "2024-13-01T00:00:00Z"}}', "application/json", 400,
     "invalid TaskInfo: expireDate: '2024-13-01T00:00:00Z' is not a date; use ISO 8601 (2024-05-17T19:33:16.470Z), "
     "epoch milliseconds, or EEE MMM dd HH:mm:ss zzz yyyy (Fri May 17 19:33:16 UTC 2024)"),
    (b'{"TaskInfo": {"expireDate": "Mon May 20 00:00:00 IST 2024"}}', "application/json", 400,
     "invalid TaskInfo: expireDate: unknown or ambiguous time zone 'IST'; use UTC, GMT+hh:mm or an ISO 8601 offset"),
    (b'{"TaskInfo": {"expireDate": "Fri Dec 31 23:00:00 EST 9999"}}', "application/json", 400,
     "invalid TaskInfo: expireDate: 'Fri Dec 31 23:00:00 EST 9999' is outside the years 1-9999 in UTC"),
    (b'{"TaskInfo": {"expireDate": true}}', "application/json", 400,
     "invalid TaskInfo: expireDate: a boolean is not a date"),
    (b'{"TaskInfo": {"assignedToList": "alice"}}', "application/json", 400,
     "invalid TaskInfo: assignedToList: Not a valid list."),
    (b'{"TaskInfo": {"colour": "red"}}', "application/json", 400, "invalid TaskInfo: colour: Unknown field."),
    (b'{"taskinfo": {}}', "application/json", 400,
     "unknown input 'taskinfo'; expected any of TaskData, TaskInfo, retryDelay, retryOnFailureCount, taskData, "
     "taskID, taskInfo, user"),
    (b'{"TaskInfo": {}, "taskInfo": {}}', "application/json", 400, "send only one of TaskInfo, taskInfo"),
    (b'{"retryDelay": "soon"}', "application/json", 400,
     "retryDelay must be a whole number of at least 0; got 'soon'"),
    (b"<TaskInfo/>", "application/xml", 415,
     "Content-Type 'application/xml' is not supported here; use application/json"),
]


@pytest.mark.parametrize("data, ctype, code, message", BAD_PUTS, ids=[m[:40] for *_, m in BAD_PUTS])
async def test_bad_put_input_is_refused_and_changes_nothing(wm: WmApi, data, ctype, code, message):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"]})
    before = await wm.snapshot()
    status, body, _ = await wm.request("PUT", f"{BASE}/{tid}", data=data, content_type=ctype, token=wm.user)
    assert (status, body) == (code, envelope(message, user="alice"))
    assert await wm.snapshot() == before


async def test_a_date_before_the_year_1000_is_stored_and_read_back(wm: WmApi):
    tid = await create(wm)
    status, _, _ = await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"expireDate": "0999-01-01T00:00:00Z"}})
    assert status == 200
    assert (await stored(wm, tid))["TaskInfo"]["expireDate"] == "0999-01-01T00:00:00.000Z"
    # long past, so the read expires the task first; the date itself must still be written out
    status, got, _ = await wm.request("GET", f"{BASE}/{tid}?jsonDateEncoding=ISO8601")
    assert (status, got["TaskInfo"]["expireDate"], got["TaskInfo"]["status"]) == (
        200, "0999-01-01T00:00:00.000+0000", "expired")
    status, got, _ = await wm.request("GET", BASE)
    assert status == 200 and got["Tasks"][0]["TaskInfo"]["expireDate"] == "Tue Jan 01 00:00:00 UTC 0999"


async def test_a_bad_read_parameter_changes_nothing(wm: WmApi):
    """The clock's catch-up is a write: it must wait until the request has passed every check."""
    tid = await create(wm, taskInfo={"taskScheduleDate": "2024-05-17T20:00:00Z"})
    wm.clock.advance(hours=1)
    before = await wm.snapshot()
    status, err, _ = await wm.request("GET", f"{BASE}/{tid}?includeTaskData=maybe")
    assert (status, err) == (400, envelope("includeTaskData must be true or false; got 'maybe'",
                                           time="2024-05-17 20:33:16 UTC"))
    status, err, _ = await wm.request("GET", f"{BASE}/{tid}/audit/abc")
    assert (status, err) == (404, envelope(f"audit entry abc of task {tid} not found", time="2024-05-17 20:33:16 UTC"))
    assert await wm.snapshot() == before


async def test_put_without_a_task_id(wm: WmApi):
    status, body, _ = await wm.request("PUT", BASE, body={"TaskInfo": {"name": "x"}})
    assert (status, body) == (400, envelope("taskID is required (in the path, the query or the body)"))


# -- access ---------------------------------------------------------------------------------------------------
async def test_unknown_task_and_another_users_task_get_the_same_answer(wm: WmApi):
    tid = await create(wm, taskInfo={"assignedToList": ["bob"]})
    before = await wm.snapshot()
    for method, body in (("GET", None), ("PUT", {"TaskInfo": {"name": "x"}}), ("DELETE", None)):
        for task_id in (tid, "404404"):
            status, err, _ = await wm.request(method, f"{BASE}/{task_id}", body=body, token=wm.user)
            assert (status, err) == (404, envelope(f"Task {task_id} not found or access denied", user="alice"))
    (entry,), = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ?", tid)
    for method, path in (("GET", "audit"), ("GET", f"audit/{entry}"), ("DELETE", f"audit/{entry}")):
        for task_id in (tid, "404404"):
            status, err, _ = await wm.request(method, f"{BASE}/{task_id}/{path}", token=wm.user)
            assert (status, err) == (404, envelope(f"Task {task_id} not found or access denied", user="alice"))
    assert await wm.snapshot() == before


def concurrently_before(api: WmApi, monkeypatch, actor: str, task_info: dict[str, Any], now: str | None = None) -> None:
    """Make root's PUT of *task_info* (a request that started at *now*) commit just before the
    first store write whose last step is *actor*'s: a concurrent request winning the race
    between a handler's read and its write."""
    original = api.store.write
    pending = [task_info]

    async def racing_write(style, task_id, steps, **kwargs):
        if steps[-1][0] == actor and pending:
            change = rules.update_mutation(task_id, pending.pop(), rules.KEEP_TASK_DATA,
                                           actor=rules.Actor("root", True), now=now or api.clock.now_iso(),
                                           update_completed_task=False)
            await original(style, task_id, [("root", change)], request_id="race")
        return await original(style, task_id, steps, **kwargs)
    monkeypatch.setattr(api.store, "write", racing_write)


async def test_a_read_that_applies_the_clock_checks_access_again(wm: WmApi, monkeypatch):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"], "taskScheduleDate": "2024-05-17T20:00:00Z"})
    wm.clock.advance(hours=1)
    concurrently_before(wm, monkeypatch, "system", {"assignedToList": ["bob"]}, now=START_ISO)
    status, err, _ = await wm.request("GET", f"{BASE}/{tid}", token=wm.user)
    assert (status, err) == (404, envelope(f"Task {tid} not found or access denied", user="alice",
                                           time="2024-05-17 20:33:16 UTC"))


async def test_a_clock_change_made_due_by_a_concurrent_change_is_audited_as_system(wm: WmApi, monkeypatch):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"], "taskScheduleDate": "2024-06-01T00:00:00Z"})
    concurrently_before(wm, monkeypatch, "alice", {"taskScheduleDate": "2024-05-17T19:00:00.000Z"})
    status, body, _ = await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "x"}})
    assert (status, body) == (200, {})
    rows = await wm.db_rows("SELECT version, actor FROM audit WHERE task_id = ? ORDER BY seq", tid)
    assert rows == [(1, "root"), (2, "root"), (3, "system"), (4, "alice")]  # the catch-up in alice's write
    info = (await stored(wm, tid))["TaskInfo"]
    assert (info["status"], info["name"], info["taskVersionNumber"]) == ("active", "x", 4)


@pytest.mark.parametrize("field", ["assignedToList", "acceptedByList"])
async def test_assignees_and_acceptors_may_change_a_task(wm: WmApi, field):
    tid = await create(wm, taskInfo={field: ["alice"]})
    assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "a"}}))[0] == 200
    assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.bob, body={"TaskInfo": {"name": "b"}}))[0] == 404
    assert (await stored(wm, tid))["TaskInfo"]["name"] == "a"


async def test_an_admin_impersonates_and_acts_with_that_users_rights(wm: WmApi):
    mine = await create(wm, taskInfo={"assignedToList": ["alice"]})
    other = await create(wm, taskInfo={"assignedToList": ["bob"]})
    status, _, _ = await wm.request("PUT", f"{BASE}/{mine}?user=alice", body={"TaskInfo": {"name": "by alice"}})
    assert status == 200
    doc = (await stored(wm, mine))["TaskInfo"]
    assert doc["lastModifiedBy"] == "alice"
    assert await wm.db_rows("SELECT actor FROM audit WHERE task_id = ? AND version = 2", mine) == [("alice",)]
    status, err, _ = await wm.request("PUT", f"{BASE}/{other}", body={"TaskInfo": {"name": "x"}, "user": "alice"})
    assert (status, err) == (404, envelope(f"Task {other} not found or access denied", user="alice"))
    status, _, _ = await wm.request("PUT", f"{BASE}/{other}?user=boss", body={"TaskInfo": {"name": "by boss"}})
    assert status == 200  # boss is an admin too


async def test_a_user_may_not_impersonate(wm: WmApi):
    tid = await create(wm, taskInfo={"assignedToList": ["alice", "bob"]})
    before = await wm.snapshot()
    status, err, _ = await wm.request("PUT", f"{BASE}/{tid}?user=bob", token=wm.user, body={"TaskInfo": {"name": "x"}})
    assert (status, err) == (403, envelope("user alice may not act for bob: only an admin may impersonate",
                                           user="alice"))
    assert await wm.snapshot() == before
    status, _, _ = await wm.request("PUT", f"{BASE}/{tid}?user=alice", token=wm.user, body={"TaskInfo": {"name": "x"}})
    assert status == 200  # naming oneself is not impersonation


async def test_basic_auth_and_the_401_envelope(wm: WmApi):
    await wm.store.add_user("carol", "user", hash_password("c-pass"))
    tid = await create(wm, taskInfo={"assignedToList": ["carol"]})
    good = base64.b64encode(b"carol:c-pass").decode()
    resp = await wm.client.get(f"{BASE}/{tid}", headers={"Authorization": f"Basic {good}"})
    assert resp.status == 200 and (await resp.json())["TaskInfo"]["taskID"] == tid
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"carol:wrong").decode()}):
        resp = await wm.client.get(f"{BASE}/{tid}", headers=headers)
        body = await resp.json()
        assert resp.status == 401 and resp.headers["WWW-Authenticate"] == 'Basic realm="Integration Server"'
        message = "no authorization header" if not headers else "invalid user name or password"
        assert body == envelope(message, user="", time=body["$errorInfo"]["$time"])


async def test_a_read_only_token_cannot_change(wm: WmApi):
    tid = await create(wm, taskInfo={"assignedToList": ["reader"]})
    status, err, _ = await wm.request("PUT", f"{BASE}/{tid}", token=wm.read_only, body={"TaskInfo": {"name": "x"}})
    assert (status, err) == (403, envelope("this token is read-only", user="", time=err["$errorInfo"]["$time"]))
    assert (await wm.request("GET", f"{BASE}/{tid}", token=wm.read_only))[0] == 200


# -- the two error settings -------------------------------------------------------------------------------
async def test_service_errors_as_500(make_wm):
    api = await make_wm(service_errors_as_500=True)
    tid = await create(api)
    await api.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "completed"}})
    for body, message in (({"TaskInfo": {"status": "active"}},
                           "a task in status completed cannot be updated; only tasks in status active, error, "
                           "scheduled, suspended can (webmethods.update_completed_task is false)"),
                          ({"TaskInfo": {"status": "Bogus"}}, "invalid TaskInfo: status: Must be one of: active, "
                           "completed, cancelled, expired, error, suspended, scheduled.")):
        status, err, _ = await api.request("PUT", f"{BASE}/{tid}", body=body)
        assert (status, err) == (500, envelope(message))
    status, err, _ = await api.request("GET", f"{BASE}/999")
    assert (status, err) == (500, envelope("Task 999 not found or access denied"))
    resp = await api.client.get(f"{BASE}/{tid}")
    assert resp.status == 401  # credentials are not a service exception


async def test_debug_errors_fill_the_dump(make_wm):
    api = await make_wm(debug_errors=True)
    status, err, _ = await api.request("GET", f"{BASE}/1")
    dump = err["$errorDump"]
    assert status == 404 and dump.startswith("com.wm.app.b2b.server.ServiceException: Task 1 not found")
    assert "Traceback" in dump and "NotFound" in dump
    assert err == envelope("Task 1 not found or access denied", dump=dump)


async def test_unknown_paths_and_methods_use_the_envelope(wm: WmApi):
    status, err, _ = await wm.request("PATCH", f"{BASE}/1")
    assert status == 405 and err["$error"].startswith("PATCH is not allowed here")
    status, err, _ = await wm.request("GET", "/rest/pub/opentask/1/comments")
    assert (status, err) == (404, envelope("no resource at /rest/pub/opentask/1/comments", user="",
                                           time=err["$errorInfo"]["$time"]))


# -- list and delete ---------------------------------------------------------------------------------------
async def test_list_shows_what_the_user_may_see(wm: WmApi):
    a = await create(wm, taskInfo={"assignedToList": ["alice"], "name": "a"}, taskData={"d": 1})
    wm.clock.advance(seconds=1)
    b = await create(wm, taskInfo={"assignedToList": ["bob"], "name": "b"})
    wm.clock.advance(seconds=1)
    c = await create(wm, token=wm.user, taskInfo={"name": "c"})
    status, got, _ = await wm.request("GET", f"{BASE}?includeTaskData=true&jsonDateEncoding=long", token=wm.user)
    assert status == 200
    assert [(t["TaskID"], t["TaskInfo"]["name"], t["TaskData"]) for t in got["Tasks"]] == [
        (a, "a", {"d": 1}), (c, "c", {})]
    assert got["Tasks"][0]["TaskInfo"]["createdDate"] == 1715974396470
    status, got, _ = await wm.request("GET", f"{BASE}?searchUserTasks=true", token=wm.user)
    assert [t["TaskID"] for t in got["Tasks"]] == [a] and "TaskData" not in got["Tasks"][0]
    status, got, _ = await wm.request("GET", BASE)
    assert [t["TaskID"] for t in got["Tasks"]] == [a, b, c]
    status, got, _ = await wm.request("GET", f"{BASE}?user=bob")
    assert [t["TaskID"] for t in got["Tasks"]] == [b]


async def test_delete(wm: WmApi):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"]})
    await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"status": "completed"}})
    status, body, _ = await wm.request("DELETE", f"{BASE}?taskID={tid}", token=wm.user)
    assert (status, body) == (200, {})
    assert await wm.store.get("webmethods", tid) is None
    assert await wm.db_rows("SELECT version, action, actor FROM audit WHERE task_id = ? ORDER BY seq", tid) == [
        (1, "created", "root"), (2, "updated", "root"), (3, "deleted", "alice")]
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}")
    assert (status, err) == (404, envelope(f"Task {tid} not found or access denied"))


@pytest.mark.parametrize("encoding, expected", [
    ("long", 1715974396470), ("ISO8601", "2024-05-17T19:33:16.470+0000"),
    ("dd.MM.yy 'at' h:mm a", "17.05.24 at 7:33 PM"),
    ("EEEE, MMMM d, yyyy HH:mm:ss.SSS XXX", "Friday, May 17, 2024 19:33:16.470 Z"),
])
async def test_json_date_encoding(wm: WmApi, encoding, expected):
    tid = await create(wm)
    status, got, _ = await wm.request("GET", f"{BASE}/{tid}?jsonDateEncoding={encoding}")
    assert status == 200
    assert (got["TaskInfo"]["createdDate"], got["TaskInfo"]["lastModifiedDate"]) == (expected, expected)


async def test_a_bad_date_pattern_is_refused(wm: WmApi):
    tid = await create(wm)
    status, err, _ = await wm.request("GET", f"{BASE}/{tid}?jsonDateEncoding=yyyy-qq")
    assert (status, err) == (400, envelope(
        "jsonDateEncoding 'yyyy-qq': pattern letter 'q' is not supported; use long, ISO8601, or the letters "
        "DEGHKLMSXYZadhkmsuyz"))
