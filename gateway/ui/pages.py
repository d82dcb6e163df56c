"""The dashboard's pages: sign-in, the task list, a task with its timeline, undo, its files.

Every page lives in the one folder ``/ui/`` (``/ui`` redirects there), so that every link
is relative and the same from each page: the dashboard works under ``server.base_path``
and behind a proxy that maps a prefix, as the landing page and Swagger UI do. Pages are
rendered on the server from Jinja2 templates (autoescaped); the browser runs only the
vendored htmx and its SSE extension from ``/ui/static/`` (:data:`ASSETS`), under a
Content-Security-Policy that allows nothing else: no inline script or style, no other
origin.

Who is signed in: the session of ``POST /login`` (:mod:`gateway.auth.sessions`; the
dashboard's own form starts the same session). A page is a navigation, which cannot send
the ``X-XSRF-TOKEN`` header, so a GET here takes the session cookie alone (it is
``SameSite=Strict``, and a GET changes nothing); every POST carries the XSRF token in a
form field, checked against the session as the header would be. An ``Authorization``
header works as on every route. The handlers are marked public for the auth middleware
because they answer a missing sign-in with the sign-in page, not a 401.

What a user sees follows each style's read rule (:mod:`gateway.ui.views`); undo is for
admins (:mod:`gateway.undo`). Must hold no SQL and no vendor rule.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from gateway import errors
from gateway.auth import AUTHENTICATOR, SESSION_COOKIE, Principal, public, xsrf_token
from gateway.auth.sessions import end_session, open_session, set_session_cookies
from gateway.clock import now_iso
from gateway.codecs import decode_form, is_number, read_body
from gateway.context import CONFIG, STORE, request_id
from gateway.model import Task
from gateway.turns import caller_turn
from gateway.ui import views
from gateway.undo import UNDO_MARK, check_undo, undo_mutation

__all__ = ["CSP", "ASSETS", "VENDORED", "live_key", "render", "render_row", "render_deleted", "page_handler",
           "html_response", "signed_in", "setup_pages", "find_rows", "owner_associate", "render_new_row",
           "render_new_tasks", "xsrf_of", "to_login", "PAGES"]

#: the dashboard runs its own files only: no inline script or style, no other origin
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: the files under /ui/static/, with their media types
ASSETS = {"dashboard.css": "text/css", "favicon.svg": "image/svg+xml",
          "htmx-2.0.11.min.js": "text/javascript", "htmx-2.0.11.LICENSE": "text/plain",
          "htmx-ext-sse-2.2.4.js": "text/javascript", "htmx-ext-sse-2.2.4.LICENSE": "text/plain"}
#: the files of npm packages at pinned versions, each with its licence, kept in static/vendor/
#: (docs/dashboard.md says why these and how to update them); their names carry the version
VENDORED = frozenset(name for name in ASSETS if name.startswith("htmx"))
#: changes shown per page of a task's timeline, at most
TIMELINE_PAGE = 100
#: members shown per change, and in all on one page of the timeline: a change that replaced
#: 40,000 members made a page of 65 MB, built on the event loop while every client waited
TIMELINE_LINES_PER_CHANGE = 50
TIMELINE_LINES = 500
#: changes read per query while a page of the timeline is put together, and their most
#: bytes of patches (the first always comes: rows of 40,000 members are read one at a time)
_TIMELINE_READ = 5
_TIMELINE_READ_BYTES = 1 << 20
#: later changes an undo checks for a conflict; beyond them it is refused
MAX_LATER = 1_000
_HOME = "./"  # every page is in /ui/, so this is the list from all of them
#: the pages a sign-in may go back to
PAGES = ("", "task", "hooks", "hook", "testing", "namespace")
#: whether the page being rendered links the testing toolkit's pages (set per request)
_TOOLKIT: contextvars.ContextVar[bool] = contextvars.ContextVar("ui_toolkit", default=False)
_FORM = ("application/x-www-form-urlencoded",)


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("gateway.ui", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.globals.update(live_key=lambda row: live_key(row.style, row.id), row_query=lambda row: _task_query(row.style,
                                                                                                           row.id))
    return env


def live_key(style: str, task_id: str) -> str:
    """The name of a task's live event: safe in an attribute and in an htmx trigger,
    whatever the id holds."""
    return "t" + hashlib.blake2s(f"{style}\0{task_id}".encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def _task_query(style: str, task_id: str, **more: Any) -> str:
    return urlencode({"style": style, "id": task_id, **more})


def render(name: str, **values: Any) -> str:
    return _templates().get_template(name).render(home=_HOME, static=_HOME + "static/", toolkit=_TOOLKIT.get(),
                                                  **values)


def render_row(row: views.Row) -> str:
    """The cells of a task's row in the list (what a live event carries)."""
    return str(_templates().get_template("_row.html").module.cells(row, _HOME))  # type: ignore[attr-defined]


