"""Real answers of taskgate's own routes, checked against the server's own /openapi.json,
and the proof that every route of the router has such a check.

taskgate's routes (``/``, ``/docs/``, ``/healthz``, ``/readyz``, ``/metrics``,
``/openapi.json``, ``/docs`` with its files, ``/oauth/token``), each success and each
error it can give, checked as schemathesis' response checks do (:mod:`tests.openapi_check`);
then the 431 of too many header fields and the sign-in lockout's 429, which routes of every
style can answer, on a route of each. The last test holds the router to :data:`CHECKED_TAGS`: each route
is documented under a tag whose test file answers every operation of that tag (each file
ends with ``Document.unanswered() == []``), so a route added without a response check
fails there.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from gateway.app import create_app
from gateway.auth import secret_hash
from gateway.config import Config
from gateway.context import CONFIG, TRAFFIC
from gateway.openapi import DOCS_ASSETS, UNDOCUMENTED_HEAD, build_document
from tests.conftest import Api
from tests.openapi_check import CHECKED_TAGS, Answer, Document, answer

TAG = "taskgate"
FORM = "application/x-www-form-urlencoded"
ROOT = Path(__file__).resolve().parent.parent


async def _document(client: Any, *tags: str) -> Document:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    return Document(json.loads(await resp.read()), *tags)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_every_taskgate_answer_matches_the_document(api: Api, aiohttp_client, config: Config) -> None:
    document = await _document(api.client, TAG)

    async def send(method: str, path: str, *, headers: dict[str, str] | None = None,
                   data: str | bytes | None = None, client: Any = None) -> Answer:
        return await answer(client or api.client, document, method, path, headers=headers, data=data)

    form = {"Content-Type": FORM}
    # the landing answer in JSON, browsers to the dashboard, and /docs/ → /docs
    for accept in (None, "application/json", "*/*"):
        assert (await send("GET", "/", headers={"Accept": accept} if accept else {})).status == 200, accept
    for accept in ("text/html", "text/html,application/xhtml+xml;q=0.9"):
        assert (await send("GET", "/", headers={"Accept": accept})).status == 302, accept
    assert (await send("GET", "/", headers={"Accept": "image/png"})).status == 406
    for query in ("", "?url=x"):
        assert (await send("GET", f"/docs/{query}")).status == 301
    # the document, Swagger UI and each of its files
    assert (await send("GET", "/openapi.json")).status == 200
    assert (await send("GET", "/docs")).status == 200
    for asset in DOCS_ASSETS:
        assert (await send("GET", f"/docs/{asset}")).status == 200, asset
    assert (await send("GET", "/docs/nope.js")).status == 404
    # health
    assert (await send("GET", "/healthz")).status == 200
    assert (await send("GET", "/readyz")).status == 200
    api.client.app[TRAFFIC].draining = True
    assert (await send("GET", "/readyz")).status == 503
    api.client.app[TRAFFIC].draining = False
    # metrics: loopback (the test client), behind a proxy for a client that is not, and by token
    assert (await send("GET", "/metrics")).status == 200
    proxied = await aiohttp_client(create_app(config.replace("server", trusted_proxies="127.0.0.1")))
    assert (await send("GET", "/metrics", client=proxied, headers={"X-Forwarded-For": "203.0.113.5"})).status == 403
    by_token = await aiohttp_client(create_app(config.replace("metrics", expose="token", token="m-secret")))
    assert (await send("GET", "/metrics", client=by_token, headers={"Authorization": "Bearer m-secret"})).status == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert (await send("GET", "/metrics", client=by_token, headers=headers)).status == 401

    # /oauth/token: form, query and Basic, then each refusal, then the lockout
    await api.store.add_oauth_client("cid", secret_hash("csecret"), "alice")
    grant = "grant_type=client_credentials&client_id=cid&client_secret=csecret"
    assert (await send("POST", "/oauth/token", data=grant, headers=form)).status == 200
    assert (await send("POST", f"/oauth/token?{grant}")).status == 200
    assert (await send("POST", "/oauth/token", data="grant_type=client_credentials",
                       headers={**form, **_basic("cid", "csecret")})).status == 200
    big = b"x" * (api.client.app[CONFIG].server.max_body_bytes + 1)
    for expected, data in ((400, "grant_type=password&client_id=cid&client_secret=csecret"),
                           (400, "client_id=cid&client_secret=csecret"), (413, big),
                           (401, "grant_type=client_credentials&client_id=cid&client_secret=wrong")):
        assert (await send("POST", "/oauth/token", data=data, headers=form)).status == expected, expected
    limit = api.client.app[CONFIG].auth.max_failures
    wrong = "grant_type=client_credentials&client_id=cid&client_secret=wrong"
    statuses = [(await send("POST", "/oauth/token", data=wrong, headers=form)).status for _ in range(limit)]
    assert statuses[-1] == 429 and set(statuses) == {401, 429}

    assert document.unanswered() == []
    assert len(document.checked) == 9

    # too many header fields: 431 in each style's own body (a header too long for aiohttp's parser
    # is refused before the app in process; `taskgate serve` lets it through to the same 431)
    everything = await _document(api.client)
    crowd = {f"X-H{i}": "v" for i in range(api.client.app[CONFIG].server.max_headers + 1)}
    for path in ("/task-status/v1", "/api/v1/BatchTask", "/rest/pub/opentask", "/healthz", "/"):
        crowded = await answer(api.client, everything, "GET", path, headers={**api.auth(), **crowd})
        assert crowded.status == 431, path

    # the lockout answers 429 with Retry-After in each style's own body, as documented
    for path in ("/task-status/v1", "/api/v1/BatchTask", "/rest/pub/opentask"):
        locked = await answer(api.client, everything, "GET", path, headers=_basic("alice", "alice-password"))
        assert (locked.status, int(locked.headers["Retry-After"]) > 0) == (429, True), path


async def test_every_route_of_the_router_has_a_response_check(tmp_path: Path) -> None:
    """Each route (aiohttp's HEAD of a GET aside) is an operation of the document under a
    tag of CHECKED_TAGS, whose file answers every operation of that tag; every tag of the
    document is one of them. Routes that only some settings register (``/metrics``) are
    in the default app, which every checking file uses; the /_taskgate/ routes only with
    testing on, as here (tests/testing/test_openapi_testing.py answers them)."""
    app = create_app(Config(base_dir=str(tmp_path)).replace("testing", enabled=True))
    document = build_document(app)
    tags = {(method.upper(), path): set(op["tags"]) for path, ops in document["paths"].items()
            for method, op in ops.items()}
    routes = set()
    for resource in app.router.resources():
        methods = {route.method for route in resource}
        routes |= {(route.method, resource.canonical) for route in resource
                   if not (route.method == UNDOCUMENTED_HEAD and "GET" in methods)}
    assert routes == set(tags)
    unchecked = sorted(f"{m} {p} ({', '.join(t)})" for (m, p), t in tags.items() if not t & set(CHECKED_TAGS))
    assert unchecked == []
    assert {t for ts in tags.values() for t in ts} == set(CHECKED_TAGS)
    for tag, file in CHECKED_TAGS.items():
        source = (ROOT / file).read_text()
        assert f'TAG = "{tag}"' in source and "Document(" in source and "document.unanswered() == []" in source, file
