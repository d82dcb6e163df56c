"""The OpenAPI 3 document at ``GET /openapi.json`` and the Swagger UI page at ``/docs``.

The document is generated, once per application, by walking ``app.router``: every named
route is looked up in the operation table of the style that owns it (its name's prefix,
``sailpoint:get:v1`` → :mod:`gateway.apis.sailpoint_openapi`), so a route without a
description stops the build and a description without a route is never emitted. Bodies
and responses name the marshmallow schemas of ``schemas/*``; apispec's MarshmallowPlugin
turns them into components. Swagger UI's files come from the ``swagger-ui-py`` package
and are served from here: the page loads nothing from elsewhere.

This module owns the generic parts (walking, path parameters, operation ids, links,
security schemes, the docs page); it must not know vendor URLs or shapes, which live in
the styles' ``*_openapi`` tables, and it never touches the store.
"""

from __future__ import annotations

import copy
import functools
import importlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields
from schemas.common import (
    HealthSchema,
    OAuthErrorSchema,
    OAuthTokenRequestSchema,
    OAuthTokenSchema,
    PlainErrorSchema,
    ReadySchema,
)

from gateway import __version__
from gateway.auth import public
from gateway.codecs import json_response

__all__ = ["setup", "build_document", "DOCUMENT", "DOCS_ASSETS", "operations", "json_body", "responses",
           "param", "UNDOCUMENTED_HEAD"]

DOCUMENT = web.AppKey("openapi_document", dict)
#: every GET route also answers HEAD (aiohttp adds it); the document lists the GET only
UNDOCUMENTED_HEAD = "HEAD"
#: the Swagger UI files /docs serves, from the swagger-ui-py package, with their media types
DOCS_ASSETS = {"swagger-ui.css": "text/css", "index.css": "text/css",
               "swagger-ui-bundle.js": "text/javascript", "swagger-ui-standalone-preset.js": "text/javascript",
               "favicon-32x32.png": "image/png", "favicon-16x16.png": "image/png",
               "swagger-initializer.js": "text/javascript"}
#: route-name prefix → the module holding that prefix's operation table
_TABLES = {"sailpoint": "gateway.apis.sailpoint_openapi", "superoffice": "gateway.apis.superoffice_openapi",
           "webmethods": "gateway.apis.webmethods_openapi", "oauth": __name__, "openapi": __name__,
           "taskgate": __name__}
_PLACEHOLDER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "a taskgate token (`taskgate token create`) or an access token from /oauth/token"},
    "oauth2": {"type": "oauth2", "description": "OAuth2 client credentials (`taskgate oauth-client add`)",
               "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {"sp:scopes:all": "everything"}}}},
    "basic": {"type": "http", "scheme": "basic", "description": "a user with a password (`taskgate user add --password-stdin`)"},
    "soTicket": {"type": "apiKey", "in": "header", "name": "Authorization",
                 "description": "`SOTicket <token>`: any taskgate token, as SuperOffice clients send it"},
    "soAppToken": {"type": "apiKey", "in": "header", "name": "SO-AppToken",
                   "description": "required with SOTicket when `superoffice.app_tokens` is set"},
    "session": {"type": "apiKey", "in": "cookie", "name": "taskgate_session",
                "description": "the session cookie `POST /login` sets; send it with xsrf"},
    "xsrf": {"type": "apiKey", "in": "header", "name": "X-XSRF-TOKEN",
             "description": "the XSRF-TOKEN cookie's value, echoed on every request of a session"},
}
#: every scheme the auth middleware accepts, on every route that is not public
ANY_CREDENTIALS: list[dict[str, list[str]]] = [{"bearer": []}, {"oauth2": ["sp:scopes:all"]}, {"basic": []},
                                               {"soTicket": [], "soAppToken": []}, {"soTicket": []},
                                               {"session": [], "xsrf": []}]


