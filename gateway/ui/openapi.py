"""The dashboard's routes in the OpenAPI document: HTML pages for browsers, listed so that
the document describes every route (as the landing page's are), under their own tag.

Owns the operation table of the routes named ``ui:…``; :mod:`gateway.openapi` looks the
prefix up. Must not know a page's content.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi import param
from schemas.common import PlainErrorSchema

__all__ = ["TAG", "TAG_DESCRIPTION", "OPERATIONS", "ERRORS", "PATH_PARAMETERS", "SECURITY"]

TAG = "taskgate dashboard"
TAG_DESCRIPTION = ("The dashboard for people: server-rendered HTML under /ui/ (docs/dashboard.md). Pages sign in "
                   "with the session of /login (a GET takes the cookie alone; a POST carries the XSRF token in "
                   "its form) and answer a missing sign-in with the sign-in page.")
ERRORS: dict[int, Any] = {0: PlainErrorSchema}
PATH_PARAMETERS: dict[str, Any] = {"name": param("name", "path", {"type": "string"}, "a file of the dashboard")}
#: the pages check the session themselves (a redirect to the sign-in page, not a 401)
SECURITY: list[dict[str, list[str]]] = []
_HTML = {"text/html": {"schema": {"type": "string"}}}
_FORM = "application/x-www-form-urlencoded"


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": _HTML}


def _redirect(description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": {"Location": {"description": "where to go, relative", "schema": {"type": "string"}}}}


_SIGN_IN = _redirect("not signed in: to the sign-in page (login), with the page to come back to")
_TASK_PARAMS = [param("style", "query", {"type": "string", "enum": ["sailpoint", "superoffice", "webmethods"]},
                      required=True),
                param("id", "query", {"type": "string"}, "the task's id", required=True)]


def _form_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {_FORM: {"schema": schema}}}


_NOT_A_FORM = _page("the body is not application/x-www-form-urlencoded")
_XSRF = {"xsrf": {"type": "string", "description": "the session's XSRF token (the page's hidden field)"}}
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("root", "GET"): {"summary": "/ui is /ui/: a permanent redirect there",
                      "responses": {"301": _redirect("moved to ui/")}},
    ("list", "GET"): {
        "summary": "The task list of every style: filters, sort, pages, live updates",
        "parameters": [param("style", "query", {"type": "string", "enum": ["sailpoint", "superoffice", "webmethods"]}),
                       param("status", "query", {"type": "string"}),
                       param("owner", "query", {"type": "string", "maxLength": 200}),
                       param("q", "query", {"type": "string", "maxLength": 200}, "text in the task's name or id"),
                       param("sort", "query", {"type": "string", "enum": ["created", "name", "status", "id"]}),
                       param("order", "query", {"type": "string", "enum": ["asc", "desc"]}),
                       param("page", "query", {"type": "integer", "minimum": 1})],
        "responses": {"200": _page("the list"), "303": _SIGN_IN, "400": _page("a filter that is not valid")}},
    ("login", "GET"): {"summary": "The sign-in form", "responses": {"200": _page("the form")}},
    ("signin", "POST"): {
        "summary": "Sign in: starts the session POST /login starts, then to the list",
        "requestBody": _form_body({"user": {"type": "string"}, "password": {"type": "string"},
                                   "next": {"type": "string"}}, ["user", "password"]),
        "responses": {"303": _redirect("signed in: to the list (or the page it came from)"),
                      "400": _page("the form lacks user or password"),
                      "401": _page("wrong user name or password"), "415": _NOT_A_FORM,
                      "429": _page("too many failed sign-ins from this address")}},
    ("logout", "POST"): {
        "summary": "Sign out: ends the browser session of the cookie (none: straight to the sign-in page)",
        "requestBody": {**_form_body(_XSRF, []), "required": False,
                        "description": "xsrf is needed when there is a session cookie to end"},
        "responses": {"303": _redirect("to the sign-in page (at once without a browser session)"),
                      "403": _page("the XSRF token does not match"), "415": _NOT_A_FORM}},
    ("task", "GET"): {
        "summary": "A task: its document, the timeline of every change as a diff, undo (admins)",
        "parameters": [*_TASK_PARAMS, param("before", "query", {"type": "integer"}, "older changes: before this one"),
                       param("undone", "query", {"type": "integer"})],
        "responses": {"200": _page("the task"), "303": _SIGN_IN, "400": _page("style or id missing"),
                      "404": _page("no such task, or the user may not see it (access denied)")}},
    ("parts", "GET"): {
        "summary": "The part of a task's page a live update fetches again: document and timeline",
        "parameters": [*_TASK_PARAMS, param("before", "query", {"type": "integer"})],
        "responses": {"200": _page("the part"), "400": _page("style or id missing"), "401": _page("not signed in"),
                      "404": _page("no such task, or the user may not see it")}},
    ("undo", "POST"): {
        "summary": "Undo one change (admins): its inverse, on the version the page showed",
        "requestBody": _form_body({**_XSRF, "style": {"type": "string"}, "id": {"type": "string"},
                                   "seq": {"type": "integer"}, "version": {"type": "integer"}},
                                  ["xsrf", "style", "id", "seq", "version"]),
        "responses": {"303": _redirect("undone: back to the task's page"), "400": _page("a field that is not valid"),
                      "401": _page("not signed in"), "403": _page("not an admin, or the XSRF token does not match"),
                      "404": _page("no such task or change"), "415": _NOT_A_FORM,
                      "409": _page("refused: a later change conflicts, or the task changed since the page")}},
    ("live", "GET"): {
        "summary": "The live updates of a page: Server-Sent Events, one per change of a task it shows, its row as HTML",
        "parameters": [param("keys", "query", {"type": "string", "pattern": "^(t[0-9a-f]{20}(,t[0-9a-f]{20}){0,99})?$"},
                             "the live keys of the tasks the page shows, comma-separated"),
                       param("list", "query", {"type": "string", "maxLength": 1000},
                             "a list page: its query string (filters, sort, page), so that new tasks it "
                             "selects are sent too (as new-row or new-tasks events)")],
        "responses": {"400": {"description": "keys that are not the live keys of at most 100 tasks, or a list "
                                             "whose filters are not valid",
                              "content": {"text/html": {"schema": {"type": "string"}}}},
                      "200": {"description": "the stream", "content": {"text/event-stream": {"schema": {
                          "type": "string"}}}},
                      "401": {"description": "not signed in",
                              "content": {"text/html": {"schema": {"type": "string"}}}},
                      "503": {"description": "ui.max_live_streams pages are live already",
                              "content": {"text/html": {"schema": {"type": "string"}}}}}},
    ("hooks", "GET"): {
        "summary": "The event subscriptions of every style, and the newest delivery attempts (admins)",
        "responses": {"200": _page("the subscriptions"), "303": _SIGN_IN,
                      "403": _page("not an admin (access denied)")}},
    ("hook", "GET"): {
        "summary": "One event subscription, secrets blanked, and its delivery log (admins)",
        "parameters": [param("name", "query", {"type": "string"}, "the subscription as the delivery log names it, "
                             "style:kind/id (e.g. superoffice:webhook/1)", required=True)],
        "responses": {"200": _page("the subscription"), "303": _SIGN_IN, "400": _page("no name"),
                      "403": _page("not an admin (access denied)"), "404": _page("no such subscription")}},
    ("testing", "GET"): {
        "summary": "The testing toolkit's open namespaces (admins; with testing on)",
        "responses": {"200": _page("the namespaces"), "303": _SIGN_IN,
                      "403": _page("not an admin (access denied)"), "404": _page("the testing toolkit is off")}},
    ("namespace", "GET"): {
        "summary": "One test namespace: its clock, fault rules, scripted progress and journal (admins)",
        "parameters": [param("name", "query", {"type": "string"}, "the namespace", required=True)],
        "responses": {"200": _page("the namespace"), "303": _SIGN_IN, "400": _page("no name"),
                      "403": _page("not an admin (access denied)"),
                      "404": _page("no such namespace open, or the testing toolkit is off")}},
    ("static", "GET"): {
        "summary": "The dashboard's files: its stylesheet and icon, htmx and its SSE extension with their licences",
        "responses": {"200": {"description": "the file", "content": {
                          "text/css": {"schema": {"type": "string"}}, "text/javascript": {"schema": {"type": "string"}},
                          "text/plain": {"schema": {"type": "string"}},
                          "image/svg+xml": {"schema": {"type": "string"}}}},
                      "404": {"description": "no such file",
                              "content": {"application/json": {"schema": PlainErrorSchema}}}}},
}
