"""SuperOffice WebAPI webhooks: the ``Webhook`` entity, its REST endpoints, and the
signed notifications its hooks receive for BatchTask changes.

Routes, each also under the tenant prefix ``/{tenant}/api/v1/…``: ``GET /api/v1/Webhook``
(all), ``GET /api/v1/Webhook/default`` (a new webhook's defaults), ``POST
/api/v1/Webhook`` (create: the target must answer a ``test`` event with 2xx, as
SuperOffice checks), ``GET|PUT|PATCH|DELETE /api/v1/Webhook/{id}`` (PATCH: JSON Patch or
merge patch) and ``POST /api/v1/Webhook/Test`` (a WebhookResult). Only admins manage
webhooks; everyone else gets a 403 in SuperOffice's error body.

A notification is the vendor's WebhookPayload (``EventId``, ``Timestamp``, ``Changes``,
``Event``, ``PrimaryKey``, ``Entity``, ``ContextIdentifier``, ``ChangedByAssociateId``,
``WebhookName``, and the webhook's ``Properties``), with the headers ``X-SuperOffice-Event``,
``X-SuperOffice-EventId`` and, when the webhook has a ``Secret``, ``X-SuperOffice-Signature``
(base64 HMAC-SHA256 of the body), plus the webhook's own ``Headers``. SuperOffice has no
BatchTask event: ``batchtask.created``, ``batchtask.changed`` and ``batchtask.deleted``
are taskgate's, named in the vendor's ``entity.action`` style. ``State`` is ``Active``,
``Stopped`` or, after ``webhooks.max_failures`` failed deliveries in a row,
``TooManyErrors``.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis.superoffice_service import STYLE
from gateway.clock import now_iso
from gateway.codecs import decode_json, is_number, json_response, negotiate, read_body
from gateway.config import WebhooksConfig
from gateway.context import CONFIG, principal, store_of
from gateway.events.scoped import dispatcher_of
from gateway.events.signing import hmac_sha256_base64
from gateway.events.subscriptions import SHAPES, Event, Outgoing, check_headers, check_target, event_uuid, require_admin
from gateway.limits import dumps
from gateway.model import Doc, Hook
from gateway.patching import apply_json_patch, apply_merge_patch

__all__ = ["EVENTS", "HOOK_STYLE", "SuperOfficeShape", "payload", "setup"]

HOOK_STYLE = f"{STYLE}:webhook"
ENTITY = "batchtask"
#: taskgate's BatchTask events, by audit action (an extension: SuperOffice has none)
EVENTS = {"created": "batchtask.created", "updated": "batchtask.changed", "deleted": "batchtask.deleted"}
STATES = ("Active", "Stopped", "TooManyErrors")
USER_AGENT = "NetServer-Webhook/taskgate"
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\.[A-Za-z][A-Za-z0-9_]{0,63}")
_MEMBERS = ("WebhookId", "Name", "Events", "TargetUrl", "Secret", "State", "Type", "Headers", "Properties",
            "Registered", "RegisteredAssociate", "Updated", "UpdatedAssociate", "ErrorsEmail")
_TYPES = ("application/json", "text/json")
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", *_TYPES)


# -- the notification (pure) ---------------------------------------------------------------------
def payload(hook: Hook, event: Event) -> dict[str, Any] | None:
    """The WebhookPayload *hook* receives for *event*, or None when it does not subscribe to it."""
    change = event.change
    name = EVENTS[change.action]
    if change.style != STYLE or name not in hook.doc["Events"]:
        return None
    if change.action == "updated":  # the members the change touched
        changed = sorted({op["path"].split("/")[1] for op in change.patch if op.get("path", "").startswith("/")})
    else:
        changed = sorted((event.new or event.old or {}).keys())
    key = int(change.task_id) if is_number(change.task_id) else 0
    body: dict[str, Any] = {"EventId": event_uuid(change.seq, hook.num, event.scope), "Timestamp": change.at,
                            "Changes": changed, "Event": name, "PrimaryKey": key,
                            "Entity": ENTITY, "ContextIdentifier": hook.doc.get("_tenant") or "",
                            "ChangedByAssociateId": 0, "WebhookName": hook.doc["Name"]}
    for key, value in (hook.doc.get("Properties") or {}).items():
        body.setdefault(key, value)
    return body


def _outgoing(doc: Doc, body: dict[str, Any], event_id: str, test: bool = False) -> Outgoing:
    raw = dumps(body).encode()
    headers = {**(doc.get("Headers") or {}), "Content-Type": "application/json; charset=utf-8",
               "User-Agent": USER_AGENT, "X-SuperOffice-Event": body["Event"], "X-SuperOffice-EventId": event_id}
    if test:
        headers["X-Hook-Test"] = "true"
    if doc.get("Secret"):
        headers["X-SuperOffice-Signature"] = hmac_sha256_base64(doc["Secret"], raw)
    return Outgoing(doc["TargetUrl"], raw, headers)


class SuperOfficeShape:
    def render(self, hook: Hook, event: Event) -> Outgoing | None:
        body = payload(hook, event)
        return None if body is None else _outgoing(hook.doc, body, body["EventId"])

    def disabled(self, doc: Doc) -> Doc:
        return {**doc, "State": "TooManyErrors", "Updated": now_iso()}


def _test_event(doc: Doc) -> tuple[dict[str, Any], str]:
    event_id = event_uuid(0, doc.get("WebhookId") or 0)
    return ({"EventId": event_id, "Timestamp": now_iso(), "Changes": [], "Event": "test", "PrimaryKey": 0,
             "Entity": "test", "ContextIdentifier": doc.get("_tenant") or "Default", "ChangedByAssociateId": 0,
             "WebhookName": doc.get("Name") or ""}, event_id)


# -- the Webhook entity (pure) -------------------------------------------------------------------
def default_webhook() -> Doc:
    return {"WebhookId": 0, "Name": None, "Events": ["batchtask.created", "batchtask.changed"], "ErrorsEmail": None,
            "TargetUrl": None, "Secret": None, "State": "Active", "Type": "webhook", "Headers": None,
            "Properties": None, "Registered": "0001-01-01T00:00:00", "RegisteredAssociate": None,
            "Updated": "0001-01-01T00:00:00", "UpdatedAssociate": None}


def webhook(body: Any, *, webhook_id: int, registered: str, registered_by: Any, now: str) -> Doc:
    """A stored Webhook from a create or replace body; BadRequest naming the member."""
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a Webhook object")
    unknown = set(body) - set(_MEMBERS) - {"_Links", "TableRight", "FieldProperties"}
    if unknown:
        raise errors.BadRequest(f"unknown member {sorted(unknown)[0]!r} of Webhook")
    name = body.get("Name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise errors.BadRequest("Name must be a non-empty string of at most 255 characters")
    events = body.get("Events")
    if not isinstance(events, list) or not 0 < len(events) <= 50 or not all(
            isinstance(e, str) and _EVENT_NAME.fullmatch(e) for e in events):
        raise errors.BadRequest("Events must be 1 to 50 event names such as batchtask.changed")
    state = body.get("State") or "Active"
    if state not in STATES:
        raise errors.BadRequest(f"State must be one of {', '.join(STATES)}; got {str(state)[:40]!r}")
    kind = body.get("Type") or "webhook"
    if kind != "webhook":
        raise errors.BadRequest(f"Type {str(kind)[:40]!r} is not served: only 'webhook' (HTTP POST) is")
    secret = body.get("Secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) > 1024):
        raise errors.BadRequest("Secret must be a string of at most 1024 characters")
    email = body.get("ErrorsEmail")
    if email is not None and (not isinstance(email, str) or len(email) > 255):
        raise errors.BadRequest("ErrorsEmail must be a string of at most 255 characters")
    properties = body.get("Properties")
    if properties is not None and (not isinstance(properties, dict) or len(dumps(properties)) > 16_384):
        raise errors.BadRequest("Properties must be an object of at most 16 KiB")
    if not isinstance(body.get("TargetUrl"), str):
        raise errors.BadRequest("TargetUrl is required: the URL notifications are posted to")
    return {"WebhookId": webhook_id, "Name": name, "Events": list(dict.fromkeys(events)),
            "TargetUrl": body["TargetUrl"], "Secret": secret or None, "State": state, "Type": kind,
            "Headers": check_headers(body.get("Headers"), "Headers") or None, "Properties": properties or None,
            "Registered": registered, "RegisteredAssociate": registered_by, "Updated": now,
            "UpdatedAssociate": registered_by if registered == now else None, "ErrorsEmail": email}


def public(doc: Doc) -> Doc:
    return {k: doc.get(k) for k in _MEMBERS}


# -- HTTP ---------------------------------------------------------------------------------------------
def _associate(request: web.Request) -> dict[str, Any]:
    who = principal(request)
    return {"AssociateId": who.associate_id or 0, "Name": who.name, "Type": "Employee"}


async def _body(request: web.Request, types: tuple[str, ...] = _TYPES) -> tuple[str, Any]:
    negotiate(request, ("application/json",))
    ctype, raw = await read_body(request, types)
    return ctype, decode_json(raw)


#: the fixed routes beside /Webhook/{id}, and the one method each answers
_SIBLINGS = {"Test": "POST", "default": "GET"}


def _id(request: web.Request) -> str:
    raw = request.match_info["id"]
    if raw in _SIBLINGS:  # PUT /Webhook/Test, GET /Webhook/Test: those routes answer one method
        raise web.HTTPMethodNotAllowed(request.method, [_SIBLINGS[raw]])
    if not re.fullmatch(r"[0-9]{1,10}", raw):
        raise errors.BadRequest(f"{raw[:40]!r} is not a Webhook id")
    return str(int(raw))


async def _existing(request: web.Request) -> Hook:
    hook = await store_of(request).get_hook(HOOK_STYLE, _id(request))
    if hook is None:
        raise errors.NotFound(f"Webhook {request.match_info['id'][:40]} was not found")
    return hook


async def _test(request: web.Request, doc: Doc) -> tuple[bool, str]:
    """Post the ``test`` event to the webhook's target: (answered 2xx, what it answered)."""
    await check_target(request, doc["TargetUrl"])
    body, event_id = _test_event(doc)
    status, error, _ms = await dispatcher_of(request).sender.send(_outgoing(doc, body, event_id, test=True))
    return not error, f"HTTP {status}" if status is not None and not error else error