# -- helpers the styles' tables use ------------------------------------------------------------
def json_body(schema: Any, *, many: bool = False, types: Iterable[str] = ("application/json",),
              required: bool = True, description: str = "") -> dict[str, Any]:
    """A requestBody with *schema* (a marshmallow class or a JSON schema) under each of *types*."""
    body = _schema(schema, many)
    out: dict[str, Any] = {"required": required, "content": {t: {"schema": copy.deepcopy(body)} for t in types}}
    if description:
        out["description"] = description
    return out


def _schema(schema: Any, many: bool = False) -> Any:
    if many:
        return {"type": "array", "items": schema}
    return schema


def responses(ok: Mapping[int | str, Any], errors: Mapping[int, Any], statuses: Iterable[int],
              *, description: str = "") -> dict[str, Any]:
    """Responses: the successes in *ok* (``status → response object``) and an error body per
    status in *statuses*, from *errors* (``status → schema``, ``0`` for any other status)."""
    out: dict[str, Any] = {str(k): v for k, v in ok.items()}
    for status in sorted(set(statuses)):
        schema = errors.get(status, errors[0])
        out[str(status)] = {"description": _REASONS.get(status, "error") + (f": {description}" if description else ""),
                            "content": {"application/json": {"schema": schema}}}
    return out


def param(name: str, where: str, schema: Mapping[str, Any], description: str = "",
          required: bool = False) -> dict[str, Any]:
    out = {"name": name, "in": where, "schema": dict(schema), "required": required or where == "path"}
    if description:
        out["description"] = description
    return out


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            406: "Not Acceptable", 409: "Conflict", 412: "Precondition Failed", 413: "Payload Too Large",
            415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error"}


# -- taskgate's own routes ---------------------------------------------------------------------
TAG = "taskgate"
PATH_PARAMETERS = {"asset": param("asset", "path", {"type": "string", "enum": list(DOCS_ASSETS)})}
_OAUTH_ERRORS = {0: OAuthErrorSchema}
#: the error body of taskgate's own routes (no vendor's): {"error": "…"}
_OWN_ERRORS = {0: PlainErrorSchema}
ERRORS = _OWN_ERRORS
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("token", "POST"): {
        "summary": "OAuth2 client credentials: exchange a client id and secret for an access token",
        "description": "Parameters come as a form, in the query, or (id and secret) as HTTP Basic.",
        "security": [],
        "parameters": [param("grant_type", "query", {"type": "string", "enum": ["client_credentials"]}),
                       param("client_id", "query", {"type": "string"}),
                       param("client_secret", "query", {"type": "string"})],
        "requestBody": {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": OAuthTokenRequestSchema},
            "multipart/form-data": {"schema": OAuthTokenRequestSchema}}},
        "responses": responses({200: {"description": "a bearer token",
                                      "content": {"application/json": {"schema": OAuthTokenSchema}}}},
                               _OAUTH_ERRORS, (400, 401, 408, 413, 429)),
    },
    ("healthz", "GET"): {
        "summary": "Alive: the process answers (says nothing about the database)", "security": [],
        "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": HealthSchema}}}},
    },
    ("readyz", "GET"): {
        "summary": "Ready: not shutting down, the schema current, the database takes a write", "security": [],
        "responses": {"200": {"description": "ready", "content": {"application/json": {"schema": ReadySchema}}},
                      "503": {"description": "not ready, and why",
                              "content": {"application/json": {"schema": ReadySchema}}}},
    },
    ("metrics", "GET"): {
        "summary": "Prometheus metrics (metrics.expose: loopback clients, or the bearer of metrics.token)",
        "security": [],
        "responses": {"200": {"description": "the Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": {"description": "metrics.expose is token and the bearer token is missing or wrong",
                              "content": {"application/json": {"schema": PlainErrorSchema}}},
                      "403": {"description": "metrics.expose is loopback and the client is not",
                              "content": {"application/json": {"schema": PlainErrorSchema}}}},
    },
    ("json", "GET"): {
        "summary": "This OpenAPI document", "security": [],
        "responses": {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {"schema": {"type": "object"}}}}},
    },
    ("docs", "GET"): {
        "summary": "Swagger UI for this document", "security": [],
        "responses": {"200": {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}},
    },
    ("asset", "GET"): {
        "summary": "The files of the Swagger UI page", "security": [],
        "responses": {"200": {"description": "a Swagger UI file", "content": {
            t: {"schema": {"type": "string"}} for t in sorted(set(DOCS_ASSETS.values()))}},
            "404": {"description": "no such file", "content": {"application/json": {"schema": PlainErrorSchema}}}},
    },
}


