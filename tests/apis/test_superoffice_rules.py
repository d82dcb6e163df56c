"""The SuperOffice BatchTask rules as pure functions: no HTTP, no SQLite.

What a PUT may change comes from the vendor's page: "Only the following properties can
be updated: State, Description, Response and Request." Each member is tried in each body
kind (members, JSON Patch, merge patch), with and without ``strict_readonly``. The
expected carriers and rights are written out in tests/superoffice_expected.py, not
derived from the code under test.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway import errors
from gateway.apis import superoffice_rules as rules
from gateway.apis.superoffice_carrier import Zone, canonical, view
from gateway.apis.superoffice_rules import Caller
from tests.superoffice_expected import FIELDS, OWNER_ID, READ_ONLY_REASON, UPDATABLE, rights

TASK_ID = 819
NOW = "2024-06-01T12:00:00.000Z"
#: the stored task the rules start from, owned by associate 627
OLD: dict[str, Any] = {
    "Id": TASK_ID, "Name": "Nightly export", "AssociateId": OWNER_ID, "DetailsTable": 12, "DetailsRecord": 34,
    "IsSystemTask": False, "IsInternalTask": True, "ParameterObject": {"target": "ftp"},
    "LastStarted": "2024-03-30T22:15:00.250Z", "Created": "2024-01-02T08:00:00.678Z", "StartCount": 3,
    "DatabaseSerialNumber": "1000123", "Context": "export", "Result": "ok", "State": "Started",
    "Description": "Exports the day's sales", "Response": "", "Request": "run",
    "ProgressDescription": "Writing rows", "ProgressPercent": 40, "FileName": "sales.csv",
    "CancellationBehaviour": "CanCancel",
}
#: a new value for every member, as a client sends it, and as it is stored
NEW: dict[str, tuple[Any, Any]] = {
    "Id": (820, 820), "Name": ("Renamed", "Renamed"), "AssociateId": (700, 700), "DetailsTable": (5, 5),
    "DetailsRecord": (6, 6), "IsSystemTask": (True, True), "IsInternalTask": (False, False),
    "ParameterObject": ({"k": "v"}, {"k": "v"}),
    "LastStarted": ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00.000Z"),
    "Created": ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00.000Z"), "StartCount": (9, 9),
    "DatabaseSerialNumber": ("42", "42"), "Context": ("c", "c"), "Result": ("r", "r"), "State": ("Failed", "Failed"),
    "Description": ("d", "d"), "Response": ("resp", "resp"), "Request": ("req", "req"),
    "ProgressDescription": ("pd", "pd"), "ProgressPercent": (99, 99), "FileName": ("f", "f"),
    "CancellationBehaviour": ("CannotCancel", "CannotCancel"),
}
ADMIN = Caller("root", True, None)
OWNER = Caller("tje0", False, OWNER_ID)
OTHER = Caller("alice", False, 700)
READER = Caller("reader", False, None, read_only=True)


def outcome(run: Any) -> Any:
    """What *run* returns, or the domain error it raises as (type, message)."""
    try:
        return run()
    except errors.TaskgateError as exc:
        return type(exc).__name__, exc.message


IN_UTC = Zone(UTC)


def put(kind: str, payload: Any, *, strict: bool = False, caller: Caller = OWNER, zone: Zone = IN_UTC) -> Any:
    """The PUT's new document (or its error) from :data:`OLD`."""
    old = dict(OLD)
    before = dict(old)
    mutate = rules.put_mutation(kind, payload, zone=zone, strict=strict, caller=caller, task_id=TASK_ID)
    result = outcome(lambda: mutate(old))
    assert old == before  # the stored document is never changed in place
    return result


# -- what may change -----------------------------------------------------------------------
def test_the_updatable_members_are_the_vendors_four():
    assert rules.UPDATABLE == UPDATABLE == ("State", "Description", "Response", "Request")
    assert rules.READ_ONLY_REASON == READ_ONLY_REASON
    assert [name for name, _type, _length in FIELDS if name in rules.UPDATABLE] == list(UPDATABLE)


def test_every_member_has_a_new_value_here():
    assert list(NEW) == [name for name, _type, _length in FIELDS]


def _body(kind: str, name: str, value: Any) -> Any:
    if kind == "fields":
        return {name: value}
    if kind == "patch":
        return [{"op": "replace", "path": f"/{name}", "value": value}]
    return {name.lower(): value}  # merge patch members match in any case


@pytest.mark.parametrize("kind", ["fields", "patch", "merge"])
@pytest.mark.parametrize("name", list(NEW))
def test_a_put_changes_a_member_only_if_it_is_updatable(kind, name):
    sent, stored = NEW[name]
    new = put(kind, _body(kind, name, sent))
    assert new == ({**OLD, name: stored} if name in UPDATABLE else OLD)


