"""The application factory: routes of every style, middlewares, and the store's lifetime.

``create_app(config)`` is what production and the tests both run. The store is opened
in ``cleanup_ctx`` (so nothing touches the disk at import or construction time) and
closed, after queued writes finish, when the application shuts down.
"""

from __future__ import annotations

import re
import time
import uuid
from types import ModuleType
from typing import AsyncIterator

import structlog
from aiohttp import web

from gateway import errors
from gateway.apis import sailpoint, superoffice, webmethods
from gateway.audit import log_changes, logger
from gateway.auth import AUTHENTICATOR, PRINCIPAL, Authenticator, auth_middleware, oauth_token
from gateway.codecs import json_response
from gateway.config import Config
from gateway.context import CONFIG, REQUEST_ID, STORE
from gateway.store import Store

__all__ = ["create_app", "STYLES"]

#: every API style, in the order their routes are registered
STYLES: tuple[ModuleType, ...] = (sailpoint, superoffice, webmethods)
_RENDERERS = {style.STYLE: style for style in STYLES}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _style_of(request: web.Request) -> ModuleType | None:
    name = getattr(request.match_info.route, "name", None) or ""
    style = _RENDERERS.get(name.partition(":")[0])
    if style is None:  # no route matched (404/405): claim the path by its prefix
        style = next((s for s in STYLES if s.PATH_PATTERN.match(request.path)), None)
    return style


def render_error(request: web.Request, err: errors.TaskgateError) -> web.Response:
    style = _style_of(request)
    if style is not None:
        return style.render_error(err, request.get(REQUEST_ID, ""))
    return json_response({"error": err.message}, status=err.status, headers=err.headers)


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Request id in and out, and one log line per request (path without its query)."""
    given = request.headers.get("X-Request-ID", "")
    rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-ID"] = rid
    who = request.get(PRINCIPAL)
    logger.info("request", method=request.method, path=request.path, status=response.status,
                ms=round((time.perf_counter() - started) * 1000, 2), request_id=rid,
                actor=who.name if who else None, remote=request.remote)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Every failure becomes the route style's error body; nothing escapes as a bare 500."""
    try:
        return await handler(request)
    except errors.TaskgateError as exc:
        err = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = exc.headers.get("Allow")
        message = (f"no resource at {request.path}" if exc.status == 404
                   else f"{request.method} is not allowed here; allowed: {allow}" if allow
                   else exc.text or None)
        err = errors.from_status(exc.status, message)
        if allow:
            err.headers["Allow"] = allow
    except Exception:
        logger.exception("unhandled error", path=request.path, request_id=request.get(REQUEST_ID))
        err = errors.InternalError("An internal fault occurred.")
    return render_error(request, err)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = await Store.open(config.db_path, synchronous=config.storage.synchronous,
                             busy_timeout_ms=config.storage.busy_timeout_ms,
                             max_batch=config.storage.max_batch)
    try:
        store.on_commit(log_changes)
        for style in STYLES:
            await style.prepare(store)
        app[STORE] = store
        app_tokens = frozenset(t.strip() for t in config.superoffice.app_tokens.split(",") if t.strip())
        app[AUTHENTICATOR] = Authenticator(store, token_ttl_seconds=config.auth.token_ttl_seconds,
                                           app_tokens=app_tokens)
        yield
    finally:
        await store.close()
        structlog.contextvars.clear_contextvars()


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes,
                          middlewares=[request_context, error_middleware, auth_middleware])
    app[CONFIG] = config
    app.router.add_post("/oauth/token", oauth_token, name="oauth:token")
    for style in STYLES:
        style.setup(app)
    app.cleanup_ctx.append(_store_ctx)
    return app
