"""Webhooks wired into the application: each style's subscription routes, the delivery
log API, the metrics, and the dispatcher's lifetime.

:func:`setup` registers the styles' webhook routes (``gateway/apis/*_hooks.py``), the
SSRF policy, the shapes, the metrics collector and ``GET /webhooks/log`` (a taskgate
extension, admins only: the newest delivery attempts, optionally of one hook);
:func:`dispatcher_ctx`, appended to ``cleanup_ctx`` after the store's, makes the
dispatcher (every process has one for its outbound client; it dispatches only when
``webhooks.dispatch`` is on and it holds the database's dispatcher lock) and stops it
before the store closes. :func:`log_rows` is what the log API and ``taskgate webhooks
log`` print. It holds no vendor shape and no SQL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis import sailpoint_hooks, superoffice_hooks, webmethods_hooks
from gateway.codecs import json_response, negotiate
from gateway.context import CONFIG, STORE, store_of
from gateway.events.delivery import DISPATCHER, Dispatcher, HookStats, Sender
from gateway.events.subscriptions import POLICY, SHAPES, require_admin
from gateway.events.targets import TargetPolicy
from gateway.metrics import METRICS
from gateway.model import Store

__all__ = ["setup", "dispatcher_ctx", "log_rows", "STATS"]

STATS = web.AppKey("webhook_stats", HookStats)
MAX_LOG = 1000


async def log_rows(store: Store, *, hook: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest delivery attempts (of the hook named ``style:kind/id``, as rows show
    it), newest first, as JSON objects."""
    hooks = {h.num: h for h in await store.list_hooks()}
    num = None
    if hook is not None:
        num = next((n for n, h in hooks.items() if f"{h.style}/{h.id}" == hook), None)
        if num is None:
            raise errors.NotFound(f"no webhook {hook[:120]!r}; hooks are named style:kind/id, e.g. "
                                  "superoffice:webhook/1")
    rows = await store.delivery_log(hook=num, limit=limit)
    return [{"seq": d.seq, "hook": f"{hooks[d.hook].style}/{hooks[d.hook].id}" if d.hook in hooks else str(d.hook),
             "event": d.event, "at": d.at, "attempt": d.attempt, "status": d.status, "outcome": d.outcome,
             "error": d.error, "ms": round(d.ms, 1)} for d in rows]


async def delivery_log(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    raw = request.query.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 0 < int(raw) <= MAX_LOG:
        raise errors.BadRequest(f"limit must be an integer between 1 and {MAX_LOG}")
    rows = await log_rows(store_of(request), hook=request.query.get("hook"), limit=int(raw))
    return json_response({"deliveries": rows})


def setup(app: web.Application) -> None:
    app[SHAPES] = {}
    app[POLICY] = TargetPolicy(app[CONFIG].webhooks)
    stats = app[STATS] = HookStats()
    app[METRICS].registry.register(stats)
    sailpoint_hooks.setup(app)
    superoffice_hooks.setup(app)
    webmethods_hooks.setup(app)
    app.router.add_get("/webhooks/log", delivery_log, name="taskgate:webhooks-log")


async def dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG].webhooks
    dispatcher = Dispatcher(app[STORE], app[SHAPES], config, Sender(config, app[POLICY]), app[STATS])
    app[DISPATCHER] = dispatcher
    if config.dispatch:
        dispatcher.start()
    try:
        yield
    finally:
        await dispatcher.stop()