@pytest.mark.parametrize("kind", ["fields", "patch", "merge"])
@pytest.mark.parametrize("name", list(NEW))
def test_strict_refuses_a_change_to_a_read_only_member(kind, name):
    sent, stored = NEW[name]
    expected = {**OLD, name: stored} if name in UPDATABLE else (
        "BadRequest", f"only State, Description, Response and Request can be updated; this body changes {name}")
    assert put(kind, _body(kind, name, sent), strict=True) == expected


def test_strict_names_every_read_only_member_changed():
    assert put("fields", {"Name": "x", "State": "Failed", "FileName": "y", "Id": 1}, strict=True) == (
        "BadRequest", "only State, Description, Response and Request can be updated; this body changes "
                      "FileName, Id, Name")


@pytest.mark.parametrize("zone", [Zone(UTC), Zone(UTC, True), Zone(ZoneInfo("Europe/Oslo")),
                                  Zone(ZoneInfo("America/New_York"), True)])
def test_strict_takes_back_the_carrier_it_gave_out(zone):
    """A client that GETs a task and PUTs it back with one change changes only that:
    dates it was given in whole seconds and its zone, and its rights, are not changes."""
    echoed = {**view(OLD, zone), **rights("owner"), "State": "Failed"}
    assert put("fields", canonical(echoed), strict=True, zone=zone) == {**OLD, "State": "Failed"}


def test_the_vendors_sample_body_changes_the_four_members_only():
    sample = {"Id": TASK_ID, "Name": "Kilback Group", "AssociateId": 627, "DetailsTable": 421, "DetailsRecord": 739,
              "IsSystemTask": False, "IsInternalTask": False,
              "ParameterObject": {"ParameterObject1": "ipsum", "ParameterObject2": "officia"},
              "LastStarted": "2018-06-22T16:32:48.2902385+02:00", "Created": "2007-07-11T16:32:48.2902385+02:00",
              "StartCount": 904, "DatabaseSerialNumber": "1305401", "Context": "veritatis", "Result": "fugit",
              "State": "All", "Description": "Extended 6th generation monitoring", "Response": "et",
              "Request": "neque", "ProgressDescription": "Triple-buffered content-based analyzer",
              "ProgressPercent": 640, "FileName": "Prohaska, Tremblay and Waelchi",
              "CancellationBehaviour": "CanCancel"}
    assert put("fields", sample) == {**OLD, "State": "All", "Description": "Extended 6th generation monitoring",
                                     "Response": "et", "Request": "neque"}


def test_absent_members_keep_their_values_and_null_is_the_empty_string():
    assert put("fields", {"Description": None}) == {**OLD, "Description": ""}
    assert put("merge", {"Description": None}) == {**OLD, "Description": ""}  # merge null removes → empty
    assert put("patch", [{"op": "remove", "path": "/Request"}]) == {**OLD, "Request": ""}
    assert put("fields", {}) == OLD


def test_state_takes_a_name_in_any_case_or_a_number():
    assert put("fields", {"State": "failed"}) == {**OLD, "State": "Failed"}
    assert put("fields", {"State": 2}) == {**OLD, "State": "Aquired"}
    assert put("patch", [{"op": "replace", "path": "/State", "value": "99999"}]) == {**OLD, "State": "All"}


def test_invalid_values_of_updatable_members_are_refused():
    assert put("fields", {"State": "Stopped", "Description": "x" * 255}) == (
        "BadRequest", "invalid BatchTaskInfo: State: 'Stopped' is not one of Unknown (0), New (1), Aquired (2), "
                      "Started (3), Succeeded (4), Failed (5), SucceededManualCleanup (6), All (99999).; "
                      "Description: Longer than maximum length 254.")


def test_invalid_values_of_read_only_members_are_ignored_unless_strict():
    assert put("fields", {"ProgressPercent": "lots", "State": "New"}) == {**OLD, "State": "New"}
    assert put("fields", {"ProgressPercent": "lots"}, strict=True) == (
        "BadRequest", "invalid BatchTaskInfo: ProgressPercent: Not a valid integer.")


# -- patches apply to what the client sees --------------------------------------------------
def test_a_patch_test_compares_what_the_client_was_given():
    ops = [{"op": "test", "path": "/LastStarted", "value": "2024-03-30T22:15:00"},
           {"op": "test", "path": "/State", "value": "Started"},
           {"op": "replace", "path": "/State", "value": "Succeeded"}]
    assert put("patch", ops) == {**OLD, "State": "Succeeded"}


