"""A test namespace's own webhooks, end to end: a real ``taskgate serve --testing``, the
real receiver process (:mod:`tests.e2e.hook_receiver`), subscriptions made through each
vendor's API under the namespace (SailPoint's with the ``sailpoint`` SDK, SuperOffice's by
the ``/_ns/`` prefix and by a tenant path). Each namespace's hooks are stored in its own
file and hear only its changes, with its own delivery log, and the server's hook only the
server's; keys are qualified by the namespace and its epoch, which a reset or a restore
renews (the ids begin again); a reset drops the hooks, a restore brings the checkpoint's
back, and a delete stops the dispatcher and removes the namespace's files."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from sailpoint.configuration import Configuration, ConfigurationParams
from sailpoint.triggers.api.triggers_api import TriggersApi
from sailpoint.triggers.api_client import ApiClient
from sailpoint.triggers.models.http_config import HttpConfig
from sailpoint.triggers.models.http_dispatch_mode import HttpDispatchMode
from sailpoint.triggers.models.subscription_post_request import SubscriptionPostRequest
from sailpoint.triggers.models.subscription_type import SubscriptionType

from gateway.events.signing import hmac_sha256_base64, taskgate_signature
from gateway.events.subscriptions import event_uuid
from tests.e2e.server import Server, http
from tests.e2e.test_webhooks import CONFIG, WAIT_SECONDS, Receiver

pytestmark = pytest.mark.e2e

SO_SECRET = "ns-so-secret"
WM_SECRET = "ns-wm-secret"
KEY = re.compile(r"(a|Cust777)\.[0-9a-f]{8}:([0-9]+)")


@pytest.fixture(name="receiver")
def _receiver(tmp_path: Path):
    receiver = Receiver(tmp_path)
    try:
        yield receiver
    finally:
        receiver.close()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def _deliveries(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [d for d in receiver.deliveries() if d["path"] == path and d["headers"].get("X-SuperOffice-Event") != "test"]


def _wait(receiver: Receiver, path: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(found := _deliveries(receiver, path)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _logged(url: str, auth: str, count: int) -> list[dict[str, Any]]:
    """The delivery log at *url* once it holds *count* deliveries (or after WAIT_SECONDS):
    the dispatcher records a delivery just after its receiver has answered it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while len(found := http("GET", url, auth).json["deliveries"]) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _keys(deliveries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(scope, seq) of each delivery's Idempotency-Key."""
    out = []
    for d in deliveries:
        key = d["headers"]["Idempotency-Key"]
        match = KEY.fullmatch(key)
        assert match is not None, key
        out.append((key.rpartition(":")[0], int(match.group(2))))
    return out


def _sdk(base_url: str, token: str | None) -> TriggersApi:
    params = ConfigurationParams()
    params.base_url = base_url
    params.access_token = token
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return TriggersApi(ApiClient(Configuration(params)))


def test_a_namespace_has_its_own_hooks_log_and_deliveries(tmp_path: Path, receiver: Receiver) -> None:
    server = Server(tmp_path, config=CONFIG + "\n[testing]\nenabled = true\n").start()
    auth = f"Bearer {server.admin_token}"
    base, ns = server.base_url, f"{server.base_url}/_ns/a"
    folder = tmp_path / "taskgate.db.namespaces"
    try:
        # subscriptions, through each vendor's API under the namespace (and a tenant), and one on the server
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sp = _sdk(ns, server.admin_token).create_subscription_v1(SubscriptionPostRequest(
                name="ns", trigger_id="taskgate:task-status-changed", type=SubscriptionType.HTTP,
                http_config=HttpConfig(url=f"{receiver.url}/ns-sailpoint", http_dispatch_mode=HttpDispatchMode.ASYNC)))
        so_hook = {"Name": "ns hook", "Events": ["batchtask.created", "batchtask.changed"], "Secret": SO_SECRET,
                   "State": "Active", "Type": "webhook"}
        made = {}
        for where, url, name in ((ns, "/ns-superoffice", "ns"), (f"{base}/Cust777", "/tenant", "tenant"),
                                 (base, "/server", "server")):
            reply = http("POST", f"{where}/api/v1/Webhook", auth, {**so_hook, "TargetUrl": receiver.url + url})
            assert reply.status == 200, reply.raw
            made[name] = reply.json
        reply = http("POST", f"{ns}/rest/pub/taskevents/endpoints", auth,
                     {"url": f"{receiver.url}/ns-webmethods", "secret": WM_SECRET})
        assert reply.status == 201, reply.raw
        wm = reply.json
        # each lists its own: the whole answers are what each create answered
        assert http("GET", f"{ns}/api/v1/Webhook", auth).json == [made["ns"]]
        assert http("GET", f"{base}/Cust777/api/v1/Webhook", auth).json == [made["tenant"]]
        assert http("GET", f"{base}/api/v1/Webhook", auth).json == [made["server"]]
        assert http("GET", f"{ns}/rest/pub/taskevents/endpoints", auth).json == {"endpoints": [wm]}
        assert http("GET", f"{base}/rest/pub/taskevents/endpoints", auth).json == {"endpoints": []}
        assert [s["id"] for s in http("GET", f"{ns}/trigger-subscriptions/v1", auth).json] == [sp.id]
        assert http("GET", f"{base}/trigger-subscriptions/v1", auth).json == []
        # stored in each one's own file
        assert _rows(folder / "a.db", "SELECT style, id FROM hooks ORDER BY num") == [
            ("sailpoint:trigger", sp.id), ("superoffice:webhook", str(made["ns"]["WebhookId"])),
            ("webmethods:endpoint", str(wm["id"]))]
        assert _rows(server.db, "SELECT style, id FROM hooks") == [
            ("superoffice:webhook", str(made["server"]["WebhookId"]))]
        assert _rows(folder / "Cust777.db", "SELECT style, id FROM hooks") == [
            ("superoffice:webhook", str(made["tenant"]["WebhookId"]))]

        # changes in the namespace, the tenant and the server
        task = http("POST", f"{ns}/task-status/v1", auth, {"type": "QUARTZ", "uniqueName": "u"}).json["id"]
        patch = json.dumps([{"op": "replace", "path": "/progress", "value": "half"}]).encode()
        assert http("PATCH", f"{ns}/task-status/v1/{task}", auth, data=patch,
                    headers={"Content-Type": "application/json-patch+json"}).status == 200
        batch = http("POST", f"{ns}/api/v1/BatchTask", auth, {"Name": "ns batch"}).json
        assert http("PUT", f"{ns}/api/v1/BatchTask/{batch}", auth, {"Response": "done"}).status == 200
        wm_task = http("POST", f"{ns}/rest/pub/opentask", auth, {"taskTypeID": "T"}).json["taskID"]
        assert http("POST", f"{base}/Cust777/api/v1/BatchTask", auth, {"Name": "tenant batch"}).status == 200
        assert http("POST", f"{base}/api/v1/BatchTask", auth, {"Name": "server batch"}).status == 200

        trail = _rows(folder / "a.db", "SELECT seq, style, task_id, action, at FROM audit ORDER BY seq")
        assert [(seq, style, action) for seq, style, _, action, _ in trail] == [
            (1, "sailpoint", "created"), (2, "sailpoint", "updated"), (3, "superoffice", "created"),
            (4, "superoffice", "updated"), (5, "webmethods", "created")]
        got = {path: _wait(receiver, path, count) for path, count in (
            ("/ns-sailpoint", 2), ("/ns-superoffice", 2), ("/ns-webmethods", 1), ("/tenant", 1), ("/server", 1))}
        keys = {path: _keys(ds) if path != "/server" else [d["headers"]["Idempotency-Key"] for d in ds]
                for path, ds in got.items()}
        scope = keys["/ns-sailpoint"][0][0]
        assert scope.startswith("a.")
        assert keys["/ns-sailpoint"] == [(scope, 1), (scope, 2)]
        assert keys["/ns-superoffice"] == [(scope, 3), (scope, 4)]
        assert keys["/ns-webmethods"] == [(scope, 5)]
        tenant_scope = keys["/tenant"][0][0]
        assert tenant_scope.startswith("Cust777.") and keys["/tenant"] == [(tenant_scope, 1)]
        server_seq = _rows(server.db, "SELECT max(seq) FROM audit")[0][0]
        assert keys["/server"] == [str(server_seq)]
        # the namespace's SuperOffice delivery, whole, signed with its secret
        created = got["/ns-superoffice"][0]
        assert created["headers"]["X-SuperOffice-Signature"] == hmac_sha256_base64(SO_SECRET, created["body"].encode())
        hook_num = _rows(folder / "a.db", "SELECT num FROM hooks WHERE style = 'superoffice:webhook'")[0][0]
        added = json.loads(_rows(folder / "a.db", "SELECT patch FROM audit WHERE seq = 3")[0][0])
        assert json.loads(created["body"]) == {
            "EventId": event_uuid(3, hook_num, scope), "Timestamp": trail[2][4],
            "Changes": sorted({op["path"].split("/")[1] for op in added}), "Event": "batchtask.created",
            "PrimaryKey": batch, "Entity": "batchtask", "ContextIdentifier": "", "ChangedByAssociateId": 0,
            "WebhookName": "ns hook"}
        assert json.loads(got["/tenant"][0]["body"])["ContextIdentifier"] == "Cust777"
        wm_body = json.loads(got["/ns-webmethods"][0]["body"])
        assert got["/ns-webmethods"][0]["headers"]["X-Taskgate-Signature"] == taskgate_signature(
            WM_SECRET, got["/ns-webmethods"][0]["body"].encode())
        assert (wm_body["operation"], wm_body["operationText"], wm_body["taskURL"]) == (
            1, "created", f"/rest/pub/opentask/{wm_task}")

        # each delivery log is its own, stored in its own file
        log = _logged(f"{ns}/webhooks/log", auth, 5)
        assert sorted((d["hook"], d["event"], d["attempt"], d["status"], d["outcome"], d["error"]) for d in log) == [
            (f"sailpoint:trigger/{sp.id}", 1, 1, 200, "delivered", ""),
            (f"sailpoint:trigger/{sp.id}", 2, 1, 200, "delivered", ""),
            (f"superoffice:webhook/{made['ns']['WebhookId']}", 3, 1, 200, "delivered", ""),
            (f"superoffice:webhook/{made['ns']['WebhookId']}", 4, 1, 200, "delivered", ""),
            (f"webmethods:endpoint/{wm['id']}", 5, 1, 200, "delivered", "")]
        assert sorted(_rows(folder / "a.db", "SELECT event, outcome FROM hook_log")) == [
            (1, "delivered"), (2, "delivered"), (3, "delivered"), (4, "delivered"), (5, "delivered")]
        server_log = _logged(f"{base}/webhooks/log", auth, 1)
        assert [(d["hook"], d["event"], d["outcome"]) for d in server_log] == [
            (f"superoffice:webhook/{made['server']['WebhookId']}", server_seq, "delivered")]

        # a checkpoint with the hooks, a change, a restore: the checkpoint's hooks and cursors
        # are back, the ids begin again after its head, and the keys carry a new epoch
        assert http("POST", f"{base}/_taskgate/namespaces/a/checkpoints", auth).status == 201
        assert http("PUT", f"{ns}/api/v1/BatchTask/{batch}", auth, {"Response": "lost"}).status == 200
        assert _keys(_wait(receiver, "/ns-superoffice", 3))[2] == (scope, 6)
        assert http("POST", f"{base}/_taskgate/namespaces/a/checkpoints/1/restore", auth).status == 200
        assert _rows(folder / "a.db", "SELECT max(seq) FROM audit") == [(5,)]
        assert http("PUT", f"{ns}/api/v1/BatchTask/{batch}", auth, {"Response": "kept"}).status == 200
        after = _keys(_wait(receiver, "/ns-superoffice", 4))
        assert after[3][1] == 6 and after[3][0].startswith("a.") and after[3][0] != scope
        assert json.loads(_deliveries(receiver, "/ns-superoffice")[3]["body"])["EventId"] == event_uuid(
            6, hook_num, after[3][0])

        # a reset drops the hooks: the namespace's changes reach nobody, the server's still do
        assert http("POST", f"{base}/_taskgate/namespaces/a/reset", auth).status == 200
        assert http("GET", f"{ns}/api/v1/Webhook", auth).json == []
        assert _rows(folder / "a.db", "SELECT count(*) FROM hooks") == [(0,)]
        assert http("POST", f"{ns}/api/v1/BatchTask", auth, {"Name": "unheard"}).status == 200
        # a delete stops the tenant's dispatcher and removes its files
        assert http("DELETE", f"{base}/_taskgate/namespaces/Cust777", auth).status == 204
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith("Cust777")) == []
        assert http("POST", f"{base}/api/v1/BatchTask", auth, {"Name": "server two"}).status == 200
        assert len(_wait(receiver, "/server", 2)) == 2
        assert [len(_deliveries(receiver, p)) for p in ("/ns-sailpoint", "/ns-superoffice", "/ns-webmethods",
                                                         "/tenant")] == [2, 4, 1, 1]
    finally:
        assert server.stop() == 0
