"""The dashboard's admin pages without a browser (gateway/ui/admin.py), on the production
app: the event subscriptions of the three styles and their delivery log, as delivered to a
real receiver on loopback; the testing toolkit's namespace, journal, faults and clock; the
access-denied page for a plain user, and the toolkit's pages absent when it is off."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from markupsafe import escape

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password
from gateway.config import Config
from gateway.context import STORE
from tests.conftest import Api
from tests.ui.test_pages import sign_in

NS = "/_taskgate/namespaces"


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Config:
    return Config(base_dir=str(tmp_path)).replace("webhooks", allow_targets="127.0.0.1", retry_base_seconds=0.01,
                                                  retry_max_seconds=0.02, poll_seconds=0.05, max_failures=3)


@pytest.fixture(name="receiver_url")
async def _receiver(aiohttp_server: Any) -> str:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=500 if request.path.endswith("/webmethods") else 200, text="ok")
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return str((await aiohttp_server(app)).make_url("/hook"))


def _tbody(page: str, table: str) -> str:
    found = re.search(rf'<table class="{table} cards">.*?<tbody>\n(.*?)\s*</tbody>', page, re.S)
    assert found, table
    return "\n".join(line.strip() for line in found.group(1).splitlines())


async def _until(predicate: Any) -> None:
    for _ in range(250):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not in time")


async def test_the_subscriptions_and_their_delivery_log(api: Api, receiver_url: str) -> None:
    await api.store.add_user("ada", "admin", hash_password("ada-password"))
    status, sp, _ = await api.request("POST", "/trigger-subscriptions/v1", body={
        "name": "every change", "triggerId": "taskgate:task-status-changed", "type": "HTTP",
        "httpConfig": {"url": receiver_url + "/sailpoint", "httpDispatchMode": "ASYNC",
                       "httpAuthenticationType": "BEARER_TOKEN",
                       "bearerTokenAuthConfig": {"bearerToken": "sp-secret"}}})
    assert status == 201, sp
    status, so, _ = await api.request("POST", "/api/v1/Webhook", body={
        "Name": "batch tasks", "Events": ["batchtask.created"], "TargetUrl": receiver_url + "/superoffice",
        "Secret": "so-secret-value-1234", "State": "Active", "Type": "webhook"})
    assert status == 200, so
    status, wm, _ = await api.request("POST", "/rest/pub/taskevents/endpoints",
                                      body={"url": receiver_url + "/webmethods", "secret": "wm-secret"})
    assert status == 201, wm
    for path, body in (("/task-status/v1", {"id": "h1", "type": "QUARTZ", "uniqueName": "hooked"}),
                       ("/api/v1/BatchTask", {"Name": "hooked"}), ("/rest/pub/opentask", {"taskTypeID": "t"})):
        assert (await api.request("POST", path, body=body))[0] in (200, 201)

    async def delivered() -> bool:
        rows = await api.store.delivery_log(limit=100)
        return len({d.hook for d in rows if d.outcome == "delivered"}) == 2 and \
            any(d.outcome == "disabled" for d in rows)
    await _until(delivered)
    hooks = {h.style: h for h in await api.store.list_hooks()}
    await sign_in(api.client, "alice", "alice-password")
    resp = await api.client.get("/ui/hooks")
    assert resp.status == 403 and '<p class="alert" role="alert">Only an admin may see the event subscriptions ' \
        'and their deliveries (access denied).</p>' in await resp.text()
    assert (await api.client.get("/ui/hook?name=superoffice:webhook/1")).status == 403
    await sign_in(api.client, "ada", "ada-password")
    page = await (await api.client.get("/ui/")).text()
    assert '<a href="./" aria-current="page">Tasks</a>\n<a href="./hooks">Subscriptions</a>' in page
    resp = await api.client.get("/ui/hooks")
    page = await resp.text()
    assert resp.status == 200
    assert '<a href="./hooks" aria-current="page">Subscriptions</a>' in page
    assert "Testing toolkit" not in page  # the toolkit is off
    sp_hook, so_hook = hooks["sailpoint:trigger"], hooks["superoffice:webhook"]
    wm_hook = hooks["webmethods:endpoint"]
    sp_link = f'<a href="./hook?name=sailpoint%3Atrigger%2F{sp["id"]}">every change</a><br><small>{sp["id"]}</small>'
    so_id = so["WebhookId"]
    so_link = f'<a href="./hook?name=superoffice%3Awebhook%2F{so_id}">batch tasks</a><br><small>{so_id}</small>'
    assert _tbody(page, "hooks") == f"""\
