"""Who may call what: every route of the app × every kind of caller → the expected status,
in one table that the router itself enumerates (a route missing from the table fails the
test, so a new route cannot be forgotten). Also: no secret used here ever reaches a log
event, and the session and XSRF cookies carry the attributes README promises.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password, secret_hash
from gateway.context import STORE

KINDS = ("none", "wrong_password", "invalid_token", "expired_token", "read_only", "no_access", "admin")
PASSWORDS = {"root": "root-pw-4f9a", "mallory": "mallory-pw-77c1"}
WRONG = "wrong-pw-0b3e"
INVALID = "tg_invalid-token-3c5d7e"
SECRETS = {"root": "tgs_root-client-secret-91aa", "mallory": "tgs_mallory-client-secret-22bb"}


def row(none: int, wrong: int, invalid: int, expired: int, read_only: int, no_access: int,
        admin: int) -> dict[str, int]:
    return dict(zip(KINDS, (none, wrong, invalid, expired, read_only, no_access, admin), strict=True))


READ = row(401, 401, 401, 401, 200, 200, 200)  # anyone signed in may read
#: (method, route with any tenant prefix removed) → status per kind of caller.
#: no_access is a plain user: a SailPoint task's launcher names another user (read, not write),
#: a SuperOffice task is owned by another associate (read, not write), a webMethods task is
#: neither assigned to nor made by them.
OPEN = row(200, 200, 200, 200, 200, 200, 200)  # public: credentials are not even read
HOOK_READ = row(401, 401, 401, 401, 200, 403, 200)


def hook_write(ok: int) -> dict[str, int]:
    return row(401, 401, 401, 401, 403, 403, ok)


#: where the matrix's webhook subscriptions point: a receiver on loopback (set by the fixture)
RECEIVER = {"url": ""}
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,  # metrics.expose = loopback (the default), and the test client is on loopback
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/{asset}"): OPEN,
    ("GET", "/"): OPEN,  # the landing page
    ("GET", "/docs/"): OPEN,  # a redirect to /docs, which the client follows
    ("GET", "/api/v1/$metadata"): READ,
    ("GET", "/events"): READ,  # each caller then sees the events of the tasks it may read
    ("POST", "/oauth/token"): row(400, 401, 400, 400, 400, 200, 200),
    **{("GET", f"/{v}/task-status/pending-tasks"): READ for v in ("beta", "v2024", "v2025", "v2026")},
    **{("GET", f"{base}"): READ for base in ("/task-status/v1", "/beta/task-status", "/v2024/task-status",
                                              "/v2025/task-status", "/v2026/task-status")},
    **{("GET", f"{base}/{{id}}"): READ for base in ("/task-status/v1", "/beta/task-status", "/v2024/task-status",
                                                     "/v2025/task-status", "/v2026/task-status")},
    **{("PATCH", f"{base}/{{id}}"): row(401, 401, 401, 401, 403, 403, 200)
       for base in ("/task-status/v1", "/beta/task-status", "/v2024/task-status", "/v2025/task-status",
                    "/v2026/task-status")},
    ("POST", "/task-status/v1"): row(401, 401, 401, 401, 403, 403, 201),
    ("POST", "/login"): row(400, 401, 400, 400, 400, 200, 200),
    ("POST", "/logout"): row(401, 401, 401, 401, 403, 204, 204),
    ("GET", "/api/v1/BatchTask"): READ,
    ("GET", "/api/v1/BatchTask/"): READ,
    ("POST", "/api/v1/BatchTask"): row(401, 401, 401, 401, 403, 403, 200),
    ("POST", "/api/v1/BatchTask/"): row(401, 401, 401, 401, 403, 403, 200),
    ("GET", "/api/v1/BatchTask/{id}"): READ,
    ("PUT", "/api/v1/BatchTask/{id}"): row(401, 401, 401, 401, 403, 403, 200),
    ("DELETE", "/api/v1/BatchTask/{id}"): row(401, 401, 401, 401, 403, 403, 204),
    ("POST", "/api/v1/BatchTask/{id}/Stop"): row(401, 401, 401, 401, 403, 403, 200),
    ("POST", "/api/v1/Agents/Batch/{method}"): READ,  # GetBatchTaskInfo: a read, even by POST
    ("GET", "/api/v1/Agents/Batch/{method}"): READ,
    ("GET", "/rest/pub/opentask"): READ,
    ("POST", "/rest/pub/opentask"): row(401, 401, 401, 401, 403, 200, 200),
    ("PUT", "/rest/pub/opentask"): row(401, 401, 401, 401, 403, 404, 200),
    ("DELETE", "/rest/pub/opentask"): row(401, 401, 401, 401, 403, 404, 200),
    ("GET", "/rest/pub/opentask/{taskID}"): row(401, 401, 401, 401, 200, 404, 200),
    ("PUT", "/rest/pub/opentask/{taskID}"): row(401, 401, 401, 401, 403, 404, 200),
    ("DELETE", "/rest/pub/opentask/{taskID}"): row(401, 401, 401, 401, 403, 404, 200),
    ("GET", "/rest/pub/opentask/{taskID}/audit"): row(401, 401, 401, 401, 200, 404, 200),
    ("GET", "/rest/pub/opentask/{taskID}/audit/{auditEntryID}"): row(401, 401, 401, 401, 200, 404, 200),
    ("DELETE", "/rest/pub/opentask/{taskID}/audit/{auditEntryID}"): row(401, 401, 401, 401, 403, 404, 200),
    ("GET", "/rest/pub/opentasksearch"): READ,
    ("POST", "/rest/pub/opentasksearch"): READ,
    # the dashboard: a page without a sign-in is the sign-in page (the client follows the redirect);
    # these requests name no task, so a signed-in page answers 400; undo is for admins
    ("GET", "/ui"): OPEN,
    ("GET", "/ui/"): OPEN,
    ("GET", "/ui/login"): OPEN,
    ("POST", "/ui/login"): row(400, 401, 400, 400, 400, 200, 200),
    ("POST", "/ui/logout"): OPEN,  # no browser session: to the sign-in page
    ("GET", "/ui/task"): row(400, 400, 400, 400, 400, 400, 400),  # no style or id: told before the sign-in
    ("GET", "/ui/task-parts"): row(401, 401, 401, 401, 400, 400, 400),
    ("POST", "/ui/undo"): row(401, 401, 401, 401, 403, 403, 415),  # the admin sent no form
    ("GET", "/ui/live"): row(401, 401, 401, 401, 200, 200, 200),
    ("GET", "/ui/static/{name}"): OPEN,
    ("GET", "/ui/hooks"): row(200, 200, 200, 200, 200, 403, 200),  # no sign-in: the sign-in page
    ("GET", "/ui/hook"): row(400, 400, 400, 400, 400, 400, 400),  # no name: told before the sign-in
    ("GET", "/ui/testing"): row(200, 200, 200, 200, 404, 404, 404),  # the toolkit is off here
    ("GET", "/ui/namespace"): row(400, 400, 400, 400, 400, 400, 400),
    # webhook subscriptions: admins only (the read-only token is an admin's: it may read them)
    **{key: value for base, test in (("/trigger-subscriptions/v1", "/trigger-invocations/v1/test"),
                                     *((f"/{v}/trigger-subscriptions", f"/{v}/trigger-invocations/test")
                                       for v in ("beta", "v2024", "v2025")))
       for key, value in {("GET", base): HOOK_READ, ("POST", base): hook_write(201),
                          ("GET", f"{base}/{{id}}"): HOOK_READ, ("PUT", f"{base}/{{id}}"): hook_write(200),
                          ("PATCH", f"{base}/{{id}}"): hook_write(200), ("DELETE", f"{base}/{{id}}"): hook_write(204),
                          ("POST", test): hook_write(204)}.items()},
    ("GET", "/api/v1/Webhook"): HOOK_READ,
    ("POST", "/api/v1/Webhook"): hook_write(200),
    ("GET", "/api/v1/Webhook/default"): HOOK_READ,
    ("POST", "/api/v1/Webhook/Test"): hook_write(200),
    ("GET", "/api/v1/Webhook/{id}"): HOOK_READ,
    ("PUT", "/api/v1/Webhook/{id}"): hook_write(200),
    ("PATCH", "/api/v1/Webhook/{id}"): hook_write(200),
    ("DELETE", "/api/v1/Webhook/{id}"): hook_write(204),
    ("GET", "/rest/pub/taskevents/endpoints"): HOOK_READ,
    ("POST", "/rest/pub/taskevents/endpoints"): hook_write(201),
    ("GET", "/rest/pub/taskevents/endpoints/{id}"): HOOK_READ,
    ("PUT", "/rest/pub/taskevents/endpoints/{id}"): hook_write(200),
    ("DELETE", "/rest/pub/taskevents/endpoints/{id}"): hook_write(204),
    ("GET", "/webhooks/log"): HOOK_READ,
}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(name="matrix")
async def _matrix(aiohttp_client, aiohttp_server, config):
    # the failure limit is tested in test_auth.py; here hundreds of wrong passwords are the point
    receiver = web.Application()
    receiver.router.add_post("/{tail:.*}", _accept)
    RECEIVER["url"] = str((await aiohttp_server(receiver)).make_url("/hook"))
    config = config.replace("webhooks", allow_targets="127.0.0.1")
    client = await aiohttp_client(create_app(config.replace("auth", max_failures=0)))
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    for name, role in (("root", "admin"), ("mallory", "user")):
        await store.add_user(name, role, hash_password(PASSWORDS[name]))
        await store.add_oauth_client(f"client-{name}", secret_hash(SECRETS[name]), name)
    tokens = {"admin": await auth.create_token("root"), "no_access": await auth.create_token("mallory"),
              "read_only": await auth.create_token("root", read_only=True), "invalid_token": INVALID}
    tokens["expired_token"] = "tg_expired-" + tokens["admin"][3:]
    await store.add_token("root", secret_hash(tokens["expired_token"]), read_only=False,
                          expires=int(time.time()) - 10, source="cli")
    return client, tokens


async def _accept(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _hook_body(method: str, route: str) -> tuple[Any, str] | None:
    """The body and media type an admin's call to a webhook route succeeds with, or None."""
    url = RECEIVER["url"]
    if "trigger-subscriptions" in route and method in ("POST", "PUT"):
        return json.dumps({"name": "m", "triggerId": "taskgate:task-status-changed", "type": "HTTP",
                           "httpConfig": {"url": url, "httpDispatchMode": "ASYNC"}}), "application/json"
    if "trigger-subscriptions" in route and method == "PATCH":
        return json.dumps([{"op": "replace", "path": "/name", "value": "m2"}]), "application/json-patch+json"
    if "trigger-invocations" in route:
        return json.dumps({"triggerId": "taskgate:task-status-changed", "contentJson": {}}), "application/json"
    if "/Webhook" in route and method in ("POST", "PUT"):
        return json.dumps({"Name": "m", "Events": ["batchtask.changed"], "TargetUrl": url}), "application/json"
    if "/Webhook" in route and method == "PATCH":
        return json.dumps({"Name": "m2"}), "application/merge-patch+json"
    if "taskevents" in route and method in ("POST", "PUT"):
        return json.dumps({"url": url}), "application/json"
    return None