# -- the document ------------------------------------------------------------------------------
def _table(prefix: str) -> Any:
    module = _TABLES.get(prefix)
    if module is None:
        raise LookupError(f"routes named {prefix}:… have no OpenAPI table; add one to gateway/openapi.py _TABLES")
    return importlib.import_module(module)


def operations(app: web.Application) -> list[tuple[str, str, str]]:
    """``(route name, method, path template)`` of every route the document describes: each
    named route, HEAD left out where the same resource answers GET."""
    found = []
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path")
        if path is None:  # a static or prefixed resource: nothing taskgate registers
            raise LookupError(f"resource {resource!r} has no fixed path; register named routes only")
        methods = {route.method for route in resource}
        for route in resource:
            if route.method == UNDOCUMENTED_HEAD and "GET" in methods:
                continue
            if not resource.name:
                raise LookupError(f"{route.method} {path} has no name, so no OpenAPI description")
            found.append((resource.name, route.method, path))
    return found


def _operation_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name)


def _cross_cutting(op: dict[str, Any], errors: Mapping[int, Any]) -> None:
    """Statuses any route can answer, whatever its handler does, in the route's error body:
    431 (too many or too long headers); 408 and 413 where a body is read; 429 where the
    caller may sign in with a password (Basic), after too many failed sign-ins."""
    statuses = [431]
    if "requestBody" in op:
        statuses += [408, 413]
    if op.get("security") != []:
        statuses.append(429)
    for status, response in responses({}, errors, statuses).items():
        if status == "429":
            response["headers"] = {"Retry-After": {"description": "seconds until the address may sign in again",
                                                   "schema": {"type": "integer"}}}
        op["responses"].setdefault(status, response)


def _link_target(name: str, kind: str, names: set[str]) -> str:
    """The route a link from *name* to an operation of *kind* goes to: the same style and
    variant (version, tenant prefix), without the trailing-slash variant."""
    prefix, _kind, *variant = name.split(":")
    variant = [v for v in variant if v != "slash"]
    for candidate in (":".join([prefix, kind, *variant]), f"{prefix}:{kind}"):
        if candidate in names:
            return candidate
    raise LookupError(f"{name}: no route {prefix}:{kind} to link to")


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route of *app*."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title="taskgate", version=__version__, openapi_version="3.0.3", plugins=[plugin],
                   info={"description": "Task-status APIs of SailPoint ISC, SuperOffice WebAPI and webMethods "
                                        "Task Engine over one SQLite file. Every GET also answers HEAD."})
    _teach(plugin)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    routes = operations(app)
    names = {name for name, _method, _path in routes}
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, str] = {}
    for name, method, path in routes:
        prefix, kind = (name.split(":") + [""])[:2]
        table = _table(prefix)
        try:
            op = copy.deepcopy(table.OPERATIONS[(kind, method)])
        except KeyError:
            raise LookupError(f"{method} {path} ({name}) is not in {table.__name__}.OPERATIONS") from None
        _cross_cutting(op, getattr(table, "ERRORS", _OWN_ERRORS))
        op["operationId"] = _operation_id(name)
        op.setdefault("tags", [table.TAG])
        tags.setdefault(table.TAG, getattr(table, "TAG_DESCRIPTION", ""))
        op.setdefault("security", getattr(table, "SECURITY", ANY_CREDENTIALS))
        placeholders = _PLACEHOLDER.findall(path)
        given = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
        op["parameters"] = [copy.deepcopy(table.PATH_PARAMETERS[p]) for p in placeholders if p not in given] \
            + op.get("parameters", [])
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = _link_target(name, link.pop("x-target"), names)
                link["operationId"] = _operation_id(target)
                target_path = next(p for n, _m, p in routes if n == target)
                for placeholder in _PLACEHOLDER.findall(target_path):
                    if placeholder in placeholders:  # the tenant prefix carries over
                        link["parameters"].setdefault(placeholder, f"$request.path.{placeholder}")
        paths.setdefault(path, {})[method.lower()] = op
    for tag, description in tags.items():
        spec.tag({"name": tag, "description": description})
    for path, ops in paths.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


