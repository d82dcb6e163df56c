"""Who may change a SailPoint task: the user its launcher names, or an admin; anyone signed
in may read. On the real app, whole bodies, nothing stored on a refusal."""

from __future__ import annotations

import json
from typing import Any

from gateway.apis import sailpoint
from gateway.apis.sailpoint_rules import Caller, may_update
from gateway.auth import AUTHENTICATOR

PATCH_JSON = "application/json-patch+json"
OPS = [{"op": "replace", "path": "/completionStatus", "value": "SUCCESS"}]
#: the members of a TaskStatus as created here: every answer carries exactly these
MEMBERS = {"id", "type", "uniqueName", "description", "parentName", "launcher", "created", "modified", "launched",
           "completed", "completionStatus", "messages", "returns", "attributes", "progress", "percentComplete"}


def error_body(text: str, tracking_id: str) -> dict[str, Any]:
    return {"detailCode": "403 Forbidden", "trackingId": tracking_id,
            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}], "causes": []}


def refusal(task_id: str, launcher: str) -> str:
    return f"TaskStatus {task_id!r} belongs to its launcher {launcher!r}: only that user or an admin may change it"


async def create(api, task_id: str, **fields: Any) -> dict[str, Any]:
    status, doc, _ = await api.request("POST", "/task-status/v1",
                                       body={"id": task_id, "type": "QUARTZ", "uniqueName": "u", **fields})
    assert status == 201 and set(doc) == MEMBERS, doc
    return doc


async def bob(api) -> str:
    await api.store.add_user("bob", "user", None)
    return await api.client.app[AUTHENTICATOR].create_token("bob")


def test_the_rule_admins_and_the_launcher_only():
    task = {"id": "t", "launcher": "alice"}
    assert may_update(Caller("alice", False), task)
    assert may_update(Caller("root", True), task)
    assert not may_update(Caller("bob", False), task)
    assert not may_update(Caller("bob", False), {"id": "t"})  # no launcher at all: admins only
    assert may_update(Caller("root", True), {"id": "t"})


async def test_the_owner_patches_and_the_answer_is_the_vendors_task(api):
    before = await create(api, "t1", launcher="alice")
    status, doc, headers = await api.request("PATCH", "/task-status/v1/t1", token=api.user, body=OPS,
                                             content_type=PATCH_JSON)
    assert (status, headers["ETag"]) == (200, '"2"')
    assert doc == {**before, "completionStatus": "SUCCESS", "modified": doc["modified"]}
    assert await api.db_rows("SELECT version, doc FROM tasks WHERE id = 't1'") == [
        (2, json.dumps(doc, separators=(",", ":")))]
    (actor,) = await api.db_rows("SELECT actor FROM audit WHERE task_id = 't1' AND version = 2")
    assert actor == ("alice",)


async def test_another_plain_user_is_refused_and_nothing_is_stored(api):
    await create(api, "t1", launcher="alice")
    token = await bob(api)
    before = await api.snapshot()
    for path in ("/task-status/v1/t1", "/beta/task-status/t1", "/v2026/task-status/t1"):
        for ops in (OPS, [{"op": "test", "path": "/progress", "value": None}]):  # even a patch that changes nothing
            status, err, headers = await api.request("PATCH", path, token=token, body=ops, content_type=PATCH_JSON)
            assert (status, err) == (403, error_body(refusal("t1", "alice"), headers["X-Request-ID"]))
    assert await api.snapshot() == before
    # reads are not restricted: SailPoint's list is tenant-wide
    status, doc, _ = await api.request("GET", "/task-status/v1/t1", token=token)
    assert status == 200 and doc["launcher"] == "alice"
    status, docs, _ = await api.request("GET", "/task-status/v1", token=token)
    assert status == 200 and [d["id"] for d in docs] == ["t1"]


async def test_the_launcher_cannot_be_patched_to_take_a_task(api):
    await create(api, "t1", launcher="alice")
    token = await bob(api)
    before = await api.snapshot()
    status, err, _ = await api.request("PATCH", "/task-status/v1/t1", token=api.user, content_type=PATCH_JSON,
                                       body=[{"op": "replace", "path": "/launcher", "value": "bob"}])
    assert status == 400 and "'/launcher' cannot be changed" in err["messages"][0]["text"]
    status, _, _ = await api.request("PATCH", "/task-status/v1/t1", token=token, body=OPS, content_type=PATCH_JSON)
    assert status == 403
    assert await api.snapshot() == before


async def test_an_admin_changes_any_task(api):
    await create(api, "t1", launcher="alice")
    await create(api, "t2", launcher="Aggregation [system]")
    for task_id in ("t1", "t2"):
        status, doc, headers = await api.request("PATCH", f"/task-status/v1/{task_id}", body=OPS,
                                                 content_type=PATCH_JSON)
        assert (status, doc["completionStatus"], headers["ETag"]) == (200, "SUCCESS", '"2"')
        assert set(doc) == MEMBERS


async def test_a_task_created_without_a_launcher_is_the_creating_admins(api):
    doc = await create(api, "t1")
    assert doc["launcher"] == "root"
    before = await api.snapshot()
    status, err, headers = await api.request("PATCH", "/task-status/v1/t1", token=api.user, body=OPS,
                                             content_type=PATCH_JSON)
    assert (status, err) == (403, error_body(refusal("t1", "root"), headers["X-Request-ID"]))
    assert await api.snapshot() == before


async def test_a_task_whose_launcher_names_no_user_is_for_admins_only(api):
    # stored by an earlier taskgate (an import: launcher "import"), or an ISC identity name
    task_id, doc = sailpoint.import_task({"id": "old", "type": "QPOC", "uniqueName": "u"}, "2024-01-01T00:00:00.000Z")
    await api.store.put("sailpoint", task_id, doc, actor="cli:import", request_id="import:1")
    await create(api, "isc", launcher="2c9180835d2e5168015d32f890ca1581")
    before = await api.snapshot()
    for task_id, launcher in (("old", "import"), ("isc", "2c9180835d2e5168015d32f890ca1581")):
        status, err, headers = await api.request("PATCH", f"/task-status/v1/{task_id}", token=api.user, body=OPS,
                                                 content_type=PATCH_JSON)
        assert (status, err) == (403, error_body(refusal(task_id, launcher), headers["X-Request-ID"]))
    assert await api.snapshot() == before
    for task_id in ("old", "isc"):
        status, doc, _ = await api.request("PATCH", f"/task-status/v1/{task_id}", body=OPS, content_type=PATCH_JSON)
        assert (status, doc["completionStatus"]) == (200, "SUCCESS")


async def test_an_unknown_task_is_404_for_a_plain_user_too(api):
    status, err, _ = await api.request("PATCH", "/task-status/v1/nope", token=api.user, body=OPS,
                                       content_type=PATCH_JSON)
    assert status == 404 and err["detailCode"] == "404 Not found"
