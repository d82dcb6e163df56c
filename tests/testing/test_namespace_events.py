"""Webhooks and the change feed with testing on: they are the server's, not a namespace's.
A namespace has no subscriptions, delivery log or feed of its own, so under a namespace
(the ``/_ns/{name}`` prefix, the header, a SuperOffice tenant) each of their routes is a
404 that says so, rather than silently managing or streaming the server's; a namespace's
task changes reach no hook, and the server's still do, with a real receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import Config
from tests.conftest import Api

SO_HOOK = {"Name": "h", "Events": ["batchtask.created"], "State": "Active", "Type": "webhook"}


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Config:
    return Config(base_dir=str(tmp_path)).replace("webhooks", allow_targets="127.0.0.1", poll_seconds=0.05)


@pytest.fixture(name="receiver")
async def _receiver(aiohttp_server) -> tuple[str, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(json.loads(await request.read()))
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return str((await aiohttp_server(app)).make_url("/hook")), got


def _message(style: str, body: Any) -> str:
    if style == "superoffice":
        return body["ErrorMessage"]
    if style == "sailpoint":
        return body["messages"][0]["text"]
    if style == "webmethods":
        return body["$errorInfo"]["$error"]
    return body["error"]


async def test_webhooks_and_the_feed_are_the_servers_not_a_namespaces(tapi: Api, receiver) -> None:
    url, got = receiver
    hook = {**SO_HOOK, "TargetUrl": url}
    sp_sub = {"name": "n", "triggerId": "taskgate:task-status-changed", "type": "HTTP",
              "httpConfig": {"url": url, "httpDispatchMode": "ASYNC"}}
    routes = [("superoffice", "POST", "/api/v1/Webhook", hook), ("superoffice", "GET", "/api/v1/Webhook", None),
              ("sailpoint", "POST", "/trigger-subscriptions/v1", sp_sub),
              ("sailpoint", "GET", "/v2025/trigger-subscriptions", None),
              ("webmethods", "POST", "/rest/pub/taskevents/endpoints", {"url": url}),
              ("taskgate", "GET", "/webhooks/log", None)]
    for style, method, path, body in routes:
        for prefix, headers in (("/_ns/a", {}), ("", {"X-Taskgate-Namespace": "a"})):
            status, answer, _ = await tapi.request(method, prefix + path, body=body, headers=headers)
            assert status == 404, (method, prefix + path, answer)
            assert _message(style, answer) == (
                "webhook subscriptions and their delivery log are not served in a test namespace ('a'): they "
                "follow the server's own tasks; use them without the namespace"), (method, path)
    status, answer, _ = await tapi.request("POST", "/Cust12345/api/v1/Webhook", body=hook)  # a tenant is one too
    assert (status, answer["ErrorMessage"]) == (404, "webhook subscriptions and their delivery log are not served "
                                                     "in a test namespace ('Cust12345'): they follow the server's "
                                                     "own tasks; use them without the namespace")
    resp = await tapi.client.get("/_ns/a/events?since=0", headers=tapi.auth(None))
    assert (resp.status, await resp.json()) == (404, {"error": "GET /events streams are not served in a test "
                                                               "namespace ('a'): they follow the server's own "
                                                               "tasks; use them without the namespace"})
    assert await tapi.db_rows("SELECT * FROM hooks") == []

    # the server's hook: a namespace's change reaches it not, the server's does
    status, made, _ = await tapi.request("POST", "/api/v1/Webhook", body=hook)
    assert status == 200
    got.clear()  # the test event
    status, in_namespace, _ = await tapi.request("POST", "/_ns/a/api/v1/BatchTask", body={"Name": "ns"})
    assert status == 200
    status, on_server, _ = await tapi.request("POST", "/api/v1/BatchTask", body={"Name": "server"})
    assert status == 200
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    log = (await tapi.request("GET", "/webhooks/log"))[1]["deliveries"]
    assert [(g["Event"], g["PrimaryKey"], g["WebhookName"]) for g in got] == [("batchtask.created", on_server, "h")]
    assert [(d["hook"], d["outcome"]) for d in log] == [(f"superoffice:webhook/{made['WebhookId']}", "delivered")]
    assert (await tapi.request("GET", "/_ns/a/api/v1/BatchTask/1"))[1]["Name"] == "ns"  # the namespace has its task
