"""taskgate's front door: ``GET /``, the landing page, and ``/docs/``, which is ``/docs``.

The page names taskgate and its version and links to the API documentation (``/docs``),
the OpenAPI document and the operational endpoints (``/healthz``, ``/readyz``, and
``/metrics`` when it is exposed): HTML for a browser (``Accept: text/html``), JSON for
every other client (``application/json``, ``*/*`` or no ``Accept``). A link is shown only
when its route is registered, and is found by the route's name, so the page follows the
router (and ``server.base_path``). The HTML has no script and no style, and its links are
relative, as the Swagger UI page's are, so that it works behind a proxy that maps a
prefix; everything interpolated into it is escaped.

This module also holds the OpenAPI operation table of the routes it registers (named
``landing:…``; :mod:`gateway.openapi` looks the prefix up). It must not know a vendor's
URLs or touch the store.
"""

from __future__ import annotations

import html
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
#: the page runs nothing and loads nothing
_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_DOCS = "../docs"  # /docs/ → /docs, relative so that a proxy's prefix stays


def _links(request: web.Request) -> list[tuple[str, str, str]]:
    """``(key, path, what)`` of each linked route that is registered, paths with the base path."""
    routes = request.app.router.named_resources()
    return [(key, str(routes[name].url_for()), what) for key, name, what in LINKS if name in routes]


def _html(links: list[tuple[str, str, str]], here: str) -> str:
    items = "".join(f'<li><a href="{html.escape(path.removeprefix(here), quote=True)}">'
                    f"{html.escape(path.rpartition('/')[2])}</a>: {html.escape(what)}</li>\n"
                    for _key, path, what in links)
    title = html.escape(f"{NAME} {__version__}")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f"</head>\n<body>\n<h1>{title}</h1>\n<p>{html.escape(DESCRIPTION)}</p>\n<ul>\n{items}</ul>\n"
            "</body>\n</html>\n")


@public
async def index(request: web.Request) -> web.Response:
    """The landing page, in the media type the Accept header prefers (406 if neither)."""
    answer = negotiate(request, _OFFERED)
    links = _links(request)
    if answer == "text/html":
        here = str(request.app.router["landing:index"].url_for())
        return web.Response(text=_html(links, here), content_type="text/html", charset="utf-8",
                            headers={"Vary": "Accept", "Content-Security-Policy": _CSP})
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
        "summary": "The landing page: name, version, and links to the documentation and health endpoints",
        "description": "HTML when Accept prefers text/html (a browser), JSON otherwise (application/json, */* "
                       "or no Accept).",
        "security": [],
        "responses": {
            "200": {"description": "the page", "headers": _VARY,
                    "content": {"application/json": {"schema": _LANDING_JSON},
                                "text/html": {"schema": {"type": "string"}}}},
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
