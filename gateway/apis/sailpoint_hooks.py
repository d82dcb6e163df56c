"""SailPoint ISC Event Triggers: the trigger-subscription API and what its subscribers receive.

Routes, on the paths the ``sailpoint`` SDKs call (2.x: ``/trigger-subscriptions/v1``,
``/trigger-invocations/v1/test``; 1.4.2's beta, v2024 and v2025 modules: the same under
``/{version}/trigger-subscriptions`` and ``/{version}/trigger-invocations/test``):
create (201), list (``limit``, ``offset``, ``count``, ``filters`` on ``id``, ``triggerId``
and ``type`` with ``eq``, ``sorters`` on ``triggerId`` and ``triggerName``), replace
(PUT), patch (JSON Patch of the patchable members, as the vendor does), delete (204), and
the test invocation (204, sent at once to the trigger's subscriptions). ``GET …/{id}`` is
a taskgate extension (the vendor lists with ``filters=id eq "…"``). Only admins manage
subscriptions; everyone else gets a 403 ErrorResponseDto.

Only ``HTTP`` subscriptions are served, with the vendor's authentication types
(``NO_AUTH``, ``BASIC_AUTH``, ``BEARER_TOKEN``); secrets are never answered (null, as the
vendor documents). The JSONPath ``filter`` is evaluated on the trigger's payload with
jsonpath-ng (an empty result: not sent), within :data:`FILTER_SECONDS` for its regular
expressions (``=~``) and :data:`FILTER_NODES` for what it walks, which a task's values
would otherwise drive. Two triggers: ``idn:account-aggregation-completed``
when an account aggregation task (``uniqueName`` naming an account aggregation) gets a
``completionStatus``, in the vendor's payload, and taskgate's own
``taskgate:task-status-changed`` for every change of a TaskStatus.
"""

from __future__ import annotations

import base64
import functools
import re
import time
import uuid
from typing import Any

import regex
import structlog
from aiohttp import web
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import filter as jsonpath_filter
from jsonpath_ng.ext import parse as jsonpath

from gateway import errors
from gateway.apis.sailpoint import STYLE
from gateway.codecs import decode_json, json_response, negotiate, read_body
from gateway.config import WebhooksConfig
from gateway.context import CONFIG, store_of
from gateway.events.scoped import dispatcher_of
from gateway.events.subscriptions import SHAPES, Event, Outgoing, check_target, require_admin
from gateway.limits import dumps
from gateway.model import Doc, Hook
from gateway.patching import apply_json_patch

__all__ = ["TRIGGERS", "AGGREGATION", "TASK_CHANGED", "SailPointShape", "aggregation_payload", "matches", "setup"]

AGGREGATION = "idn:account-aggregation-completed"
TASK_CHANGED = "taskgate:task-status-changed"
TRIGGERS = {AGGREGATION: "Account Aggregation Completed", TASK_CHANGED: "Task Status Changed"}
HOOK_STYLE = f"{STYLE}:trigger"
AUTH_TYPES = ("NO_AUTH", "BASIC_AUTH", "BEARER_TOKEN")
DISPATCH_MODES = ("SYNC", "ASYNC")  # DYNAMIC is for request-response triggers only
PATCHABLE = frozenset({"name", "description", "enabled", "type", "filter", "responseDeadline", "httpConfig"})
_AGGREGATION_NAME = re.compile(r"account\s+aggregation", re.IGNORECASE)
_STATUS = {"SUCCESS": "Success", "WARNING": "Success", "ERROR": "Failed", "TEMPERROR": "Failed",
           "TERMINATED": "Terminated"}
_STATS = ("scanned", "unchanged", "changed", "added", "removed")
_DURATION = re.compile(r"P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")
_FILTER_TERM = re.compile(r'\s*(id|triggerId|type)\s+eq\s+"([^"\\]{0,200})"\s*')
MAX_LIMIT = 250
#: the year versions whose SDK modules (sailpoint 1.4.2) have a triggers API
HOOK_VERSIONS = ("beta", "v2024", "v2025")