async def _fresh(client, admin: str, template: str) -> dict[str, str]:
    """Path parameters naming tasks made just now by the admin (a route may delete them)."""
    auth = {"Authorization": f"Bearer {admin}"}
    params = {"tenant": "Cust12345", "method": "GetBatchTaskInfo", "asset": "swagger-ui.css", "name": "dashboard.css"}
    hooks = {"trigger-subscriptions": "/trigger-subscriptions/v1", "/Webhook/": "/api/v1/Webhook",
             "taskevents": "/rest/pub/taskevents/endpoints"}
    for marker, collection in hooks.items():
        if marker in template and "{id}" in template:
            data, ctype = _hook_body("POST", collection) or ("", "")
            resp = await client.post(collection, data=data, headers={**auth, "Content-Type": ctype})
            body = await resp.json()
            params["id"] = str(body.get("id") or body.get("WebhookId"))
            return params
    if "task-status" in template and "{id}" in template:
        resp = await client.post("/task-status/v1", json={"type": "QUARTZ", "uniqueName": "m"}, headers=auth)
        params["id"] = (await resp.json())["id"]
    if "BatchTask" in template or "Agents" in template:
        resp = await client.post("/api/v1/BatchTask", json={"Name": "m", "AssociateId": 7, "State": "Started"},
                                 headers=auth)
        params["id"] = str(await resp.json())
    if "opentask" in template:
        resp = await client.post("/rest/pub/opentask", json={"taskTypeID": "T"}, headers=auth)
        params["taskID"] = (await resp.json())["taskID"]
        resp = await client.put(f"/rest/pub/opentask/{params['taskID']}", json={"TaskInfo": {"description": "d"}},
                                headers=auth)
        assert resp.status == 200
        resp = await client.get(f"/rest/pub/opentask/{params['taskID']}/audit", headers=auth)
        params["auditEntryID"] = str((await resp.json())["taskAudits"][-1]["id"])
    return params


