"""Per-user storage quotas and the write rate, on the real app and a real SQLite file: an
ordinary user's write past a limit is a 413 (or 429 with Retry-After) in its style's
error shape and stores nothing; admins are not limited; the usage the store keeps equals
what the rows hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.apis import superoffice
from gateway.apis.webmethods_rules import OWNER_FIELD
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password
from gateway.config import Config
from gateway.context import STORE
from gateway.quotas import WriteRate
from tests.apis.test_webmethods_fixtures import BASE, envelope
from tests.conftest import Api
from tests.openapi_check import Document, answer

TASK_TYPE = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"
MIB = 2**20


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Config:
    return Config(base_dir=str(tmp_path)).replace("quota", tasks_per_user=3, mib_per_user=1)


async def wm_create(api: Api, token: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
    status, body, _ = await api.request("POST", BASE, token=token,
                                        body={"taskTypeID": TASK_TYPE, "TaskData": data or {}})
    return status, body


async def held(api: Api, style: str, owner: str) -> tuple[int, int]:
    """What *owner*'s live tasks and the trails of its deleted ones hold, counted from the
    rows: an audit row is the owner's whose task it deleted at or after it (the grave of its
    life), or, for a present life, whose live task it is."""
    (tasks, docs), = await api.db_rows(
        "SELECT count(*), coalesce(sum(length(CAST(doc AS BLOB))), 0) FROM tasks WHERE style = ? AND owner = ?",
        style, owner)
    (trail,), = await api.db_rows(
        "SELECT coalesce(sum(length(CAST(a.patch AS BLOB)) + length(CAST(a.undo AS BLOB))), 0) FROM audit AS a "
        "WHERE a.style = ? AND coalesce((SELECT g.owner FROM graves AS g WHERE g.style = a.style "
        "AND g.task_id = a.task_id AND g.seq >= a.seq ORDER BY g.seq LIMIT 1), (SELECT t.owner FROM tasks AS t "
        "WHERE t.style = a.style AND t.id = a.task_id AND NOT EXISTS (SELECT 1 FROM graves AS g "
        "WHERE g.style = a.style AND g.task_id = a.task_id AND g.seq >= a.seq))) = ?", style, owner)
    return tasks, docs + trail


def tasks_refusal(owner: str, count: int, style: str = "webmethods") -> str:
    return (f"{owner} holds {count} {style} tasks: the quota is 3 tasks per user (quota.tasks_per_user); "
            "delete some, or ask an administrator")


def bytes_refusal(owner: str, total: int, style: str) -> str:
    return (f"{owner}'s {style} tasks would take {total} bytes with their audit trail: the quota is {MIB} bytes "
            "per user (quota.mib_per_user = 1); make the task smaller, or ask an administrator (deleted tasks' "
            "audit rows count until they are purged)")


async def test_an_ordinary_user_s_creates_stop_at_the_task_quota_and_store_nothing(api: Api):
    for _ in range(3):
        assert (await wm_create(api, api.user))[0] == 200
    before = await api.snapshot()
    status, body = await wm_create(api, api.user)
    assert (status, body) == (413, envelope(tasks_refusal("alice", 3), user="alice",
                                            time=body["$errorInfo"]["$time"]))
    assert await api.snapshot() == before
    assert await api.store.usage("webmethods", "alice") == await held(api, "webmethods", "alice")
    assert (await api.store.usage("webmethods", "alice"))[0] == 3
    # an admin is not limited, and what an admin creates is the admin's
    for _ in range(5):
        assert (await wm_create(api, api.admin))[0] == 200
    assert (await api.store.usage("webmethods", "root"))[0] == 5


async def test_the_byte_quota_counts_documents_and_audit_rows_and_a_delete_keeps_the_trail_until_purged(api: Api):
    big = {"blob": "x" * 300_000}
    status, body = await wm_create(api, api.user, big)
    assert status == 200
    first = body["taskID"]
    used = await api.store.usage("webmethods", "alice")
    assert used == await held(api, "webmethods", "alice") and used[1] > 600_000  # the document and its patch
    before = await api.snapshot()
    status, body = await wm_create(api, api.user, big)
    (_, size), = await api.db_rows("SELECT 1, size FROM tasks WHERE style = 'webmethods' AND id = ?", first)
    assert status == 413
    message = body["$error"]
    total = int(message.split("would take ")[1].split(" bytes")[0])
    assert total > MIB and message == bytes_refusal("alice", total, "webmethods")
    assert body == envelope(message, user="alice", time=body["$errorInfo"]["$time"])
    assert await api.snapshot() == before
    # a PUT that makes the task smaller takes about what it frees: it passes
    status, _, _ = await api.request("PUT", f"{BASE}/{first}", token=api.user, body={"TaskData": {"small": 1}})
    assert status == 200
    assert await api.store.usage("webmethods", "alice") == await held(api, "webmethods", "alice")
    # deleting gives the task back, not its trail: its audit rows stay in the file, and
    # counted (the update's undo and the create's patch each hold the 300,000 characters)
    status, _, _ = await api.request("DELETE", f"{BASE}/{first}", token=api.user)
    assert status == 200
    trail = await held(api, "webmethods", "alice")
    assert await api.store.usage("webmethods", "alice") == trail and trail[0] == 0 and trail[1] > 600_000
    assert await api.db_rows("SELECT seq, task_id, owner, bytes FROM graves") == [(3, first, "alice", trail[1])]
    assert size > 0
    before = await api.snapshot()
    status, body = await wm_create(api, api.user, big)
    total = trail[1] + used[1]
    assert (status, body) == (413, envelope(bytes_refusal("alice", total, "webmethods"), user="alice",
                                            time=body["$errorInfo"]["$time"]))
    assert await api.snapshot() == before
    # the trail's newest row stays (the next change is numbered after it) ...
    assert await api.store.purge_deleted("9999-12-31T23:59:59Z") == (0, 0)
    # ... and once another change follows it, a purge of the lives deleted before now drops
    # the trail and gives its bytes back
    assert (await wm_create(api, api.admin))[0] == 200
    assert await api.store.purge_deleted("9999-12-31T23:59:59Z") == (1, 3)
    assert await api.db_rows("SELECT seq FROM audit") + await api.db_rows("SELECT count(*) FROM graves") \
        == [(4,), (0,)]
    assert await api.store.usage("webmethods", "alice") == (0, 0)
    assert (await wm_create(api, api.user, big))[0] == 200
    assert await api.store.usage("webmethods", "alice") == await held(api, "webmethods", "alice") == used


async def test_naming_the_owner_field_again_recounts_what_the_write_path_counted(api: Api):
    for token in (api.user, api.user, api.admin):
        assert (await wm_create(api, token, {"n": "é" * 1000}))[0] == 200
    status, _, _ = await api.request("PUT", f"{BASE}/1", token=api.user, body={"TaskData": {"n": "ü" * 3000}})
    assert status == 200
    counted = {o: await api.store.usage("webmethods", o) for o in ("alice", "root")}
    assert counted == {o: await held(api, "webmethods", o) for o in ("alice", "root")}
    for statement in ("UPDATE tasks SET owner = NULL, size = NULL", "DELETE FROM usage", "DELETE FROM owners"):
        await api.store.write_sql(statement)
    await api.store.ensure_owner("webmethods", OWNER_FIELD)
    assert {o: await api.store.usage("webmethods", o) for o in ("alice", "root")} == counted


async def test_a_sailpoint_patch_past_the_launcher_s_byte_quota_is_a_413_error_response_dto(api: Api):
    status, _, _ = await api.request("POST", "/task-status/v1", body={
        "id": "t1", "type": "QUARTZ", "uniqueName": "u", "launcher": "alice", "description": "d" * 400_000})
    assert status == 201  # an admin's create: not limited, but alice's from now on
    before = await api.snapshot()
    ops = [{"op": "replace", "path": "/attributes", "value": {"log": "e" * 200_000}}]
    status, body, headers = await api.request("PATCH", "/task-status/v1/t1", token=api.user, body=ops,
                                              content_type="application/json-patch+json")
    text = body["messages"][0]["text"]
    total = int(text.split("would take ")[1].split(" bytes")[0])
    assert (status, body) == (413, {"detailCode": "413 Payload Too Large", "trackingId": headers["X-Request-ID"],
                                    "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT",
                                                  "text": bytes_refusal("alice", total, "sailpoint")}],
                                    "causes": []})
    assert total > MIB
    assert await api.snapshot() == before


async def test_a_superoffice_owner_s_put_past_the_byte_quota_is_a_413_so_error(api: Api):
    await api.store.add_user("tje0", "user", hash_password("Tje0"), associate_id=627)
    token = await api.client.app[AUTHENTICATOR].create_token("tje0")
    task_id, doc = superoffice.import_task({"Id": 819, "AssociateId": 627, "Context": "c" * 600_000},
                                           "2024-01-02T08:00:00.000Z")
    await api.store.put("superoffice", task_id, doc, actor="seed", request_id="seed")
    assert (await api.store.usage("superoffice", "627"))[1] > MIB
    before = await api.snapshot()
    status, body, _ = await api.request("PUT", "/api/v1/BatchTask/819", token=token,
                                        body={"Description": "a change adds an audit row"})
    total = int(body["ErrorMessage"].split("would take ")[1].split(" bytes")[0])
    assert (status, body) == (413, {"Error": True, "ErrorType": "RequestEntityTooLargeException",
                                    "ErrorMessage": bytes_refusal("627", total, "superoffice"),
                                    "ErrorSource": "SuperOffice.Services.Implementation"})
    assert await api.snapshot() == before
    # the admin is not limited
    status, _, _ = await api.request("PUT", "/api/v1/BatchTask/819", body={"Description": "admin"})
    assert status == 200


def test_the_write_rate_is_a_token_bucket_per_user():
    now = [100.0]
    rate = WriteRate(2.0, 3, clock=lambda: now[0])
    assert [rate.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.take("alice") == pytest.approx(0.5)  # one write is due in half a second
    assert rate.take("bob") == 0.0  # buckets are per user
    now[0] += 0.5
    assert rate.take("alice") == 0.0
    assert rate.take("alice") == pytest.approx(0.5)
    now[0] += 10
    assert [rate.take("alice") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refilled to the burst, not beyond


async def test_writes_past_the_rate_are_429_with_retry_after_in_each_style_s_shape(aiohttp_client, tmp_path: Path):
    config = Config(base_dir=str(tmp_path)).replace("quota", writes_per_second=0.01, write_burst=2)
    client = await aiohttp_client(create_app(config))
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", None, associate_id=627)
    root, alice = await auth.create_token("root"), await auth.create_token("alice")
    api = Api(client, store, admin=root, user=alice, read_only=alice)
    refusal = ("alice is writing faster than 0.01 writes per second (quota.writes_per_second); "
               "retry in 100 s")
    # webMethods: two creates, then the third is refused
    assert [(await wm_create(api, alice))[0] for _ in range(2)] == [200, 200]
    before = await api.snapshot()
    status, body, headers = await api.request("POST", BASE, token=alice, body={"taskTypeID": TASK_TYPE})
    assert (status, headers["Retry-After"]) == (429, "100")
    assert body == envelope(refusal, user="alice", time=body["$errorInfo"]["$time"])
    # SailPoint (the same user's bucket, empty now)
    status, _, _ = await api.request("POST", "/task-status/v1", body={"id": "t1", "type": "QUARTZ",
                                                                      "uniqueName": "u", "launcher": "alice"})
    assert status == 201  # the admin is not limited
    before = await api.snapshot()
    status, body, headers = await api.request("PATCH", "/task-status/v1/t1", token=alice, body=[
        {"op": "replace", "path": "/completionStatus", "value": "SUCCESS"}], content_type="application/json-patch+json")
    assert (status, headers["Retry-After"]) == (429, "100")
    assert body == {"message": " Rate Limit Exceeded "}  # SailPoint's 429 body, whatever the cause
    # SuperOffice
    task_id, doc = superoffice.import_task({"Id": 819, "AssociateId": 627}, "2024-01-02T08:00:00.000Z")
    await store.put("superoffice", task_id, doc, actor="seed", request_id="seed")
    before = await api.snapshot()
    status, body, headers = await api.request("PUT", "/api/v1/BatchTask/819", token=alice,
                                              body={"Description": "x"})
    assert (status, headers["Retry-After"]) == (429, "100")
    assert body == {"Error": True, "ErrorType": "TooManyRequestsException", "ErrorMessage": refusal,
                    "ErrorSource": "SuperOffice.Services.Implementation"}
    assert await api.snapshot() == before
    # reads are not writes
    status, _, _ = await api.request("GET", "/task-status/v1/t1", token=alice)
    assert status == 200
    assert json.loads((await api.db_rows("SELECT doc FROM tasks WHERE id = 't1'"))[0][0])["completionStatus"] is None


async def test_the_413s_and_429s_are_the_ones_the_openapi_documents_describe(aiohttp_client, tmp_path: Path):
    config = Config(base_dir=str(tmp_path)).replace("quota", tasks_per_user=1, writes_per_second=0.01,
                                                    write_burst=3)
    client = await aiohttp_client(create_app(config))
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", None, associate_id=627)
    alice = {"Authorization": f"Bearer {await auth.create_token('alice')}"}
    document = Document(json.loads(await (await client.get("/openapi.json")).read()))
    created = await answer(client, document, "POST", BASE, body={"taskTypeID": TASK_TYPE}, headers=alice)
    assert created.status == 200
    over = await answer(client, document, "POST", BASE, body={"taskTypeID": TASK_TYPE}, headers=alice)
    assert over.status == 413  # the task quota, checked against the document's 413
    assert (await answer(client, document, "DELETE", f"{BASE}/1", headers=alice)).status == 200
    for method, path, ctype, body in (
            ("POST", BASE, "application/json", {"taskTypeID": TASK_TYPE}),
            ("PATCH", "/task-status/v1/t1", "application/json-patch+json",
             [{"op": "replace", "path": "/completionStatus", "value": "SUCCESS"}]),
            ("PUT", "/api/v1/BatchTask/819", "application/json", {"Description": "x"})):
        refused = await answer(client, document, method, path, body=body, ctype=ctype, headers=alice)
        assert (refused.status, refused.headers["Retry-After"]) == (429, "100"), refused.body
