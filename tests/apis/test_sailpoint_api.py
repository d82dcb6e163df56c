"""The SailPoint task-status API in process: whole bodies, stored state, audit, bad input."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.auth import secret_hash
from gateway.model import Task

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PATCH_JSON = "application/json-patch+json"

# the same requests and answers on a SQLite file and on PostgreSQL
pytestmark = pytest.mark.both_backends


def error_body(detail: str, text: str, tracking_id: str) -> dict[str, Any]:
    return {"detailCode": detail, "trackingId": tracking_id,
            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}], "causes": []}


async def create(api, **fields: Any) -> dict[str, Any]:
    body = {"id": "t1", "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation",
            "description": "Aggregate from the specified application", "launcher": "svc", **fields}
    status, doc, _ = await api.request("POST", "/task-status/v1", body=body)
    assert status == 201, doc
    return doc


async def test_create_returns_the_whole_task_status(api):
    status, doc, headers = await api.request("POST", "/task-status/v1", body={
        "id": "t1", "type": "quartz", "uniqueName": "Cloud Account Aggregation",
        "created": "2024-05-17 19:33:16.470000+00:00"})
    assert status == 201
    assert TS.match(doc["modified"])
    assert doc == {"id": "t1", "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation", "description": "",
                   "parentName": None, "launcher": "root", "created": "2024-05-17T19:33:16.470Z",
                   "modified": doc["modified"], "launched": None, "completed": None, "completionStatus": None,
                   "messages": [], "returns": [], "attributes": {}, "progress": None, "percentComplete": 0}
    assert headers["ETag"] == '"1"' and headers["Location"] == "/task-status/v1/t1"
    assert await api.db_rows("SELECT style, id, version, doc FROM tasks") == [
        ("sailpoint", "t1", 1, json.dumps(doc, separators=(",", ":")))]
    status, got, headers = await api.request("GET", "/task-status/v1/t1", token=api.user)
    assert (status, got, headers["ETag"]) == (200, doc, '"1"')


async def test_create_generates_an_id_and_refuses_duplicates(api):
    status, doc, _ = await api.request("POST", "/task-status/v1", body={"type": "QPOC", "uniqueName": "u"})
    assert status == 201 and re.fullmatch(r"[0-9a-f]{32}", doc["id"])
    status, err, headers = await api.request("POST", "/task-status/v1",
                                             body={"id": doc["id"], "type": "QPOC", "uniqueName": "u"})
    assert (status, err) == (409, error_body("409 Conflict", f"task {doc['id']!r} already exists",
                                             headers["X-Request-ID"]))


async def test_only_an_admin_creates(api):
    status, err, headers = await api.request("POST", "/task-status/v1", token=api.user,
                                             body={"type": "QPOC", "uniqueName": "u"})
    assert (status, err) == (403, error_body("403 Forbidden", "only an admin may create tasks",
                                             headers["X-Request-ID"]))
    assert await api.db_rows("SELECT count(*) FROM tasks") == [(0,)]


async def test_patch_the_vendor_example_updates_stores_and_audits(api):
    before = await create(api, launcher="alice")  # alice's task: she may patch it
    ops = [{"op": "replace", "path": "/completionStatus", "value": "Error"},
           {"op": "replace", "path": "/completed", "value": "2024-05-17 19:33:16.470000+00:00"}]
    with capture_logs() as logs:
        status, doc, headers = await api.request("PATCH", "/task-status/v1/t1", body=ops, token=api.user,
                                                 content_type=PATCH_JSON, headers={"X-Request-ID": "req-1"})
    assert status == 200 and headers["ETag"] == '"2"' and headers["X-Request-ID"] == "req-1"
    assert TS.match(doc["modified"]) and doc["modified"] >= before["modified"]
    assert doc == {**before, "completionStatus": "ERROR", "completed": "2024-05-17T19:33:16.470Z",
                   "modified": doc["modified"]}
    assert await api.db_rows("SELECT version, doc FROM tasks WHERE id = 't1'") == [
        (2, json.dumps(doc, separators=(",", ":")))]
    (row,) = await api.db_rows("SELECT style, task_id, version, action, actor, request_id, patch, undo "
                               "FROM audit WHERE version = 2")
    patch = [{"op": "replace", "path": "/modified", "value": doc["modified"]},
             {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"},
             {"op": "replace", "path": "/completionStatus", "value": "ERROR"}]
    undo = [{"op": "replace", "path": "/modified", "value": before["modified"]},
            {"op": "replace", "path": "/completed", "value": None},
            {"op": "replace", "path": "/completionStatus", "value": None}]
    assert row[:6] == ("sailpoint", "t1", 2, "updated", "alice", "req-1")
    assert sorted(json.loads(row[6]), key=str) == sorted(patch, key=str)
    assert sorted(json.loads(row[7]), key=str) == sorted(undo, key=str)
    events = [e for e in logs if e["event"] == "task.updated"]
    assert len(events) == 1
    assert {k: events[0][k] for k in ("style", "task_id", "version", "actor", "request_id")} == {
        "style": "sailpoint", "task_id": "t1", "version": 2, "actor": "alice", "request_id": "req-1"}
    assert sorted(events[0]["patch"], key=str) == sorted(patch, key=str)


async def test_all_six_operations_in_one_patch(api):
    before = await create(api, attributes={"a": 1, "b": {"c": 2}}, messages=[])
    ops = [{"op": "add", "path": "/attributes/new", "value": [1, 2]},
           {"op": "remove", "path": "/attributes/a"},
           {"op": "replace", "path": "/percentComplete", "value": 40},
           {"op": "move", "from": "/attributes/b", "path": "/attributes/moved"},
           {"op": "copy", "from": "/uniqueName", "path": "/progress"},
           {"op": "test", "path": "/attributes/new/1", "value": 2},
           {"op": "add", "path": "/messages/-", "value": {"type": "warn", "key": "k",
                                                          "localizedText": {"locale": "en", "message": "m"},
                                                          "parameters": ["p", {"x": 1}]}},
           {"op": "add", "path": "/returns/0", "value": {"name": "n", "attributeName": "a"}}]
    status, doc, _ = await api.request("PATCH", "/task-status/v1/t1", body=ops, content_type=PATCH_JSON)
    assert status == 200, doc
    assert doc == {**before, "modified": doc["modified"], "attributes": {"new": [1, 2], "moved": {"c": 2}},
                   "percentComplete": 40, "progress": "Cloud Account Aggregation",
                   "messages": [{"type": "WARN", "localizedText": {"locale": "en", "message": "m"}, "key": "k",
                                 "parameters": ["p", {"x": 1}]}],
                   "returns": [{"name": "n", "attributeName": "a"}]}
    assert (await api.store.get("sailpoint", "t1")).doc == doc


async def test_a_patch_that_changes_nothing_writes_nothing(api):
    doc = await create(api)
    status, got, headers = await api.request("PATCH", "/task-status/v1/t1", content_type=PATCH_JSON,
                                             body=[{"op": "test", "path": "/percentComplete", "value": 0}])
    assert (status, got, headers["ETag"]) == (200, doc, '"1"')
    assert await api.db_rows("SELECT count(*) FROM audit") == [(1,)]


async def test_if_match(api):
    await create(api)
    ops = [{"op": "replace", "path": "/progress", "value": "Started"}]
    status, _, headers = await api.request("PATCH", "/task-status/v1/t1", body=ops, content_type=PATCH_JSON,
                                           headers={"If-Match": '"1"'})
    assert (status, headers["ETag"]) == (200, '"2"')
    before = await api.snapshot()
    status, err, headers = await api.request("PATCH", "/task-status/v1/t1", body=ops, content_type=PATCH_JSON,
                                             headers={"If-Match": '"1"'})
    assert (status, err) == (412, error_body("412 Precondition Failed", "task 't1' is at version 2, not 1",
                                             headers["X-Request-ID"]))
    assert await api.snapshot() == before


@pytest.mark.parametrize("prefix", ["/task-status/v1", "/beta/task-status", "/v2024/task-status",
                                    "/v2025/task-status", "/v2026/task-status"])
async def test_every_version_path_gets_patches_and_lists(api, prefix):
    before = await create(api)
    status, doc, _ = await api.request(
        "PATCH", f"{prefix}/t1", content_type="application/json; charset=utf-8",
        headers={"X-SailPoint-Experimental": "true"},
        body=[{"op": "replace", "path": "/completionStatus", "value": "success"}])
    assert (status, doc) == (200, {**before, "completionStatus": "SUCCESS", "modified": doc["modified"]})
    status, got, _ = await api.request("GET", f"{prefix}/t1")
    assert (status, got) == (200, doc)
    status, listed, _ = await api.request("GET", prefix)
    assert (status, listed) == (200, [doc])


async def test_list_filters_sorts_pages_and_counts(api):
    docs = {}
    for n, (kind, state) in enumerate([("QUARTZ", None), ("QPOC", "SUCCESS"), ("QUARTZ", "ERROR"),
                                       ("QUEUED_TASK", None), ("QPOC", None)]):
        docs[f"t{n}"] = await create(api, id=f"t{n}", type=kind, completionStatus=state,
                                     launcher="bob" if n % 2 else "svc",
                                     created=f"2024-01-0{n + 1}T00:00:00Z")

    async def ids(query: str) -> tuple[list[str], str | None]:
        status, body, headers = await api.request("GET", f"/task-status/v1?{query}", token=api.read_only)
        assert status == 200, body
        return [d["id"] for d in body], headers.get("X-Total-Count")

    assert await ids("") == (["t0", "t1", "t2", "t3", "t4"], None)
    assert await ids("sorters=-created&count=true") == (["t4", "t3", "t2", "t1", "t0"], "5")
    assert await ids('filters=completionStatus isnull and type in ("QUARTZ","QPOC")&sorters=-created'
                     "&count=true") == (["t4", "t0"], "2")
    assert await ids('filters=completionStatus eq "Error"') == (["t2"], None)
    assert await ids('filters=not (completionStatus eq "ERROR") and launcher eq "svc"') == (["t0", "t4"], None)
    assert await ids('filters=id in ("t1","t3") or type eq "QUARTZ"') == (["t0", "t1", "t2", "t3"], None)
    assert await ids("limit=2&offset=1&count=true") == (["t1", "t2"], "5")
    assert await ids("limit=0&count=true") == ([], "5")
    status, full, _ = await api.request("GET", "/task-status/v1?limit=1")
    assert full == [docs["t0"]]


@pytest.mark.sqlite_only("SQLite's query plans (tests/store/test_postgres.py checks PostgreSQL's indexes)")
async def test_list_filters_use_indexes(api):
    from gateway.apis.sailpoint_filters import parse_filters
    from gateway.query import Query
    for text in ['completionStatus eq "ERROR"', "completionStatus isnull", 'type in ("QPOC")',
                 'launcher eq "x"', 'id eq "t1"', 'sourceId eq "s1"', 'sourceId in ("s1")']:
        plan = await api.store.explain("sailpoint", Query(parse_filters(text)))
        assert re.search(r"SEARCH tasks USING (COVERING )?INDEX", plan), (text, plan)


@pytest.mark.sqlite_only("SQLite's query plans (tests/store/test_postgres.py checks PostgreSQL's indexes)")
async def test_a_filtered_page_in_created_order_reads_the_page_not_every_match(api):
    """The list's default order rides the filter's index: no sort of every matching task."""
    from gateway.apis.sailpoint_filters import parse_filters
    from gateway.query import Query, Sort
    for text in ['completionStatus eq "ERROR"', 'type eq "QPOC"', 'launcher eq "x"', "completionStatus isnull",
                 'sourceId eq "s1"']:
        plan = await api.store.explain("sailpoint", Query(parse_filters(text), (Sort("$.created"),), 50, 900))
        field = {"sourceId": "target_id"}.get(text.split()[0], text.split()[0])
        assert plan == (f"SEARCH tasks USING INDEX tasks_by_{field} "
                        f"(style=? AND <expr>=?)"), (text, plan)


@pytest.mark.parametrize("query, text", [
    ("limit=251", "limit must be an integer between 0 and 250; got '251'"),
    ("limit=-1", "limit must be an integer between 0 and 250; got '-1'"),
    ("offset=x", "offset must be an integer at least 0; got 'x'"),
    ("count=yes", "count must be true or false; got 'yes'"),
    ('filters=target.id eq "x"', "filters: unsupported field 'target.id'"),
    ("filters=sourceId isnull", "filters: operator 'isnull' is not supported for 'sourceId'"),
    ('filters=type co "Q"', "filters: operator 'co' is not supported for 'type'"),
    ("sorters=name", "sorters: unsupported sorter 'name'"),
])
async def test_list_rejects_what_it_does_not_support(api, query, text):
    status, err, headers = await api.request("GET", f"/task-status/v1?{query}")
    assert (status, err) == (400, error_body("400.1 Bad Request Content", text, headers["X-Request-ID"]))


async def test_pending_tasks_get_and_head(api):
    pending = await create(api, id="p1")
    await create(api, id="done", completionStatus="SUCCESS")
    # v2026 too: the vendor dropped it in March 2026, sailpoint 1.4.2's v2026 module still calls it
    for version in ("beta", "v2024", "v2025", "v2026"):
        status, body, headers = await api.request("GET", f"/{version}/task-status/pending-tasks?count=true",
                                                  headers={"X-SailPoint-Experimental": "true"})
        assert (status, body, headers["X-Total-Count"]) == (200, [pending], "1")
        resp = await api.client.head(f"/{version}/task-status/pending-tasks?count=true", headers=api.auth())
        assert (resp.status, await resp.read(), resp.headers["X-Total-Count"]) == (200, b"", "1")
    # the v1 API never had it: there "pending-tasks" is an id
    status, err, headers = await api.request("GET", "/task-status/v1/pending-tasks")
    assert (status, err) == (404, error_body("404 Not found", "TaskStatus with id 'pending-tasks' was not found",
                                             headers["X-Request-ID"]))


async def test_source_id_filters_on_the_target_id(api):
    """SailPoint documents ``sourceId`` (eq, in) in every version; a TaskStatus names the
    source it ran on in ``target`` (the vendor's example: APPLICATION "Active Directory [source]")."""
    ad = {"id": "2c91808a78efc63e0178fb8624b248c5", "type": "APPLICATION", "name": "Active Directory [source]"}
    docs = {
        "a1": await create(api, id="a1", target=ad, created="2024-01-01T00:00:00Z"),
        "a2": await create(api, id="a2", target=ad, completionStatus="SUCCESS", created="2024-01-02T00:00:00Z"),
        "hr": await create(api, id="hr", target={"id": "hr-source", "type": "APPLICATION", "name": "HR"},
                           created="2024-01-03T00:00:00Z"),
        "none": await create(api, id="none", created="2024-01-04T00:00:00Z"),
        "no-id": await create(api, id="no-id", target={"name": "unnamed"}, created="2024-01-05T00:00:00Z"),
    }
    assert docs["a1"]["target"] == ad and "target" not in docs["none"]

    async def listed(version: str, query: str) -> tuple[list[Any], str | None]:
        status, body, headers = await api.request("GET", f"/{version}?{query}", token=api.read_only)
        assert status == 200, body
        return body, headers.get("X-Total-Count")

    for version in ("task-status/v1", "beta/task-status", "v2024/task-status", "v2025/task-status",
                    "v2026/task-status"):
        assert await listed(version, f'filters=sourceId eq "{ad["id"]}"&count=true') == (
            [docs["a1"], docs["a2"]], "2")
    assert await listed("task-status/v1", f'filters=sourceId in ("hr-source","{ad["id"]}")&sorters=-created') == (
        [docs["hr"], docs["a2"], docs["a1"]], None)
    assert await listed("task-status/v1", f'filters=sourceId eq "{ad["id"]}" and completionStatus isnull') == (
        [docs["a1"]], None)
    # ids are compared exactly (no case folding), and a task without a target id is no source's
    assert await listed("task-status/v1", f'filters=sourceId eq "{ad["id"].upper()}"') == ([], None)
    assert await listed("task-status/v1", 'filters=not sourceId eq "hr-source"') == (
        [docs["a1"], docs["a2"], docs["none"], docs["no-id"]], None)


@pytest.mark.parametrize("path", ["/v3/task-status/t1", "/v3/task-status", "/v2023/task-status/t1",
                                  "/beta/task-status/t1/x", "/task-status", "/task-status/v2/t1"])
async def test_unknown_versions_answer_in_sailpoint_s_shape(api, path):
    await create(api)
    before = await api.snapshot()
    for method, kwargs in (("GET", {}), ("PATCH", {"body": [{"op": "replace", "path": "/progress", "value": "x"}],
                                                   "content_type": PATCH_JSON})):
        status, err, headers = await api.request(method, path, **kwargs)
        assert (status, err) == (404, error_body("404 Not found", f"no resource at {path}",
                                                 headers["X-Request-ID"]))
    resp = await api.client.get(path)  # no credentials: still the vendor's 404
    assert (resp.status, await resp.json()) == (404, error_body("404 Not found", f"no resource at {path}",
                                                                resp.headers["X-Request-ID"]))
    assert await api.snapshot() == before


@pytest.mark.parametrize("given", [{"modified": None}, {}])
async def test_a_create_without_modified_is_stamped_with_created(api, given):
    """One task with "modified": null would break every list call of sailpoint 1.4.2 and
    sailpoint-api-client 1.x, whose models need a date there: it is stamped instead."""
    doc = await create(api, created="2024-05-17T19:33:16.470Z", **given)
    assert (doc["created"], doc["modified"]) == ("2024-05-17T19:33:16.470Z", "2024-05-17T19:33:16.470Z")
    assert await api.db_rows("SELECT doc FROM tasks WHERE id = 't1'") == [(json.dumps(doc, separators=(",", ":")),)]
    doc = await create(api, id="now", **given)
    assert TS.match(doc["modified"]) and doc["modified"] == doc["created"]


async def test_an_import_without_modified_is_stamped_with_created():
    from gateway.apis.sailpoint import import_task
    task_id, doc = import_task({"id": "i1", "type": "QPOC", "uniqueName": "u", "modified": None,
                                "created": "2024-01-01T00:00:00Z"}, "2024-06-01T00:00:00.000Z")
    assert (task_id, doc["modified"], doc["launcher"]) == ("i1", "2024-01-01T00:00:00.000Z", "import")
    _, doc = import_task({"id": "i2", "type": "QPOC", "uniqueName": "u", "modified": None},
                         "2024-06-01T00:00:00.000Z")
    assert doc["created"] == doc["modified"] == "2024-06-01T00:00:00.000Z"


async def test_a_task_stored_with_a_null_modified_gets_one_at_its_next_patch(api):
    """Rows an earlier taskgate stored from a create with "modified": null."""
    doc = await create(api)
    legacy = {**doc, "modified": None}
    await api.store.put("sailpoint", "t1", legacy, actor="test", request_id="legacy")
    status, got, _ = await api.request("PATCH", "/v2026/task-status/t1", content_type=PATCH_JSON,
                                       body=[{"op": "add", "path": "/attributes/n", "value": 1}])
    assert status == 200 and TS.match(got["modified"])
    assert got == {**doc, "attributes": {"n": 1}, "modified": got["modified"]}
    assert (await api.store.get("sailpoint", "t1")).doc == got


# -- bad input: status, SailPoint body, nothing stored changes -------------------------------
BAD_PATCHES = [
    # (name, raw body, content type, status, message)
    ("malformed JSON", b'[{"op": "replace",', PATCH_JSON, 400,
     "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 19"),
    ("empty body", b"", PATCH_JSON, 400, "the request body is empty"),
    ("not UTF-8", b'[{"op":"replace","path":"/progress","value":"\xff"}]', PATCH_JSON, 400,
     "the request body is not valid UTF-8 (byte 45)"),
    ("NaN", b'[{"op":"replace","path":"/percentComplete","value":NaN}]', PATCH_JSON, 400,
     "malformed JSON: NaN is not valid JSON"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, PATCH_JSON, 400, "malformed JSON: nested too deeply"),
    # past a double's range: it read as infinity, and a test op's message then failed to write it (a 500)
    ("a number past a double", b'[{"op":"test","path":"/percentComplete","value":1e400}]', PATCH_JSON, 400,
     "malformed JSON: the number 1e400 is beyond the range of a 64-bit float"),
    ("object, not array", b'{"op":"replace","path":"/progress","value":"x"}', PATCH_JSON, 400,
     "the body must be a JSON array of JSON Patch operations"),
    ("empty array", b"[]", PATCH_JSON, 400, "the patch has no operations"),
    ("too many operations", json.dumps([{"op": "test", "path": "/id", "value": "t1"}] * 1001).encode(),
     PATCH_JSON, 400, "the patch has 1001 operations; at most 1000 are allowed"),
    ("unknown op", b'[{"op":"frobnicate","path":"/progress","value":"x"}]', PATCH_JSON, 400,
     "invalid JSON Patch: [0].op: Must be one of: add, remove, replace, move, copy, test."),
    ("operation not an object", b'["replace"]', PATCH_JSON, 400, "invalid JSON Patch: [0]: Invalid input type."),
    ("missing value", b'[{"op":"replace","path":"/progress"}]', PATCH_JSON, 400,
     "invalid JSON Patch: [0].value: 'replace' needs a value."),
    ("move without from", b'[{"op":"move","path":"/attributes/x"}]', PATCH_JSON, 400,
     "invalid JSON Patch: [0].from: 'move' needs 'from'."),
    ("copy without from", b'[{"op":"copy","path":"/attributes/x"}]', PATCH_JSON, 400,
     "invalid JSON Patch: [0].from: 'copy' needs 'from'."),
    ("pointer without slash", b'[{"op":"replace","path":"progress","value":"x"}]', PATCH_JSON, 400,
     "[0].path 'progress' is not a JSON pointer: Location must start with /"),
    ("bad escape", b'[{"op":"replace","path":"/attributes/~2","value":"x"}]', PATCH_JSON, 400,
     "[0].path '/attributes/~2' is not a JSON pointer: Found invalid escape ~2"),
    ("immutable id", b'[{"op":"replace","path":"/id","value":"x"}]', PATCH_JSON, 400,
     "[0].path: '/id' cannot be changed; updatable: /attributes, /completed, /completionStatus, /launched, "
     "/messages, /percentComplete, /progress, /returns"),
    ("immutable root", b'[{"op":"replace","path":"","value":{}}]', PATCH_JSON, 400,
     "[0].path: '' cannot be changed; updatable: /attributes, /completed, /completionStatus, /launched, "
     "/messages, /percentComplete, /progress, /returns"),
    ("move out of an immutable member", b'[{"op":"move","from":"/created","path":"/attributes/c"}]', PATCH_JSON,
     400, "[0].from: '/created' cannot be changed; updatable: /attributes, /completed, /completionStatus, "
     "/launched, /messages, /percentComplete, /progress, /returns"),
    ("unknown completionStatus", b'[{"op":"replace","path":"/completionStatus","value":"Completed"}]', PATCH_JSON,
     400, "invalid TaskStatus: completionStatus: Must be one of: SUCCESS, WARNING, ERROR, TERMINATED, TEMPERROR."),
    ('percentComplete "50"', b'[{"op":"replace","path":"/percentComplete","value":"50"}]', PATCH_JSON, 400,
     "invalid TaskStatus: percentComplete: Not a valid integer."),
    ("percentComplete 50.5", b'[{"op":"replace","path":"/percentComplete","value":50.5}]', PATCH_JSON, 400,
     "invalid TaskStatus: percentComplete: Not a valid integer."),
    ("percentComplete true", b'[{"op":"replace","path":"/percentComplete","value":true}]', PATCH_JSON, 400,
     "invalid TaskStatus: percentComplete: Not a valid integer."),
    ("percentComplete 101", b'[{"op":"replace","path":"/percentComplete","value":101}]', PATCH_JSON, 400,
     "invalid TaskStatus: percentComplete: Must be greater than or equal to 0 and less than or equal to 100."),
    ("percentComplete -1", b'[{"op":"replace","path":"/percentComplete","value":-1}]', PATCH_JSON, 400,
     "invalid TaskStatus: percentComplete: Must be greater than or equal to 0 and less than or equal to 100."),
    ("remove a required member", b'[{"op":"remove","path":"/messages"}]', PATCH_JSON, 400,
     "invalid TaskStatus: messages: Missing data for required field."),
    ("completed not a date", b'[{"op":"replace","path":"/completed","value":"yesterday"}]', PATCH_JSON, 400,
     "invalid TaskStatus: completed: Not a valid date-time; use RFC 3339, e.g. 2024-05-17T19:33:16.470Z."),
    ("attributes not an object", b'[{"op":"replace","path":"/attributes","value":[]}]', PATCH_JSON, 400,
     "invalid TaskStatus: attributes: Not a valid mapping type."),
    ("message of the wrong type", b'[{"op":"add","path":"/messages/-","value":{"type":"x","key":"k"}}]',
     PATCH_JSON, 400, "invalid TaskStatus: messages[0].type: Must be one of: INFO, WARN, ERROR."),
    ("failed test", b'[{"op":"test","path":"/percentComplete","value":7},'
     b'{"op":"replace","path":"/percentComplete","value":8}]', PATCH_JSON, 409,
     "test failed: /percentComplete is not 7"),
    ("pointer into nowhere", b'[{"op":"replace","path":"/attributes/missing","value":1}]', PATCH_JSON, 409,
     "the patch does not apply to the task: can't replace a non-existent object 'missing'"),
    ("index out of range", b'[{"op":"add","path":"/messages/5","value":{"type":"INFO","key":"k"}}]', PATCH_JSON,
     409, "the patch does not apply to the task: can't insert outside of list"),
    ("copy that doubles the task 20 times",
     json.dumps([{"op": "copy", "from": "/attributes", "path": f"/attributes/z{n}"} for n in range(20)]).encode(),
     PATCH_JSON, 413, "the patch would make the task larger than 1048576 bytes"),
    ("unpaired surrogate", b'[{"op":"add","path":"/attributes/x","value":"\\ud800"}]', PATCH_JSON, 400,
     "a string holds an unpaired UTF-16 surrogate"),
    ("unpaired surrogate in a test", b'[{"op":"test","path":"/progress","value":"\\udfff"}]', PATCH_JSON, 400,
     "a string holds an unpaired UTF-16 surrogate"),
    ("value nested 100 deep", b'[{"op":"add","path":"/attributes/x","value":' + b"[" * 100 + b"]" * 100 + b"}]",
     PATCH_JSON, 400, "nested deeper than 64 levels"),
    ("from of the wrong type", b'[{"op":"copy","from":5,"path":"/attributes/x"}]', PATCH_JSON, 400,
     "invalid JSON Patch: [0].from: Not a valid string."),
    ("completed without a time", b'[{"op":"replace","path":"/completed","value":"2024-05-17"}]', PATCH_JSON, 400,
     "invalid TaskStatus: completed: Not a valid date-time; use RFC 3339, e.g. 2024-05-17T19:33:16.470Z."),
    ("wrong content type", b'[{"op":"replace","path":"/progress","value":"x"}]', "text/plain", 415,
     "Content-Type 'text/plain' is not supported here; use application/json-patch+json or application/json"),
    ("merge patch content type", b'{"progress":"x"}', "application/merge-patch+json", 415,
     "Content-Type 'application/merge-patch+json' is not supported here; use application/json-patch+json or "
     "application/json"),
    ("latin-1 charset", b'[{"op":"replace","path":"/progress","value":"x"}]', PATCH_JSON + "; charset=latin-1",
     415, "charset 'latin-1' is not supported; use utf-8"),
]
DETAIL = {400: "400.1 Bad Request Content", 409: "409 Conflict", 412: "412 Precondition Failed",
          413: "413 Payload Too Large", 415: "415 Unsupported Media Type"}


@pytest.mark.parametrize("name, data, ctype, status, text", BAD_PATCHES, ids=[c[0] for c in BAD_PATCHES])
async def test_bad_patches_are_refused_and_change_nothing(api, name, data, ctype, status, text):
    await create(api)
    before = await api.snapshot()
    got_status, err, headers = await api.request("PATCH", "/task-status/v1/t1", data=data, content_type=ctype)
    assert (got_status, err) == (status, error_body(DETAIL[status], text, headers["X-Request-ID"]))
    assert await api.snapshot() == before


async def test_body_over_the_limit_is_413(api):
    await create(api)
    before = await api.snapshot()
    big = json.dumps([{"op": "replace", "path": "/progress", "value": "x" * 1_100_000}]).encode()
    resp = await api.client.patch("/task-status/v1/t1", data=io.BytesIO(big),
                                  headers={**api.auth(), "Content-Type": PATCH_JSON})
    status, err, headers = resp.status, await resp.json(), resp.headers
    assert (status, err) == (413, error_body("413 Payload Too Large",
                                             "the request body is larger than 1048576 bytes",
                                             headers["X-Request-ID"]))
    assert await api.snapshot() == before


async def test_chunked_body_over_the_limit_is_413(api):
    await create(api)
    before = await api.snapshot()

    async def chunks():
        for _ in range(40):
            yield b"x" * 32768

    resp = await api.client.patch("/task-status/v1/t1", data=chunks(),
                                  headers={**api.auth(), "Content-Type": PATCH_JSON})
    assert (resp.status, await resp.json()) == (413, error_body(
        "413 Payload Too Large", "the request body is larger than 1048576 bytes", resp.headers["X-Request-ID"]))
    assert await api.snapshot() == before


async def test_unknown_id_is_404(api):
    await create(api)
    before = await api.snapshot()
    status, err, headers = await api.request("PATCH", "/task-status/v1/nope", content_type=PATCH_JSON,
                                             body=[{"op": "replace", "path": "/progress", "value": "x"}])
    assert (status, err) == (404, error_body("404 Not found", "TaskStatus with id 'nope' was not found",
                                             headers["X-Request-ID"]))
    status, err, headers = await api.request("GET", "/task-status/v1/nope")
    assert (status, err) == (404, error_body("404 Not found", "TaskStatus with id 'nope' was not found",
                                             headers["X-Request-ID"]))
    assert await api.snapshot() == before


async def test_unacceptable_accept_is_406(api):
    await create(api)
    status, err, headers = await api.request("GET", "/task-status/v1/t1", headers={"Accept": "text/html"})
    assert (status, err) == (406, error_body("406 Not Acceptable",
                                             "cannot answer with 'text/html'; available: application/json",
                                             headers["X-Request-ID"]))


@pytest.mark.parametrize("case", ["missing", "invalid", "expired", "wrong scheme", "wrong password"])
async def test_credentials_refused_with_401(api, case):
    await create(api)
    before = await api.snapshot()
    expired = "tg_expired"
    await api.store.add_token("alice", secret_hash(expired), read_only=False, expires=int(time.time()) - 5,
                              source="test")
    headers = {"missing": {}, "invalid": {"Authorization": "Bearer tg_nonsense"},
               "expired": {"Authorization": f"Bearer {expired}"},
               "wrong scheme": {"Authorization": "Digest abc"},
               "wrong password": {"Authorization": "Basic YWxpY2U6bm9wZQ=="}}[case]
    text = {"missing": "no authorization header", "invalid": "invalid token", "expired": "token expired",
            "wrong scheme": "unsupported authorization scheme",
            "wrong password": "invalid user name or password"}[case]
    resp = await api.client.patch("/task-status/v1/t1", headers={**headers, "Content-Type": PATCH_JSON},
                                  data=json.dumps([{"op": "replace", "path": "/progress", "value": "x"}]))
    assert (resp.status, await resp.json()) == (401, {"error": text})
    assert await api.snapshot() == before


async def test_basic_auth_works_and_read_only_token_gets_403(api):
    await create(api, launcher="alice")
    ops = [{"op": "replace", "path": "/progress", "value": "x"}]
    resp = await api.client.patch("/task-status/v1/t1", data=json.dumps(ops), headers={
        "Authorization": "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=", "Content-Type": PATCH_JSON})  # alice:alice-password
    assert resp.status == 200 and (await resp.json())["progress"] == "x"
    before = await api.snapshot()
    status, err, headers = await api.request("PATCH", "/task-status/v1/t1", token=api.read_only, body=ops,
                                             content_type=PATCH_JSON)
    assert (status, err) == (403, error_body("403 Forbidden", "this token is read-only", headers["X-Request-ID"]))
    assert await api.snapshot() == before
    status, _, _ = await api.request("GET", "/task-status/v1/t1", token=api.read_only)
    assert status == 200


async def test_method_not_allowed_and_unknown_paths(api):
    status, err, headers = await api.request("DELETE", "/task-status/v1/t1")
    assert status == 405 and headers["Allow"] == "GET,HEAD,PATCH"
    assert err == error_body("405 Method Not Allowed", "DELETE is not allowed here; allowed: GET,HEAD,PATCH",
                             headers["X-Request-ID"])
    status, err, _ = await api.request("GET", "/nowhere")
    assert (status, err) == (404, {"error": "no resource at /nowhere"})


async def test_concurrent_patches_of_one_task_in_one_batch_see_each_other(api):
    """Each of 30 concurrent writes adds its own member: a write applied to the task as it
    was before another of its batch would lose that one's member. (The requests may reach
    the server in any order, so none of them tests a value another one writes.)"""
    import asyncio
    await create(api)
    ops = [[{"op": "add", "path": f"/attributes/k{n}", "value": n}] for n in range(30)]
    results = await asyncio.gather(*[api.request("PATCH", "/task-status/v1/t1", body=o, content_type=PATCH_JSON)
                                     for o in ops])
    assert all(status == 200 for status, _, _ in results), [r[:2] for r in results if r[0] != 200]
    for n, (_, body, _) in enumerate(results):  # each answer holds its own member and those applied before it
        assert body["attributes"][f"k{n}"] == n
    assert sorted(len(body["attributes"]) for _, body, _ in results) == list(range(1, 31))
    task = await api.store.get("sailpoint", "t1")
    assert isinstance(task, Task) and (task.version, task.doc["attributes"]) == (31, {f"k{n}": n for n in range(30)})


async def test_no_secret_reaches_the_logs(api):
    with capture_logs() as logs:
        await create(api)
        for token in (api.admin, api.user, "tg_wrong"):
            await api.request("GET", "/task-status/v1/t1", token=token)
        await api.client.get("/task-status/v1/t1", headers={"Authorization": "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ="})
    text = json.dumps(logs, default=str)
    for secret in (api.admin, api.user, "tg_wrong", "YWxpY2U6YWxpY2UtcGFzc3dvcmQ=", "alice-password"):
        assert secret not in text
    assert [e["status"] for e in logs if e["event"] == "request"] == [201, 200, 200, 401, 200]


async def test_members_an_operation_does_not_define_are_ignored(api):
    before = await create(api, attributes={"a": 1})
    status, doc, _ = await api.request("PATCH", "/task-status/v1/t1", content_type=PATCH_JSON, body=[
        {"op": "replace", "path": "/progress", "value": "x", "from": 5, "extra": True},
        {"op": "remove", "path": "/attributes/a", "value": {"ignored": True}}])
    assert (status, doc) == (200, {**before, "progress": "x", "attributes": {}, "modified": doc["modified"]})


NO_MATCH = "String does not match expected pattern."


@pytest.mark.parametrize("body, text", [
    ({"id": "abc\n", "type": "QUARTZ", "uniqueName": "x"}, f"invalid TaskStatus: id: {NO_MATCH}"),
    ({"id": "a/b", "type": "QUARTZ", "uniqueName": "x"}, f"invalid TaskStatus: id: {NO_MATCH}"),
    ({"id": "a", "type": "QUARTZ", "uniqueName": "\ud800"}, "a string holds an unpaired UTF-16 surrogate"),
    ([], "the body must be a JSON object (a TaskStatus)"),
    ({"type": "QUARTZ", "uniqueName": "x", "bogus": 1}, "invalid TaskStatus: bogus: Unknown field."),
])
async def test_bad_creates_are_refused(api, body, text):
    status, err, headers = await api.request("POST", "/task-status/v1", body=body)
    assert (status, err) == (400, error_body("400.1 Bad Request Content", text, headers["X-Request-ID"]))
    assert await api.snapshot() == ([], [])


@pytest.mark.parametrize("headers, status, expected", [
    ({"If-Match": '"\u00b2"'}, 412, ("412 Precondition Failed", "task 't1' is at version 1, not ")),
    ({"Authorization": "Basic \u00e9abc"}, 401, {"error": "malformed Basic credentials"}),
    ({"Authorization": "Bearer tg_\u00ff\u00fe"}, 401, {"error": "invalid token"}),
    ({"Content-Encoding": "gzip"}, 400, ("400.1 Bad Request Content",
                                         "the request body cannot be read (broken transfer or content encoding)")),
])
async def test_hostile_headers_get_4xx(api, headers, status, expected):
    await create(api)
    before = await api.snapshot()
    resp = await api.client.patch("/task-status/v1/t1", data=b'[{"op":"replace","path":"/progress","value":"x"}]',
                                  headers={**api.auth(), "Content-Type": PATCH_JSON, **headers})
    if isinstance(expected, tuple):
        expected = error_body(*expected, resp.headers["X-Request-ID"])
    assert (resp.status, await resp.json()) == (status, expected)
    assert await api.snapshot() == before


async def test_list_refuses_non_ascii_digits(api):
    status, err, headers = await api.request("GET", "/task-status/v1?limit=\u0663")
    assert (status, err) == (400, error_body("400.1 Bad Request Content",
                                             "limit must be an integer between 0 and 250; got '\u0663'",
                                             headers["X-Request-ID"]))


async def test_basic_auth_for_a_user_without_password_is_refused(api):
    resp = await api.client.get("/task-status/v1", headers={"Authorization": "Basic cmVhZGVyOg=="})  # reader:
    assert (resp.status, await resp.json()) == (401, {"error": "invalid user name or password"})


async def test_a_change_of_json_type_is_a_change(api):
    await create(api, attributes={"flag": 1})
    status, doc, headers = await api.request("PATCH", "/task-status/v1/t1", content_type=PATCH_JSON,
                                             body=[{"op": "replace", "path": "/attributes/flag", "value": True}])
    assert (status, doc["attributes"], headers["ETag"]) == (200, {"flag": True}, '"2"')
    (patch,), = await api.db_rows("SELECT patch FROM audit WHERE version = 2")
    assert json.loads(patch) == [{"op": "replace", "path": "/attributes/flag", "value": True},
                                 {"op": "replace", "path": "/modified", "value": doc["modified"]}]


def _deep(n: int) -> Any:
    """A value nested *n* objects deep."""
    return {"a": _deep(n - 1)} if n else 1


_PLAIN_PATCHES = [
    [{"op": "replace", "path": "/percentComplete", "value": 42}, {"op": "replace", "path": "/progress", "value": "x"}],
    [{"op": "replace", "path": "/completionStatus", "value": "Error"},
     {"op": "replace", "path": "/completed", "value": "2024-05-17 19:33:16+02:00"}],
    [{"op": "replace", "path": "/percentComplete", "value": 50.0}],
    [{"op": "replace", "path": "/percentComplete", "value": 101},
     {"op": "replace", "path": "/completed", "value": "x"}],
    [{"op": "replace", "path": "/attributes", "value": {"a": [1, {"b": None}]}}],
    [{"op": "replace", "path": "/progress", "value": "a"}, {"op": "replace", "path": "/progress", "value": "b"}],
    [{"op": "replace", "path": "/messages", "value": [{"type": "info", "key": "k"}]}],
    [{"op": "replace", "path": "/progress", "value": None},
     {"op": "replace", "path": "/percentComplete", "value": None}],
    [{"op": "replace", "path": "/attributes", "value": _deep(70)}],
    [{"op": "replace", "path": "/progress", "value": "\ud800"}],
]


@pytest.mark.parametrize("ops", _PLAIN_PATCHES)
def test_plain_replace_patches_give_what_the_general_path_gives(ops):
    """The fast path for replace-only patches is exact: same document, same error."""
    from gateway.apis import sailpoint, sailpoint_rules
    from gateway.patching import apply_json_patch
    from schemas.common import load_or_400

    _id, old = sailpoint.import_task({"id": "t1", "type": "QUARTZ", "uniqueName": "u"}, "2024-01-01T00:00:00.000Z")

    def outcome(run):
        try:
            return run()
        except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
            return type(exc).__name__, getattr(exc, "message", str(exc))

    fast = outcome(lambda: sailpoint_rules._replace_members(old, ops))
    general = outcome(lambda: sailpoint_rules.validate_task_status(apply_json_patch(old, ops)))
    assert fast == general
    assert sailpoint_rules._plain_ops(ops) is not None
    assert sailpoint_rules._plain_ops(ops) == load_or_400(sailpoint_rules._PATCH, ops, "JSON Patch")
