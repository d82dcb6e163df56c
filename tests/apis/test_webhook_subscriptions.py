"""The webhook subscription APIs of the three styles, on the production app with a real
receiver on loopback: whole bodies, refusals in each vendor's error shape (nothing
stored), the SSRF guard's refusal, and every answer checked against /openapi.json
(the Webhooks tag: every operation of it is answered here).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import Config
from gateway.events.signing import hmac_sha256_base64
from tests.conftest import Api
from tests.openapi_check import Answer, Document, answer
from tests.waiting import until_true

TAG = "Webhooks"
SUBS = "/trigger-subscriptions/v1"


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=self.status, text="ok")


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Config:
    return Config(base_dir=str(tmp_path)).replace("webhooks", allow_targets="127.0.0.1", retry_base_seconds=0.01,
                                                  retry_max_seconds=0.02, poll_seconds=0.05, max_failures=3)


@pytest.fixture(name="receiver")
async def _receiver(aiohttp_server) -> Receiver:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    server = await aiohttp_server(app)
    receiver.url = str(server.make_url("/hook"))
    return receiver


@pytest.fixture(name="document")
async def _document(api: Api) -> Document:
    resp = await api.client.get("/openapi.json")
    return Document(json.loads(await resp.read()), TAG)


def _sp_error(text: str, status_code: str, tracking: str) -> dict[str, Any]:
    return {"detailCode": status_code, "trackingId": tracking,
            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}], "causes": []}


async def test_sailpoint_trigger_subscriptions(api: Api, receiver: Receiver, document: Document) -> None:
    async def send(method: str, path: str, token: str | None = None, **kw: Any) -> Answer:
        return await answer(api.client, document, method, path, headers=api.auth(token), **kw)

    body = {"name": "aggregations", "triggerId": "idn:account-aggregation-completed", "type": "HTTP",
            "httpConfig": {"url": receiver.url, "httpDispatchMode": "SYNC", "httpAuthenticationType": "BASIC_AUTH",
                           "basicAuthConfig": {"userName": "hook", "password": "pw"}},
            "filter": '$[?($.status == "Failed")]'}
    made = await send("POST", SUBS, body=body)
    assert made.status == 201
    sub = made.json()
    assert sub == {"id": sub["id"], "name": "aggregations", "description": None,
                   "triggerId": "idn:account-aggregation-completed", "triggerName": "Account Aggregation Completed",
                   "type": "HTTP", "responseDeadline": "PT1H",
                   "httpConfig": {"url": receiver.url, "httpDispatchMode": "SYNC",
                                  "httpAuthenticationType": "BASIC_AUTH",
                                  "basicAuthConfig": {"userName": "hook", "password": None},
                                  "bearerTokenAuthConfig": None},
                   "enabled": True, "filter": '$[?($.status == "Failed")]'}
    for path in (SUBS, "/beta/trigger-subscriptions", "/v2024/trigger-subscriptions", "/v2025/trigger-subscriptions"):
        listed = await send("GET", f'{path}?filters=id eq "{sub["id"]}"&count=true')
        assert (listed.status, listed.json(), listed.headers["X-Total-Count"]) == (200, [sub], "1")
    assert (await send("GET", f"{SUBS}/{sub['id']}")).json() == sub
    # refusals: the vendor's ErrorResponseDto, nothing stored
    before = await api.snapshot(), await api.db_rows("SELECT * FROM hooks")
    refused = await send("POST", SUBS, token=api.user, body=body)
    assert refused.status == 403
    assert refused.json() == _sp_error("only an admin may manage webhook subscriptions", "403 Forbidden",
                                       refused.json()["trackingId"])
    for bad, why in (({**body, "type": "EVENTBRIDGE"}, "type 'EVENTBRIDGE' is not served: only HTTP subscriptions are"),
                     ({**body, "filter": "$[?("}, None), ({**body, "triggerId": "idn:nope"}, None),
                     ({**body, "httpConfig": {**body["httpConfig"], "url": "http://169.254.169.254/latest"}},
                      "webhook target refused: the target host '169.254.169.254' resolves to 169.254.169.254, "
                      "a link-local address (cloud metadata lives there); webhooks.allow_targets lists the "
                      "addresses allowed anyway")):
        got = await send("POST", SUBS, body=bad)
        assert got.status == 400, bad
        if why is not None:
            assert got.json()["messages"][0]["text"] == why
    assert (await send("GET", f"{SUBS}/nope")).status == 404
    assert (await api.snapshot(), await api.db_rows("SELECT * FROM hooks")) == before
    # patch (JSON Patch of patchable members), put (a null secret keeps the stored one)
    patched = await send("PATCH", f"{SUBS}/{sub['id']}", ctype="application/json-patch+json",
                         body=[{"op": "replace", "path": "/description", "value": "failed ones"}])
    assert (patched.status, patched.json()) == (200, {**sub, "description": "failed ones"})
    assert (await send("PATCH", f"{SUBS}/{sub['id']}", ctype="application/json-patch+json",
                       body=[{"op": "replace", "path": "/id", "value": "x"}])).status == 400
    put = await send("PUT", f"{SUBS}/{sub['id']}", body={k: v for k, v in patched.json().items()
                                                        if k not in ("id", "triggerId", "triggerName")})
    assert (put.status, put.json()) == (200, {**sub, "description": "failed ones"})
    # an aggregation that fails is sent (basic auth, the vendor's payload); one that succeeds is filtered out
    for status in ("SUCCESS", "ERROR"):
        created = await api.request("POST", "/task-status/v1", body={
            "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation", "launched": "2024-05-17T19:30:00.000Z",
            "target": {"id": "2c9180835d2e5168015d32f890ca1581", "type": "APPLICATION", "name": "HR [source]"},
            "attributes": {"scanned": 7, "added": 2}})
        await api.request("PATCH", f"/task-status/v1/{created[1]['id']}", content_type="application/json-patch+json",
                          body=[{"op": "replace", "path": "/completionStatus", "value": status},
                                {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"}])
    await until_true(lambda: len(receiver.got) == 1)
    await asyncio.sleep(0.2)  # and no second one
    path, headers, raw = receiver.got[0]
    assert headers["Authorization"] == "Basic aG9vazpwdw=="
    assert json.loads(raw) == {"source": {"type": "SOURCE", "id": "2c9180835d2e5168015d32f890ca1581",
                                          "name": "HR [source]"},
                               "status": "Failed", "started": "2024-05-17T19:30:00.000Z",
                               "completed": "2024-05-17T19:33:16.470Z", "errors": [], "warnings": [],
                               "stats": {"scanned": 7, "unchanged": 0, "changed": 0, "added": 2, "removed": 0}}
    # the test invocation sends the example at once; delete
    tested = await send("POST", "/trigger-invocations/v1/test", body={
        "triggerId": "idn:account-aggregation-completed", "contentJson": {}})
    assert tested.status == 204 and len(receiver.got) == 2 and receiver.got[1][1]["X-Taskgate-Test"] == "true"
    for version in ("beta", "v2024", "v2025"):
        assert (await send("POST", f"/{version}/trigger-invocations/test", body={
            "triggerId": "idn:account-aggregation-completed", "contentJson": {}, "subscriptionIds": []})).status == 204
    assert (await send("DELETE", f"{SUBS}/{sub['id']}")).status == 204
    assert (await send("GET", SUBS)).json() == []
    assert (await send("DELETE", f"{SUBS}/{sub['id']}")).status == 404
    for version in ("beta", "v2024", "v2025"):  # every versioned route answers
        base = f"/{version}/trigger-subscriptions"
        other = (await send("POST", base, body={**body, "filter": None})).json()
        assert (await send("GET", f"{base}/{other['id']}")).status == 200
        assert (await send("PUT", f"{base}/{other['id']}", body={**body, "name": "n"})).json()["name"] == "n"
        assert (await send("PATCH", f"{base}/{other['id']}", ctype="application/json-patch+json",
                           body=[{"op": "replace", "path": "/enabled", "value": False}])).json()["enabled"] is False
        assert (await send("DELETE", f"{base}/{other['id']}")).status == 204
    await _superoffice_and_webmethods(api, receiver, send)
    assert document.unanswered() == []


async def _superoffice_and_webmethods(api: Api, receiver: Receiver, send: Any) -> None:
    receiver.got.clear()
    body = {"Name": "batch tasks", "Events": ["batchtask.changed"], "TargetUrl": receiver.url, "Secret": "s3cret",
            "Headers": {"X-Team": "ops"}, "Properties": {"region": "eu"}}
    for prefix in ("", "/Cust12345"):
        default = await send("GET", f"{prefix}/api/v1/Webhook/default")
        assert default.json()["State"] == "Active" and default.json()["Type"] == "webhook"
        result = await send("POST", f"{prefix}/api/v1/Webhook/Test", body=body)
        assert result.json() == {"Success": True, "Message": "HTTP 200", "TableRight": None, "FieldProperties": {}}
    made = await send("POST", "/Cust12345/api/v1/Webhook", body=body)
    assert made.status == 200
    hook = made.json()
    assert hook == {**body, "WebhookId": hook["WebhookId"], "State": "Active", "Type": "webhook",
                    "Registered": hook["Registered"], "Updated": hook["Registered"], "ErrorsEmail": None,
                    "RegisteredAssociate": {"AssociateId": 0, "Name": "root", "Type": "Employee"},
                    "UpdatedAssociate": {"AssociateId": 0, "Name": "root", "Type": "Employee"}}
    test_path, test_headers, test_raw = receiver.got[-1]  # the test event the create sent
    assert test_headers["X-SuperOffice-Event"] == "test" and test_headers["X-Hook-Test"] == "true"
    assert test_headers["X-SuperOffice-Signature"] == hmac_sha256_base64("s3cret", test_raw)
    for prefix in ("", "/Cust12345"):
        assert (await send("GET", f"{prefix}/api/v1/Webhook")).json() == [hook]
        assert (await send("GET", f"{prefix}/api/v1/Webhook/{hook['WebhookId']}")).json() == hook
    refused = await send("POST", "/api/v1/Webhook", token=api.user, body=body)
    assert (refused.status, refused.json()) == (403, {
        "Error": True, "ErrorType": "SoAccessDeniedException",
        "ErrorMessage": "only an admin may manage webhook subscriptions",
        "ErrorSource": "SuperOffice.Services.Implementation"})
    # a target the default guard refuses: a private address (allow_targets lists loopback only)
    private = await send("POST", "/api/v1/Webhook", body={**body, "TargetUrl": "http://10.0.0.7/hook"})
    assert (private.status, private.json()["ErrorMessage"]) == (400, (
        "webhook target refused: the target host '10.0.0.7' resolves to 10.0.0.7, a private address "
        "(webhooks.allow_private is off); webhooks.allow_targets lists the addresses allowed anyway"))
    assert (await send("POST", "/api/v1/Webhook", body={**body, "Headers": {"Host": "x"}})).status == 400
    receiver.got.clear()
    task = (await api.request("POST", "/api/v1/BatchTask", body={"Name": "export", "State": "Started"}))[1]
    await api.request("PUT", f"/api/v1/BatchTask/{task}", body={"Response": "half way"})
    await until_true(lambda: len(receiver.got) == 1)
    _path, headers, raw = receiver.got[0]
    sent = json.loads(raw)
    assert sent == {"EventId": sent["EventId"], "Timestamp": sent["Timestamp"], "Changes": ["Response"],
                    "Event": "batchtask.changed", "PrimaryKey": task, "Entity": "batchtask",
                    "ContextIdentifier": "Cust12345", "ChangedByAssociateId": 0, "WebhookName": "batch tasks",
                    "region": "eu"}
    assert headers["X-SuperOffice-Signature"] == hmac_sha256_base64("s3cret", raw)
    assert (headers["X-SuperOffice-Event"], headers["X-SuperOffice-EventId"], headers["X-Team"]) == (
        "batchtask.changed", sent["EventId"], "ops")
    assert headers["Idempotency-Key"].isdigit()
    url = f"/api/v1/Webhook/{hook['WebhookId']}"
    stopped = await send("PATCH", url, ctype="application/merge-patch+json", body={"State": "Stopped"})
    assert stopped.json()["State"] == "Stopped"
    assert (await send("PATCH", url, ctype="application/json-patch+json",
                       body=[{"op": "replace", "path": "/Name", "value": "n"}])).json()["Name"] == "n"
    put = await send("PUT", f"/Cust12345{url}", body={**body, "State": "Active"})
    assert put.json()["State"] == "Active"
    for prefix in ("", "/Cust12345"):
        again = (await send("POST", f"{prefix}/api/v1/Webhook", body=body)).json()["WebhookId"]
        assert (await send("PUT", f"{prefix}/api/v1/Webhook/{again}", body=body)).status == 200
        assert (await send("PATCH", f"{prefix}/api/v1/Webhook/{again}", ctype="application/merge-patch+json",
                           body={"Name": "m"})).status == 200
        assert (await send("DELETE", f"{prefix}/api/v1/Webhook/{again}")).status == 204
    assert (await send("GET", "/api/v1/Webhook/999999")).status == 404

    ep = "/rest/pub/taskevents/endpoints"
    made = await send("POST", ep, body={"url": receiver.url, "secret": "wm"})
    endpoint = made.json()
    assert (made.status, endpoint) == (201, {"id": endpoint["id"], "url": receiver.url, "secret": None,
                                             "enabled": True, "status": "active", "created": endpoint["created"],
                                             "updated": endpoint["updated"]})
    assert (await send("GET", ep)).json() == {"endpoints": [endpoint]}
    assert (await send("GET", f"{ep}/{endpoint['id']}")).json() == endpoint
    refused = await send("POST", ep, token=api.user, body={"url": receiver.url})
    assert (refused.status, refused.json()["$error"]) == (403, "only an admin may manage webhook subscriptions")
    assert (await send("POST", ep, body={"url": "http://127.0.0.1.nip.invalid/x"})).status == 400
    put = await send("PUT", f"{ep}/{endpoint['id']}", body={"url": receiver.url, "enabled": False})
    assert put.json()["status"] == "stopped"
    log = await send("GET", "/webhooks/log?limit=10")
    assert log.status == 200 and log.json()["deliveries"][0]["outcome"] == "delivered"
    assert (await send("GET", "/webhooks/log?hook=nope")).status == 404
    assert (await send("DELETE", f"{ep}/{endpoint['id']}")).status == 204
