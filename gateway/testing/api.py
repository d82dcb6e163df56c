"""The admin-only ``/_taskgate/`` test-control API, and the middleware that puts a request
in its namespace, injects faults, runs scripted progress and writes the journal.

Routes exist only when testing is on (``testing.enabled``, ``serve --testing``, or the
pytest plugin); otherwise :func:`setup` is never called, and every ``/_taskgate/`` and
``/_ns/`` path is an ordinary 404. Every route asks for an admin; answers and errors are
taskgate's own JSON (``{"error": "…"}``).

A request is in namespace *name* when its path starts ``/_ns/{name}/`` (any route of any
style after it), when it sends ``X-Taskgate-Namespace: name``, or when it is a SuperOffice
tenant route ``/{tenant}/api/v1/…`` (the tenant is the namespace: real isolation). The
middleware sits outside the error middleware, so the journal records the answer the client
got, in the vendor's shape, and an injected error is rendered by the same function.

It owns HTTP only: what a namespace holds is :mod:`.namespaces`, the rules of faults,
journal, clock and progress their modules'. It must not hold SQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway import errors
from gateway.apis import webmethods_clock
from gateway.auth import AUTHENTICATOR, REQUEST_CLOCK, Authenticator
from gateway.clock import parse_iso
from gateway.codecs import decode_json, is_number, json_response, read_body
from gateway.context import REQUEST_ID, SCOPE, TRAFFIC, principal, request_id
from gateway.events.scoped import EventScopes
from gateway.model import Store
from gateway.patching import apply_json_patch
from gateway.testing.faults import FaultRule
from gateway.testing.journal import FILTERS, redact_body, redact_headers, redact_query
from gateway.testing.namespaces import NAMESPACE_NAME, PREFIX, Namespace, NamespacePrefix, Namespaces
from gateway.testing.seeding import seed

__all__ = ["NAMESPACES", "HEADER", "BASE", "setup", "testing_middleware", "strip_prefix"]

NAMESPACES = web.AppKey("namespaces", Namespaces)
#: the header a client that can add one may name its namespace with
HEADER = "X-Taskgate-Namespace"
BASE = "/_taskgate"
_MAX_LIMIT = 10_000
#: later changes a point-in-time read undoes per query, and their most bytes
_UNDO_PAGE = 100
_UNDO_BYTES = 4 * 2**20


def strip_prefix(path: str) -> str:
    """*path* without a leading ``/_ns/{name}`` (for the error shape of an unmatched path)."""
    if path.startswith(PREFIX + "/"):
        rest = path[len(PREFIX) + 1:]
        return "/" + rest.partition("/")[2]
    return path


# -- the middleware ----------------------------------------------------------------------------
def testing_middleware(render_error: Callable[[web.Request, errors.TaskgateError], web.Response],
                       style_of: Callable[[web.Request], ModuleType | None], body_limit: int,
                       base_path: str = "") -> Middleware:
    """The namespace of each request, its faults, progress and journal entry; paths are
    journaled and matched without *base_path* and the namespace prefix."""

    @web.middleware
    async def testing(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unmatched"
        if route.startswith("testing:"):  # the control API itself is in no namespace
            return await handler(request)
        name = request.get(NAMESPACE_NAME) or request.headers.get(HEADER) or request.match_info.get("tenant")
        if not name:
            return await handler(request)
        namespaces = _namespaces(request)
        try:
            namespace = namespaces.find(name)
            if namespace is None:
                # only a caller who signs in may make one: the bound is everyone's, and a
                # user who is not an admin makes at most testing.max_namespaces_per_user
                caller = await _authenticator(request).authenticate_request(request)
                namespace = await namespaces.get(name, None if caller.is_admin else caller.name)
        except errors.TaskgateError as err:
            return render_error(request, err)
        request[SCOPE] = namespace
        request[REQUEST_CLOCK] = namespace.clock
        style = style_of(request)
        style_name = style.STYLE if style is not None else ""
        path = request.path
        if base_path and path.startswith(base_path + "/"):
            path = path[len(base_path):]
        path = strip_prefix(path)
        started = time.perf_counter()
        decision = namespace.faults.decide(style_name, route, path, request.method)
        status: int | None = None
        try:
            await namespace.progress.catch_up(namespace.store, namespace.clock, request.get(REQUEST_ID, ""))
            if decision is not None and decision.delay:
                await asyncio.sleep(decision.delay)
            if decision is not None and decision.drop:
                if request.transport is not None:
                    request.transport.abort()  # no answer at all: the client sees the connection reset
                response: web.StreamResponse = web.Response(status=503)
            elif decision is not None and decision.error is not None:
                response = render_error(request, decision.error)
                status = response.status
            else:
                response = await handler(request)
                status = response.status
        except web.HTTPException as exc:  # a redirect; errors were rendered inside
            status = exc.status
            raise
        finally:
            body = None
            if request.body_exists and request.content.is_eof():
                try:
                    raw = await request.read()
                except Exception:
                    raw = b""
                body, cut = redact_body(raw, request.content_type, body_limit)
            else:
                cut = False
            namespace.journal.record({
                "method": request.method, "path": path, "query": redact_query(request.rel_url.raw_query_string),
                "headers": redact_headers(request.headers.items()), "body": body, "body_truncated": cut,
                "status": status, "ms": round((time.perf_counter() - started) * 1000, 2), "route": route,
                "style": style_name, "request_id": request.get(REQUEST_ID, ""),
                "fault": decision.describe() if decision is not None else None})
        return response

    return testing


# -- helpers -----------------------------------------------------------------------------------
def _authenticator(request: web.Request) -> Authenticator:
    for app in reversed(request.match_info.apps):
        if AUTHENTICATOR in app:
            return app[AUTHENTICATOR]
    raise errors.InternalError("no authenticator")


def _namespaces(request: web.Request) -> Namespaces:
    """The server's namespaces, from whichever application of the match holds them (the
    inner one under ``server.base_path``; ``config_dict`` is read once, before a base path's
    sub-application joins the match, so it is not asked)."""
    for app in reversed(request.match_info.apps):
        if NAMESPACES in app:
            return app[NAMESPACES]
    raise errors.InternalError("testing is on but no namespaces are set up")


def _admin(request: web.Request) -> None:
    if not principal(request).is_admin:
        raise errors.Forbidden("the /_taskgate/ API is for admins")


async def _json(request: web.Request) -> Any:
    """The JSON body (none: ``{}``), read and refused as the styles' routes do
    (:func:`gateway.codecs.read_body`, :func:`gateway.codecs.decode_json`): utf-8 only,
    within the body limits, no duplicate members, at most 64 levels deep."""
    if not request.body_exists:
        return {}
    _, body = await read_body(request, ("application/json",))
    return decode_json(body)


async def _namespace(request: web.Request) -> Namespace:
    """The namespace the path names: created by a change (POST, PUT) on first use, 404 for a
    read or a delete of one that is not open."""
    _admin(request)
    name = request.match_info["ns"]
    namespaces = _namespaces(request)
    found = await namespaces.get(name) if request.method in ("POST", "PUT") else namespaces.find(name)
    if found is None:
        raise errors.NotFound(f"no namespace {name!r}")
    return found


def _number(text: str, what: str) -> int:
    if not is_number(text) or len(text) > 18:
        raise errors.BadRequest(f"{what}: a non-negative integer")
    return int(text)


def _filters(given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise errors.BadRequest("journal filters are a JSON object")
    unknown = set(given) - set(FILTERS)
    if unknown:
        raise errors.BadRequest(f"journal filters: unknown {sorted(unknown)}; known: {list(FILTERS)}")
    return dict(given)


def _query_filters(request: web.Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in FILTERS:
        if key in request.query:
            value = request.query[key]
            if key == "status":
                out[key] = _number(value, "status")
            elif key == "fault":
                out[key] = value.lower() in ("1", "true", "yes")
            else:
                out[key] = value
    return out


# -- namespaces --------------------------------------------------------------------------------
async def list_namespaces(request: web.Request) -> web.Response:
    _admin(request)
    namespaces = _namespaces(request)
    return json_response({"namespaces": [ns.describe() for name in namespaces.names()
                                         if (ns := namespaces.find(name)) is not None],
                          "max_namespaces": namespaces.limit})


async def put_namespace(request: web.Request) -> web.Response:
    _admin(request)
    existed = _namespaces(request).find(request.match_info["ns"]) is not None
    namespace = await _namespace(request)
    return json_response(namespace.describe(), status=200 if existed else 201)


async def get_namespace(request: web.Request) -> web.Response:
    return json_response((await _namespace(request)).describe())


async def delete_namespace(request: web.Request) -> web.Response:
    _admin(request)
    if not await _namespaces(request).delete(request.match_info["ns"]):
        raise errors.NotFound(f"no namespace {request.match_info['ns']!r}")
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    await namespace.reset()
    return json_response(namespace.describe())


async def checkpoint(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    return json_response({"checkpoint": await namespace.checkpoint()}, status=201)


async def restore(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    number = _number(request.match_info["checkpoint"], "checkpoint")
    await namespace.restore(number)
    return json_response({"restored": number})


async def delete_checkpoint(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    if not namespace.drop_checkpoint(_number(request.match_info["checkpoint"], "checkpoint")):
        raise errors.NotFound("no such checkpoint")
    return web.Response(status=204)


async def export(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    style = request.query.get("style") or None
    store = namespace.store
    async with store.read_snapshot():
        tasks = [{"style": t.style, "id": t.id, "version": t.version, "doc": t.doc}
                 async for t in store.export(style)]
        last = await store.audit(limit=1)
    return json_response({"tasks": tasks, "seq": last[0].seq if last else 0})


async def task_at(request: web.Request) -> web.Response:
    """A task as it was after audit row *seq* (its current form undone, newest change first)."""
    namespace = await _namespace(request)
    style, task_id = request.match_info["style"], request.match_info["id"]
    store = namespace.store
    undone = False
    async with store.read_snapshot():
        current = await store.get(style, task_id)
        doc: Any = current.doc if current is not None else None
        version = current.version if current is not None else None
        if "seq" in request.query:
            seq = _number(request.query["seq"], "seq")
            before = None
            # the later changes undone a page at a time: all of them at once, a task changed a
            # few hundred times with a megabyte document held gigabytes
            while later := await store.audit(style=style, task_id=task_id, newest_first=True, after=seq,
                                             before=before, limit=_UNDO_PAGE, max_bytes=_UNDO_BYTES):
                for change in later:
                    doc = None if change.action == "created" else apply_json_patch(doc or {}, change.undo,
                                                                                   max_bytes=2**31)
                before, undone = later[-1].seq, True
            last = await store.audit(style=style, task_id=task_id, newest_first=True, before=seq + 1, limit=1)
    if undone:
        version = last[0].version if last and last[0].action != "deleted" else None
        doc = doc if version is not None else None
    if doc is None:
        raise errors.NotFound(f"no {style} task {task_id!r} at that point")
    return json_response({"style": style, "id": task_id, "version": version, "doc": doc})


# -- clock and progress ------------------------------------------------------------------------
async def _caught_up(namespace: Namespace, rid: str) -> dict[str, int]:
    swept = await webmethods_clock.sweep(namespace.store, namespace.clock.now_iso(), rid)
    progressed = await namespace.progress.catch_up(namespace.store, namespace.clock, rid)
    return {"swept": swept, "progressed": progressed}


async def get_clock(request: web.Request) -> web.Response:
    return json_response((await _namespace(request)).clock.describe())


#: where a namespace's clock may be set or advanced to: far from the ends of Python's
#: dates, so that a clock left running for centuries still tells the time
CLOCK_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


async def put_clock(request: web.Request) -> web.Response:
    """``{"frozen": bool, "now": date-time, "advance_seconds": n}``, each optional, in that
    order; then the clock's changes are applied (webMethods' rules, scripted progress).
    Every member is checked before any is applied, and the time it comes to must lie in
    :data:`CLOCK_RANGE`: a refused body leaves the clock as it was."""
    namespace = await _namespace(request)
    body = await _json(request)
    if not isinstance(body, dict) or set(body) - {"frozen", "now", "advance_seconds"}:
        raise errors.BadRequest('the clock takes {"frozen": bool, "now": date-time, "advance_seconds": number}')
    clock = namespace.clock
    if "frozen" in body and not isinstance(body["frozen"], bool):
        raise errors.BadRequest("frozen: true or false")
    moment: datetime | None = None
    if "now" in body:
        try:
            moment = parse_iso(body["now"])
        except (ValueError, TypeError):
            raise errors.BadRequest("now: an RFC 3339 date-time") from None
    step = body.get("advance_seconds", 0)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 <= step <= 10**9:
        raise errors.BadRequest("advance_seconds: a number from 0 to 1e9")
    try:
        at = (clock.now() if moment is None else moment) + timedelta(seconds=step)
        inside = CLOCK_RANGE[0] <= at < CLOCK_RANGE[1]
    except OverflowError:
        inside = False
    if not inside:
        raise errors.BadRequest(f"the clock would stand outside {CLOCK_RANGE[0].year} to {CLOCK_RANGE[1].year}")
    if "frozen" in body:
        clock.freeze() if body["frozen"] else clock.unfreeze()
    if moment is not None:
        clock.set(moment)
    if step:
        clock.advance(step)
    return json_response({**clock.describe(), **await _caught_up(namespace, request_id(request))})


async def add_progress(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    script = namespace.progress.add(await _json(request), namespace.clock)
    await namespace.progress.catch_up(namespace.store, namespace.clock, request_id(request))
    return json_response(script.describe(), status=201)


# -- journal -----------------------------------------------------------------------------------
async def get_journal(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    limit = _number(request.query.get("limit", "1000"), "limit")
    entries = list(namespace.journal.entries(_query_filters(request)))
    return json_response({"entries": entries[-min(limit, _MAX_LIMIT):] if limit else [],
                          "journal": namespace.journal.describe()})


async def count_journal(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    return json_response({"count": namespace.journal.count(_filters(await _json(request)))})


async def clear_journal(request: web.Request) -> web.Response:
    (await _namespace(request)).journal.clear()
    return web.Response(status=204)


# -- faults ------------------------------------------------------------------------------------
async def list_faults(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    return json_response({"faults": [rule.describe() for rule in namespace.faults.rules]})


async def add_fault(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    rule = namespace.faults.add(FaultRule.parse(await _json(request)))
    return json_response(rule.describe(), status=201)


async def delete_fault(request: web.Request) -> web.Response:
    namespace = await _namespace(request)
    if not namespace.faults.remove(_number(request.match_info["rule"], "rule")):
        raise errors.NotFound("no such fault rule")
    return web.Response(status=204)


async def clear_faults(request: web.Request) -> web.Response:
    (await _namespace(request)).faults.clear()
    return web.Response(status=204)


# -- seeding -----------------------------------------------------------------------------------
def seed_handler(styles: tuple[ModuleType, ...]) -> Handler:
    async def seed_namespace(request: web.Request) -> web.Response:
        namespace = await _namespace(request)
        counts = await seed(namespace.store, styles, await _json(request), namespace.clock.now_iso(),
                            request_id(request))
        return json_response({"loaded": counts})
    return seed_namespace


# -- wiring ------------------------------------------------------------------------------------
def setup(app: web.Application, styles: tuple[ModuleType, ...], db_path: Path, *, max_namespaces: int,
          journal_entries: int, journal_bytes: int, max_namespaces_per_user: int = 0) -> None:
    """The ``/_taskgate/`` routes, the ``/_ns/`` prefix, and the namespaces' lifetime."""

    async def prepare(store: Store) -> None:
        for style in styles:
            await style.prepare(store)

    async def lifetime(app: web.Application):
        scopes = EventScopes(app)  # each namespace's own change feed and webhooks
        app[TRAFFIC].on_drain(scopes.stop_streams)
        namespaces = Namespaces(db_path.with_name(db_path.name + ".namespaces"), limit=max_namespaces,
                                journal_entries=journal_entries, journal_bytes=journal_bytes, prepare=prepare,
                                attach=scopes.attach, per_user=max_namespaces_per_user)
        namespaces.start()
        app[NAMESPACES] = namespaces
        yield
        await namespaces.close()

    app.cleanup_ctx.append(lifetime)
    r = app.router
    ns = BASE + "/namespaces/{ns}"
    r.add_get(BASE + "/namespaces", list_namespaces, name="testing:namespaces")
    r.add_put(ns, put_namespace, name="testing:namespace_put")
    r.add_get(ns, get_namespace, name="testing:namespace")
    r.add_delete(ns, delete_namespace, name="testing:namespace_delete")
    r.add_post(ns + "/reset", reset, name="testing:reset")
    r.add_post(ns + "/checkpoints", checkpoint, name="testing:checkpoint")
    r.add_post(ns + "/checkpoints/{checkpoint}/restore", restore, name="testing:restore")
    r.add_delete(ns + "/checkpoints/{checkpoint}", delete_checkpoint, name="testing:checkpoint_delete")
    r.add_get(ns + "/export", export, name="testing:export")
    r.add_get(ns + "/tasks/{style}/{id}", task_at, name="testing:task")
    r.add_get(ns + "/clock", get_clock, name="testing:clock")
    r.add_put(ns + "/clock", put_clock, name="testing:clock_put")
    r.add_post(ns + "/progress", add_progress, name="testing:progress")
    r.add_get(ns + "/journal", get_journal, name="testing:journal")
    r.add_post(ns + "/journal/count", count_journal, name="testing:journal_count")
    r.add_delete(ns + "/journal", clear_journal, name="testing:journal_delete")
    r.add_get(ns + "/faults", list_faults, name="testing:faults")
    r.add_post(ns + "/faults", add_fault, name="testing:fault_add")
    r.add_delete(ns + "/faults", clear_faults, name="testing:faults_delete")
    r.add_delete(ns + "/faults/{rule}", delete_fault, name="testing:fault_delete")
    r.add_post(ns + "/seed", seed_handler(styles), name="testing:seed")
    r.register_resource(NamespacePrefix(r))
