"""The application factory: routes of every style, middlewares, and the store's lifetime.

``create_app(config)`` is what production and the tests both run. The store is opened
in ``cleanup_ctx`` (so nothing touches the disk at import or construction time) and
closed, after queued writes finish, when the application shuts down.

With ``server.base_path`` the application is mounted as a sub-application under that
prefix; the edge middlewares (forwarding, request log and metrics, error shapes, header
limits) then sit on the outer application, so that paths outside the prefix get the
same treatment, and errors pick their style by the path with the prefix removed.

This module owns the wiring and the edge middlewares; it must not hold a handler, a
URL of a style, or a rule: each style's ``setup``, each auth module's ``add_routes``, and
:mod:`gateway.metrics`, :mod:`gateway.landing` and :mod:`gateway.openapi` register the
routes they define.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from types import ModuleType

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway import errors, landing, openapi, ui
from gateway import metrics as ops
from gateway.apis import sailpoint, superoffice, webmethods
from gateway.audit import hot_logger, log_changes, logger
from gateway.auth import AUTHENTICATOR, PRINCIPAL, Authenticator, FailureLimiter, auth_middleware, authorize, oauth
from gateway.auth.failure_table import DatabaseFailures, FailureTable, SharedFailures
from gateway.codecs import BODY_ABANDONED, BODY_TIMEOUT, json_response
from gateway.config import Config
from gateway.context import CONFIG, FEED, REQUEST_ID, STORE, TRAFFIC, Traffic
from gateway.events import sse, webhooks
from gateway.events.feed import Feed
from gateway.metrics import METRICS, Metrics
from gateway.model import CLIENT, IMPERSONATION, QUOTA
from gateway.proxy import TrustedProxies, forwarded_middleware
from gateway.quotas import WRITE_RATE, WriteRate
from gateway.store import open_store
from gateway.testing import api as testing
from gateway.turns import LIST_TURNS, WRITE_TURNS, Turns, large_write_middleware
from gateway.workers import ROLE_ENV, SHARED_DIR_ENV

__all__ = ["create_app", "STYLES"]

#: every API style, in the order their routes are registered
STYLES: tuple[ModuleType, ...] = (sailpoint, superoffice, webmethods)
_RENDERERS = {style.STYLE: style for style in STYLES}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Generated request ids: 32 hex digits, a random half per process and a counter, unique
# without a system call per request (uuid4 reads the OS's random source every time).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(secrets.randbelow(2**32))


def _style_of(request: web.Request) -> ModuleType | None:
    name = getattr(request.match_info.route, "name", None) or ""
    style = _RENDERERS.get(name.partition(":")[0])
    if style is None:  # no route matched (404/405): claim the path by its prefix
        path = request.path
        base = request.app[CONFIG].server.base_path
        if base:
            if path != base and not path.startswith(base + "/"):
                return None
            path = path[len(base):] or "/"
        if request.app[CONFIG].testing.enabled:
            path = testing.strip_prefix(path)
        style = next((s for s in STYLES if s.PATH_PATTERN.match(path)), None)
    return style


def _metric_labels(request: web.Request) -> tuple[str, str]:
    """(route, style) for the request metrics: the route's name, or "unmatched"."""
    name = request.match_info.route.name
    if name:
        prefix = name.partition(":")[0]
        return name, prefix if prefix in _RENDERERS else ""
    style = _style_of(request)
    return "unmatched", style.STYLE if style is not None else ""


def render_error(request: web.Request, err: errors.TaskgateError) -> web.Response:
    style = _style_of(request)
    if style is not None:
        return style.render_error(err, request.get(REQUEST_ID, ""))
    return json_response({"error": err.message}, status=err.status, headers=err.headers)


def _begin(request: web.Request) -> str:
    """The start of every request: its id (the client's, if well formed), the context of
    its audit rows, and one more request in flight."""
    given = request.headers.get("X-Request-ID", "")
    rid = given if _REQUEST_ID.fullmatch(given) else f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"
    request[REQUEST_ID] = rid
    CLIENT.set(request.remote or "")  # audit rows record it (the client behind a trusted proxy)
    QUOTA.set(None)  # a style sets them for its write; requests of one connection run in one task
    IMPERSONATION.set(None)
    request.app[TRAFFIC].active += 1
    return rid