# -- the payloads (pure) --------------------------------------------------------------------
def aggregation_payload(event: Event) -> dict[str, Any] | None:
    """The ``idn:account-aggregation-completed`` input, when *event* completes an account
    aggregation task (its completionStatus goes from null to a value); else None."""
    new, old = event.new, event.old
    if new is None or new.get("completionStatus") is None or not _AGGREGATION_NAME.search(new.get("uniqueName", "")):
        return None
    if old is not None and old.get("completionStatus") is not None:
        return None
    target = new.get("target") or {}
    attributes = new.get("attributes") or {}
    messages = new.get("messages") or []

    def texts(kind: str) -> list[str]:
        return [(m.get("localizedText") or {}).get("message") or m.get("key", "") for m in messages
                if m.get("type") == kind]

    def count(name: str) -> int:
        value = attributes.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else 0

    return {"source": {"type": "SOURCE", "id": target.get("id", ""), "name": target.get("name", "")},
            "status": _STATUS.get(new["completionStatus"], "Failed"),
            "started": new.get("launched") or new.get("created"),
            "completed": new.get("completed") or event.change.at,
            "errors": texts("ERROR"), "warnings": texts("WARN"),
            "stats": {name: count(name) for name in _STATS}}


def task_changed_payload(event: Event) -> dict[str, Any]:
    c = event.change
    return {"id": c.task_id, "action": c.action, "version": c.version, "actor": c.actor, "at": c.at,
            "taskStatus": event.new, "previousTaskStatus": event.old}


@functools.lru_cache(maxsize=256)
def _compiled(expression: str) -> Any:
    return jsonpath(expression)


#: the most processor time the regular expressions (``=~``) of one filter may take on one
#: payload, together: ``@.progress =~ "(a|aa)+$"`` backtracks for seconds on a value of
#: some thirty characters, and whoever may change a task chooses its values. Counted in
#: this thread's own time, so that another thread's turn at the interpreter lock (up to
#: its 5 ms switch interval) is not charged to the filter
FILTER_SECONDS = 0.02
_left = 0.0  # while matches() runs: what its filter's regular expressions have left


def _search(value: Any, pattern: Any) -> bool:
    """jsonpath-ng's ``=~`` (``re.search``, looked up in its ``OPERATOR_MAP`` at each
    comparison), with the ``regex`` module's time bound: TimeoutError once the filter's
    time is spent. A pattern that does not compile matches nothing, as before."""
    global _left
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    if _left <= 0:
        raise TimeoutError("the filter's time is spent")
    try:
        compiled = _regex(pattern)
    except regex.error:
        return False
    started = time.thread_time()
    try:
        # the timeout is wall time: at least the whole budget, so that a wait for the
        # interpreter lock does not end a search that is not slow
        return compiled.search(value, timeout=FILTER_SECONDS) is not None
    finally:
        _left -= time.thread_time() - started


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    return regex.compile(pattern)


jsonpath_filter.OPERATOR_MAP["=~"] = _search


#: the most members and items a filter that walks (``..``, ``*``, ``[?(…)]``) may walk:
#: jsonpath-ng takes about 2 µs a node, on the loop that delivers every hook's events, and
#: whoever may change a task chooses how large its ``attributes`` are
FILTER_NODES = 20_000
_WALKS = ("..", "*", "[?")