async def list_webhooks(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    return json_response([public(h.doc) for h in await store_of(request).list_hooks(HOOK_STYLE)])


async def get_default(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    return json_response(default_webhook())


async def get_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    return json_response(public((await _existing(request)).doc))


async def create_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    _ctype, body = await _body(request)
    now = now_iso()
    doc = webhook(body, webhook_id=0, registered=now, registered_by=_associate(request), now=now)
    config: WebhooksConfig = request.app[CONFIG].webhooks
    store = store_of(request)
    if len(await store.list_hooks(HOOK_STYLE)) >= config.max_hooks:
        raise errors.BadRequest(f"there are {config.max_hooks} webhooks, the most allowed (webhooks.max_hooks)")
    doc["_tenant"] = request.match_info.get("tenant", "")
    ok, message = await _test(request, doc)
    if not ok:
        raise errors.BadRequest(f"the TargetUrl did not answer the test event with 200 OK: {message}")
    hook = await store.create_hook(HOOK_STYLE, None, lambda given: {**doc, "WebhookId": int(given)},
                                   active=doc["State"] == "Active")
    dispatcher_of(request).poke()
    return json_response(public(hook.doc))


async def _replace(request: web.Request, hook: Hook, body: Any) -> web.Response:
    doc = webhook(body, webhook_id=int(hook.id), registered=hook.doc["Registered"],
                  registered_by=hook.doc["RegisteredAssociate"], now=now_iso())
    doc["UpdatedAssociate"] = _associate(request)
    doc["_tenant"] = hook.doc.get("_tenant", "")
    if doc["TargetUrl"] != hook.doc["TargetUrl"]:
        await check_target(request, doc["TargetUrl"])
    stored = await store_of(request).replace_hook(HOOK_STYLE, hook.id, doc, active=doc["State"] == "Active")
    if stored is None:
        raise errors.NotFound(f"Webhook {hook.id} was not found")
    dispatcher_of(request).poke()
    return json_response(public(stored.doc))


async def put_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    _id(request)  # before the body: a bad id is told whatever was sent
    _ctype, body = await _body(request)
    return await _replace(request, await _existing(request), body)


async def patch_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    _id(request)  # before the body, as PUT
    ctype, body = await _body(request, _PATCH_TYPES)
    hook = await _existing(request)
    current = public(hook.doc)
    if ctype == "application/merge-patch+json":
        if not isinstance(body, dict):
            raise errors.BadRequest("a merge patch is a JSON object")
        patched = apply_merge_patch(current, body)
    else:
        if not isinstance(body, list) or len(body) > 100:
            raise errors.BadRequest("a JSON Patch is an array of at most 100 operations")
        patched = apply_json_patch(current, body)
    return await _replace(request, hook, patched)


async def delete_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    if not await store_of(request).delete_hook(HOOK_STYLE, _id(request)):
        raise errors.NotFound(f"Webhook {request.match_info['id'][:40]} was not found")
    return web.Response(status=204)


async def test_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    _ctype, body = await _body(request)
    now = now_iso()
    doc = webhook(body, webhook_id=0, registered=now, registered_by=None, now=now)
    doc["_tenant"] = request.match_info.get("tenant", "")
    ok, message = await _test(request, doc)
    return json_response({"Success": ok, "Message": message, "TableRight": None, "FieldProperties": {}})


def setup(app: web.Application) -> None:
    """The Webhook routes, bare and under a tenant, named ``superoffice:…``."""
    app[SHAPES][HOOK_STYLE] = SuperOfficeShape()
    r = app.router
    for prefix, tag in (("", ""), ("/{tenant:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}}", ":tenant")):
        base = f"{prefix}/api/v1/Webhook"
        r.add_get(base, list_webhooks, name=f"{STYLE}:webhooks{tag}")
        r.add_post(base, create_webhook, name=f"{STYLE}:webhook-create{tag}")
        r.add_get(f"{base}/default", get_default, name=f"{STYLE}:webhook-default{tag}")
        r.add_post(f"{base}/Test", test_webhook, name=f"{STYLE}:webhook-test{tag}")
        r.add_get(f"{base}/{{id}}", get_webhook, name=f"{STYLE}:webhook{tag}")
        r.add_put(f"{base}/{{id}}", put_webhook, name=f"{STYLE}:webhook-put{tag}")
        r.add_patch(f"{base}/{{id}}", patch_webhook, name=f"{STYLE}:webhook-patch{tag}")
        r.add_delete(f"{base}/{{id}}", delete_webhook, name=f"{STYLE}:webhook-delete{tag}")