def test_a_failed_patch_test_is_a_conflict_and_changes_nothing():
    assert put("patch", [{"op": "test", "path": "/State", "value": "New"},
                         {"op": "replace", "path": "/State", "value": "Failed"}]) == (
        "Conflict", 'test failed: /State is not "New"')


def test_a_merge_patch_applies_member_by_member():
    assert put("merge", {"state": "Failed", "response": "disk full", "name": "ignored"}) == {
        **OLD, "State": "Failed", "Response": "disk full"}


# -- who may update --------------------------------------------------------------------------
NOT_OWNER = f"only the task's owner (associate {OWNER_ID}) or an administrator may update it"
READ_ONLY = "this token is read-only"


@pytest.mark.parametrize("caller, refusal", [
    (ADMIN, None), (OWNER, None), (OTHER, NOT_OWNER), (Caller("nobody", False, None), NOT_OWNER),
    (READER, READ_ONLY), (Caller("root", True, None, read_only=True), READ_ONLY),
    (Caller("tje0", False, OWNER_ID, read_only=True), READ_ONLY),
])
def test_an_administrator_or_the_owner_may_update_never_a_read_only_token(caller, refusal):
    assert rules.may_update(caller, OLD) is (refusal is None)
    assert put("fields", {"State": "Failed"}, caller=caller) == (
        {**OLD, "State": "Failed"} if refusal is None
        else ("Forbidden", f"you may not update BatchTask {TASK_ID}: {refusal}"))


@pytest.mark.parametrize("caller, who", [(ADMIN, "admin"), (OWNER, "owner"), (OTHER, "other"), (READER, "readonly")])
def test_rights(caller, who):
    assert rules.rights(caller, OLD) == rights(who)


# -- Stop ------------------------------------------------------------------------------------
STATES = ["Unknown", "New", "Aquired", "Started", "Succeeded", "Failed", "SucceededManualCleanup", "All"]
CANCELLATIONS = ["CanCancel", "CancelWithWarning", "CannotCancel"]


@pytest.mark.parametrize("cancellation", CANCELLATIONS)
@pytest.mark.parametrize("state", STATES)
def test_stop_fails_a_task_that_runs_or_waits_and_may_be_cancelled(state, cancellation):
    old = {**OLD, "State": state, "CancellationBehaviour": cancellation}
    stopped: list[bool] = []
    new = rules.stop_mutation(OWNER, TASK_ID, stopped)(dict(old))
    if state in ("New", "Aquired", "Started") and cancellation != "CannotCancel":
        assert (new, stopped) == ({**old, "State": "Failed", "Response": "Stopped by tje0"}, [True])
    else:
        assert (new, stopped) == (old, [False])


def test_stop_by_someone_else_is_refused():
    stopped: list[bool] = []
    assert outcome(lambda: rules.stop_mutation(OTHER, TASK_ID, stopped)(dict(OLD))) == (
        "Forbidden", f"you may not stop BatchTask {TASK_ID}: only the task's owner (associate {OWNER_ID}) "
                     "or an administrator may update it")
    assert stopped == []


def test_stop_cuts_the_response_to_its_column():
    stopped: list[bool] = []
    new = rules.stop_mutation(Caller("x" * 300, True, None), TASK_ID, stopped)(dict(OLD))
    assert new["Response"] == ("Stopped by " + "x" * 300)[:254]


# -- create ----------------------------------------------------------------------------------
def test_a_new_task_has_every_member_and_the_stores_id():
    doc = rules.new_batch_task({"Id": 5, "Name": "Import", "State": "started", "ParameterObject": None}, 31, NOW,
                               zone=Zone(UTC), owner=OWNER_ID)
    assert doc == {"Id": 31, "Name": "Import", "AssociateId": OWNER_ID, "DetailsTable": 0, "DetailsRecord": 0,
                   "IsSystemTask": False, "IsInternalTask": False, "ParameterObject": {}, "LastStarted": None,
                   "Created": NOW, "StartCount": 0, "DatabaseSerialNumber": "", "Context": "", "Result": "",
                   "State": "Started", "Description": "", "Response": "", "Request": "", "ProgressDescription": "",
                   "ProgressPercent": 0, "FileName": "", "CancellationBehaviour": "CanCancel"}
    assert list(doc) == [name for name, _type, _length in FIELDS]


def test_a_new_task_keeps_a_given_owner_and_creation_time():
    doc = rules.new_batch_task({"AssociateId": 700, "Created": "2020-01-01T10:00:00"}, 1, NOW,
                               zone=Zone(ZoneInfo("Europe/Oslo")), owner=None)
    assert (doc["AssociateId"], doc["Created"]) == (700, "2020-01-01T09:00:00.000Z")
    assert rules.new_batch_task({}, 1, NOW, zone=Zone(UTC), owner=None)["AssociateId"] == 0
