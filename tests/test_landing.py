"""``GET /``: browsers to the dashboard, JSON for API clients, links that answer; ``/docs/`` →
``/docs``; under ``server.base_path`` the same, one prefix down. Whole bodies and headers asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import __version__, openapi
from gateway.app import create_app
from gateway.config import Config, MetricsConfig, ServerConfig

DESCRIPTION = "Task-status APIs of SailPoint ISC, SuperOffice WebAPI and webMethods Task Engine over one SQLite file."
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Vary": "Accept"}
TO_DASHBOARD = {"Location": "ui/", "Vary": "Accept"}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def json_page(prefix: str = "", metrics: bool = True) -> dict[str, Any]:
    links = {"docs": f"{prefix}/docs", "openapi": f"{prefix}/openapi.json", "healthz": f"{prefix}/healthz",
             "readyz": f"{prefix}/readyz"}
    if metrics:
        links["metrics"] = f"{prefix}/metrics"
    return {"name": "taskgate", "version": __version__, "description": DESCRIPTION, "links": links}


@pytest.fixture(name="start")
def _start(aiohttp_client, tmp_path: Path):
    async def start(**settings: Any):
        server = ServerConfig(base_path=settings.pop("base_path", ""))
        return await aiohttp_client(create_app(Config(base_dir=str(tmp_path), server=server, **settings)))
    return start


def headers(resp: Any) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k not in ("Date", "Server", "Content-Length", "X-Request-ID")}


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "application/*", "text/html;q=0.5, */*",
                                    "text/html, application/json"])
async def test_api_clients_get_json(start, accept: str | None):
    client = await start()
    resp = await client.get("/", headers={"Accept": accept} if accept else {})
    assert (resp.status, headers(resp), await resp.json()) == (200, JSON_HEADERS, json_page())


@pytest.mark.parametrize("accept", ["text/html", BROWSER, "text/*", "application/json;q=0.5, text/html"])
async def test_browsers_are_sent_to_the_dashboard(start, accept: str):
    client = await start()
    resp = await client.get("/", headers={"Accept": accept}, allow_redirects=False)
    assert (resp.status, headers(resp), await resp.read()) == (302, TO_DASHBOARD, b"")
    resp = await client.get("/", headers={"Accept": accept})  # followed: /ui/, which asks for a sign-in first
    assert (resp.status, resp.url.path, resp.content_type) == (200, "/ui/login", "text/html")


async def test_head_answers_the_headers_of_get(start):
    client = await start()
    for accept, status, expected in (("application/json", 200, JSON_HEADERS), ("text/html", 302, TO_DASHBOARD)):
        resp = await client.head("/", headers={"Accept": accept}, allow_redirects=False)
        assert (resp.status, headers(resp), await resp.read()) == (status, expected, b"")


async def test_an_accept_of_neither_is_406_and_other_methods_405(start):
    client = await start()
    resp = await client.get("/", headers={"Accept": "image/png"})
    assert (resp.status, await resp.json()) == (
        406, {"error": "cannot answer with 'image/png'; available: application/json, text/html"})
    resp = await client.post("/")
    assert (resp.status, resp.headers["Allow"], await resp.json()) == (
        405, "GET,HEAD", {"error": "POST is not allowed here; allowed: GET,HEAD"})


async def test_every_link_answers_and_metrics_is_linked_only_when_exposed(start):
    client = await start()
    for path in json_page()["links"].values():
        resp = await client.get(path)
        assert resp.status == 200, path  # the test client is a loopback client: /metrics answers it
    client = await start(metrics=MetricsConfig(expose="off"))
    resp = await client.get("/")
    assert await resp.json() == json_page(metrics=False)


async def test_docs_with_a_slash_redirects_to_docs(start):
    client = await start()
    for query, location in (("", "../docs"), ("?url=x&y=1", "../docs?url=x&y=1")):
        resp = await client.get(f"/docs/{query}", allow_redirects=False)
        assert (resp.status, headers(resp), await resp.read()) == (301, {"Location": location}, b""), query
    resp = await client.get("/docs/")  # followed: the Swagger UI page
    assert (resp.status, resp.url.path, resp.content_type) == (200, "/docs", "text/html")


async def test_under_a_base_path_everything_is_one_prefix_down(start):
    client = await start(base_path="/tg")
    resp = await client.get("/tg/")
    assert (resp.status, headers(resp), await resp.json()) == (200, JSON_HEADERS, json_page("/tg"))
    resp = await client.get("/tg/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert (resp.status, headers(resp)) == (302, TO_DASHBOARD)  # relative: the same answer
    resp = await client.get("/tg/", headers={"Accept": "text/html"})
    assert (resp.status, resp.url.path) == (200, "/tg/ui/login")
    resp = await client.get("/tg", allow_redirects=False)
    assert (resp.status, headers(resp), await resp.read()) == (301, {"Location": "tg/"}, b"")
    resp = await client.get("/tg/docs/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (301, "../docs")
    assert (await client.get("/tg/docs/")).url.path == "/tg/docs"
    resp = await client.get("/")  # outside the prefix nothing is served, the page included
    assert (resp.status, await resp.json()) == (404, {"error": "no resource at /"})


async def test_the_openapi_document_describes_both_routes(start):
    client = await start()
    document = openapi.build_document(client.app)
    index = document["paths"]["/"]["get"]
    assert (index["operationId"], index["security"], index["tags"]) == ("landing_index", [], ["taskgate"])
    assert sorted(index["responses"]) == ["200", "302", "406", "431"]
    assert set(index["responses"]["200"]["content"]) == {"application/json"}
    redirect = document["paths"]["/docs/"]["get"]
    assert (redirect["operationId"], sorted(redirect["responses"])) == ("landing_docs_redirect", ["301", "431"])
    from openapi_schema_validator import validate
    body = await (await client.get("/")).json()
    validate(body, index["responses"]["200"]["content"]["application/json"]["schema"])
    with pytest.raises(Exception, match="Additional properties"):
        validate({**body, "extra": 1}, index["responses"]["200"]["content"]["application/json"]["schema"])
