"""webMethods PUT, delete and rollback as one store write each: the clock's owed changes
(audited as ``system``) and the caller's change commit in one transaction, or not at all.

Commits are seen through ``store.on_commit``; stored audit rows and whole bodies are compared.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.apis import webmethods_rules as rules
from gateway.model import Change
from tests.apis.test_webmethods_fixtures import BASE, WmApi, _make_wm, _wm, create, envelope, stored  # noqa: F401  (fixtures)

SCHEDULED = {"assignedToList": ["alice"], "taskScheduleDate": "2024-05-17T20:00:00Z"}
EXPIRING = {"assignedToList": ["alice"], "expireDate": "2024-05-17T19:40:00Z"}
LATER = "2024-05-17T20:33:16.470Z"  # START + 1 hour: past SCHEDULED's start and EXPIRING's expiry
LATER_IS = "2024-05-17 20:33:16 UTC"


def commits(api: WmApi) -> list[list[tuple[str, int, str, str, str]]]:
    """Every commit from now on, as (task, version, action, actor, request id) per change."""
    seen: list[list[tuple[str, int, str, str, str]]] = []

    def heard(changes: list[Change]) -> None:
        seen.append([(c.task_id, c.version, c.action, c.actor, c.request_id) for c in changes])
    api.store.on_commit(heard)
    return seen


async def rows_after_creation(api: WmApi, tid: str) -> list[tuple[int, str, str, str, list[dict[str, Any]]]]:
    got = await api.db_rows("SELECT version, action, actor, request_id, patch FROM audit "
                            "WHERE task_id = ? AND version > 1 ORDER BY seq", tid)
    return [(v, a, who, rid, sorted(json.loads(p), key=lambda op: op["path"])) for v, a, who, rid, p in got]


def replace(**values: Any) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": f"/TaskInfo/{k}", "value": v} for k, v in sorted(values.items())]


def system_start(version: int) -> list[dict[str, Any]]:
    return replace(lastModifiedBy="system", lastModifiedDate=LATER, status="active", taskVersionNumber=version)


async def operations(api: WmApi, tid: str) -> list[int]:
    """The TaskAudit operation codes of the task's audit rows (read without applying the clock)."""
    return [rules.operation_code(c) for c in await api.store.audit(style="webmethods", task_id=tid,
                                                                    newest_first=False)]


# -- (a) a PUT ----------------------------------------------------------------------------------------------
async def test_a_catch_up_and_a_put_commit_in_one_transaction_as_two_audit_rows(wm: WmApi):
    tid = await create(wm, taskInfo=SCHEDULED)
    created = await stored(wm, tid)
    wm.clock.advance(hours=1)  # the schedule has passed; nothing has read the task since
    seen = commits(wm)
    status, body, headers = await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "x"}},
                                             headers={"X-Request-ID": "put-1"})
    assert (status, body, headers["ETag"]) == (200, {}, '"3"')
    assert seen == [[(tid, 2, "updated", "system", "put-1"), (tid, 3, "updated", "alice", "put-1")]]
    assert await rows_after_creation(wm, tid) == [
        (2, "updated", "system", "put-1", system_start(2)),
        (3, "updated", "alice", "put-1", replace(lastModifiedBy="alice", name="x", taskVersionNumber=3))]
    assert await stored(wm, tid) == {**created, "TaskInfo": {
        **created["TaskInfo"], "status": "active", "name": "x", "taskVersionNumber": 3, "lastModifiedBy": "alice",
        "lastModifiedDate": LATER}}
    assert await operations(wm, tid) == [rules.OP_CREATED, rules.OP_SCHEDULE_RULE, rules.OP_UPDATE]


# -- (b) a delete and a rollback ------------------------------------------------------------------------------
async def test_a_catch_up_and_a_delete_commit_in_one_transaction_as_two_audit_rows(wm: WmApi):
    tid = await create(wm, taskInfo=EXPIRING)
    wm.clock.advance(hours=1)
    seen = commits(wm)
    status, body, _ = await wm.request("DELETE", f"{BASE}/{tid}", token=wm.user, headers={"X-Request-ID": "del-1"})
    assert (status, body) == (200, {})
    assert seen == [[(tid, 2, "updated", "system", "del-1"), (tid, 3, "deleted", "alice", "del-1")]]
    assert await rows_after_creation(wm, tid) == [
        (2, "updated", "system", "del-1",
         replace(lastModifiedBy="system", lastModifiedDate=LATER, status="expired", taskVersionNumber=2)),
        (3, "deleted", "alice", "del-1",
         [{"op": "remove", "path": "/TaskData"}, {"op": "remove", "path": "/TaskInfo"}])]
    assert await wm.store.get("webmethods", tid) is None