<tr><td data-label="Kind">SailPoint trigger subscription</td>
<td data-label="Subscription">{sp_link}</td>
<td data-label="Receives">taskgate:task-status-changed</td>
<td data-label="Target"><code>{receiver_url}/sailpoint</code></td>
<td data-label="State">enabled</td>
<td data-label="Delivered up to event">{sp_hook.cursor}</td>
<td data-label="Failures">0</td></tr>
<tr><td data-label="Kind">SuperOffice webhook</td>
<td data-label="Subscription">{so_link}</td>
<td data-label="Receives">batchtask.created</td>
<td data-label="Target"><code>{receiver_url}/superoffice</code></td>
<td data-label="State">Active</td>
<td data-label="Delivered up to event">{so_hook.cursor}</td>
<td data-label="Failures">0</td></tr>
<tr><td data-label="Kind">webMethods event endpoint</td>
<td data-label="Subscription"><a href="./hook?name=webmethods%3Aendpoint%2F{wm['id']}">{wm['id']}</a></td>
<td data-label="Receives">TaskChanged</td>
<td data-label="Target"><code>{receiver_url}/webmethods</code></td>
<td data-label="State">failed <small>(not delivered to)</small></td>
<td data-label="Delivered up to event">{wm_hook.cursor}</td>
<td data-label="Failures">{wm_hook.failures}</td></tr>"""
    assert (wm_hook.active, wm_hook.failures) == (False, 3)
    log = await api.store.delivery_log(limit=100)
    assert _tbody(page, "deliveries").count("<tr>") == len(log)
    assert "secret" not in page
    name = f"webmethods:endpoint/{wm['id']}"
    resp = await api.client.get("/ui/hook", params={"name": name})
    page = await resp.text()
    assert resp.status == 200 and f"<h1>webMethods event endpoint <code>{wm['id']}</code></h1>" in page
    assert str(escape('"secret": null')) in page and "wm-secret" not in page
    mine = [d for d in log if d.hook == hooks["webmethods:endpoint"].num]
    rows = _tbody(page, "deliveries")
    assert rows.count("<tr>") == len(mine) == 3  # max_failures, the last one disabling it
    newest = mine[0]
    assert rows.startswith(f"""<tr><td data-label="Attempt">{newest.seq} <small>(try 3)</small></td>
<td data-label="Event">{newest.event}</td>
<td data-label="At"><time>{newest.at}</time></td>
<td data-label="Outcome"><span class="status s-disabled">disabled</span></td>
<td data-label="HTTP status">500</td>
<td data-label="Error">{escape(newest.error)}</td>
<td data-label="ms">{round(newest.ms, 1)}</td></tr>""")
    resp = await api.client.get("/ui/hook?name=nope")
    assert resp.status == 404 and "No subscription &#39;nope&#39;." in await resp.text()
    for page_name in ("testing", "namespace?name=x"):
        resp = await api.client.get(f"/ui/{page_name}")
        assert resp.status == 404 and "The testing toolkit is off (testing.enabled): it has no pages." in \
            await resp.text()


async def test_the_toolkits_namespace_journal_faults_and_clock(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(create_app(config.replace("testing", enabled=True)))
    store = client.app[STORE]
    await store.add_user("root", "admin", hash_password("root-password"))
    await store.add_user("alice", "user", hash_password("alice-password"))
    admin = {"Authorization": f"Bearer {await client.app[AUTHENTICATOR].create_token('root')}"}
    resp = await client.put(f"{NS}/t1/clock", json={"frozen": True, "now": "2031-02-03T04:05:06Z"}, headers=admin)
    assert resp.status == 200
    resp = await client.post(f"{NS}/t1/faults", json={"path": "/task-status/v1/*", "status": 503, "count": 2},
                             headers=admin)
    assert resp.status == 201
    rule = (await resp.json())["id"]  # rule ids count across the process, not per namespace
    resp = await client.post("/_ns/t1/task-status/v1", json={"id": "j1", "type": "QUARTZ", "uniqueName": "in t1"},
                             headers={**admin, "X-Request-ID": "journal-1"})
    assert resp.status == 201
    resp = await client.get("/_ns/t1/task-status/v1/j1", headers=admin)
    assert resp.status == 503
    await sign_in(client, "alice", "alice-password")
    resp = await client.get("/ui/testing")
    assert resp.status == 403 and "Only an admin may see the testing toolkit (access denied)." in await resp.text()
    await sign_in(client, "root", "root-password")
    page = await (await client.get("/ui/testing")).text()
    assert '<a href="./testing" aria-current="page">Testing toolkit</a>' in page
    assert _tbody(page, "namespaces") == """\
<tr><td data-label="Namespace"><a href="./namespace?name=t1">t1</a></td>
<td data-label="Clock"><time>2031-02-03T04:05:06.000Z</time> <strong>frozen</strong></td>
<td data-label="Journal">2 kept of 2 recorded</td>
<td data-label="Fault rules">1</td>
<td data-label="Progress scripts">0</td>
<td data-label="Checkpoints">—</td></tr>"""
    page = await (await client.get("/ui/namespace?name=t1")).text()
    assert '<p id="clock"><time>2031-02-03T04:05:06.000Z</time>, frozen.</p>' in page
    assert _tbody(page, "faults") == f"""\
<tr><td data-label="Rule">{rule}</td>
<td data-label="Matches">any method /task-status/v1/*</td>
<td data-label="Does">answer 503, 1 more time</td>
<td data-label="Fired">1</td></tr>"""
    journal = _tbody(page, "journal")
    first, second = journal.split("</tr>\n")[:2]
    assert first.startswith('<tr><td data-label="Request"><code>GET /task-status/v1/j1</code></td>\n'
                            '<td data-label="Status">503</td>')
    assert first.endswith(f'<td data-label="Fault">rule {rule}</td>')
    assert second.startswith('<tr><td data-label="Request"><code>POST /task-status/v1</code><details><summary>Body'
                             '</summary><pre class="doc"><code>')
    assert '<td data-label="Request id"><code>journal-1</code></td>' in second
    resp = await client.get("/ui/namespace?name=nope")
    assert resp.status == 404 and "No namespace &#39;nope&#39; is open." in await resp.text()
