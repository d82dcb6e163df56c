"""SailPoint ISC task-status: its URLs, its rules and its error bodies.

Routes: ``/task-status/v1[/{id}]`` (what the ``sailpoint`` 2.x SDK calls) and the same
under ``/{beta,v2024,v2025,v2026}/task-status[/{id}]``, plus the deprecated
``/{beta,v2024,v2025}/task-status/pending-tasks``. ``POST /task-status/v1`` is a taskgate
extension (SailPoint has no public create call).

The PATCH rule is :func:`patch_mutation`: a pure function from the stored TaskStatus to
the patched one, which may only touch :data:`UPDATABLE` paths and must still validate
against the vendor's TaskStatus schema.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web
from schemas.common import load_or_400
from schemas.sailpoint import JsonPatchOperationSchema, TaskStatusCreateSchema, TaskStatusSchema

from gateway import errors
from gateway.apis.sailpoint_filters import parse_filters, parse_sorters
from gateway.clock import now_iso
from gateway.codecs import decode_json, etag, json_response, negotiate, parse_if_match, read_body
from gateway.context import STORE, principal, request_id
from gateway.limits import MAX_OPERATIONS, check_value
from gateway.model import Mutate, Task
from gateway.patching import apply_json_patch, pointer_parts, same_json
from gateway.query import Compare, Query, Sort

__all__ = ["STYLE", "PATH_PATTERN", "UPDATABLE", "setup", "render_error", "import_task",
           "check_patch_paths", "patch_mutation", "new_task_status"]

STYLE = "sailpoint"
YEAR_VERSIONS = ("beta", "v2024", "v2025", "v2026")
PENDING_VERSIONS = ("beta", "v2024", "v2025")
PATH_PATTERN = re.compile(r"^/(task-status(/|$)|(beta|v2024|v2025|v2026)/task-status(/|$))")
#: top-level TaskStatus members a PATCH may change (and anything below them)
UPDATABLE = frozenset({"completionStatus", "completed", "launched", "progress", "percentComplete",
                       "messages", "returns", "attributes"})
PATCH_TYPES = ("application/json-patch+json", "application/json")
#: fields that list filters and sorters read; the store keeps an index on each
INDEXED_FIELDS = ("$.completionStatus", "$.type", "$.launcher", "$.created")
MAX_LIMIT = 250
DETAIL_CODES = {400: "400.1 Bad Request Content", 403: "403 Forbidden", 404: "404 Not found",
                405: "405 Method Not Allowed", 406: "406 Not Acceptable", 409: "409 Conflict",
                412: "412 Precondition Failed", 413: "413 Payload Too Large",
                415: "415 Unsupported Media Type", 500: "500.0 Internal Fault"}

_TASK_STATUS = TaskStatusSchema()
_TASK_STATUS_CREATE = TaskStatusCreateSchema()
_PATCH = JsonPatchOperationSchema(many=True)


# -- rules (pure) ---------------------------------------------------------------------
def validate_task_status(doc: Any) -> dict[str, Any]:
    """The canonical TaskStatus for *doc*, or BadRequest naming every invalid member."""
    return load_or_400(_TASK_STATUS, doc, "TaskStatus")


def parse_patch(body: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations from a decoded body; BadRequest when it is not a valid patch."""
    if not isinstance(body, list):
        raise errors.BadRequest("the body must be a JSON array of JSON Patch operations")
    if not body:
        raise errors.BadRequest("the patch has no operations")
    if len(body) > MAX_OPERATIONS:
        raise errors.BadRequest(f"the patch has {len(body)} operations; at most {MAX_OPERATIONS} are allowed")
    ops = _plain_ops(body)
    if ops is None:
        ops = load_or_400(_PATCH, body, "JSON Patch")
    check_patch_paths(ops)
    return ops


_PLAIN_OPS = frozenset({"add", "replace", "test"})
_PLAIN_KEYS = frozenset({"op", "path", "value"})
_TOP_MEMBER = re.compile(r"/[A-Za-z0-9_]+\Z")


def _plain_ops(body: list[Any]) -> list[dict[str, Any]] | None:
    """What the JsonPatchOperation schema loads from operations of the usual shape (exactly
    ``op``, ``path``, ``value``; add, replace or test; a string path), without its cost
    (most of a PATCH's); None for anything else, which the schema then judges."""
    for op in body:
        if type(op) is not dict or op.keys() != _PLAIN_KEYS or type(op["op"]) is not str \
                or op["op"] not in _PLAIN_OPS or type(op["path"]) is not str:
            return None
    return [{"op": op["op"], "path": op["path"], "value": op["value"]} for op in body]