async def test_a_catch_up_and_a_rollback_commit_in_one_transaction_as_two_audit_rows(wm: WmApi):
    tid = await create(wm, taskInfo=SCHEDULED)
    created = await stored(wm, tid)
    wm.clock.advance(minutes=1)
    assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "v2"}}))[0] == 200
    (entry,), = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? AND version = 2", tid)
    wm.clock.advance(minutes=59)  # to LATER, past the schedule
    seen = commits(wm)
    status, body, headers = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entry}", token=wm.user,
                                             headers={"X-Request-ID": "rb-1"})
    assert (status, body, headers["ETag"]) == (200, {}, '"4"')
    rid = f"rb-1#rollback:{entry}"
    assert seen == [[(tid, 3, "updated", "system", rid), (tid, 4, "updated", "alice", rid)]]
    # the state before the entry, replayed from the creation, made over the task the clock had started
    assert await rows_after_creation(wm, tid) == [
        (2, "updated", "alice", (await wm.db_rows("SELECT request_id FROM audit WHERE seq = ?", entry))[0][0],
         replace(lastModifiedBy="alice", lastModifiedDate="2024-05-17T19:34:16.470Z", name="v2",
                 taskVersionNumber=2)),
        (3, "updated", "system", rid, system_start(3)),
        (4, "updated", "alice", rid, replace(lastModifiedBy="alice", name=None, status="scheduled",
                                             taskVersionNumber=4))]
    assert await stored(wm, tid) == {**created, "TaskInfo": {
        **created["TaskInfo"], "taskVersionNumber": 4, "lastModifiedBy": "alice", "lastModifiedDate": LATER}}
    assert await operations(wm, tid) == [rules.OP_CREATED, rules.OP_UPDATE, rules.OP_SCHEDULE_RULE,
                                         rules.OP_REVERTED]


# -- (c) a refused change stores nothing, not even the clock's ---------------------------------------------------
async def test_a_put_the_rules_refuse_after_the_catch_up_stores_nothing(wm: WmApi):
    tid = await create(wm, taskInfo=SCHEDULED)
    wm.clock.advance(hours=1)
    before = await wm.snapshot()
    seen = commits(wm)
    status, err, _ = await wm.request("PUT", f"{BASE}/{tid}", token=wm.user,
                                      body={"TaskInfo": {"taskScheduleDate": "2024-06-01T00:00:00Z"}})
    assert (status, err) == (409, envelope("taskScheduleDate can only be changed while the task is scheduled; "
                                           "this task is active", user="alice", time=LATER_IS))
    assert (seen, await wm.snapshot()) == ([], before)


async def test_a_delete_refused_by_access_stores_nothing(wm: WmApi):
    tid = await create(wm, taskInfo=EXPIRING)
    wm.clock.advance(hours=1)
    before = await wm.snapshot()
    seen = commits(wm)
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}", token=wm.bob)
    assert (status, err) == (404, envelope(f"Task {tid} not found or access denied", user="bob", time=LATER_IS))
    assert (seen, await wm.snapshot()) == ([], before)


async def test_a_rollback_the_rules_refuse_after_the_catch_up_stores_nothing(wm: WmApi):
    tid = await create(wm, taskInfo=EXPIRING)
    wm.clock.advance(minutes=1)
    assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "v2"}}))[0] == 200
    (entry,), = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? AND version = 2", tid)
    wm.clock.advance(minutes=59)
    before = await wm.snapshot()
    seen = commits(wm)
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entry}", token=wm.user)
    assert (status, err) == (409, envelope(
        "a task in status expired cannot be updated; only tasks in status active, error, scheduled, suspended can "
        "(webmethods.update_completed_task is false)", user="alice", time=LATER_IS))
    assert (seen, await wm.snapshot()) == ([], before)