def _finish(request: web.Request, response: web.StreamResponse, rid: str, elapsed: float) -> None:
    """The end of every answered request: its id out, one log line (path without its
    query), its metrics."""
    if request.app[TRAFFIC].draining:
        response.force_close()  # shutting down: no further request on this connection
    response.headers["X-Request-ID"] = rid
    who = request.get(PRINCIPAL)
    hot_logger.info("request", method=request.method, path=request.path, status=response.status,
                ms=round(elapsed * 1000, 2), request_id=rid,
                actor=who.name if who else None, remote=request.remote)
    request.app[METRICS].observe_request(*_metric_labels(request), response.status, elapsed)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id in and out, and one log line per request (path without its query)."""
    rid = _begin(request)
    traffic = request.app[TRAFFIC]
    started = time.perf_counter()
    try:
        response = await handler(request)
    finally:
        traffic.finished()
    _finish(request, response, rid, time.perf_counter() - started)
    return response


def _header_check(max_headers: int, max_bytes: int) -> Callable[[web.Request], None]:
    """431 in the route's error shape for more headers, or a longer header name or value,
    than configured. aiohttp's parser enforces twice these limits itself, before any
    middleware, with a plain-text 400 (it cannot know the route then)."""

    def check_headers(request: web.Request) -> None:
        raw = request.raw_headers
        if len(raw) > max_headers:
            raise errors.RequestHeaderFieldsTooLarge(
                f"the request has {len(raw)} header fields; at most {max_headers} are accepted")
        for name, value in raw:
            if len(value) > max_bytes or len(name) > max_bytes:
                shown = name[:64].decode("latin-1")
                raise errors.RequestHeaderFieldsTooLarge(
                    f"the header {shown!r} is longer than {max_bytes} bytes")

    return check_headers


def _header_limits(max_headers: int, max_bytes: int) -> Middleware:
    check_headers = _header_check(max_headers, max_bytes)

    @web.middleware
    async def header_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        check_headers(request)
        return await handler(request)

    return header_limits


def _error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The route style's error body for *exc*, raised while answering *request*; called
    while it is handled. Nothing escapes as a bare 500; a redirect is raised again."""
    if isinstance(exc, errors.TaskgateError):
        err = exc
    elif isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        allow = exc.headers.get("Allow")
        message = (f"no resource at {request.path}" if exc.status == 404
                   else f"{request.method} is not allowed here; allowed: {allow}" if allow
                   else exc.text or None)
        err = errors.from_status(exc.status, message)
        if allow:
            err.headers["Allow"] = allow
    elif isinstance(exc, ConnectionResetError):  # the client went away mid-request (an aborted upload)
        logger.info("client closed the connection", path=request.path, request_id=request.get(REQUEST_ID))
        err = errors.ClientClosedRequest("the client closed the connection before the request was read")
    else:
        logger.exception("unhandled error", path=request.path, request_id=request.get(REQUEST_ID))
        err = errors.InternalError("An internal fault occurred.")
    return render_error(request, err)


def _compressed_and_unread(request: web.Request) -> bool:
    """A compressed body the route did not read to its end (a 401, a route that takes no
    body): aiohttp would decompress the rest on the loop to keep the connection, and a
    megabyte of gzip can hold a gigabyte of spaces, seconds of every client's time."""
    return request.headers.get("Content-Encoding") is not None and not request.content.is_eof()


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send *response* with ``Connection: close``, then close its connection at once: for a
    body it could not read whole (:data:`~gateway.codecs.BODY_ABANDONED`), aiohttp would
    read on through the rest of it (a broken Content-Encoding raises again there, logged as
    an unhandled exception and the connection dropped under the client's next request; a
    slow body holds the connection for the lingering time). When aiohttp then sends the
    answer, it finds it sent: nothing more is written."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes the route style's error body; nothing escapes as a bare 500."""
    try:
        return await handler(request)
    except Exception as exc:
        return _error_answer(request, exc)