def _replace_members(old: dict[str, Any], ops: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The validated result of a patch made only of ``replace`` operations on existing
    top-level members (``/percentComplete``), without deep copies or JSON Patch machinery;
    None for any other patch. The stored task is valid, so validating the members it
    replaces gives what validating the whole result gives."""
    for op in ops:
        if op["op"] != "replace" or not _TOP_MEMBER.match(op["path"]) or op["path"][1:] not in old \
                or op["path"][1:] not in _TASK_STATUS.fields:
            return None
    new = dict(old)  # members are replaced, never changed in place: the old task is untouched
    for op in ops:
        new[op["path"][1:]] = op["value"]
    replaced = {name: new[name] for name in dict.fromkeys(op["path"][1:] for op in ops)}
    check_value(list(replaced.values()))  # each at the depth it has in the task
    # nested documents load whole, defaults and all; the other members are as stored
    new.update(load_or_400(_members_schema(frozenset(replaced)), replaced, "TaskStatus"))
    return new


@functools.lru_cache(maxsize=64)
def _members_schema(names: frozenset[str]) -> TaskStatusSchema:
    """TaskStatus restricted to *names* (members of a stored task, so fields of the schema):
    loads what ``partial=`` the other members would, without visiting the others."""
    return TaskStatusSchema(only=sorted(names))


def check_patch_paths(ops: Sequence[dict[str, Any]]) -> None:
    """Refuse pointers that are malformed or that change a member outside :data:`UPDATABLE`.

    ``test`` and the source of ``copy`` only read, so they may name any member.
    """
    for index, op in enumerate(ops):
        targets = [("path", op["path"])]
        if "from" in op:
            targets.append(("from", op["from"]))
        for name, pointer in targets:
            parts = pointer_parts(pointer, name=f"[{index}].{name}")
            reads_only = op["op"] == "test" or (op["op"] == "copy" and name == "from")
            if not reads_only and (not parts or parts[0] not in UPDATABLE):
                raise errors.BadRequest(
                    f"[{index}].{name}: {pointer!r} cannot be changed; updatable: "
                    + ", ".join(f"/{p}" for p in sorted(UPDATABLE)))


def patch_mutation(ops: Sequence[dict[str, Any]], now: str) -> Mutate:
    """The store mutation for a PATCH: apply all of *ops* or none, validate, stamp ``modified``.

    A patch that leaves the task as it was (say, only ``test``) changes nothing, not even
    ``modified``.
    """
    def mutate(old: dict[str, Any] | None) -> dict[str, Any]:
        assert old is not None
        new = _replace_members(old, ops)
        if new is None:
            new = validate_task_status(apply_json_patch(old, ops))
        if same_json(new, old):
            return old
        new["modified"] = now
        return new
    return mutate


def new_task_status(body: Any, *, now: str, launcher: str) -> dict[str, Any]:
    """A complete TaskStatus from a create body: defaults filled, id generated if absent."""
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a JSON object (a TaskStatus)")
    fields = load_or_400(_TASK_STATUS_CREATE, body, "TaskStatus")
    fields.setdefault("id", uuid.uuid4().hex)
    fields.setdefault("launcher", launcher)
    fields.setdefault("created", now)
    fields.setdefault("modified", fields["created"])
    return validate_task_status(fields)


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
    return json_response(task.doc, status=status, headers={"ETag": etag(task.version), **(headers or {})})


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


async def _list_response(request: web.Request, query: Query) -> web.Response:
    tasks, total = await request.app[STORE].find(STYLE, query)
    headers = {"X-Total-Count": str(total)} if total is not None else None
    return json_response([t.doc for t in tasks], headers=headers)


async def get_task(request: web.Request) -> web.Response:
    negotiate(request, ("application/json",))
    task = await request.app[STORE].get(STYLE, request.match_info["id"])
    if task is None:
        raise _not_found(request.match_info["id"])
    return _task_response(task)


async def list_tasks(request: web.Request) -> web.Response:
    negotiate(request, ("application/json",))
    limit, offset, count = _page(request)
    where = parse_filters(request.query.get("filters", ""))
    order = parse_sorters(request.query.get("sorters", "")) or (Sort("$.created"),)
    return await _list_response(request, Query(where, order, limit, offset, count))


async def pending_tasks(request: web.Request) -> web.Response:
    """Deprecated by SailPoint in favour of ``filters=completionStatus isnull``; kept for
    SDK 1.x. An empty page is ``200 []`` rather than the documented-but-vague 204."""
    negotiate(request, ("application/json",))
    limit, offset, count = _page(request)
    query = Query(Compare("$.completionStatus", "isnull"), (Sort("$.created"),), limit, offset, count)
    return await _list_response(request, query)


async def patch_task(request: web.Request) -> web.Response:
    negotiate(request, ("application/json",))
    _ctype, body = await read_body(request, PATCH_TYPES)
    ops = parse_patch(decode_json(body))
    try:
        task = await request.app[STORE].update(
            STYLE, request.match_info["id"], patch_mutation(ops, now_iso()),
            actor=principal(request).name, request_id=request_id(request),
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
    doc = new_task_status(decode_json(body), now=now_iso(), launcher=who.name)
    task = await request.app[STORE].create(STYLE, doc["id"], doc, actor=who.name,
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
