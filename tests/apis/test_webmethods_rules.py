"""The webMethods rules and date codecs as pure functions, without HTTP; and the store's
``has`` operator on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import errors
from gateway.apis import webmethods_rules as rules
from gateway.clock import ManualClock
from gateway.model import Change
from gateway.query import Compare, Not, Query
from gateway.store.sqlite import SQLiteStore
from schemas.webmethods_dates import date_encoder, format_pattern, parse_wm_date

ALICE = rules.Actor("alice", False)
NOW = "2024-05-17T19:33:16.470Z"


def task(**info) -> dict:
    return rules.new_task("1", "type", info, {"k": "v"}, user="root", now=NOW)


# -- status rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("current, new, flag, in_process, allowed", [
    ("active", "completed", False, False, True),
    ("active", "cancelled", False, False, True),
    ("active", "expired", False, True, True),  # processInstanceID only matters in error
    ("error", "completed", False, False, True),
    ("error", "active", True, False, False),
    ("error", None, False, False, True),  # non-status edits of an error task [GAP: allowed]
    ("error", "completed", True, True, False),
    ("error", None, True, True, False),
    ("suspended", "completed", True, False, False),
    ("suspended", "expired", False, False, False),
    ("suspended", "active", False, False, True),
    ("scheduled", "cancelled", False, False, True),
    ("completed", "active", False, False, False),
    ("completed", None, False, False, False),
    ("completed", "active", True, False, True),
    ("cancelled", "completed", True, False, True),
    ("expired", "active", True, False, True),
])
def test_check_status_change(current, new, flag, in_process, allowed):
    call = lambda: rules.check_status_change(current, new, update_completed_task=flag, in_process=in_process)  # noqa: E731
    if allowed:
        call()
    else:
        with pytest.raises(errors.Conflict):
            call()


def test_merge_changes_only_given_values_and_stamps_the_update():
    info = task(name="n", description="d", assignedToList=["alice"])["TaskInfo"]
    merged = rules.merge_task_info(info, {"description": "e", "name": None, "acceptedByList": ["bob", "alice"]},
                                   user="alice", now="2024-05-18T00:00:00.000Z")
    assert merged == {**info, "description": "e", "acceptedByList": ["bob", "alice"], "lastAcceptedBy": "alice",
                      "lastAcceptedDate": "2024-05-18T00:00:00.000Z", "taskVersionNumber": 2,
                      "lastModifiedBy": "alice", "lastModifiedDate": "2024-05-18T00:00:00.000Z"}
    assert info["taskVersionNumber"] == 1  # the input is not modified


def run(steps, doc):
    """What the store does with the steps of one write: each mutation gets the document the
    one before left; an unchanged document is no audited change. Returns (doc, actors)."""
    actors = []
    for actor, mutate in steps:
        new = mutate(doc)
        if new is not doc:
            actors.append(actor)
        doc = new
    return doc, actors


def test_after_clock_makes_the_clocks_changes_first_then_judges_the_callers():
    doc = task(assignedToList=["alice"], taskScheduleDate="2024-05-18T00:00:00.000Z")
    later = "2024-05-18T00:00:00.000Z"
    put = rules.update_mutation("1", {"name": "x"}, rules.KEEP_TASK_DATA, actor=ALICE, now=later,
                                update_completed_task=False)
    new, actors = run(rules.after_clock(later, "alice", put), doc)
    assert actors == ["system", "alice"]  # the start is system's change, not folded into alice's
    assert (new["TaskInfo"]["status"], new["TaskInfo"]["name"], new["TaskInfo"]["taskVersionNumber"]) == (
        "active", "x", 3)
    schedule = rules.update_mutation("1", {"taskScheduleDate": "2024-06-01T00:00:00.000Z"}, rules.KEEP_TASK_DATA,
                                     actor=ALICE, now=later, update_completed_task=False)
    with pytest.raises(errors.Conflict, match="this task is active"):  # judged after the clock's change
        run(rules.after_clock(later, "alice", schedule), doc)


@pytest.mark.parametrize("status", rules.STATUSES)
def test_catch_up_makes_every_change_the_clock_owes(status):
    doc = task(taskScheduleDate="2024-05-18T00:00:00.000Z", expireDate="2024-05-19T00:00:00.000Z")
    doc["TaskInfo"]["status"] = status
    now = "2025-01-01T00:00:00.000Z"
    due = rules.time_changes_due(doc, now)
    new, actors = run(rules.catch_up(now), doc)
    assert rules.due_status(new["TaskInfo"], now) is None
    assert actors == ["system"] * due
    assert due == {"scheduled": 2, "active": 1}.get(status, 0)


def test_delete_mutation_checks_access_and_deletes():
    doc = task(assignedToList=["alice"])
    assert rules.delete_mutation("1", actor=ALICE)(doc) is None
    with pytest.raises(errors.NotFound, match="Task 1 not found or access denied"):
        rules.delete_mutation("1", actor=rules.Actor("bob", False))(doc)


def test_update_mutation_checks_access_before_anything():
    doc = task(assignedToList=["bob"])
    with pytest.raises(errors.NotFound, match="Task 1 not found or access denied"):
        rules.update_mutation("1", {"status": "bogus-but-unchecked"}, rules.KEEP_TASK_DATA, actor=ALICE, now=NOW,
                              update_completed_task=False)(doc)
    with pytest.raises(errors.NotFound):
        rules.update_mutation("1", {}, {}, actor=ALICE, now=NOW, update_completed_task=False)(None)


def test_access():
    doc = task(assignedToList=["alice"])["TaskInfo"]
    assert rules.may_access(doc, ALICE) and not rules.may_access(doc, rules.Actor("bob", False))
    assert rules.may_access(doc, rules.Actor("boss", True))
    assert rules.may_access({**doc, "assignedToList": [], "createdBy": "alice"}, ALICE)


# -- the clock ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("info, now, expected", [
    ({"status": "scheduled", "taskScheduleDate": "2024-05-18T00:00:00.000Z"}, "2024-05-17T23:59:59.999Z", None),
    ({"status": "scheduled", "taskScheduleDate": "2024-05-18T00:00:00.000Z"}, "2024-05-18T00:00:00.000Z", "active"),
    ({"status": "active", "expireDate": "2024-05-18T00:00:00.000Z"}, "2024-05-18T00:00:00.000Z", "expired"),
    ({"status": "suspended", "expireDate": "2024-05-18T00:00:00.000Z"}, "2025-01-01T00:00:00.000Z", None),
    ({"status": "active", "expireDate": None}, "2025-01-01T00:00:00.000Z", None),
])
def test_due_status(info, now, expected):
    assert rules.due_status(info, now) == expected


def test_time_mutation_is_idempotent():
    doc = task(taskScheduleDate="2024-05-18T00:00:00.000Z")
    assert doc["TaskInfo"]["status"] == "scheduled"
    mutate = rules.time_mutation("2024-05-18T00:00:00.000Z")
    once = mutate(doc)
    assert once["TaskInfo"]["status"] == "active" and once["TaskInfo"]["lastModifiedBy"] == "system"
    assert mutate(once) is once


def test_manual_clock():
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    assert clock.now_iso() == "2024-01-01T00:00:00.000Z"
    clock.advance(hours=1, milliseconds=5)
    assert clock.now_iso() == "2024-01-01T01:00:00.005Z"
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)


# -- rollback ---------------------------------------------------------------------------------------------
def change(seq: int, action: str, patch: list, undo: list) -> Change:
    return Change(seq, NOW, "webmethods", "1", seq, action, "alice", "r", patch, undo)


def test_state_before_replays_the_trail_from_the_creation():
    trail = [change(1, "created", [{"op": "add", "path": "/TaskInfo", "value": {"name": "a"}},
                                   {"op": "add", "path": "/TaskData", "value": {}}], []),
             change(2, "updated", [{"op": "replace", "path": "/TaskInfo/name", "value": "b"}], []),
             change(3, "updated", [{"op": "replace", "path": "/TaskInfo/name", "value": "c"}], [])]
    assert rules.state_before(trail, 3) == {"TaskInfo": {"name": "b"}, "TaskData": {}}
    assert rules.state_before(trail, 2) == {"TaskInfo": {"name": "a"}, "TaskData": {}}
    with pytest.raises(errors.Conflict, match="creation"):
        rules.state_before(trail, 1)
    with pytest.raises(errors.Conflict, match="does not start at its creation"):
        rules.state_before(trail[1:], 3)
    with pytest.raises(errors.Conflict, match="cannot be rolled back"):
        rules.state_before(trail, 9)


def test_rollback_mutation_is_judged_against_the_task_in_the_transaction():
    doc = task(assignedToList=["alice"], name="now")
    restored = {**doc, "TaskInfo": {**doc["TaskInfo"], "name": "before", "taskVersionNumber": 1}}
    mutate = rules.rollback_mutation("1", restored, actor=ALICE, now="2024-05-18T00:00:00.000Z",
                                     update_completed_task=False)
    moved = {**doc, "TaskInfo": {**doc["TaskInfo"], "taskVersionNumber": 7}}  # changed meanwhile: still fine
    new = mutate(moved)
    assert {k: new["TaskInfo"][k] for k in ("name", "taskVersionNumber", "lastModifiedBy")} == {
        "name": "before", "taskVersionNumber": 8, "lastModifiedBy": "alice"}
    assert restored["TaskInfo"]["taskVersionNumber"] == 1  # the input is not modified
    with pytest.raises(errors.Conflict, match="cannot be updated"):
        mutate({**doc, "TaskInfo": {**doc["TaskInfo"], "status": "completed"}})
    with pytest.raises(errors.NotFound):
        mutate({**doc, "TaskInfo": {**doc["TaskInfo"], "assignedToList": ["bob"]}})


def test_the_clocks_catch_up_in_a_rollbacks_write_is_not_the_reversion():
    patch = [{"op": "replace", "path": "/TaskInfo/status", "value": "active"}]
    undo = [{"op": "replace", "path": "/TaskInfo/status", "value": "scheduled"}]
    clock = Change(5, NOW, "webmethods", "1", 5, "updated", "system", "r#rollback:3", patch, undo)
    rollback = Change(6, NOW, "webmethods", "1", 6, "updated", "alice", "r#rollback:3", undo, patch)
    assert (rules.operation_code(clock), rules.operation_code(rollback)) == (rules.OP_SCHEDULE_RULE,
                                                                             rules.OP_REVERTED)


# -- which members may change ---------------------------------------------------------------------
def test_the_members_table_is_one_consistent_answer():
    from gateway.apis.webmethods_openapi import CreateRequestSchema, UpdateRequestSchema
    from schemas.webmethods import TaskInfoValuesSchema
    assert not rules.WRITABLE & rules.READ_ONLY
    assert rules.CREATE_ONLY <= rules.READ_ONLY
    # the schema knows the value of every member some call may set, and of no other
    assert set(TaskInfoValuesSchema().fields) == rules.CREATE_SETTABLE
    # the OpenAPI document describes the inputs the handlers accept
    assert set(UpdateRequestSchema().fields) == rules.PUT_INPUTS
    assert set(CreateRequestSchema().fields) == rules.CREATE_INPUTS


def test_put_and_create_drop_what_they_ignore():
    sent = {"name": "n", "createdBy": "mallory", "processInstanceID": "p", "status": "completed", "bogus": 1}
    assert rules.put_changes(sent) == {"name": "n", "status": "completed", "bogus": 1}  # bogus: the schema refuses
    assert rules.create_values(sent) == {"name": "n", "processInstanceID": "p", "bogus": 1}


# -- dates ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [
    "2024-05-17T19:33:16.470Z", "2024-05-17T21:33:16.470+02:00", "2024-05-17T19:33:16.470+0000", 1715974396470,
    "1715974396470",
])
def test_parse_wm_date(given):
    assert parse_wm_date(given) == NOW


@pytest.mark.parametrize("given, expected", [
    ("Fri May 17 21:33:16 CEST 2024", "2024-05-17T19:33:16.000Z"),
    ("Fri May 17 15:33:16 EDT 2024", "2024-05-17T19:33:16.000Z"),
    ("Fri May 17 21:33:16 GMT+02:00 2024", "2024-05-17T19:33:16.000Z"),
    ("2024-05-17", "2024-05-17T00:00:00.000Z"),
    (0, "1970-01-01T00:00:00.000Z"),
])
def test_parse_wm_date_forms(given, expected):
    assert parse_wm_date(given) == expected


@pytest.mark.parametrize("given, expected", [
    ("0999-01-01T00:00:00Z", "0999-01-01T00:00:00.000Z"),
    ("0001-01-01", "0001-01-01T00:00:00.000Z"),
    ("Tue Jan 01 00:00:00 UTC 0999", "0999-01-01T00:00:00.000Z"),
    (-62000000000000, "0005-04-19T09:46:40.000Z"),
])
def test_dates_before_the_year_1000_are_stored_with_four_digits(given, expected):
    stored = parse_wm_date(given)
    assert stored == expected
    assert stored < "1000"  # text order stays time order
    assert parse_wm_date(date_encoder("ISO8601")(stored)) == stored  # and it reads back


@pytest.mark.parametrize("bad", ["", "soon", "Fri May 32 10:00:00 UTC 2024", "Fri May 17 10:00:00 IST 2024",
                                 True, None, 10 ** 15, [2024],
                                 "Fri Dec 31 23:00:00 EST 9999", "Mon Jan 01 00:30:00 CET 0001"])
def test_parse_wm_date_refuses(bad):
    with pytest.raises(ValueError):
        parse_wm_date(bad)


def test_date_encoders():
    assert date_encoder(None)(NOW) == "Fri May 17 19:33:16 UTC 2024"
    assert date_encoder("long")(NOW) == 1715974396470
    assert date_encoder("ISO8601")(NOW) == "2024-05-17T19:33:16.470+0000"
    assert date_encoder("yyyyMMdd''HHmm")(NOW) == "20240517'1933"
    moment = datetime(2024, 1, 5, 0, 7, 9, tzinfo=UTC)
    assert format_pattern(moment, "h:mm a, k, K, D, u, G, yy, M, MMMM, zzzz") == \
        "12:07 AM, 24, 0, 5, 5, AD, 24, 1, January, Coordinated Universal Time"
    for bad in ("yyyy-qq", "'unterminated", "x" * 101):
        with pytest.raises(ValueError):
            date_encoder(bad)


# -- the store's array containment -----------------------------------------------------------------------
async def test_has_compiles_to_json_each(tmp_path):
    store = await SQLiteStore.open(tmp_path / "t.db")
    try:
        for tid, names in (("a", ["alice", "bob"]), ("b", ["bob"]), ("c", None), ("d", ["al"])):
            await store.create("x", tid, {"TaskInfo": {"assignedToList": names}}, actor="t", request_id="r")

        async def ids(expr) -> list[str]:
            return [t.id for t in (await store.find("x", Query(expr)))[0]]

        assert await ids(Compare("$.TaskInfo.assignedToList", "has", ("alice",))) == ["a"]
        assert await ids(Compare("$.TaskInfo.assignedToList", "has", ("bob",))) == ["a", "b"]
        assert await ids(Compare("$.TaskInfo.assignedToList", "has", ("alice", "al"))) == ["a", "d"]
        assert await ids(Not(Compare("$.TaskInfo.assignedToList", "has", ("bob",)))) == ["c", "d"]
        assert await ids(Compare("$.TaskInfo.assignedToList", "has", ("%",))) == []
        with pytest.raises(ValueError):
            await ids(Compare("id", "has", ("a",)))
    finally:
        await store.close()


# -- taskgate import -------------------------------------------------------------------------------------
def test_import_task_keeps_identity_status_and_history_fields():
    from gateway.apis.webmethods import import_task
    task_id, doc = import_task({"TaskInfo": {"taskID": "7565", "taskTypeID": "T", "status": "completed",
                                             "name": "n", "createdBy": "jsmith", "taskVersionNumber": 9,
                                             "createdDate": "Thu Sep 28 14:21:05 CEST 2017"},
                                "TaskData": {"a": 1}}, NOW)
    assert task_id == "7565"
    info = doc["TaskInfo"]
    assert (info["status"], info["name"], info["createdBy"], info["taskVersionNumber"], info["createdDate"]) == (
        "completed", "n", "jsmith", 9, "2017-09-28T12:21:05.000Z")
    assert doc["TaskData"] == {"a": 1}
    for bad in ({"TaskInfo": {"taskTypeID": "T"}}, {"TaskInfo": {"taskID": "1", "taskTypeID": "T", "status": "done"}},
                {"TaskInfo": {"taskID": "1", "taskTypeID": "T"}, "TaskData": []}, []):
        with pytest.raises(errors.BadRequest):
            import_task(bad, NOW)