def _request(method: str, route: str, params: dict[str, str], kind: str, tokens: dict[str, str]) -> dict[str, Any]:
    """The request a caller of *kind* sends to *route*: credentials, then a valid body."""
    headers: dict[str, str] = {}
    if kind == "wrong_password":
        headers["Authorization"] = _basic("root", WRONG)
    elif kind != "none":
        headers["Authorization"] = f"Bearer {tokens[kind]}"
    path = route.format(**params)
    data: Any = None
    if (hook := _hook_body(method, route)) is not None:
        data = hook[0]
        headers["Content-Type"] = hook[1]
    elif route == "/oauth/token":
        headers.pop("Authorization", None)
        form = {"grant_type": "client_credentials"}
        who = {"admin": "root", "no_access": "mallory", "wrong_password": "root"}.get(kind)
        if who:
            form.update(client_id=f"client-{who}", client_secret=WRONG if kind == "wrong_password" else SECRETS[who])
        data = form
    elif route in ("/login", "/ui/login"):
        headers.pop("Authorization", None)
        who = {"admin": "root", "no_access": "mallory", "wrong_password": "root"}.get(kind)
        data = {"user": who, "password": WRONG if kind == "wrong_password" else PASSWORDS[who]} if who else {"x": ""}
    elif method == "PATCH":
        data = json.dumps([{"op": "replace", "path": "/progress", "value": "m"}])
        headers["Content-Type"] = "application/json-patch+json"
    elif "task-status" in route and method == "POST":
        data = json.dumps({"type": "QUARTZ", "uniqueName": "m"})
    elif "Agents" in route and method == "POST":
        data = json.dumps({"Id": int(params["id"])})
    elif "BatchTask" in route and method in ("POST", "PUT") and not route.endswith("/Stop"):
        data = json.dumps({"Name": "m"} if method == "POST" else {"Description": "m"})
    elif "opentask" in route and method in ("POST", "PUT"):
        data = json.dumps({"taskTypeID": "T"} if method == "POST" and "search" not in route
                          else {} if "search" in route else {"TaskInfo": {"description": "m"}})
    if route == "/rest/pub/opentask" and method in ("PUT", "DELETE"):
        path += f"?taskID={params['taskID']}"
    if isinstance(data, str):
        headers.setdefault("Content-Type", "application/json")
    return {"method": method, "path": path, "headers": headers, "data": data}