def _teach(plugin: MarshmallowPlugin) -> None:
    """Types of the project's own marshmallow fields, and ECMA-262 patterns."""
    from schemas import common, superoffice, webmethods
    plugin.map_to_openapi_type(common.UtcDateTime, "string", "date-time")
    plugin.map_to_openapi_type(superoffice._LocalDateTime, "string", None)
    plugin.map_to_openapi_type(superoffice._Enum, "string", None)
    plugin.map_to_openapi_type(webmethods.WmDate, "string", None)

    def enum_and_pattern(_converter: Any, field: fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names = getattr(field, "names", None) or list(getattr(field, "values", {}) or ())
        if isinstance(field, (common.EnumName, superoffice._Enum)) and names:
            out["enum"] = list(names)
            if isinstance(field, superoffice._Enum):
                out["description"] = "a name (any case) or its number: " + ", ".join(
                    f"{n} = {v}" for n, v in field.values.items())
        if "pattern" in ret:  # marshmallow's Regexp matches from the start; \Z is Python's end of text
            pattern = ret["pattern"]
            pattern = pattern[:-2] + "$" if pattern.endswith("\\Z") else pattern
            out["pattern"] = pattern if pattern.startswith("^") else "^" + pattern
        enum = out.get("enum", ret.get("enum"))
        if field.allow_none and enum is not None and None not in enum:
            out["enum"] = [*enum, None]  # OpenAPI 3.0: nullable admits null only where the enum lists it
        return out
    plugin.converter.add_attribute_function(enum_and_pattern)


# -- handlers -----------------------------------------------------------------------------------
@public
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(request.app[DOCUMENT])


_DOCS_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>taskgate API</title>
<link rel="stylesheet" type="text/css" href="docs/swagger-ui.css">
<link rel="stylesheet" type="text/css" href="docs/index.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui" data-url="openapi.json"></div>
<script src="docs/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="docs/swagger-ui-standalone-preset.js" charset="utf-8"></script>
<script src="docs/swagger-initializer.js" charset="utf-8"></script>
</body>
</html>
"""
# the only script of our own, a file rather than inline, so a strict CSP can allow 'self' only
_INITIALIZER = """window.onload = function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: new URL(root.dataset.url, document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    validatorUrl: null
  });
};
"""


def _static_dir() -> Path:
    import swagger_ui
    return Path(swagger_ui.__file__).parent / "static"


@public
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_HTML, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                                            "style-src 'self' 'unsafe-inline'"})


@public
async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name == "swagger-initializer.js":
        return web.Response(text=_INITIALIZER, content_type="text/javascript", charset="utf-8")
    ctype = DOCS_ASSETS.get(name)
    if ctype is None:
        return json_response({"error": f"no file {name[:80]!r}"}, status=404)
    charset = "utf-8" if ctype.startswith("text/") else None
    return web.Response(body=_asset(name), content_type=ctype, charset=charset,
                        headers={"Cache-Control": "public, max-age=86400"})


@functools.lru_cache(maxsize=len(DOCS_ASSETS))
def _asset(name: str) -> bytes:
    return (_static_dir() / name).read_bytes()


async def _build(app: web.Application) -> None:
    app[DOCUMENT] = build_document(app)


def setup(app: web.Application) -> None:
    """Register /openapi.json, /docs and its files; the document is built at start-up,
    when every route is in place."""
    r = app.router
    r.add_get("/openapi.json", openapi_json, name="openapi:json")
    r.add_get("/docs", docs_page, name="openapi:docs")
    r.add_get("/docs/{asset}", docs_asset, name="openapi:asset")
    app.on_startup.append(_build)

