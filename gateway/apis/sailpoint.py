"""SailPoint ISC task-status: its URLs and its error bodies.

Routes: ``/task-status/v1[/{id}]`` (what the ``sailpoint`` 2.x SDK calls) and the same
under ``/{beta,v2024,v2025,v2026}/task-status[/{id}]``, plus the deprecated
``/{beta,v2024,v2025,v2026}/task-status/pending-tasks`` (the vendor dropped it from v2026
in March 2026; the ``sailpoint`` 1.4.2 SDK's v2026 module still calls it).
``POST /task-status/v1`` is a taskgate extension (SailPoint has no public create call).
Any other ``/{prefix}/task-status…`` path (``/v3/task-status/{id}``: SailPoint has no v3
task-status) is this style's too, so its 404 is an ErrorResponseDto (:data:`PATH_PATTERN`).

Lists are streamed a few tasks at a time (:mod:`gateway.streaming`), in the same bytes.

Owns the URLs, paging parameters, content negotiation and error bodies of the SailPoint
style. Handlers are thin: negotiate, read the body, hand it to the pure rules of
:mod:`gateway.apis.sailpoint_rules` (which members a PATCH may change, who may change a
task, the mutation),
store, answer. Must not hold rules itself.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway import errors
from gateway.apis.sailpoint_filters import parse_filters, parse_sorters
from gateway.apis.sailpoint_rules import OWNER, Caller, new_task_status, owned_mutation, parse_patch, patch_mutation
from gateway.codecs import decode_json, etag, json_response, negotiate, parse_if_match, read_body, stored_response
from gateway.context import CONFIG, clock_of, principal, request_id, store_of
from gateway.model import Task
from gateway.query import Compare, Query, Sort
from gateway.quotas import charge
from gateway.streaming import answer_list, json_list, task_parts
from gateway.turns import takes_turns

__all__ = ["STYLE", "PATH_PATTERN", "PATCH_TYPES", "MAX_LIMIT", "setup", "render_error", "import_task", "prepare"]

STYLE = "sailpoint"
YEAR_VERSIONS = ("beta", "v2024", "v2025", "v2026")
PENDING_VERSIONS = YEAR_VERSIONS
#: the paths this style answers for, routes or not: an unmatched one (an unknown version
#: prefix, a method no route has) gets SailPoint's error body rather than the generic one
PATH_PATTERN = re.compile(r"^/([^/]+/)?task-status(/|$)")
PATCH_TYPES = ("application/json-patch+json", "application/json")
#: fields that list filters and sorters read; the store keeps an index on each
#: (``$.target.id`` is what ``sourceId`` filters on: see :mod:`gateway.apis.sailpoint_filters`)
INDEXED_FIELDS = ("$.completionStatus", "$.type", "$.launcher", "$.target.id", "$.created",
                  "$.uniqueName")  # the dashboard sorts by name
MAX_LIMIT = 250
DETAIL_CODES = {400: "400.1 Bad Request Content", 403: "403 Forbidden", 404: "404 Not found",
                405: "405 Method Not Allowed", 406: "406 Not Acceptable", 409: "409 Conflict",
                412: "412 Precondition Failed", 413: "413 Payload Too Large",
                415: "415 Unsupported Media Type", 500: "500.0 Internal Fault"}


# -- the style's entry points ---------------------------------------------------------
def import_task(doc: Any, now: str) -> tuple[str, dict[str, Any]]:
    """The id and canonical document of an imported TaskStatus (``taskgate import``)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise errors.BadRequest("a TaskStatus needs a string id")
    task = new_task_status(doc, now=now, launcher="import")
    return task["id"], task


# -- HTTP ------------------------------------------------------------------------------
def render_error(err: errors.TaskgateError, tracking_id: str) -> web.Response:
    """SailPoint's bodies: ``{"error"}`` for 401, ``{"message"}`` for 429, else ErrorResponseDto."""
    if err.status == 401:
        body: Any = {"error": err.message}
    elif err.status == 429:
        body = {"message": " Rate Limit Exceeded "}
    else:
        body = {"detailCode": DETAIL_CODES.get(err.status, f"{err.status} {err.title}"),
                "trackingId": tracking_id,
                "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": err.message}],
                "causes": []}
    return json_response(body, status=err.status, headers=err.headers)


def _not_found(task_id: str) -> errors.NotFound:
    return errors.NotFound(f"TaskStatus with id {task_id!r} was not found")


