"""The SailPoint task-status rules as pure functions: no HTTP, no SQLite.

The vendor documents one use of the PATCH ("clear a pending task by updating the
completionStatus and completed attributes", with the example ``/completionStatus`` =
``"Error"`` and ``/completed`` = a timestamp) and nothing about other paths
(reference/sailpoint.md §7). taskgate lets a PATCH write the members a task's runner
reports, listed here, and refuses the ones that identify or describe the task.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway import errors
from gateway.apis import sailpoint_rules as rules
from gateway.limits import MAX_OPERATIONS

CREATED = "2024-05-17T19:00:00.000Z"
NOW = "2024-05-17T20:00:00.000Z"
#: what a PATCH may write, written out (and anything below these members)
UPDATABLE = {"completionStatus", "completed", "launched", "progress", "percentComplete", "messages", "returns",
             "attributes"}
#: what it may not: the members that identify or describe the task, and its timestamps
READ_ONLY = ["id", "type", "uniqueName", "description", "parentName", "launcher", "target", "created", "modified",
             "taskDefinitionSummary"]
REFUSED = ("cannot be changed; updatable: /attributes, /completed, /completionStatus, /launched, /messages, "
           "/percentComplete, /progress, /returns")
#: the vendor's request example, and what the community client iscUtils sends
VENDOR_EXAMPLE = [{"op": "replace", "path": "/completionStatus", "value": "Error"},
                  {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"}]


def outcome(run: Any) -> Any:
    """What *run* returns, or the domain error it raises as (type, message)."""
    try:
        return run()
    except errors.TaskgateError as exc:
        return type(exc).__name__, exc.message


def task(**fields: Any) -> dict[str, Any]:
    return rules.new_task_status({"id": "t1", "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation", **fields},
                                 now=CREATED, launcher="root")


def patched(ops: list[dict[str, Any]], old: dict[str, Any] | None = None) -> Any:
    old = task() if old is None else old
    before = dict(old)
    result = outcome(lambda: rules.patch_mutation(ops, NOW)(old))
    assert old == before  # the stored document is never changed in place
    return result


# -- which paths a PATCH may write ----------------------------------------------------------
def test_the_updatable_members():
    assert rules.UPDATABLE == UPDATABLE
    assert not rules.UPDATABLE & set(READ_ONLY)


@pytest.mark.parametrize("path", ["/completionStatus", "/completed", "/launched", "/progress", "/percentComplete",
                                  "/messages", "/messages/0", "/messages/-", "/returns/0/name", "/attributes",
                                  "/attributes/a~1b", "/attributes/x/y"])
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_writes_below_an_updatable_member_pass(op, path):
    assert rules.check_patch_paths([{"op": op, "path": path, "value": 1}]) is None


@pytest.mark.parametrize("path", [f"/{name}{below}" for name in READ_ONLY for below in ("", "/x")])
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_writes_to_a_read_only_member_are_refused(op, path):
    assert outcome(lambda: rules.check_patch_paths([{"op": op, "path": path, "value": 1}])) == (
        "BadRequest", f"[0].path: {path!r} {REFUSED}")


def test_the_whole_document_cannot_be_replaced():
    assert outcome(lambda: rules.check_patch_paths([{"op": "replace", "path": "", "value": {}}])) == (
        "BadRequest", f"[0].path: '' {REFUSED}")


@pytest.mark.parametrize("name", READ_ONLY)
def test_reads_may_name_any_member(name):
    """``test`` and the source of ``copy`` only read."""
    assert rules.check_patch_paths([{"op": "test", "path": f"/{name}", "value": 1},
                                    {"op": "copy", "from": f"/{name}", "path": "/attributes/copy"}]) is None


def test_move_writes_its_source_too():
    assert outcome(lambda: rules.check_patch_paths([{"op": "move", "from": "/id", "path": "/attributes/id"}])) == (
        "BadRequest", f"[0].from: '/id' {REFUSED}")
    assert rules.check_patch_paths([{"op": "move", "from": "/progress", "path": "/attributes/p"}]) is None


def test_the_first_refused_operation_is_named_by_its_index():
    ops = [{"op": "replace", "path": "/progress", "value": "x"}, {"op": "replace", "path": "/type", "value": "QPOC"}]
    assert outcome(lambda: rules.check_patch_paths(ops)) == ("BadRequest", f"[1].path: '/type' {REFUSED}")


def test_a_path_must_be_a_json_pointer():
    assert outcome(lambda: rules.check_patch_paths([{"op": "replace", "path": "completionStatus", "value": 1}])) == (
        "BadRequest", "[0].path 'completionStatus' is not a JSON pointer: Location must start with /")


# -- what a JSON Patch body must be ---------------------------------------------------------
@pytest.mark.parametrize("body, ops", [
    (VENDOR_EXAMPLE, VENDOR_EXAMPLE),
    # members an operation does not define are ignored (RFC 6902 §4)
    ([{"op": "replace", "path": "/progress", "value": "x", "extra": 1}],
     [{"op": "replace", "path": "/progress", "value": "x"}]),
    ([{"op": "remove", "path": "/progress", "value": 1, "from": "/x"}], [{"op": "remove", "path": "/progress"}]),
    ([{"op": "add", "path": "/messages/-", "value": {"type": "INFO", "key": "k"}}],
     [{"op": "add", "path": "/messages/-", "value": {"type": "INFO", "key": "k"}}]),
    ([{"op": "replace", "path": "/progress", "value": None}], [{"op": "replace", "path": "/progress", "value": None}]),
])
def test_parse_patch(body, ops):
    assert rules.parse_patch(body) == ops


@pytest.mark.parametrize("body, message", [
    ({"op": "replace"}, "the body must be a JSON array of JSON Patch operations"),
    ([], "the patch has no operations"),
    ([{"op": "replace", "path": "/progress"}], "invalid JSON Patch: [0].value: 'replace' needs a value."),
    ([{"op": "bogus", "path": "/progress"}],
     "invalid JSON Patch: [0].op: Must be one of: add, remove, replace, move, copy, test."),
    ([{"op": "copy", "path": "/attributes/x"}], "invalid JSON Patch: [0].from: 'copy' needs 'from'."),
    ([{"op": "replace", "path": "/id", "value": "t2"}], f"[0].path: '/id' {REFUSED}"),
    ([{"op": "replace", "path": "/progress", "value": "x"}] * (MAX_OPERATIONS + 1),
     f"the patch has {MAX_OPERATIONS + 1} operations; at most {MAX_OPERATIONS} are allowed"),
])
def test_parse_patch_refuses(body, message):
    assert outcome(lambda: rules.parse_patch(body)) == ("BadRequest", message)


# -- the PATCH mutation --------------------------------------------------------------------
def test_the_vendors_example_completes_a_pending_task():
    assert patched(VENDOR_EXAMPLE) == {**task(), "completionStatus": "ERROR", "completed": "2024-05-17T19:33:16.470Z",
                                       "modified": NOW}


@pytest.mark.parametrize("given, stored", [("Error", "ERROR"), ("error", "ERROR"), ("SUCCESS", "SUCCESS"),
                                           ("TempError", "TEMPERROR"), (None, None)])
def test_completion_status_is_stored_upper_case(given, stored):
    new = patched([{"op": "replace", "path": "/completionStatus", "value": given}], task(completionStatus="WARNING"))
    assert new["completionStatus"] == stored


@pytest.mark.parametrize("ops, message", [
    # the iscUtils client's non-enum word
    ([{"op": "replace", "path": "/completionStatus", "value": "Completed"}],
     "completionStatus: Must be one of: SUCCESS, WARNING, ERROR, TERMINATED, TEMPERROR."),
    ([{"op": "replace", "path": "/percentComplete", "value": 50.0}], "percentComplete: Not a valid integer."),
    ([{"op": "replace", "path": "/percentComplete", "value": 101}],
     "percentComplete: Must be greater than or equal to 0 and less than or equal to 100."),
    ([{"op": "replace", "path": "/completed", "value": "tomorrow"}],
     "completed: Not a valid date-time; use RFC 3339, e.g. 2024-05-17T19:33:16.470Z."),
    ([{"op": "add", "path": "/attributes/x", "value": 1}, {"op": "remove", "path": "/messages"}],
     "messages: Missing data for required field."),
])
def test_a_patch_that_leaves_an_invalid_task_is_refused(ops, message):
    assert patched(ops) == ("BadRequest", f"invalid TaskStatus: {message}")


def test_a_patch_applies_all_or_nothing():
    assert patched([{"op": "replace", "path": "/progress", "value": "half"},
                    {"op": "test", "path": "/percentComplete", "value": 50}]) == (
        "Conflict", "test failed: /percentComplete is not 50")


def test_a_patch_that_changes_nothing_leaves_modified_alone():
    old = task(progress="half")
    assert rules.patch_mutation([{"op": "test", "path": "/progress", "value": "half"}], NOW)(old) is old
    assert rules.patch_mutation([{"op": "replace", "path": "/progress", "value": "half"}], NOW)(old) is old


def test_nested_writes_are_validated_whole():
    new = patched([{"op": "add", "path": "/messages/-", "value": {"type": "info", "key": "k"}}])
    assert new["messages"] == [{"type": "INFO", "localizedText": None, "key": "k", "parameters": None}]


# -- a new TaskStatus ------------------------------------------------------------------------
def test_a_new_task_status_has_every_required_member():
    assert task() == {"id": "t1", "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation", "description": "",
                      "parentName": None, "launcher": "root", "created": CREATED, "modified": CREATED,
                      "launched": None, "completed": None, "completionStatus": None, "messages": [], "returns": [],
                      "attributes": {}, "progress": None, "percentComplete": 0}


def test_a_new_task_status_gets_an_id_and_keeps_what_it_is_given():
    new = rules.new_task_status({"type": "qpoc", "uniqueName": "u", "launcher": "svc", "percentComplete": 5},
                                now=CREATED, launcher="root")
    assert (len(new["id"]), new["type"], new["launcher"], new["percentComplete"]) == (32, "QPOC", "svc", 5)


@pytest.mark.parametrize("body, message", [
    ([], "the body must be a JSON object (a TaskStatus)"),
    ({"uniqueName": "u"}, "invalid TaskStatus: type: Missing data for required field."),
    ({"type": "QUARTZ", "uniqueName": "u", "bogus": 1}, "invalid TaskStatus: bogus: Unknown field."),
])
def test_a_new_task_status_is_refused(body, message):
    assert outcome(lambda: rules.new_task_status(body, now=CREATED, launcher="root")) == ("BadRequest", message)


# -- "modified" is never null ----------------------------------------------------------------
# The SDKs' TaskStatus models (sailpoint 1.4.2 in every version module, sailpoint-api-client
# 1.x) need a date there: one task with "modified": null breaks every list call in the client.
@pytest.mark.parametrize("given", [{}, {"modified": None}])
def test_a_new_task_status_without_modified_is_stamped_with_created(given):
    assert task(created="2024-05-01T08:00:00Z", **given)["modified"] == "2024-05-01T08:00:00.000Z"
    assert task(**given)["modified"] == CREATED  # created defaults to now, and modified with it


def test_a_given_modified_is_kept():
    assert task(modified="2024-05-17T21:00:00+02:00")["modified"] == "2024-05-17T19:00:00.000Z"


@pytest.mark.parametrize("ops", [
    [{"op": "replace", "path": "/progress", "value": "half"}],  # the plain replace path
    [{"op": "add", "path": "/attributes/n", "value": 1}],  # the general path
])
def test_a_patch_stamps_a_task_stored_with_a_null_modified(ops):
    legacy = {**task(), "modified": None}  # as taskgate stored a create with "modified": null before
    new = patched(ops, legacy)
    assert new["modified"] == NOW
    assert new == {**legacy, "modified": NOW, **({"progress": "half"} if ops[0]["path"] == "/progress"
                                                 else {"attributes": {"n": 1}})}


def test_a_patch_cannot_make_modified_null():
    ops = [{"op": "replace", "path": "/modified", "value": None}]
    assert outcome(lambda: rules.parse_patch(ops)) == ("BadRequest", f"[0].path: '/modified' {REFUSED}")
    # and were the path allowed, the result would not be a TaskStatus
    assert patched(ops) == ("BadRequest", "invalid TaskStatus: modified: Field may not be null.")


# -- members the served shape always carries --------------------------------------------------
def test_a_task_definition_summary_and_messages_always_carry_their_nullable_members():
    new = task(taskDefinitionSummary={"id": "d", "uniqueName": "u", "parentName": "p", "arguments": {}},
               messages=[{"type": "ERROR", "key": "k"}])
    assert new["taskDefinitionSummary"] == {"id": "d", "uniqueName": "u", "description": None, "parentName": "p",
                                            "executor": None, "arguments": {}}
    assert new["messages"] == [{"type": "ERROR", "localizedText": None, "key": "k", "parameters": None}]
    replaced = patched([{"op": "replace", "path": "/messages", "value": [{"type": "warn", "key": "w"}]}], new)
    assert replaced["messages"] == [{"type": "WARN", "localizedText": None, "key": "w", "parameters": None}]


#: values a replace may send to the members that skip the schema when it would load them
#: unchanged: the edges of what it accepts as they are, and what it changes or refuses
AS_ITSELF = {
    "percentComplete": [0, 1, 99, 100, -1, 101, 2**64, True, False, 50.0, "50", None, [50], {"n": 50}],
    "progress": ["", "half", "ü \u2028", None, 0, True, ["half"], {"x": "half"}],
    "completionStatus": [None, "SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR", "success", "Error",
                         "Completed", "", 1, ["ERROR"]],
    "completed": [None, "2024-05-17T19:33:16.470Z", "2024-05-17T19:33:16Z", "2024-05-17T21:33:16.470+02:00",
                  "tomorrow", "", 0, True],
    "launched": [None, "2024-05-17T19:33:16.470Z", "2024-05-17 19:33:16", 1.5],
}


@pytest.mark.parametrize("name, value", [(n, v) for n, values in AS_ITSELF.items() for v in values])
def test_a_replace_that_skips_the_schema_answers_as_the_whole_document_s_validation(name, value):
    old = task(progress="p", percentComplete=7, completionStatus="WARNING", completed=CREATED, launched=CREATED)
    replace = {"op": "replace", "path": f"/{name}", "value": value}
    # a test operation first takes the patch through JSON Patch and the whole TaskStatus schema
    whole = patched([{"op": "test", "path": "/id", "value": "t1"}, replace], old)
    assert patched([replace], old) == whole
    assert patched([replace, {"op": "replace", "path": "/percentComplete", "value": 8}], old) == patched(
        [{"op": "test", "path": "/id", "value": "t1"}, replace, {"op": "replace", "path": "/percentComplete",
                                                                  "value": 8}], old)
    if rules._loads_as_itself(name, value):  # the schema, asked, loads it as it is
        loaded = rules._members_schema(frozenset({name})).load({name: value})
        assert loaded == {name: value} and type(loaded[name]) is type(value)
