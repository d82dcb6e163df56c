"""webMethods Task Engine "Task Changed" events, posted to endpoints an admin configures.

Task Engine emits its EDA event type Task Changed (``operation``, ``operationText``,
``source``, ``taskURL``, ``oldTask``, ``newTask``) over Universal Messaging; taskgate
has no messaging transport, so it approximates one: each configured endpoint receives
every Task Changed document as an HTTP POST (JSON), in commit order, at least once. The
endpoints are managed through a small taskgate API, named like the style's own:
``GET|POST /rest/pub/taskevents/endpoints`` and ``GET|PUT|DELETE
/rest/pub/taskevents/endpoints/{id}``, admins only (others: a 403 in Integration
Server's error envelope). An endpoint is ``{"url", "secret", "enabled"}``; with a
secret, each delivery carries ``X-Taskgate-Signature: sha256=<base64 HMAC-SHA256 of the
body>`` (Universal Messaging signs nothing; this is taskgate's). ``status`` says whether
it is ``active``, ``stopped``, or ``failed`` after ``webhooks.max_failures`` failed
deliveries in a row; a PUT with ``"enabled": true`` starts it again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway import errors
from gateway.apis.webmethods_rules import STYLE
from gateway.clock import now_iso
from gateway.codecs import decode_json, json_response, negotiate, read_body
from gateway.config import WebhooksConfig
from gateway.context import CONFIG, store_of
from gateway.events.scoped import dispatcher_of
from gateway.events.signing import taskgate_signature
from gateway.events.subscriptions import SHAPES, Event, Outgoing, check_target, require_admin
from gateway.limits import dumps
from gateway.model import Doc, Hook

__all__ = ["HOOK_STYLE", "OPERATIONS", "WebMethodsShape", "task_changed", "setup"]

HOOK_STYLE = f"{STYLE}:endpoint"
#: the EDA Task Changed operations (the event type's operation codes), by audit action
OPERATIONS = {"created": (1, "created"), "updated": (2, "updated"), "deleted": (3, "deleted")}
EVENT_TYPE = "TaskChanged"


def task_changed(event: Event) -> dict[str, Any] | None:
    """The Task Changed document of a webMethods task's change; None for other styles."""
    change = event.change
    if change.style != STYLE:
        return None
    code, text = OPERATIONS[change.action]
    return {"operation": code, "operationText": text, "source": change.actor,
            "taskURL": f"/rest/pub/opentask/{quote(change.task_id, safe='')}",
            "oldTask": event.old, "newTask": event.new}


class WebMethodsShape:
    def render(self, hook: Hook, event: Event) -> Outgoing | None:
        document = task_changed(event)
        if document is None:
            return None
        body = dumps(document).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Taskgate-Event": EVENT_TYPE}
        if hook.doc.get("secret"):
            headers["X-Taskgate-Signature"] = taskgate_signature(hook.doc["secret"], body)
        return Outgoing(hook.doc["url"], body, headers)

    def disabled(self, doc: Doc) -> Doc:
        return {**doc, "enabled": False, "status": "failed"}


def endpoint(body: Any, endpoint_id: str, created: str) -> Doc:
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be an endpoint object {url, secret, enabled}")
    unknown = set(body) - {"url", "secret", "enabled", "id", "status", "created", "updated"}
    if unknown:
        raise errors.BadRequest(f"unknown member {sorted(unknown)[0]!r} of an endpoint")
    url, secret, enabled = body.get("url"), body.get("secret"), body.get("enabled", True)
    if not isinstance(url, str):
        raise errors.BadRequest("url is required: where Task Changed documents are posted")
    if secret is not None and (not isinstance(secret, str) or not 0 < len(secret) <= 1024):
        raise errors.BadRequest("secret must be a string of 1 to 1024 characters")
    if not isinstance(enabled, bool):
        raise errors.BadRequest("enabled must be true or false")
    return {"id": endpoint_id, "url": url, "secret": secret, "enabled": enabled,
            "status": "active" if enabled else "stopped", "created": created, "updated": now_iso()}


def public(doc: Doc) -> Doc:
    return {**doc, "secret": None}


async def _body(request: web.Request) -> Any:
    negotiate(request, ("application/json",))
    _ctype, raw = await read_body(request, ("application/json",))
    return decode_json(raw)


async def _existing(request: web.Request) -> Hook:
    hook = await store_of(request).get_hook(HOOK_STYLE, request.match_info["id"])
    if hook is None:
        raise errors.NotFound(f"endpoint {request.match_info['id'][:40]!r} was not found")
    return hook


async def list_endpoints(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    return json_response({"endpoints": [public(h.doc) for h in await store_of(request).list_hooks(HOOK_STYLE)]})


async def create_endpoint(request: web.Request) -> web.Response:
    require_admin(request)
    doc = endpoint(await _body(request), "", now_iso())
    await check_target(request, doc["url"])
    config: WebhooksConfig = request.app[CONFIG].webhooks
    store = store_of(request)
    if len(await store.list_hooks(HOOK_STYLE)) >= config.max_hooks:
        raise errors.BadRequest(f"there are {config.max_hooks} endpoints, the most allowed (webhooks.max_hooks)")
    hook = await store.create_hook(HOOK_STYLE, None, lambda given: {**doc, "id": given}, active=doc["enabled"])
    dispatcher_of(request).poke()
    return json_response(public(hook.doc), status=201)


async def get_endpoint(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    return json_response(public((await _existing(request)).doc))


async def put_endpoint(request: web.Request) -> web.Response:
    require_admin(request)
    body = await _body(request)
    hook = await _existing(request)
    if isinstance(body, dict) and "secret" not in body:
        body = {**body, "secret": hook.doc.get("secret")}  # left out: kept
    doc = endpoint(body, hook.id, hook.doc["created"])
    if doc["url"] != hook.doc["url"]:
        await check_target(request, doc["url"])
    stored = await store_of(request).replace_hook(HOOK_STYLE, hook.id, doc, active=doc["enabled"])
    if stored is None:
        raise errors.NotFound(f"endpoint {hook.id!r} was not found")
    dispatcher_of(request).poke()
    return json_response(public(stored.doc))


async def delete_endpoint(request: web.Request) -> web.Response:
    require_admin(request)
    if not await store_of(request).delete_hook(HOOK_STYLE, request.match_info["id"]):
        raise errors.NotFound(f"endpoint {request.match_info['id'][:40]!r} was not found")
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    """The endpoint routes, named ``webmethods:…`` (Integration Server's error envelope)."""
    app[SHAPES][HOOK_STYLE] = WebMethodsShape()
    r = app.router
    base = "/rest/pub/taskevents/endpoints"
    r.add_get(base, list_endpoints, name=f"{STYLE}:event-endpoints")
    r.add_post(base, create_endpoint, name=f"{STYLE}:event-endpoint-create")
    r.add_get(f"{base}/{{id}}", get_endpoint, name=f"{STYLE}:event-endpoint")
    r.add_put(f"{base}/{{id}}", put_endpoint, name=f"{STYLE}:event-endpoint-put")
    r.add_delete(f"{base}/{{id}}", delete_endpoint, name=f"{STYLE}:event-endpoint-delete")