async def test_every_route_answers_every_kind_of_caller_as_the_table_says(matrix):
    client, tokens = matrix
    routes = [(r.method, r.resource.canonical) for r in client.app.router.routes()]
    assert len(routes) >= 80
    seen, failures, secrets = set(), [], []
    with capture_logs() as logs:
        for method, canonical in routes:
            route = canonical.replace("/{tenant}", "")
            key = ("GET" if method == "HEAD" else method, route)
            assert key in EXPECTED, f"{method} {canonical} is not in the table: add what each caller gets"
            seen.add(key)
            params = await _fresh(client, tokens["admin"], canonical)
            if canonical.startswith("/ui"):
                client.session.cookie_jar.clear()  # a session of an earlier row would sign "none" in

            async def one(kind: str, method: str = method, canonical: str = canonical, key=key,
                          params: dict[str, str] = params) -> None:
                req = _request(key[0], canonical, params, kind, tokens)
                resp = await client.request(method, req["path"], headers=req["headers"], data=req["data"])
                if resp.content_type == "text/event-stream":
                    resp.close()  # a stream lasts while the client reads: its status is the answer
                else:
                    await resp.read()
                for cookie in resp.headers.getall("Set-Cookie", []):
                    secrets.append(cookie.split(";")[0].partition("=")[2])
                if resp.status != EXPECTED[key][kind]:
                    failures.append(f"{method} {req['path']} as {kind}: {resp.status}, "
                                    f"expected {EXPECTED[key][kind]}: {(await resp.text())[:160]}")
            # the callers who cannot delete, together (scrypt runs off the loop); the admin last,
            # because its DELETE may remove the task
            await asyncio.gather(*(one(kind) for kind in KINDS if kind != "admin"))
            await one("admin")
    assert not failures, "\n".join(failures)
    assert seen == set(EXPECTED), f"table rows with no route: {set(EXPECTED) - seen}"
    # no token, password, client secret or session value used above is in any log event
    text = repr(logs)
    used = [*tokens.values(), *PASSWORDS.values(), WRONG, *SECRETS.values(), *filter(None, secrets),
            base64.b64encode(f"root:{WRONG}".encode()).decode()]
    leaked = [s for s in used if s and s in text]
    assert not leaked, leaked
    assert len(logs) > 700  # the scan did see the request and audit events


async def test_session_and_xsrf_cookies_carry_their_attributes(matrix):
    """The session cookie is HttpOnly and SameSite=Strict. The XSRF-TOKEN cookie is
    SameSite=Strict but deliberately not HttpOnly: SuperOffice's clients read it from
    script and echo it as X-XSRF-TOKEN (double submit), which HttpOnly would forbid."""
    client, _tokens = matrix
    resp = await client.post("/login", data={"user": "mallory", "password": PASSWORDS["mallory"]})
    assert resp.status == 200
    cookies = {c.split("=", 1)[0]: c for c in resp.headers.getall("Set-Cookie")}
    assert set(cookies) == {"taskgate_session", "XSRF-TOKEN"}
    session = {a.strip().lower() for a in cookies["taskgate_session"].split(";")[1:]}
    xsrf = {a.strip().lower() for a in cookies["XSRF-TOKEN"].split(";")[1:]}
    assert session == {"httponly", "samesite=strict", "path=/", "max-age=3600"}, session
    assert xsrf == {"samesite=strict", "path=/", "max-age=3600"}, xsrf
    assert resp.headers["Cache-Control"] == "no-store"