def _larger_than(value: Any, limit: int) -> bool:
    """Whether *value* holds more than *limit* nodes (counted until it is known)."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def matches(expression: str | None, payload: Any) -> bool:
    """Whether the JSONPath *expression* finds anything in *payload* (no filter: True).
    A filter on the root (``$[?(…)]``) is applied to the payload itself, as Jayway does.
    One whose regular expressions take longer than :data:`FILTER_SECONDS` matches nothing,
    and is logged; so does one that walks a payload of more than :data:`FILTER_NODES` nodes."""
    global _left
    if not expression:
        return True
    if any(walk in expression for walk in _WALKS) and _larger_than(payload, FILTER_NODES):
        structlog.get_logger("taskgate.webhooks").warning(
            "webhook.filter_payload_too_large", filter=expression, nodes=FILTER_NODES)
        return False
    target = [payload] if expression.replace(" ", "").startswith("$[?") else payload
    _left = FILTER_SECONDS
    try:
        return bool(_compiled(expression).find(target))
    except TimeoutError:
        structlog.get_logger("taskgate.webhooks").warning(
            "webhook.filter_too_slow", filter=expression, seconds=FILTER_SECONDS)
        return False
    except Exception:  # a filter that fails on this payload (a comparison of mismatched types) matches nothing
        return False


def _headers(doc: Doc) -> dict[str, str]:
    """A delivery's headers: JSON, the trigger, and the subscription's authentication."""
    http = doc["httpConfig"]
    headers = {"Content-Type": "application/json", "X-Taskgate-Trigger": doc["triggerId"]}
    if http["httpAuthenticationType"] == "BASIC_AUTH":
        basic = http["basicAuthConfig"]
        pair = f"{basic['userName']}:{basic['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif http["httpAuthenticationType"] == "BEARER_TOKEN":
        headers["Authorization"] = "Bearer " + http["bearerTokenAuthConfig"]["bearerToken"]
    return headers


class SailPointShape:
    def render(self, hook: Hook, event: Event) -> Outgoing | None:
        if event.change.style != STYLE:
            return None
        doc = hook.doc
        payload = aggregation_payload(event) if doc["triggerId"] == AGGREGATION else task_changed_payload(event)
        if payload is None or not matches(doc.get("filter"), payload):
            return None
        return Outgoing(doc["httpConfig"]["url"], dumps(payload).encode(), _headers(doc))

    def disabled(self, doc: Doc) -> Doc:
        return {**doc, "enabled": False}


# -- subscriptions: validation (pure) ----------------------------------------------------------
def _string(body: dict[str, Any], name: str, *, required: bool = False, limit: int = 1000) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise errors.BadRequest(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def _http_config(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.BadRequest("httpConfig is required for an HTTP subscription and must be an object")
    unknown = set(value) - {"url", "httpDispatchMode", "httpAuthenticationType", "basicAuthConfig",
                            "bearerTokenAuthConfig"}
    if unknown:
        raise errors.BadRequest(f"httpConfig: unknown member {sorted(unknown)[0]!r}")
    url = _string(value, "url", required=True, limit=2048)
    mode = value.get("httpDispatchMode")
    if mode not in DISPATCH_MODES:
        raise errors.BadRequest(f"httpConfig.httpDispatchMode must be one of {', '.join(DISPATCH_MODES)} for a "
                                f"fire-and-forget trigger; got {str(mode)[:40]!r}")
    auth = value.get("httpAuthenticationType") or "NO_AUTH"
    if auth not in AUTH_TYPES:
        raise errors.BadRequest(f"httpConfig.httpAuthenticationType must be one of {', '.join(AUTH_TYPES)}; "
                                f"got {str(auth)[:40]!r}")
    out: dict[str, Any] = {"url": url, "httpDispatchMode": mode, "httpAuthenticationType": auth,
                           "basicAuthConfig": None, "bearerTokenAuthConfig": None}
    if auth == "BASIC_AUTH":
        basic = value.get("basicAuthConfig")
        if not isinstance(basic, dict):
            raise errors.BadRequest("httpConfig.basicAuthConfig is required for BASIC_AUTH")
        user, password = _string(basic, "userName", required=True, limit=256), _string(basic, "password",
                                                                                          required=True, limit=256)
        if ":" in (user or ""):
            raise errors.BadRequest("httpConfig.basicAuthConfig.userName must not contain ':'")
        out["basicAuthConfig"] = {"userName": user, "password": password}
    elif auth == "BEARER_TOKEN":
        bearer = value.get("bearerTokenAuthConfig")
        if not isinstance(bearer, dict):
            raise errors.BadRequest("httpConfig.bearerTokenAuthConfig is required for BEARER_TOKEN")
        token = _string(bearer, "bearerToken", required=True, limit=4096)
        if any(c in (token or "") for c in "\r\n\0"):
            raise errors.BadRequest("httpConfig.bearerTokenAuthConfig.bearerToken must be one line")
        out["bearerTokenAuthConfig"] = {"bearerToken": token}
    return out


def subscription(body: Any, sub_id: str, *, trigger_id: str | None = None) -> Doc:
    """The stored Subscription for a create (*trigger_id* None: read from *body*) or a
    replace body. BadRequest naming the first member that is wrong."""
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a JSON object (a subscription)")
    known = {"name", "description", "triggerId", "type", "responseDeadline", "httpConfig", "eventBridgeConfig",
             "enabled", "filter", "id", "triggerName"}
    unknown = set(body) - known
    if unknown:
        raise errors.BadRequest(f"unknown member {sorted(unknown)[0]!r}")
    trigger = trigger_id if trigger_id is not None else _string(body, "triggerId", required=True)
    if trigger not in TRIGGERS:
        raise errors.BadRequest(f"triggerId {str(trigger)[:80]!r} is not a trigger of this tenant; triggers: "
                                + ", ".join(TRIGGERS))
    kind = body.get("type")
    if kind != "HTTP":
        raise errors.BadRequest(f"type {str(kind)[:40]!r} is not served: only HTTP subscriptions are")
    if body.get("eventBridgeConfig") is not None:
        raise errors.BadRequest("eventBridgeConfig is only for EVENTBRIDGE subscriptions")
    deadline = body.get("responseDeadline", "PT1H")
    if deadline is None:
        deadline = "PT1H"
    if not isinstance(deadline, str) or not _DURATION.fullmatch(deadline):
        raise errors.BadRequest("responseDeadline must be an ISO-8601 duration such as PT1H")
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise errors.BadRequest("enabled must be true or false")
    expression = _string(body, "filter", limit=1000)
    if expression is not None:
        try:
            _compiled(expression)
        except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
            raise errors.BadRequest(f"filter is not a valid JSONPath expression: {exc}"[:300]) from None
    return {"id": sub_id, "name": _string(body, "name", required=True, limit=255),
            "description": _string(body, "description", limit=2000), "triggerId": trigger,
            "triggerName": TRIGGERS[trigger], "type": "HTTP", "responseDeadline": deadline,
            "httpConfig": _http_config(body.get("httpConfig")), "enabled": enabled, "filter": expression}


def public(doc: Doc) -> Doc:
    """A Subscription as answered: secrets nulled, as the vendor does."""
    http = dict(doc["httpConfig"])
    if http.get("basicAuthConfig"):
        http["basicAuthConfig"] = {"userName": http["basicAuthConfig"]["userName"], "password": None}
    if http.get("bearerTokenAuthConfig"):
        http["bearerTokenAuthConfig"] = {"bearerToken": None}
    return {**doc, "httpConfig": http}


def _list_filter(text: str) -> list[tuple[str, str]]:
    if not text.strip():
        return []
    terms = []
    for part in re.split(r"\s+and\s+", text.strip()):
        found = _FILTER_TERM.fullmatch(part)
        if found is None:
            raise errors.BadRequest(f"filters: {part[:80]!r} is not supported; use id, triggerId or type with eq, "
                                    'e.g. triggerId eq "idn:account-aggregation-completed"')
        terms.append((found.group(1), found.group(2)))
    return terms


# -- HTTP ------------------------------------------------------------------------------------------
def _not_found(sub_id: str) -> errors.NotFound:
    return errors.NotFound(f"subscription {sub_id[:80]!r} was not found")


async def _body(request: web.Request, types: tuple[str, ...] = ("application/json",)) -> Any:
    negotiate(request, ("application/json",))
    _ctype, raw = await read_body(request, types)
    return decode_json(raw)


async def _checked(request: web.Request, doc: Doc) -> Doc:
    await check_target(request, doc["httpConfig"]["url"])
    return doc


def _poke(request: web.Request) -> None:
    dispatcher_of(request).poke()


async def create_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    body = await _body(request)
    doc = await _checked(request, subscription(body, "validated"))
    config: WebhooksConfig = request.app[CONFIG].webhooks
    store = store_of(request)
    if len(await store.list_hooks(HOOK_STYLE)) >= config.max_hooks:
        raise errors.BadRequest(f"this tenant has {config.max_hooks} subscriptions, the most allowed "
                                "(webhooks.max_hooks)")
    sub_id = str(uuid.uuid4())
    hook = await store.create_hook(HOOK_STYLE, sub_id, lambda given: {**doc, "id": given}, active=doc["enabled"])
    _poke(request)
    return json_response(public(hook.doc), status=201)


async def list_subscriptions(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    limit = _int(request, "limit", MAX_LIMIT, MAX_LIMIT)
    offset = _int(request, "offset", 0, None)
    terms = _list_filter(request.query.get("filters", ""))
    docs = [h.doc for h in await store_of(request).list_hooks(HOOK_STYLE)]
    docs = [d for d in docs if all(d.get(k) == v for k, v in terms)]
    sorters = request.query.get("sorters", "")
    for key in reversed([s.strip() for s in sorters.split(",") if s.strip()]):
        name = key.lstrip("-")
        if name not in ("triggerId", "triggerName"):
            raise errors.BadRequest(f"sorters: {key[:40]!r} is not supported; sort by triggerId or triggerName")
        docs.sort(key=functools.partial(_member, name), reverse=key.startswith("-"))
    count = request.query.get("count", "false").lower()
    if count not in ("true", "false"):
        raise errors.BadRequest("count must be true or false")
    headers = {"X-Total-Count": str(len(docs))} if count == "true" else None
    return json_response([public(d) for d in docs[offset:offset + limit]], headers=headers)


def _member(name: str, doc: Doc) -> str:
    return str(doc[name])


def _int(request: web.Request, name: str, default: int, hi: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or (hi is not None and int(raw) > hi):
        raise errors.BadRequest(f"{name} must be an integer between 0 and {hi if hi is not None else '∞'}")
    return int(raw)


async def get_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    negotiate(request, ("application/json",))
    hook = await store_of(request).get_hook(HOOK_STYLE, request.match_info["id"])
    if hook is None:
        raise _not_found(request.match_info["id"])
    return json_response(public(hook.doc))


async def _replace(request: web.Request, hook: Hook, doc: Doc) -> web.Response:
    if doc["httpConfig"]["url"] != hook.doc["httpConfig"]["url"]:
        await _checked(request, doc)
    stored = await store_of(request).replace_hook(HOOK_STYLE, hook.id, doc, active=doc["enabled"])
    if stored is None:
        raise _not_found(hook.id)
    _poke(request)
    return json_response(public(stored.doc))


async def _existing(request: web.Request) -> Hook:
    hook = await store_of(request).get_hook(HOOK_STYLE, request.match_info["id"])
    if hook is None:
        raise _not_found(request.match_info["id"])
    return hook


async def put_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    body = await _body(request)
    hook = await _existing(request)
    if isinstance(body, dict) and isinstance(body.get("httpConfig"), dict):
        _keep_secrets(body["httpConfig"], hook.doc["httpConfig"])
    doc = subscription(body, hook.id, trigger_id=hook.doc["triggerId"])
    return await _replace(request, hook, doc)


def _keep_secrets(new: dict[str, Any], old: dict[str, Any]) -> None:
    """A secret sent back as null (as answers show it) keeps the stored one."""
    for config, secret in (("basicAuthConfig", "password"), ("bearerTokenAuthConfig", "bearerToken")):
        given, stored = new.get(config), old.get(config)
        if isinstance(given, dict) and given.get(secret) is None and stored:
            given[secret] = stored[secret]


async def patch_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    ops = await _body(request, ("application/json-patch+json", "application/json"))
    if not isinstance(ops, list) or not ops or len(ops) > 100:
        raise errors.BadRequest("the body must be a JSON Patch: an array of 1 to 100 operations")
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise errors.BadRequest("each operation needs an op and a path")
        member = op["path"].split("/")[1] if op["path"].startswith("/") else op["path"]
        if member not in PATCHABLE:
            raise errors.BadRequest(f"{op['path'][:80]!r} cannot be patched; patchable: {', '.join(sorted(PATCHABLE))}")
    hook = await _existing(request)
    patched = apply_json_patch(hook.doc, ops)
    doc = subscription({k: v for k, v in patched.items() if k not in ("id", "triggerName")}, hook.id)
    if doc["triggerId"] != hook.doc["triggerId"]:
        raise errors.BadRequest("triggerId cannot be changed")
    return await _replace(request, hook, doc)


async def delete_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    if not await store_of(request).delete_hook(HOOK_STYLE, request.match_info["id"]):
        raise _not_found(request.match_info["id"])
    return web.Response(status=204)


async def test_invocation(request: web.Request) -> web.Response:
    """Send the trigger's example (or the given ``input``) to its subscriptions (all, or
    ``subscriptionIds``), enabled or not, once each, before answering 204."""
    require_admin(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a JSON object (a TestInvocation)")
    trigger = _string(body, "triggerId", required=True)
    if trigger not in TRIGGERS:
        raise errors.BadRequest(f"triggerId {str(trigger)[:80]!r} is not a trigger of this tenant")
    if not isinstance(body.get("contentJson"), dict):
        raise errors.BadRequest("contentJson is required and must be an object")
    payload = body.get("input")
    if payload is not None and not isinstance(payload, dict):
        raise errors.BadRequest("input must be an object")
    ids = body.get("subscriptionIds")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 100):
        raise errors.BadRequest("subscriptionIds must be a list of at most 100 subscription ids")
    sent = dumps(payload if payload is not None else EXAMPLES[trigger]).encode()
    for hook in await store_of(request).list_hooks(HOOK_STYLE):
        if hook.doc["triggerId"] == trigger and (ids is None or hook.id in ids):
            headers = {**_headers(hook.doc), "X-Taskgate-Test": "true"}
            await dispatcher_of(request).sender.send(Outgoing(hook.doc["httpConfig"]["url"], sent, headers))
    return web.Response(status=204)


#: each trigger's sample input, sent by a test invocation without ``input``
EXAMPLES: dict[str, dict[str, Any]] = {
    AGGREGATION: {"source": {"type": "SOURCE", "id": "4e4d982dddff4267ab12f0f1e72b5a6d",
                             "name": "Corporate Active Directory"},
                  "status": "Success", "started": "2020-06-29T22:01:50.474Z", "completed": "2020-06-29T22:02:04.090Z",
                  "errors": [], "warnings": ["Account skipped"],
                  "stats": {"scanned": 200, "unchanged": 190, "changed": 6, "added": 4, "removed": 3}},
    TASK_CHANGED: {"id": "example", "action": "updated", "version": 2, "actor": "admin",
                   "at": "2020-06-29T22:02:04.090Z", "taskStatus": None, "previousTaskStatus": None},
}


def setup(app: web.Application) -> None:
    """The trigger-subscription routes, named ``sailpoint:…`` (SailPoint's error body)."""
    app[SHAPES][HOOK_STYLE] = SailPointShape()
    r = app.router
    for tag, subs, test in [("v1", "/trigger-subscriptions/v1", "/trigger-invocations/v1/test"),
                            *[(v, f"/{v}/trigger-subscriptions", f"/{v}/trigger-invocations/test")
                              for v in HOOK_VERSIONS]]:
        r.add_get(subs, list_subscriptions, name=f"{STYLE}:subscriptions:{tag}")
        r.add_post(subs, create_subscription, name=f"{STYLE}:subscribe:{tag}")
        r.add_get(f"{subs}/{{id}}", get_subscription, name=f"{STYLE}:subscription:{tag}")
        r.add_put(f"{subs}/{{id}}", put_subscription, name=f"{STYLE}:subscription-put:{tag}")
        r.add_patch(f"{subs}/{{id}}", patch_subscription, name=f"{STYLE}:subscription-patch:{tag}")
        r.add_delete(f"{subs}/{{id}}", delete_subscription, name=f"{STYLE}:subscription-delete:{tag}")
        r.add_post(test, test_invocation, name=f"{STYLE}:test-invocation:{tag}")