def render_new_row(row: views.Row) -> str:
    """A task created after the list was loaded, as a row of its own (what a live event
    carries to the top of the list)."""
    return str(_templates().get_template("_row.html").module.tr(row, _HOME))  # type: ignore[attr-defined]


def render_new_tasks(count: int, filters: views.Filters, many: bool = False) -> str:
    """The list's notice of *count* new tasks that match it, with the link that shows them."""
    return render("_new.html", count=count, many=many, query=filters.query_string(page=1))


def render_deleted(style: str, task_id: str) -> str:
    return render("_deleted.html", label=views.VIEWS[style].label, id=task_id)


def html_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                                 **(headers or {})})


def page_handler(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Callable[[web.Request],
                                                                                        Awaitable[web.StreamResponse]]:
    """Errors as an HTML page with the error's status, rather than the JSON of the API."""
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        _TOOLKIT.set(request.app[CONFIG].testing.enabled)
        try:
            return await handler(request)
        except errors.TaskgateError as err:
            who = request.get(_WHO)
            return html_response(render("error.html", title=err.title, message=err.message, who=who,
                                        xsrf=xsrf_of(request), live=""), err.status, err.headers)
    return public(run)


_WHO = web.RequestKey("ui_principal", Principal)


def xsrf_of(request: web.Request) -> str:
    session = request.cookies.get(SESSION_COOKIE)
    return xsrf_token(session) if session else ""


async def signed_in(request: web.Request) -> Principal | None:
    """Who is signed in: an Authorization header, else the session cookie (no XSRF header:
    see the module's docstring); None when nobody (or the session has ended)."""
    authenticator = request.app[AUTHENTICATOR]
    try:
        if request.headers.get("Authorization"):
            who = await authenticator.authenticate_request(request)
        else:
            session = request.cookies.get(SESSION_COOKIE)
            if not session:
                return None
            who = await authenticator.by_token(session)
    except errors.Unauthorized:
        return None
    request[_WHO] = who
    return who


def to_login(request: web.Request) -> web.Response:
    target = "login" + (f"?{urlencode({'next': request.rel_url.path_qs})}" if request.rel_url.query_string else "")
    return web.Response(status=303, headers={"Location": target, "Cache-Control": "no-store"})


async def _form(request: web.Request) -> dict[str, str]:
    _ctype, body = await read_body(request, _FORM)
    return dict(decode_form(body))


def _check_xsrf(request: web.Request, form: dict[str, str]) -> None:
    """A POST by a session carries its XSRF token (a form field, as a header would)."""
    if request.headers.get("Authorization"):
        return
    expected = xsrf_of(request)
    if not expected or not hmac.compare_digest(form.get("xsrf", "").encode("utf-8", "surrogatepass"),
                                               expected.encode()):
        raise errors.Forbidden("the form's XSRF token does not match the session: reload the page and try again")


# -- sign-in ---------------------------------------------------------------------------------------------
def _safe_next(raw: str) -> str:
    """Where to go after signing in: a page of the dashboard only (never another site)."""
    path, _, query = raw.partition("?")
    page = path.rpartition("/")[2]
    if raw.startswith("//") or "\\" in raw or page not in PAGES:
        return _HOME
    return (page or _HOME) + (f"?{query}" if query else "")


@page_handler
async def login_page(request: web.Request) -> web.StreamResponse:
    return html_response(render("login.html", who=None, xsrf="", live="", message="", user="",
                                next=request.query.get("next", "")))


@page_handler
async def login_form(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    name = form.get("user", "")
    try:
        session, xsrf = await open_session(request, name, form.get("password", ""))
    except (errors.Unauthorized, errors.BadRequest, errors.TooManyRequests) as err:
        return html_response(render("login.html", who=None, xsrf="", live="", message=err.message, user=name,
                                    next=form.get("next", "")), err.status, err.headers)
    response = web.Response(status=303, headers={"Location": _safe_next(form.get("next", "")),
                                                 "Cache-Control": "no-store"})
    set_session_cookies(request, response, session, xsrf, request.path[:-len("/ui/login")] or "/")
    return response


@page_handler
async def logout_form(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": "login"})
    if request.cookies.get(SESSION_COOKIE) is None or request.headers.get("Authorization"):
        return response  # no browser session to end
    _check_xsrf(request, await _form(request))
    await end_session(request, response, request.path[:-len("/ui/logout")] or "/")
    return response


# -- the list ----------------------------------------------------------------------------------------------
async def owner_associate(request: web.Request, filters: views.Filters) -> int | None:
    """The SuperOffice associate an owner filter names: a user's, or the number itself."""
    if not filters.owner or "superoffice" not in filters.styles():
        return None
    user = await request.app[STORE].get_user(filters.owner)
    if user is not None:
        return user.associate_id
    return int(filters.owner) if is_number(filters.owner) and int(filters.owner) < 2**31 else None


async def find_rows(request: web.Request, who: Principal, filters: views.Filters) -> tuple[list[Task], bool]:
    """One page of the list, and whether more follow: one store query per style, each
    reading the page (and one task more) through an index where the sort has one; across
    styles, each style's rows up to the page are merged."""
    store = request.app[STORE]
    associate = await owner_associate(request, filters)
    offset, single = filters.offset(), bool(filters.style)
    found: list[Task] = []
    for style in filters.styles():
        query = views.style_query(views.VIEWS[style], filters, who, owner_associate=associate,
                                  limit=views.PAGE_SIZE + 1 if single else offset + views.PAGE_SIZE + 1,
                                  offset=offset if single else 0)
        if query is None:
            continue
        tasks, _ = await store.find(style, query)
        found += tasks
    page = found if single else views.merge_page(found, filters, offset, views.PAGE_SIZE + 1)
    return page[:views.PAGE_SIZE], len(page) > views.PAGE_SIZE


@page_handler
async def root_redirect(request: web.Request) -> web.StreamResponse:
    """``/ui`` → ``/ui/``, relative (``ui/``) so that a proxy's prefix stays."""
    return web.Response(status=301, headers={"Location": "ui/" + (f"?{request.query_string}"
                                                                  if request.query_string else "")})


@page_handler
async def list_page(request: web.Request) -> web.StreamResponse:
    filters = views.parse_filters(request.query)  # before the sign-in: a bad link is told at once
    who = await signed_in(request)
    if who is None:
        return to_login(request)
    async with caller_turn(request, who.name):  # a page's queries may scan a style, as a list does
        tasks, has_next = await find_rows(request, who, filters)
    offset = filters.offset()
    more = ""
    if has_next and not filters.style and offset + views.PAGE_SIZE >= views.MAX_MERGED_OFFSET:
        has_next, more = False, "Choose a style to page further."
    statuses = [(status, ", ".join(views.VIEWS[s].label for s in styles))
                for status, styles in views.STATUS_CHOICES.items()]
    return html_response(render(
        "list.html", who=who, xsrf=xsrf_of(request),
        live=urlencode({"keys": ",".join(live_key(t.style, t.id) for t in tasks), "list": filters.query_string()}),
        filters=filters, views=list(views.VIEWS.values()),
        statuses=statuses, sorts=list(views.SORTS), rows=[views.row_of(t) for t in tasks],
        total=None if has_next or (offset and not tasks) else offset + len(tasks),
        first=offset + 1, last=offset + len(tasks), more=more, top=views.adds_at_top(filters),
        prev=filters.query_string(page=filters.page - 1) if filters.page > 1 else "",
        next=filters.query_string(page=filters.page + 1) if has_next else ""))


# -- a task ----------------------------------------------------------------------------------------------
async def _readable_task(request: web.Request, who: Principal, style: str, task_id: str) -> Task:
    """The task, if *who* may read it; one answer for absent and not readable, as webMethods
    gives, so that a page does not tell whether another user's task exists."""
    if style not in views.VIEWS:
        raise errors.NotFound(f"no style {style!r}")
    task = await request.app[STORE].get(style, task_id)
    if task is None or not views.may_read(who, task):
        raise errors.NotFound(f"No {views.VIEWS[style].label} task {task_id!r}, or you may not see it "
                              "(access denied).")
    return task


def _int(raw: str, name: str) -> int:
    if not is_number(raw) or len(raw) > 18:
        raise errors.BadRequest(f"{name} must be a positive integer; got {raw!r}")
    return int(raw)


async def _parts(request: web.Request, who: Principal, task: Task) -> dict[str, Any]:
    """What the task's page shows that changes: the document, the timeline, the undo forms."""
    before = _int(request.query["before"], "before") if "before" in request.query else None
    timeline: list[dict[str, Any]] = []
    lines = 0
    older = ""
    while True:  # a few changes at a time: a change's patch may hold a megabyte
        changes = await request.app[STORE].audit(style=task.style, task_id=task.id, limit=_TIMELINE_READ,
                                                 before=before, max_bytes=_TIMELINE_READ_BYTES)
        for c in changes:
            if len(timeline) >= TIMELINE_PAGE or lines >= TIMELINE_LINES:
                older = _task_query(task.style, task.id, before=timeline[-1]["seq"])
                break
            shown = views.diff_lines(c, min(TIMELINE_LINES_PER_CHANGE, TIMELINE_LINES - lines))
            lines += len(shown)
            timeline.append({"seq": c.seq, "action": c.action, "version": c.version, "actor": c.actor, "at": c.at,
                             "request_id": c.request_id, "lines": shown, "hidden": len(c.patch) - len(shown)})
        if older or not changes:  # a read cut short by its bytes is not the end
            break
        before = changes[-1].seq
    return {"task": task, "row": views.row_of(task), "document": dumps_pretty(task.doc), "timeline": timeline,
            "older": older, "may_undo": who.is_admin and not who.read_only, "xsrf": xsrf_of(request),
            "view": views.VIEWS[task.style], "query": _task_query(task.style, task.id),
            "key": live_key(task.style, task.id)}


def dumps_pretty(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False)


def _task_params(request: web.Request) -> tuple[str, str]:
    style, task_id = request.query.get("style", ""), request.query.get("id")
    if task_id is None:
        raise errors.BadRequest("the page needs style and id")
    return style, task_id


async def _task_page(request: web.Request, who: Principal, task: Task, *, message: str = "", failed: bool = False,
                     status: int = 200) -> web.Response:
    parts = await _parts(request, who, task)
    return html_response(render("task.html", who=who, live=urlencode({"keys": parts["key"]}), message=message,
                                failed=failed, **parts), status)


@page_handler
async def task_page(request: web.Request) -> web.StreamResponse:
    style, task_id = _task_params(request)  # before the sign-in: a bad link is told at once
    if style not in views.VIEWS:
        raise errors.NotFound(f"no style {style!r}")
    who = await signed_in(request)
    if who is None:
        return to_login(request)
    task = await _readable_task(request, who, style, task_id)
    undone = request.query.get("undone", "")
    message = f"Change {undone} was undone." if is_number(undone) and len(undone) <= 18 else ""
    return await _task_page(request, who, task, message=message)


@page_handler
async def task_parts(request: web.Request) -> web.StreamResponse:
    """The part of a task's page that a live event refreshes (htmx fetches it)."""
    who = await signed_in(request)
    if who is None:
        raise errors.Unauthorized("the session has ended: sign in again")
    task = await _readable_task(request, who, *_task_params(request))
    return html_response(render("_parts.html", **await _parts(request, who, task)))


@page_handler
async def undo_form(request: web.Request) -> web.StreamResponse:
    """Undo one change: its inverse as a new change, if nothing later touched what it
    touched, and only on the version the page showed (If-Match)."""
    who = await signed_in(request)
    if who is None:
        raise errors.Unauthorized("the session has ended: sign in again")
    if not who.is_admin or who.read_only:
        raise errors.Forbidden("only an admin may undo a change")
    form = await _form(request)
    _check_xsrf(request, form)
    task = await _readable_task(request, who, form.get("style", ""), form.get("id", ""))
    seq, version = _int(form.get("seq", ""), "seq"), _int(form.get("version", ""), "version")
    store = request.app[STORE]
    found = await store.audit(style=task.style, task_id=task.id, after=seq - 1, before=seq + 1)
    if not found:
        raise errors.NotFound(f"change {seq} is not one of this task's")
    try:
        later = await store.audit(style=task.style, task_id=task.id, after=seq, newest_first=False,
                                  limit=MAX_LATER + 1)
        if len(later) > MAX_LATER:
            raise errors.Conflict(f"change {seq} has more than {MAX_LATER} changes after it; it cannot be undone here")
        view = views.VIEWS[task.style]
        check_undo(found[0], later, view.stamps)
        now = now_iso()
        mutate = undo_mutation(found[0], view.stamps, lambda doc: view.restamp(doc, who.name, now))
        await store.write(task.style, task.id, [(who.name, mutate)],
                          request_id=f"{request_id(request)}{UNDO_MARK}{seq}", if_match=frozenset({version}),
                          created=task.created)
    except errors.PreconditionFailed:
        return await _refused(request, who, task, f"change {seq} was not undone: the task changed after the page "
                                                  f"showed version {version}; look again and retry")
    except errors.Conflict as err:
        return await _refused(request, who, task, err.message)
    return web.Response(status=303, headers={"Location": "task?" + _task_query(task.style, task.id, undone=seq)})


async def _refused(request: web.Request, who: Principal, task: Task, message: str) -> web.Response:
    current = await request.app[STORE].get(task.style, task.id) or task
    return await _task_page(request, who, current, message=message, failed=True, status=409)


# -- files -----------------------------------------------------------------------------------------------
@functools.cache
def _asset(name: str) -> bytes:
    folder = ("static", "vendor") if name in VENDORED else ("static",)
    return resources.files("gateway.ui").joinpath(*folder, name).read_bytes()


@public
async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise errors.NotFound(f"no file {name!r}")
    # versioned vendor files never change; the stylesheet may change with taskgate
    cache = "public, max-age=31536000, immutable" if name in VENDORED else "public, max-age=300"
    return web.Response(body=_asset(name), content_type=ASSETS[name], charset="utf-8",
                        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})


def setup_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/ui", root_redirect, name="ui:root")
    r.add_get("/ui/", list_page, name="ui:list")
    r.add_get("/ui/login", login_page, name="ui:login")
    r.add_post("/ui/login", login_form, name="ui:signin")
    r.add_post("/ui/logout", logout_form, name="ui:logout")
    r.add_get("/ui/task", task_page, name="ui:task")
    r.add_get("/ui/task-parts", task_parts, name="ui:parts")
    r.add_post("/ui/undo", undo_form, name="ui:undo")
    r.add_get("/ui/static/{name}", static_file, name="ui:static")

