"""taskgate's front door: ``GET /``, the landing answer, and ``/docs/``, which is ``/docs``.

A browser (``Accept`` preferring ``text/html``) is sent to the dashboard (``302`` to
``ui/``, relative so that a proxy's prefix stays; :mod:`gateway.ui`). Every other client
(``application/json``, ``*/*`` or no ``Accept``) gets JSON naming taskgate and its version
with links to the API documentation (``/docs``), the OpenAPI document and the operational
endpoints (``/healthz``, ``/readyz``, and ``/metrics`` when it is exposed). A link is given
only when its route is registered, and is found by the route's name, so the answer
follows the router (and ``server.base_path``).

This module also holds the OpenAPI operation table of the routes it registers (named
``landing:…``; :mod:`gateway.openapi` looks the prefix up). It must not know a vendor's
URLs or touch the store.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.auth import public
from gateway.codecs import json_response, negotiate
from schemas.common import PlainErrorSchema

__all__ = ["setup", "add_base_redirect", "index", "docs_redirect", "NAME", "DESCRIPTION", "LINKS", "TAG",
           "OPERATIONS", "ERRORS", "PATH_PARAMETERS"]

NAME = "taskgate"
DESCRIPTION = ("Task-status APIs of SailPoint ISC, SuperOffice WebAPI and webMethods Task Engine "
               "over one SQLite file.")
#: what the page links to, in its order: (key in the JSON, route name, what it is)
LINKS = (("docs", "openapi:docs", "the API documentation (Swagger UI)"),
         ("openapi", "openapi:json", "the OpenAPI document"),
         ("healthz", "taskgate:healthz", "whether the process is alive"),
         ("readyz", "taskgate:readyz", "whether taskgate is ready (the database takes a write)"),
         ("metrics", "taskgate:metrics", "Prometheus metrics"))
_OFFERED = ("application/json", "text/html")  # JSON first: it wins a tie, such as */*
_DASHBOARD = "ui/"  # relative: / → /ui/, and under a prefix one prefix down
_DOCS = "../docs"  # /docs/ → /docs, relative so that a proxy's prefix stays


def _links(request: web.Request) -> list[tuple[str, str, str]]:
    """``(key, path, what)`` of each linked route that is registered, paths with the base path."""
    routes = request.app.router.named_resources()
    return [(key, str(routes[name].url_for()), what) for key, name, what in LINKS if name in routes]


@public
async def index(request: web.Request) -> web.Response:
    """The landing answer as the Accept header prefers: JSON, or the dashboard (406 if neither)."""
    answer = negotiate(request, _OFFERED)
    links = _links(request)
    if answer == "text/html":  # a browser: to the dashboard
        return web.Response(status=302, headers={"Vary": "Accept", "Location": _DASHBOARD})
    return json_response({"name": NAME, "version": __version__, "description": DESCRIPTION,
                          "links": {key: path for key, path, _what in links}}, headers={"Vary": "Accept"})


@public
async def docs_redirect(request: web.Request) -> web.Response:
    """``/docs/`` → ``/docs``, the query kept. Not the same page: its relative links would
    resolve one folder too deep."""
    location = _DOCS + (f"?{request.query_string}" if request.query_string else "")
    return web.Response(status=301, headers={"Location": location})


def setup(app: web.Application) -> None:
    """Register ``/`` and ``/docs/``, named ``landing:…``."""
    app.router.add_get("/", index, name="landing:index")
    app.router.add_get("/docs/", docs_redirect, name="landing:docs-redirect")


def add_base_redirect(outer: web.Application, base_path: str) -> None:
    """On the application that mounts taskgate under *base_path*: *base_path* itself
    redirects to *base_path*/, where the landing page is (its routes are all under the
    prefix, so the OpenAPI document, which describes them, has no entry for this one)."""

    @public
    async def to_landing(request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": base_path.rpartition("/")[2] + "/"})

    outer.router.add_get(base_path, to_landing, name="landing:base-redirect")


# -- the OpenAPI description of these routes ---------------------------------------------------
TAG = "taskgate"
ERRORS: dict[int, Any] = {0: PlainErrorSchema}
PATH_PARAMETERS: dict[str, Any] = {}
_LANDING_JSON = {
    "type": "object", "additionalProperties": False, "required": ["name", "version", "description", "links"],
    "properties": {
        "name": {"type": "string", "enum": [NAME]},
        "version": {"type": "string", "example": __version__},
        "description": {"type": "string"},
        "links": {"type": "object", "additionalProperties": False, "required": [k for k, _n, _w in LINKS[:4]],
                  "description": "the path of each, with server.base_path; metrics only when exposed",
                  "properties": {key: {"type": "string", "description": what} for key, _name, what in LINKS}},
    },
}
_VARY = {"Vary": {"description": "the answer depends on Accept", "schema": {"type": "string", "enum": ["Accept"]}}}
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("index", "GET"): {
        "summary": "The landing answer: name, version, and links to the documentation and health endpoints",
        "description": "JSON for API clients (application/json, */* or no Accept); a browser (Accept preferring "
                       "text/html) is sent to the dashboard at ui/.",
        "security": [],
        "responses": {
            "200": {"description": "the landing answer", "headers": _VARY,
                    "content": {"application/json": {"schema": _LANDING_JSON}}},
            "302": {"description": "a browser: to the dashboard",
                    "headers": {**_VARY, "Location": {"description": "ui/", "schema": {"type": "string",
                                                                                      "enum": ["ui/"]}}}},
            "406": {"description": "Not Acceptable: the Accept header admits neither JSON nor HTML",
                    "content": {"application/json": {"schema": PlainErrorSchema}}},
        },
    },
    ("docs-redirect", "GET"): {
        "summary": "/docs/ is /docs: a permanent redirect there", "security": [],
        "responses": {"301": {"description": "moved to /docs",
                              "headers": {"Location": {"description": "../docs, with the query if there is one",
                                                       "schema": {"type": "string"}}}}},
    },
}