def _edge(max_headers: int, max_bytes: int) -> Middleware:
    """:func:`request_context`, :func:`error_middleware`, the header limits and
    :func:`~gateway.auth.auth_middleware`, in that order, as one middleware: each layer
    of aiohttp's costs a call and a coroutine per request."""
    check_headers = _header_check(max_headers, max_bytes)

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = _begin(request)
        traffic = request.app[TRAFFIC]
        started = time.perf_counter()
        try:
            try:
                check_headers(request)
                await authorize(request)
                response = await large_write_middleware(request, handler)  # a large body waits its turn, unread
            except Exception as exc:
                response = _error_answer(request, exc)
        finally:
            traffic.finished()
        _finish(request, response, rid, time.perf_counter() - started)
        if not response.prepared and (BODY_ABANDONED in request or _compressed_and_unread(request)):
            await _answer_and_close(request, response)
        return response

    return edge


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # a worker of serve --workers never makes a database: its supervisor made it, or refused
    store = await open_store(config, allow_new=False if os.environ.get(ROLE_ENV) else None)
    feed: Feed | None = None
    table: FailureTable | None = None
    database_failures: DatabaseFailures | None = None
    try:
        store.on_commit(log_changes)
        store.on_commit(app[METRICS].count_changes)
        store.on_batch(app[METRICS].observe_batch)
        for style in STYLES:
            await style.prepare(store)
        app[STORE] = store
        settings = config.events
        feed = Feed(store, poll_seconds=settings.poll_seconds, buffer_events=settings.buffer_events,
                    buffer_bytes=settings.buffer_bytes)
        await feed.start()
        app[FEED] = feed
        app[TRAFFIC].on_drain(feed.stop_streams)  # streams end when the drain begins, not at its timeout
        app_tokens = frozenset(t.strip() for t in config.superoffice.app_tokens.split(",") if t.strip())
        shared = os.environ.get(SHARED_DIR_ENV)  # serve --workers: failures add up across the workers
        signins = getattr(store, "signins", None)  # PostgreSQL: across every gateway on the database
        if signins is not None:
            table = database_failures = DatabaseFailures(signins, config.auth.max_tracked_clients)
        elif shared:
            table = SharedFailures(os.path.join(shared, "signin"), config.auth.max_tracked_clients)
        limiter = FailureLimiter(config.auth.max_failures, config.auth.failure_window_seconds,
                                 config.auth.max_tracked_clients, max_concurrent=config.auth.max_concurrent_checks,
                                 table=table)
        app[AUTHENTICATOR] = Authenticator(store, token_ttl_seconds=config.auth.token_ttl_seconds,
                                           app_tokens=app_tokens, limiter=limiter)
        yield
    finally:
        if feed is not None:
            await feed.close()
        if database_failures is not None:
            await database_failures.close()
        await store.close()
        structlog.contextvars.clear_contextvars()


def create_app(config: Config) -> web.Application:
    server = config.server
    edge: list[Middleware] = [request_context, error_middleware,
                              _header_limits(server.max_headers, server.max_header_bytes)]
    trusted = TrustedProxies(server.trusted_proxies, server.forwarded_headers)
    if config.testing.enabled:  # outside the error middleware: the journal records the answer sent
        edge.insert(1, testing.testing_middleware(render_error, _style_of, config.testing.journal_body_bytes,
                                                       server.base_path))
    if trusted:
        edge.insert(0, forwarded_middleware(trusted))
    metrics = Metrics([style.STYLE for style in STYLES])
    middlewares: list[Middleware]
    if server.base_path:
        middlewares = [auth_middleware, large_write_middleware]
    elif config.testing.enabled:
        middlewares = [*edge, auth_middleware, large_write_middleware]
    else:  # the usual case: the four in one
        middlewares = [*edge[:-3], _edge(server.max_headers, server.max_header_bytes)]
    app = web.Application(client_max_size=server.max_body_bytes, middlewares=middlewares)
    traffic = Traffic()
    app[CONFIG] = config
    app[METRICS] = metrics
    app[TRAFFIC] = traffic
    app[BODY_TIMEOUT] = config.server.body_timeout
    app[WRITE_RATE] = WriteRate(config.quota.writes_per_second, config.quota.write_burst)
    app[LIST_TURNS] = metrics.list_turns.turns = Turns(server.max_lists_per_user)
    app[WRITE_TURNS] = metrics.write_turns.turns = Turns(server.max_large_writes_per_user)
    oauth.add_routes(app.router)
    for style in STYLES:
        style.setup(app)
    webhooks.setup(app)
    ops.setup(app, config.metrics)
    sse.setup(app)
    if config.testing.enabled:
        testing.setup(app, STYLES, config.db_path, max_namespaces=config.testing.max_namespaces,
                      journal_entries=config.testing.journal_entries, journal_bytes=config.testing.journal_bytes,
                      max_namespaces_per_user=config.testing.max_namespaces_per_user)
    landing.setup(app)
    ui.setup(app)
    openapi.setup(app)  # last: its document describes every route registered before start-up
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(ui.live_ctx)  # after the store's: the hub listens to it
    app.cleanup_ctx.append(webhooks.dispatcher_ctx)  # after the store opens, stopped before it closes
    if not server.base_path:
        return app
    outer = web.Application(client_max_size=server.max_body_bytes, middlewares=edge)
    outer[CONFIG] = config
    outer[METRICS] = metrics
    outer[TRAFFIC] = traffic
    landing.add_base_redirect(outer, server.base_path)
    outer.add_subapp(server.base_path, app)
    return outer
