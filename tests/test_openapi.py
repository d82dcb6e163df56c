"""The OpenAPI document against the router, both ways, and the /docs page with its own files."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate

from gateway import openapi
from gateway.app import create_app
from gateway.config import Config

_PLACEHOLDER = re.compile(r"\{([^}]+)\}")


def _sample(param: dict | None) -> str:
    """A value for a path parameter that its schema admits."""
    schema = (param or {}).get("schema", {})
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") == "integer":
        return str(max(schema.get("minimum", 1), 1))
    return "Cust12345" if "tenant" in (param or {}).get("name", "") else "7"


async def _resolve(app: web.Application, method: str, path: str) -> web.AbstractRoute | None:
    match = await app.router.resolve(make_mocked_request(method, path, app=app))
    return None if match.http_exception is not None else match.route


@pytest.fixture(name="app")
def _app(tmp_path: Path) -> web.Application:
    return create_app(Config(base_dir=str(tmp_path)))


@pytest.fixture(name="document")
def _document(app: web.Application) -> dict:
    return openapi.build_document(app)


def test_the_document_is_valid_openapi_3(document: dict) -> None:
    validate(document)
    assert document["openapi"] == "3.0.3"
    assert {"bearer", "basic", "soTicket", "soAppToken", "oauth2", "session", "xsrf"} <= \
        set(document["components"]["securitySchemes"])


async def test_every_route_is_in_the_document_and_every_operation_is_a_route(app: web.Application,
                                                                              document: dict) -> None:
    """Both directions: each documented path+method resolves to a route, and each route
    (HEAD aside where the resource answers GET) is reached by some documented operation."""
    reached: set[tuple[str, str]] = set()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
            assert set(params) == set(_PLACEHOLDER.findall(path)), f"{method} {path}: path parameters"
            concrete = _PLACEHOLDER.sub(lambda m, params=params: _sample(params.get(m.group(1))), path)
            route = await _resolve(app, method.upper(), concrete)
            assert route is not None, f"the document names {method.upper()} {path}, which no route answers"
            assert route.resource.canonical == path, f"{method.upper()} {path} resolves to {route.resource.canonical}"
            reached.add((route.method, route.resource.canonical))
    routes = set()
    for resource in app.router.resources():
        methods = {r.method for r in resource}
        for route in resource:
            if route.method == "HEAD" and "GET" in methods:
                continue  # aiohttp's implicit HEAD of a GET route
            routes.add((route.method, resource.canonical))
    assert routes - reached == set(), "routes missing from the document"
    assert reached - routes == set()
    assert len(routes) == sum(len(ops) for ops in document["paths"].values())


async def test_an_undocumented_route_stops_the_build(app: web.Application) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()
    app.router.add_get("/task-status/v1/{id}/history", handler, name="sailpoint:history:v1")
    with pytest.raises(LookupError, match=r"GET /task-status/v1/\{id\}/history \(sailpoint:history:v1\)"):
        openapi.build_document(app)



async def test_a_nameless_route_stops_the_build(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()
    app = create_app(Config(base_dir=str(tmp_path)))
    app.router.add_get("/nameless", handler)
    with pytest.raises(LookupError, match="GET /nameless has no name"):
        openapi.build_document(app)


def test_operations_come_from_the_style_tables(document: dict) -> None:
    patch = document["paths"]["/v2025/task-status/{id}"]["patch"]
    assert patch["operationId"] == "sailpoint_patch_v2025"
    assert set(patch["requestBody"]["content"]) == {"application/json-patch+json", "application/json"}
    assert patch["responses"]["400"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/ErrorResponseDto"}
    assert patch["responses"]["401"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Unauthorized"}
    put = document["paths"]["/{tenant}/api/v1/BatchTask/{id}"]["put"]
    assert set(put["requestBody"]["content"]) == {
        "application/json", "text/json", "application/xml", "text/xml", "application/x-www-form-urlencoded",
        "application/json-patch+json", "application/merge-patch+json"}
    assert put["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SoError"}
    wm = document["paths"]["/rest/pub/opentask/{taskID}"]["put"]
    assert wm["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/IsError"}
    error = document["components"]["schemas"]["IsError"]
    assert set(error["required"]) == {"$error", "$errorType", "$errorDump", "$errorInfo"}
    assert document["paths"]["/oauth/token"]["post"]["security"] == []


def test_links_lead_from_create_to_get_and_update(document: dict) -> None:
    paths = document["paths"]
    sp = paths["/task-status/v1"]["post"]["responses"]["201"]["links"]
    assert sp == {"GetTaskStatus": {"operationId": "sailpoint_get_v1", "parameters": {"id": "$response.body#/id"}},
                  "PatchTaskStatus": {"operationId": "sailpoint_patch_v1", "parameters": {"id": "$response.body#/id"}}}
    so = paths["/{tenant}/api/v1/BatchTask/"]["post"]["responses"]["200"]["links"]
    assert so["PutBatchTask"] == {"operationId": "superoffice_put_tenant",
                                  "parameters": {"id": "$response.body", "tenant": "$request.path.tenant"}}
    wm = paths["/rest/pub/opentask"]["post"]["responses"]["200"]["links"]
    assert wm["UpdateTask"] == {"operationId": "webmethods_put", "parameters": {"taskID": "$response.body#/taskID"}}
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    for link in (link for ops in paths.values() for op in ops.values() for r in op["responses"].values()
                 for link in r.get("links", {}).values()):
        assert link["operationId"] in ids


def test_the_document_does_not_share_mutable_parts(document: dict, app: web.Application) -> None:
    again = openapi.build_document(app)
    assert again == document
    before = copy.deepcopy(again)
    again["paths"]["/task-status/v1"]["get"]["parameters"].clear()
    assert openapi.build_document(app) == before


async def test_the_document_is_built_once_per_set_of_routes(aiohttp_client, tmp_path: Path) -> None:
    """Applications with the same routes share one document body; other routes get their own."""
    from gateway.config import ServerConfig
    clients = [await aiohttp_client(create_app(Config(base_dir=str(tmp_path / name), server=server)))
               for name, server in (("a", ServerConfig()), ("b", ServerConfig()), ("c", ServerConfig(base_path="/tg")))]
    first, second, prefixed = (_served_app(client.app) for client in clients)
    assert first[openapi.DOCUMENT] is second[openapi.DOCUMENT]
    assert prefixed[openapi.DOCUMENT] != first[openapi.DOCUMENT]
    assert json.loads(first[openapi.DOCUMENT]) == openapi.build_document(first)


def _served_app(app: web.Application) -> web.Application:
    """The application holding the document: *app*, or its sub-application under a base path."""
    if openapi.DOCUMENT in app:
        return app
    return next(resource.get_info()["app"] for resource in app.router.resources()
                if isinstance(resource, web.PrefixedSubAppResource))


# -- served -----------------------------------------------------------------------------
async def test_openapi_json_is_served_without_credentials(aiohttp_client, app: web.Application) -> None:
    client = await aiohttp_client(app)
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(await resp.text()) == openapi.build_document(app)


async def test_docs_page_uses_only_its_own_files(aiohttp_client, app: web.Application) -> None:
    client = await aiohttp_client(app)
    resp = await client.get("/docs")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    page = await resp.text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(not re.match(r"[a-z]+:|//", ref) for ref in refs), refs  # relative: served here
    assert "http" not in page
    assert set(refs) == {f"docs/{name}" for name in openapi.DOCS_ASSETS}
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for ref in refs:
        asset = await client.get(f"/{ref}")
        body = await asset.read()
        assert asset.status == 200, ref
        expected = openapi.DOCS_ASSETS[ref.removeprefix("docs/")]
        assert asset.headers["Content-Type"].split(";")[0] == expected, ref
        assert len(body) > 100, ref
    bundle = await (await client.get("/docs/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle
    init = await (await client.get("/docs/swagger-initializer.js")).text()
    assert "openapi.json" in page and "SwaggerUIBundle(" in init and "http" not in init


async def test_docs_refuses_files_it_does_not_list(aiohttp_client, app: web.Application) -> None:
    client = await aiohttp_client(app)
    for name in ("swagger-editor-bundle.js", "..%2Fcore.py", "LICENSE"):
        resp = await client.get(f"/docs/{name}")
        assert resp.status == 404, name
        assert (await resp.json())["error"].startswith("no file")


async def test_under_a_base_path_the_document_and_page_carry_the_prefix(aiohttp_client, tmp_path: Path) -> None:
    from gateway.config import ServerConfig
    client = await aiohttp_client(create_app(Config(base_dir=str(tmp_path), server=ServerConfig(base_path="/tg"))))
    document = await (await client.get("/tg/openapi.json")).json()
    assert "/tg/task-status/v1/{id}" in document["paths"] and "/tg/rest/pub/opentask" in document["paths"]
    assert all(path.startswith("/tg/") for path in document["paths"])
    page = await (await client.get("/tg/docs")).text()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):  # relative to /tg/docs
        assert (await client.get(f"/tg/{ref}")).status == 200, ref
    assert (await client.get("/openapi.json")).status == 404