def _task_response(task: Task, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """The task's TaskStatus, which is its stored document as it is: the stored text when
    the write had it at hand."""
    headers = {"ETag": etag(task.version), **(headers or {})}
    if task.text:
        return stored_response(task.text, status=status, headers=headers)
    return json_response(task.doc, status=status, headers=headers)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) < lo or (hi is not None and int(raw) > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise errors.BadRequest(f"{name} must be an integer {bound}; got {raw!r}")
    return int(raw)


def _page(request: web.Request) -> tuple[int, int, bool]:
    limit = _int_param(request, "limit", MAX_LIMIT, 0, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, None)
    raw = request.query.get("count", "false").lower()
    if raw not in ("true", "false"):
        raise errors.BadRequest(f"count must be true or false; got {request.query['count']!r}")
    return limit, offset, raw == "true"


_TASK_LIST = json_list(lambda tasks: tasks)


def _as_stored(task: Task) -> Any:
    return task.doc


async def _list_response(request: web.Request, query: Query) -> web.StreamResponse:
    """A page of TaskStatus documents, streamed (:mod:`gateway.streaming`): 250 of a
    megabyte each are never held at once."""
    store = store_of(request)
    ids, total = await store.find_ids(STYLE, query)
    headers = {"X-Total-Count": str(total)} if total is not None else None
    return await answer_list(request, task_parts(store.read_chunks(STYLE, ids)), _as_stored, _TASK_LIST,
                             headers=headers)


async def get_task(request: web.Request) -> web.Response:
    negotiate(request, ("application/json",))
    # the answer is the stored document as it is: its text, never read into values
    found = await store_of(request).get_text(STYLE, request.match_info["id"])
    if found is None:
        raise _not_found(request.match_info["id"])
    version, text = found
    return stored_response(text, headers={"ETag": etag(version)})


@takes_turns
async def list_tasks(request: web.Request) -> web.StreamResponse:
    negotiate(request, ("application/json",))
    limit, offset, count = _page(request)
    where = parse_filters(request.query.get("filters", ""))
    order = parse_sorters(request.query.get("sorters", "")) or (Sort("$.created"),)
    return await _list_response(request, Query(where, order, limit, offset, count))


@takes_turns
async def pending_tasks(request: web.Request) -> web.StreamResponse:
    """Deprecated by SailPoint in favour of ``filters=completionStatus isnull``; kept for
    SDK 1.x. An empty page is ``200 []`` rather than the documented-but-vague 204."""
    negotiate(request, ("application/json",))
    limit, offset, count = _page(request)
    query = Query(Compare("$.completionStatus", "isnull"), (Sort("$.created"),), limit, offset, count)
    return await _list_response(request, query)


async def patch_task(request: web.Request) -> web.Response:
    who = principal(request)
    task_id = request.match_info["id"]
    negotiate(request, ("application/json",))
    _ctype, body = await read_body(request, PATCH_TYPES)
    ops = parse_patch(decode_json(body))
    mutate = owned_mutation(Caller(who.name, who.is_admin), task_id, patch_mutation(ops, clock_of(request).now_iso()))
    charge(request, request.app[CONFIG].quota, who.name)  # a task is its launcher's
    try:
        task = await store_of(request).update(
            STYLE, task_id, mutate, actor=who.name, request_id=request_id(request),
            if_match=parse_if_match(request.headers.get("If-Match")))
    except errors.NotFound:
        raise _not_found(request.match_info["id"]) from None
    return _task_response(task)


async def create_task(request: web.Request) -> web.Response:
    who = principal(request)
    if not who.is_admin:
        raise errors.Forbidden("only an admin may create tasks")
    negotiate(request, ("application/json",))
    _ctype, body = await read_body(request, ("application/json",))
    doc = new_task_status(decode_json(body), now=clock_of(request).now_iso(), launcher=who.name)
    task = await store_of(request).create(STYLE, doc["id"], doc, actor=who.name,
                                           request_id=request_id(request))
    # the request's own path, so the link holds under server.base_path too
    return _task_response(task, 201, {"Location": f"{request.path.rstrip('/')}/{quote(task.id, safe='')}"})


def setup(app: web.Application) -> None:
    """Register every SailPoint route (pending-tasks before ``{id}``, which would swallow it)."""
    r = app.router
    for version in PENDING_VERSIONS:
        r.add_get(f"/{version}/task-status/pending-tasks", pending_tasks, name=f"{STYLE}:pending:{version}")
    r.add_get("/task-status/v1", list_tasks, name=f"{STYLE}:list:v1")
    r.add_post("/task-status/v1", create_task, name=f"{STYLE}:create:v1")
    r.add_get("/task-status/v1/{id}", get_task, name=f"{STYLE}:get:v1")
    r.add_patch("/task-status/v1/{id}", patch_task, name=f"{STYLE}:patch:v1")
    for version in YEAR_VERSIONS:
        r.add_get(f"/{version}/task-status", list_tasks, name=f"{STYLE}:list:{version}")
        r.add_get(f"/{version}/task-status/{{id}}", get_task, name=f"{STYLE}:get:{version}")
        r.add_patch(f"/{version}/task-status/{{id}}", patch_task, name=f"{STYLE}:patch:{version}")


async def prepare(store: Any) -> None:
    """Indexes the list filters need (run once the store is open)."""
    # ordered by created next: the default sort of every list
    await store.ensure_indexes(STYLE, INDEXED_FIELDS, then="$.created")
    await store.ensure_owner(STYLE, f"$.{OWNER}")