# -- If-Match answers as before ---------------------------------------------------------------------------------
async def test_a_puts_if_match_names_the_version_after_the_clocks_owed_changes(wm: WmApi):
    tid = await create(wm, taskInfo=SCHEDULED)  # its ETag is "1"
    wm.clock.advance(hours=1)
    before = await wm.snapshot()
    status, err, _ = await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"name": "x"}},
                                      headers={"If-Match": '"1"'})
    assert (status, err) == (412, envelope(f"task '{tid}' is at version 2, not 1", time=LATER_IS))
    assert await wm.snapshot() == before
    status, body, headers = await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"name": "x"}},
                                             headers={"If-Match": '"2"'})
    assert (status, body, headers["ETag"]) == (200, {}, '"3"')


async def test_a_deletes_if_match_names_the_stored_version(wm: WmApi):
    tid = await create(wm, taskInfo=EXPIRING)
    wm.clock.advance(hours=1)
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}", headers={"If-Match": '"2"'})
    assert (status, err) == (412, envelope(f"Task {tid} is at version 1, not 2", time=LATER_IS))
    status, body, _ = await wm.request("DELETE", f"{BASE}/{tid}", headers={"If-Match": '"1"'})
    assert (status, body) == (200, {})
    assert [r[:3] for r in await rows_after_creation(wm, tid)] == [(2, "updated", "system"), (3, "deleted", "root")]


# -- a rollback racing other writes -------------------------------------------------------------------------------
def before_the_rollbacks_write(api: WmApi, monkeypatch, race) -> None:
    """Run ``race(write)`` (``write`` is the store's own) just before the rollback's write."""
    original = api.store.write
    pending = [race]

    async def racing_write(style, task_id, steps, **kwargs):
        if rules.ROLLBACK_MARK in kwargs["request_id"] and pending:
            await pending.pop()(original)
        return await original(style, task_id, steps, **kwargs)
    monkeypatch.setattr(api.store, "write", racing_write)


async def test_a_change_committed_while_a_rollback_reads_the_trail_is_rolled_back_too(wm: WmApi, monkeypatch):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"], "name": "v1"})
    created = await stored(wm, tid)
    assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "v2"}}))[0] == 200
    (entry,), = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? AND version = 2", tid)
    put = rules.update_mutation(tid, {"name": "root's", "priority": "high"}, {"racing": True},
                                actor=rules.Actor("root", True), now=wm.clock.now_iso(), update_completed_task=False)

    async def race(write):
        await write("webmethods", tid, [("root", put)], request_id="race")
    before_the_rollbacks_write(wm, monkeypatch, race)
    status, body, headers = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entry}", token=wm.user)
    assert (status, body, headers["ETag"]) == (200, {}, '"4"')  # no retry, no 409: the history holds
    assert await wm.db_rows("SELECT version, actor FROM audit WHERE task_id = ? ORDER BY seq", tid) == [
        (1, "root"), (2, "alice"), (3, "root"), (4, "alice")]
    assert await stored(wm, tid) == {**created, "TaskInfo": {
        **created["TaskInfo"], "taskVersionNumber": 4, "lastModifiedBy": "alice"}}


async def test_a_rollback_of_a_task_replaced_meanwhile_is_refused(wm: WmApi, monkeypatch):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"]})
    assert (await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "v2"}}))[0] == 200
    (entry,), = await wm.db_rows("SELECT seq FROM audit WHERE task_id = ? AND version = 2", tid)
    again = await stored(wm, tid)  # an export of it: the same members, dates and creator

    async def race(write):  # deleted, then imported again under the same id, a moment later
        await write("webmethods", tid, [("root", lambda _old: None)], request_id="race")
        await asyncio.sleep(0.002)  # the store's times are to the millisecond
        await wm.store.put("webmethods", tid, again, actor="root", request_id="race")
    before_the_rollbacks_write(wm, monkeypatch, race)
    status, err, _ = await wm.request("DELETE", f"{BASE}/{tid}/audit/{entry}", token=wm.user)
    assert (status, err) == (409, envelope(f"Task {tid} was replaced while its audit trail was read; read it again",
                                           user="alice"))
    assert await stored(wm, tid) == again
