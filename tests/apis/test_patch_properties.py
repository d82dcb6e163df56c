"""Property tests (hypothesis, bounded and derandomized): what a patch stores is what the
reference implementations say, or the request is refused and nothing changes.

* random RFC 6902 patches against random SailPoint TaskStatus documents, judged against
  ``jsonpatch`` applied to the same document plus the rules README lists (updatable paths,
  TaskStatus validity);
* random JSON Patches and RFC 7386 merge patches against random SuperOffice BatchTasks,
  judged against ``jsonpatch`` and a ten-line merge-patch reference applied to the carrier
  the client reads, keeping only State, Description, Response and Request;
* the same BatchTaskInfo sent as JSON and as XML stores the same task.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any
from xml.sax.saxutils import escape

import jsonpatch
import jsonpointer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.apis.hostile import SO_STATES, SO_UPDATABLE, assert_envelope, same_json, send, so_put_judged
from tests.conftest import Api

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_ids = itertools.count(1)

# -- SailPoint -----------------------------------------------------------------------------------------
SP_UPDATABLE = {"completionStatus", "completed", "launched", "progress", "percentComplete", "messages", "returns",
                "attributes"}
STATUSES = ["SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR"]
DATES = ["2024-05-17T19:33:16.470Z", "2030-01-01T00:00:00.000Z"]
_small_text = st.text(alphabet="abcxyz -", max_size=6)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 103), _small_text)
_sp_value = st.one_of(
    _scalar, st.sampled_from([*STATUSES, "bogus", "Error", *DATES, "yesterday", 50.5, {"x": 1}, [], {}]),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _scalar, max_size=2),
    st.lists(_scalar, max_size=2))
_sp_path = st.sampled_from(["/completionStatus", "/percentComplete", "/progress", "/attributes", "/attributes/a",
                            "/attributes/b", "/attributes/a/x", "/attributes/~1", "/messages", "/messages/0",
                            "/messages/-", "/returns", "/completed", "/launched", "/id", "/type", "/description"])
_sp_op = st.one_of(
    st.fixed_dictionaries({"op": st.sampled_from(["add", "replace", "test"]), "path": _sp_path, "value": _sp_value}),
    st.fixed_dictionaries({"op": st.just("remove"), "path": _sp_path}),
    st.fixed_dictionaries({"op": st.sampled_from(["move", "copy"]), "path": _sp_path, "from": _sp_path}))
#: operations that usually apply and validate, so that accepted patches are common too
_sp_likely = st.one_of(
    st.fixed_dictionaries({"op": st.sampled_from(["replace", "add"]), "path": st.just("/completionStatus"),
                           "value": st.one_of(st.none(), st.sampled_from(STATUSES))}),
    st.fixed_dictionaries({"op": st.sampled_from(["replace", "test"]), "path": st.just("/percentComplete"),
                           "value": st.integers(0, 100)}),
    st.fixed_dictionaries({"op": st.just("add"), "path": st.sampled_from(["/attributes/a", "/attributes/n",
                                                                          "/attributes/~1"]),
                           "value": _scalar}),
    st.fixed_dictionaries({"op": st.just("replace"), "path": st.just("/progress"), "value": _small_text}),
    st.fixed_dictionaries({"op": st.just("copy"), "path": st.just("/progress"), "from": st.just("/id")}))
_sp_doc = st.fixed_dictionaries({
    "completionStatus": st.one_of(st.none(), st.sampled_from(STATUSES)),
    "percentComplete": st.integers(0, 100),
    "progress": st.one_of(st.none(), _small_text),
    "attributes": st.dictionaries(st.sampled_from(["a", "b", "/"]), _scalar, max_size=2),
    "completed": st.one_of(st.none(), st.sampled_from(DATES))})


def _writes_outside(ops: list[dict[str, Any]]) -> bool:
    """Whether an operation changes a member a PATCH may not change (test and copy's from only read)."""
    for item in ops:
        pointers = [] if item["op"] == "test" else [item["path"]]
        if item["op"] == "move":
            pointers.append(item["from"])
        if any(not p or jsonpointer.JsonPointer(p).parts[0] not in SP_UPDATABLE for p in pointers):
            return True
    return False


def _valid_task_status(doc: dict[str, Any]) -> bool:
    """TaskStatus validity for the values the strategies make (README's rules)."""
    pc = doc.get("percentComplete")
    return (doc.get("completionStatus") in (None, *STATUSES) and "completionStatus" in doc
            and type(pc) is int and 0 <= pc <= 100
            and ("progress" in doc and (doc["progress"] is None or isinstance(doc["progress"], str)))
            and isinstance(doc.get("attributes"), dict)
            and doc.get("messages") == [] and doc.get("returns") == []
            and all(k in doc and (doc[k] is None or doc[k] in DATES) for k in ("completed", "launched")))


@PROPERTY
@given(start=_sp_doc, ops=st.lists(st.one_of(_sp_likely, _sp_likely, _sp_op), min_size=1, max_size=3))
async def test_sailpoint_patches_store_the_jsonpatch_result_or_nothing(api: Api, start, ops):
    task_id = f"p{next(_ids)}"
    status, doc, _ = await api.request("POST", "/task-status/v1",
                                       body={"id": task_id, "type": "QUARTZ", "uniqueName": "p", **start})
    assert status == 201, doc
    invalid = failed_test = False
    try:
        reference = jsonpatch.apply_patch(copy.deepcopy(doc), ops)
    except jsonpatch.InvalidJsonPatch:  # e.g. replace at "/-": a malformed patch, not a conflict
        reference, invalid = None, True
    except jsonpatch.JsonPatchTestFailed:
        reference, failed_test = None, True
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
        reference = None
    message = None
    if _writes_outside(ops) or invalid:
        expected = 400
    elif reference is None:
        expected = 409
        message = re.compile("^test failed: " if failed_test else "^the patch does not apply to the task: ")
    else:
        expected = 200 if _valid_task_status(reference) else 400
    event(f"expected {expected}")
    before = await api.snapshot()
    sent = await send(api, "PATCH", f"/task-status/v1/{task_id}", body=ops, ctype="application/json-patch+json")
    assert sent.status == expected, (sent.status, sent.text[:300], reference)
    assert not sent.faults
    stored = (await api.store.get("sailpoint", task_id)).doc
    if expected != 200:
        assert_envelope("sailpoint", sent, message)
        assert await api.snapshot() == before
        return
    if same_json(reference, doc):  # nothing changed: nothing written
        assert await api.snapshot() == before and stored == doc
        assert sent.headers["ETag"] == '"1"'
    else:
        assert stored["modified"] >= doc["modified"]
        assert stored == {**reference, "modified": stored["modified"]}
        assert sent.headers["ETag"] == '"2"'
        assert await api.db_rows("SELECT version, action FROM audit WHERE style = 'sailpoint' AND task_id = ? "
                                 "ORDER BY seq", task_id) == [(1, "created"), (2, "updated")]
    assert sent.body == stored


# -- SuperOffice ---------------------------------------------------------------------------------------
_so_text = st.one_of(_small_text, st.none(), st.just("x" * 255), st.just(5))
_so_value = st.one_of(_so_text, st.sampled_from([*SO_STATES, "Bogus", "started", 3]),
                      st.dictionaries(st.just("k"), _small_text))
_so_path = st.sampled_from(["/State", "/Description", "/Response", "/Request", "/Name", "/ParameterObject/k",
                            "/ParameterObject/q", "/ParameterObject"])
_so_op = st.one_of(
    st.fixed_dictionaries({"op": st.sampled_from(["add", "replace", "test"]), "path": _so_path, "value": _so_value}),
    st.fixed_dictionaries({"op": st.just("remove"), "path": _so_path}))
_so_likely = st.one_of(
    st.fixed_dictionaries({"op": st.sampled_from(["replace", "add", "test"]), "path": st.just("/State"),
                           "value": st.sampled_from(list(SO_STATES))}),
    st.fixed_dictionaries({"op": st.sampled_from(["replace", "add", "test"]),
                           "path": st.sampled_from(["/Description", "/Response", "/Request"]), "value": _small_text}),
    st.fixed_dictionaries({"op": st.just("remove"), "path": st.sampled_from(["/Description", "/Request"])}))
_so_start = st.fixed_dictionaries({"State": st.sampled_from(list(SO_STATES)[1:6]), "Description": _small_text,
                                   "Response": _small_text, "Name": _small_text,
                                   "ParameterObject": st.dictionaries(st.just("k"), _small_text, max_size=1)})


async def _so_task(api: Api, start: dict[str, Any]) -> str:
    status, task_id, _ = await api.request("POST", "/api/v1/BatchTask", body=start)
    assert status == 200, task_id
    return str(task_id)


@PROPERTY
@given(start=_so_start, ops=st.lists(st.one_of(_so_likely, _so_likely, _so_op), min_size=1, max_size=3))
async def test_superoffice_json_patches_store_the_jsonpatch_result_or_nothing(api: Api, start, ops):
    """Judged by tests/apis/hostile.py: jsonpatch applied to the carrier the client read,
    then README's rules for the members the patch changed."""
    await so_put_judged(api, await _so_task(api, start), ops, "application/json-patch+json")


@PROPERTY
@given(start=_so_start, patch=st.dictionaries(st.sampled_from(["State", "Description", "Response", "Request", "Name",
                                                               "ParameterObject"]),
                                              st.one_of(_so_value, st.dictionaries(st.sampled_from(["k", "q"]),
                                                                                   st.one_of(st.none(), _small_text))),
                                              min_size=1, max_size=3))
async def test_superoffice_merge_patches_store_the_merge_result_or_nothing(api: Api, start, patch):
    """Judged by tests/apis/hostile.py: RFC 7386's pseudocode applied to the carrier the
    client read, then README's rules for the members the patch changed."""
    await so_put_judged(api, await _so_task(api, start), patch, "application/merge-patch+json")


_xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co")), max_size=12)


def _as_xml(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        if name == "ParameterObject":
            pairs = "".join(f"<KeyValueOfstringstring><Key>{escape(k)}</Key><Value>{escape(v)}</Value>"
                            "</KeyValueOfstringstring>" for k, v in value.items())
            parts.append(f"<ParameterObject>{pairs}</ParameterObject>")
        elif isinstance(value, bool):
            parts.append(f"<{name}>{'true' if value else 'false'}</{name}>")
        else:
            parts.append(f"<{name}>{escape(str(value))}</{name}>")
    return "<BatchTaskInfo>" + "".join(parts) + "</BatchTaskInfo>"


@PROPERTY
@given(fields=st.fixed_dictionaries({}, optional={
    "State": st.sampled_from(list(SO_STATES)), "Description": _xml_text, "Response": _xml_text, "Request": _xml_text,
    "Name": _xml_text, "AssociateId": st.integers(0, 2**31 - 1), "IsSystemTask": st.booleans(),
    "ProgressPercent": st.integers(-5, 105), "ParameterObject": st.dictionaries(_xml_text, _xml_text, max_size=2),
    "LastStarted": st.sampled_from(["2024-05-17T19:33:16", "0001-01-01T00:00:00"])}))
async def test_json_and_xml_bodies_of_one_batch_task_info_store_the_same_task(api: Api, fields):
    """Both store the same task, and the client reads back every member it gave as it gave
    it (dates as written, in the default zone, UTC); the same PUT to both keeps them equal."""
    created = []
    for body, ctype in ((fields, "application/json"), (_as_xml(fields), "application/xml")):
        sent = await send(api, "POST", "/api/v1/BatchTask", body=body if isinstance(body, dict) else None,
                          data=body if isinstance(body, str) else None, ctype=ctype)
        assert sent.status == 200, (ctype, sent.text[:300])
        created.append((await api.store.get("superoffice", str(sent.body))).doc)
        status, carrier, _ = await api.request("GET", f"/api/v1/BatchTask/{sent.body}")
        assert status == 200 and {k: carrier[k] for k in fields} == fields, (ctype, carrier)
    as_json, as_xml = ({k: v for k, v in doc.items() if k not in ("Id", "Created")} for doc in created)
    assert as_json == as_xml
    # and the same change to both by PUT leaves them equal, with the change as given
    change = {k: v for k, v in fields.items() if k in SO_UPDATABLE} or {"Description": "same"}
    bodies = ((change, "application/json"), (_as_xml(change), "application/xml"))
    for (body, ctype), doc in zip(bodies, created, strict=True):
        sent = await send(api, "PUT", f"/api/v1/BatchTask/{doc['Id']}", body=body if isinstance(body, dict) else None,
                          data=body if isinstance(body, str) else None, ctype=ctype)
        assert sent.status == 200, (ctype, sent.text[:300])
        assert {k: sent.body[k] for k in change} == change
    first, second = [(await api.store.get("superoffice", str(doc["Id"]))).doc for doc in created]
    assert {k: v for k, v in first.items() if k not in ("Id", "Created")} == \
        {k: v for k, v in second.items() if k not in ("Id", "Created")}
