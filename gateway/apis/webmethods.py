"""webMethods Task Engine ``opentask``: its URLs, request shapes, responses and error envelope.

Routes (Integration Server's WmTaskClient REST resources):

* ``GET|PUT|DELETE /rest/pub/opentask/{taskID}``, and the same on ``/rest/pub/opentask``
  with ``?taskID=`` (PUT also takes ``taskID`` in the body; a path value wins over the
  query, the query over the body). ``GET /rest/pub/opentask`` without an id lists.
* ``POST /rest/pub/opentask`` creates; ``GET|POST /rest/pub/opentasksearch`` searches.
* ``GET /rest/pub/opentask/{taskID}/audit[/{auditEntryID}]`` reads the audit trail;
  ``DELETE …/audit/{auditEntryID}`` rolls the task back to before that entry.

Handlers are thin: read and check the request, build the steps of one store write from the
pure rules (:mod:`gateway.apis.webmethods_rules`), hand them to the store, write the
answer. Every change is one write whose first steps are the clock's catch-up (audited as
``system``) and whose last is the caller's, so both commit together or not at all; reads
catch the task up first, so that no answer is stale. This module must not decide what a
change may do or which members it may set (the rules), parse searches
(:mod:`gateway.apis.webmethods_search`), sweep (:mod:`gateway.apis.webmethods_clock`), or
touch SQL.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis import webmethods_clock, webmethods_search
from gateway.apis import webmethods_inputs as inputs
from gateway.apis import webmethods_rules as rules
from gateway.apis.webmethods_clock import CLOCK, SWEEPER, Sweeper, catch_up, due_queries, sweep
from gateway.apis.webmethods_rules import STYLE, Actor
from gateway.auth import reads_by_post
from gateway.clock import utc_now
from gateway.codecs import decode_json, etag, json_response, parse_if_match, read_body
from gateway.config import WebMethodsConfig
from gateway.context import CONFIG, STORE, clock_of, principal, request_id, store_of
from gateway.limits import dumps
from gateway.model import IMPERSONATION, Change, Step, Store, Task
from gateway.query import And, Expr, Query, Sort
from gateway.quotas import charge
from gateway.streaming import Part, answer_list, json_list, task_parts
from gateway.turns import caller_turn, takes_turns
from schemas.common import load_or_400
from schemas.webmethods import STATUSES, TaskInfoValuesSchema
from schemas.webmethods_dates import DateEncoder, date_encoder, format_pattern, parse_wm_date

__all__ = ["STYLE", "PATH_PATTERN", "CLOCK", "SWEEPER", "ERROR_TYPE", "MAX_RESULTS", "MAX_AUDIT_PAGE", "Sweeper",
           "setup", "render_error", "import_task", "prepare", "sweep", "due_queries"]

PATH_PATTERN = re.compile(r"^/rest/pub/(opentask|opentasksearch)(/|$)")
ERROR_TYPE = "com.wm.app.b2b.server.ServiceException"
REALM = 'Basic realm="Integration Server"'
#: fields lists and searches filter or sort on; the store keeps an index on each
INDEXED_FIELDS = ("$.TaskInfo.status", "$.TaskInfo.createdDate", "$.TaskInfo.expireDate",
                  "$.TaskInfo.taskScheduleDate", "$.TaskInfo.name")  # the dashboard sorts by name
#: the most tasks one list or search answers with, whatever maxRes/maxResults say (0 = "all"
#: included). The answer is streamed, so this bounds its time, not its memory; larger sets
#: are paged with createdDate terms.
MAX_RESULTS = 10_000
#: the most entries one page of a task's audit trail holds, and the page when maxRes is not given
MAX_AUDIT_PAGE = 1000
#: audit rows read from the store at a time
AUDIT_READ = 8
_USER = web.RequestKey("webmethods_user", str)

_CHANGES = TaskInfoValuesSchema(only=rules.WRITABLE)
_QUEUE_INFO = TaskInfoValuesSchema(only=rules.CREATE_SETTABLE)


# -- errors ---------------------------------------------------------------------------------
def _envelope(message: str, *, user: str, moment: datetime, dump: str) -> dict[str, Any]:
    """Integration Server's error pipeline (``pub.event:exceptionInfo``) as JSON."""
    return {"$errorDump": dump,
            "$errorInfo": {"$errorDump": dump, "$error": message, "$localizedError": message,
                           "$errorType": ERROR_TYPE, "$user": user,
                           "$time": format_pattern(moment, "yyyy-MM-dd HH:mm:ss z"),
                           "$details": "", "$errorMsgId": ""},
            "$error": message, "$errorType": ERROR_TYPE}


def _headers(err: errors.TaskgateError) -> dict[str, str]:
    headers = dict(err.headers)
    if err.status == 401:
        headers["WWW-Authenticate"] = REALM
    return headers


def render_error(err: errors.TaskgateError, tracking_id: str) -> web.Response:
    """The envelope for failures outside a service call (credentials, unknown path or
    method, unexpected faults): the code says what happened, the dump stays empty."""
    body = _envelope(err.message, user="", moment=utc_now(), dump="")
    return json_response(body, status=err.status, headers=_headers(err))


def _service_error(request: web.Request, err: errors.TaskgateError) -> web.Response:
    """A failure inside a service call: 500 for all when ``service_errors_as_500`` (as IS
    does), else the status that says what failed; the dump filled when debugging."""
    config: WebMethodsConfig = request.app[CONFIG].webmethods
    dump = ""
    if config.debug_errors:
        dump = f"{ERROR_TYPE}: {err.message}\n" + "".join(traceback.format_exception(err))
    who = request.get(_USER) or principal(request).name
    body = _envelope(err.message, user=who, moment=clock_of(request, request.app[CLOCK]).now(), dump=dump)
    status = 500 if config.service_errors_as_500 and err.status != 401 else err.status
    return json_response(body, status=status, headers=_headers(err))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _service(handler: Handler) -> Handler:
    """Errors raised in *handler* answered as service exceptions (see :func:`_service_error`)."""
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.TaskgateError as err:
            return _service_error(request, err)
    return run


# -- reading requests ---------------------------------------------------------------------------
async def _read_object(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object body (``{}`` when there is none). IS reads the body as JSON only
    with ``application/json``; a request with no Content-Type is read as JSON too."""
    if not request.body_exists:
        return {}
    # a blank header reads as aiohttp's default type: accept that too
    accepted = (("application/json",) if request.headers.get("Content-Type", "").strip()
                else ("", request.content_type))
    _ctype, raw = await read_body(request, accepted)
    if not raw.strip():
        return {}
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise errors.BadRequest(f"unknown input {', '.join(map(repr, unknown))}; expected any of "
                                + ", ".join(sorted(allowed)))
    return body


@dataclass(frozen=True, slots=True)
class Call:
    """What every service call needs: who acts, when, and how dates go out."""

    store: Store
    config: WebMethodsConfig
    actor: Actor
    now: str
    encode: DateEncoder
    request_id: str
    request: web.Request


async def _call(request: web.Request, body: Mapping[str, Any]) -> Call:
    """The effective user is the caller, or ``user`` (query over body) when an admin names
    someone else; a non-admin naming another user is refused."""
    who = principal(request)
    raw_user = request.query.get("user") if "user" in request.query else body.get("user")
    store = store_of(request)
    actor = Actor(who.name, who.is_admin)
    if raw_user is not None:
        name = inputs.name(raw_user, "user")
        if name != who.name:
            if not who.is_admin:
                raise errors.Forbidden(f"user {who.name} may not act for {name}: only an admin may impersonate")
            named = await request.app[STORE].get_user(name)
            actor = Actor(name, named is not None and named.role == "admin")
            IMPERSONATION.set((name, who.name))  # the audit row names both
    request[_USER] = actor.name
    try:
        encode = date_encoder(request.query.get("jsonDateEncoding"))
    except ValueError as exc:
        raise errors.BadRequest(str(exc)) from None
    return Call(store, request.app[CONFIG].webmethods, actor, clock_of(request, request.app[CLOCK]).now_iso(), encode,
                request_id(request), request)


def _charge(call: Call) -> None:
    """The caller's write rate and quota: a task is its creator's (``createdBy``)."""
    charge(call.request, call.request.app[CONFIG].quota, call.actor.name)


def _task_id(request: web.Request, body: Mapping[str, Any]) -> str:
    """Path over query over body."""
    for source in (request.match_info, request.query, body):
        if source.get("taskID") is not None:
            return inputs.name(source["taskID"], "taskID")
    raise errors.BadRequest("taskID is required (in the path, the query or the body)")


# -- writing answers --------------------------------------------------------------------------------
def _info_out(info: Mapping[str, Any], encode: DateEncoder) -> dict[str, Any]:
    out = dict(info)
    for key in rules.DATE_FIELDS:
        if out.get(key) is not None:
            out[key] = encode(out[key])
    return out


def _task_out(task: Task, call: Call, *, include_data: bool, with_id: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"TaskID": task.id} if with_id else {}
    out["TaskInfo"] = _info_out(task.doc["TaskInfo"], call.encode)
    if include_data:
        out["TaskData"] = task.doc["TaskData"]
    return out


def _ok(body: Any = None, task: Task | None = None) -> web.Response:
    return json_response({} if body is None else body, headers={"ETag": etag(task.version)} if task else None)


# -- one task -----------------------------------------------------------------------------------------
async def _readable(call: Call, task_id: str) -> Task:
    """The task as stored, or the one not-found answer when it is absent or not the user's."""
    task = await call.store.get(STYLE, task_id)
    if task is None or not rules.may_read(call.actor, task.doc):
        raise rules.not_found(task_id)
    return task


async def _current(call: Call, task_id: str) -> Task:
    """The task as it is now (the clock's changes applied), or the one not-found answer."""
    task = await _readable(call, task_id)
    try:
        task = await catch_up(call.store, task, call.now, call.request_id)
    except errors.NotFound:
        raise rules.not_found(task_id) from None
    # the catch-up returns the newest version, which a concurrent change may have taken from the user
    if not rules.may_read(call.actor, task.doc):
        raise rules.not_found(task_id)
    return task


async def _write(call: Call, task_id: str, steps: Sequence[Step], *, if_match: frozenset[int] | None = None,
                 request_id: str | None = None, created: str | None = None) -> Task | None:
    """One store write of *steps*; a missing task gets the one not-found answer."""
    _charge(call)
    try:
        return await call.store.write(STYLE, task_id, steps, request_id=request_id or call.request_id,
                                      if_match=if_match, created=created)
    except errors.NotFound:
        raise rules.not_found(task_id) from None


async def _as_seen(call: Call, task_id: str, if_match: frozenset[int]) -> frozenset[int]:
    """A PUT's ``If-Match`` (beyond IS: the ETag of a GET), checked as before this store
    could write the clock's steps and the caller's in one go: against the version the task
    has once the clock's owed changes are made, since every answer shows a task caught up.
    The write is then held to the version read here (the changes were counted on it): a
    task changed meanwhile is a 412, as a stale ETag is."""
    task = await _readable(call, task_id)
    seen = task.version + rules.time_changes_due(task.doc, call.now)
    if seen not in if_match:
        raise errors.PreconditionFailed(f"task {task_id!r} is at version {seen}, not "
                                        + ", ".join(map(str, sorted(if_match))))
    return frozenset({task.version})


@_service
async def get_task(request: web.Request) -> web.Response:
    """``GET /rest/pub/opentask/{taskID}``: ``{"TaskInfo", "TaskData"?}``."""
    call = await _call(request, {})
    task_id = _task_id(request, {})
    include = inputs.flag(request.query.get("includeTaskData"), "includeTaskData")
    task = await _current(call, task_id)  # after every check of the request: bad input changes nothing
    return _ok(_task_out(task, call, include_data=include, with_id=False), task)


@_service
async def put_task(request: web.Request) -> web.Response:
    """``PUT /rest/pub/opentask/{taskID}``: merge TaskInfo, replace TaskData, under the rules.
    One write: the clock's owed changes, then the caller's, judged against what the clock left."""
    body = await _read_object(request, rules.PUT_INPUTS)
    task_id = _task_id(request, body)
    call = await _call(request, body)
    for key in ("retryOnFailureCount", "retryDelay"):  # IS retries failed updates; here none fail transiently
        inputs.count(request.query.get(key, body.get(key)), key, 0)
    info = inputs.one_of(body, "TaskInfo", "taskInfo")
    if info is not None and not isinstance(info, dict):
        raise errors.BadRequest("TaskInfo must be a JSON object")
    changes = load_or_400(_CHANGES, rules.put_changes(info or {}), "TaskInfo")
    data = inputs.one_of(body, "TaskData", "taskData")
    if data is not None and not isinstance(data, dict):
        raise errors.BadRequest("TaskData must be a JSON object")
    mutate = rules.update_mutation(task_id, changes, rules.KEEP_TASK_DATA if data is None else data,
                                   actor=call.actor, now=call.now,
                                   update_completed_task=call.config.update_completed_task)
    if_match = parse_if_match(request.headers.get("If-Match"))
    if if_match is not None:
        if_match = await _as_seen(call, task_id, if_match)
    task = await _write(call, task_id, rules.after_clock(call.now, call.actor.name, mutate), if_match=if_match)
    return _ok(task=task)


@_service
async def delete_task(request: web.Request) -> web.Response:
    """``DELETE /rest/pub/opentask/{taskID}``: any status; same not-found rule as the rest.
    One write: the clock's owed changes, then the delete (its mutation answers no document)."""
    task_id = _task_id(request, {})
    call = await _call(request, {})
    if_match = parse_if_match(request.headers.get("If-Match"))
    if if_match is not None:  # the stored version, as the store checks it: read first so 404 comes before 412
        task = await _readable(call, task_id)
        if task.version not in if_match:
            raise errors.PreconditionFailed(f"Task {task_id} is at version {task.version}, not "
                                            + ", ".join(map(str, sorted(if_match))))
    steps = rules.after_clock(call.now, call.actor.name, rules.delete_mutation(task_id, actor=call.actor))
    await _write(call, task_id, steps, if_match=if_match)
    return _ok()


@_service
async def create_task(request: web.Request) -> web.Response:
    """``POST /rest/pub/opentask``: ``{"taskID"}``; a future ``taskScheduleDate`` makes it scheduled."""
    body = await _read_object(request, rules.CREATE_INPUTS)
    call = await _call(request, body)
    if body.get("taskTypeID") is None:
        raise errors.BadRequest("taskTypeID is required")
    type_id = inputs.name(body["taskTypeID"], "taskTypeID")
    info = inputs.one_of(body, "taskQueueInfo", "TaskQueueInfo", "taskInfo", "TaskInfo")
    if info is not None and not isinstance(info, dict):
        raise errors.BadRequest("taskQueueInfo must be a JSON object")
    queue_info = load_or_400(_QUEUE_INFO, rules.create_values(info or {}), "taskQueueInfo")
    data = inputs.one_of(body, "taskData", "TaskData")
    if data is not None and not isinstance(data, dict):
        raise errors.BadRequest("taskData must be a JSON object")
    doc = rules.new_task("", type_id, queue_info, data or {}, user=call.actor.name, now=call.now)
    # numeric ids, as IS's are (clients call Long.parseLong), handed out by the store in order
    _charge(call)
    task = await call.store.create_numbered(
        STYLE, lambda n: {**doc, "TaskInfo": {**doc["TaskInfo"], "taskID": str(n)}},
        actor=call.actor.name, request_id=call.request_id, max_id=2**53)  # exact in a JavaScript number
    return _ok({"taskID": task.id}, task)


# -- lists and searches ------------------------------------------------------------------------------
_TASKS = json_list(lambda tasks: {"Tasks": tasks})


async def _tasks_answer(request: web.Request, call: Call, search: webmethods_search.Search) -> web.StreamResponse:
    """The matching tasks the user may see, oldest first: at most ``search.limit`` (0: all),
    and never more than :data:`MAX_RESULTS`; streamed (:mod:`gateway.streaming`)."""
    await sweep(call.store, call.now, call.request_id)
    where: list[Expr] = list(search.where)
    if not call.actor.is_admin:
        where.insert(0, rules.access_filter(call.actor.name))
    limit = min(search.limit, MAX_RESULTS) if search.limit else MAX_RESULTS
    query = Query(And(tuple(where)) if where else None, (Sort("$.TaskInfo.createdDate"),), limit)
    ids, _ = await call.store.find_ids(STYLE, query)

    def shape(task: Task) -> dict[str, Any] | None:  # a task handed to someone else since the ids were read: left out
        if not rules.may_access(task.doc["TaskInfo"], call.actor):
            return None
        return _task_out(task, call, include_data=search.include_data, with_id=True)
    return await answer_list(request, task_parts(call.store.read_chunks(STYLE, ids)), shape, _TASKS)


@takes_turns
@_service
async def list_tasks(request: web.Request) -> web.StreamResponse:
    """``GET /rest/pub/opentask``: every task the user may see (one task with ``?taskID=``)."""
    if "taskID" in request.query:
        return await get_task.__wrapped__(request)  # type: ignore[attr-defined]
    call = await _call(request, {})
    return await _tasks_answer(request, call, webmethods_search.list_search(request.query, call.actor.name))


@reads_by_post  # a search is a read whether it comes as GET or POST; it changes nothing of the caller's
@_service
async def search_tasks(request: web.Request) -> web.StreamResponse:
    """``GET|POST /rest/pub/opentasksearch``: the simple search, or a TaskSearchQuery. The
    body is read before the search takes one of its caller's turns, so that a slow upload
    holds none."""
    allowed = webmethods_search.SEARCH_INPUTS
    body = await _read_object(request, allowed) if request.method == "POST" else {}
    params = {k: v for k, v in request.query.items() if k in allowed}
    params.update(body)
    async with caller_turn(request):
        call = await _call(request, params)
        return await _tasks_answer(request, call, webmethods_search.search(params, call.actor.name))


# -- audit and rollback ---------------------------------------------------------------------------------
def _audit_out(change: Change, call: Call) -> dict[str, Any]:
    """One TaskAudit entry: ``userID`` is who the change was made as, ``sourceURI`` who made
    it (the admin, when an admin acted as that user)."""
    return {"id": change.seq, "createdDate": call.encode(change.at), "operation": rules.operation_code(change),
            "difference": [_difference(op) for op in change.patch],
            "sourceURI": f"user:{change.impersonator or change.actor}",
            "TaskURI": f"/rest/pub/opentask/{change.task_id}", "taskVersionNumber": rules.version_of(change),
            "userID": change.actor}


def _difference(op: Mapping[str, Any]) -> str:
    return f"{op['op']} {op['path']}" + (f" {dumps(op['value'])}" if "value" in op else "")


def _entry_id(request: web.Request, task_id: str) -> int:
    raw = request.match_info["auditEntryID"]
    if not re.fullmatch(r"[0-9]{1,18}", raw):
        raise errors.NotFound(f"audit entry {raw} of task {task_id} not found")
    return int(raw)


async def _life_start(call: Call, task_id: str) -> int:
    """The sequence number of the task's latest creation (0 when none is recorded)."""
    created = await call.store.audit(style=STYLE, task_id=task_id, action="created", limit=1)
    return created[0].seq if created else 0


async def _audit_parts(call: Call, task_id: str, after: int, limit: int,
                       before: int | None = None) -> AsyncIterator[Part]:
    """The task's audit rows after *after* (and before *before*), oldest first, at most
    *limit*, a few at a time (one row may hold a megabyte document, twice)."""
    while limit > 0:
        rows = await call.store.audit(style=STYLE, task_id=task_id, after=after, before=before, newest_first=False,
                                      limit=min(limit, AUDIT_READ))
        if not rows:
            return
        yield rows, AUDIT_READ * 65_536  # not known before encoding: weighed as large
        limit -= len(rows)
        after = rows[-1].seq


def _audit_page(request: web.Request) -> tuple[int, int]:
    """``maxRes`` (entries, 1 to :data:`MAX_AUDIT_PAGE`) and ``afterAuditEntryID`` (an entry id)."""
    size = inputs.count(request.query.get("maxRes"), "maxRes", MAX_AUDIT_PAGE)
    if not 1 <= size <= MAX_AUDIT_PAGE:
        raise errors.BadRequest(f"maxRes must be a whole number from 1 to {MAX_AUDIT_PAGE}; got {size}")
    raw = request.query.get("afterAuditEntryID")
    if raw is not None and not re.fullmatch(r"[0-9]{1,18}", raw):
        raise errors.BadRequest(f"afterAuditEntryID must be an audit entry id; got {raw[:40]!r}")
    return size, int(raw or 0)


_AUDITS = json_list(lambda audits: {"taskAudits": audits})


@_service
async def get_audit(request: web.Request) -> web.StreamResponse:
    """``GET …/{taskID}/audit[/{auditEntryID}]``: ``{"taskAudits": [TaskAudit…]}``, oldest
    first, since the task's latest creation: a page of at most ``maxRes`` entries (the
    most and the default :data:`MAX_AUDIT_PAGE`) after ``afterAuditEntryID``, streamed.
    A page shorter than ``maxRes`` is the last."""
    call = await _call(request, {})
    task_id = _task_id(request, {})
    seq = _entry_id(request, task_id) if "auditEntryID" in request.match_info else None
    size, after = _audit_page(request) if seq is None else (1, seq - 1)
    await _current(call, task_id)
    after = max(after, await _life_start(call, task_id) - 1)
    if seq is not None:
        entry = await call.store.audit(style=STYLE, task_id=task_id, after=after, before=seq + 1)
        if not entry:
            raise errors.NotFound(f"audit entry {seq} of task {task_id} not found")
        return _ok({"taskAudits": [_audit_out(entry[0], call)]})
    return await answer_list(request, _audit_parts(call, task_id, after, size), lambda c: _audit_out(c, call),
                             _AUDITS)


@_service
async def rollback_task(request: web.Request) -> web.Response:
    """``DELETE …/{taskID}/audit/{auditEntryID}``: the task as before that entry, as a new change.

    The state before an entry is fixed history: it is replayed from the task's creation
    (:class:`rules.Replay`, fed the trail a few rows at a time), not undone from the version read, so a change committed
    between this read of the trail and the write does not make it wrong, and nothing needs
    retrying. One write then makes the clock's owed changes and the rollback, whose mutation
    checks access and the status rules against the task as it is inside the transaction.
    The write holds to the life of the task that was read (:attr:`Task.created`): one
    deleted and created again under its id meanwhile (an export imported back has every
    member it had) is refused with 409, not given its predecessor's history."""
    call = await _call(request, {})
    task_id = _task_id(request, {})
    seq = _entry_id(request, task_id)
    task = await _readable(call, task_id)  # before the trail: its entries are not shown to others
    start = await _life_start(call, task_id)
    if not await call.store.audit(style=STYLE, task_id=task_id, after=max(seq, start) - 1, before=seq + 1):
        raise errors.NotFound(f"audit entry {seq} of task {task_id} not found")
    replay, restored = rules.Replay(seq), None
    # the trail up to the entry, a few rows at a time: a long trail of large changes is never held whole
    async for rows, _ in _audit_parts(call, task_id, start - 1, 2**62, before=seq + 1):
        for change in rows:
            if (restored := replay.feed(change)) is not None:
                break
        if restored is not None:
            break
    if restored is None:
        replay.end()
    mutate = rules.rollback_mutation(task_id, restored, actor=call.actor,
                                     now=call.now, update_completed_task=call.config.update_completed_task)
    try:
        task_after = await _write(call, task_id, rules.after_clock(call.now, call.actor.name, mutate),
                                  request_id=f"{call.request_id}{rules.ROLLBACK_MARK}{seq}", created=task.created)
    except errors.PreconditionFailed:
        raise errors.Conflict(f"Task {task_id} was replaced while its audit trail was read; read it again") from None
    return _ok(task=task_after)


# -- the style interface ----------------------------------------------------------------------------------
def setup(app: web.Application) -> None:
    """Every opentask route, and the clock with its sweeper."""
    r = app.router
    base = "/rest/pub/opentask"
    r.add_get(base, list_tasks, name=f"{STYLE}:list")
    r.add_post(base, create_task, name=f"{STYLE}:create")
    r.add_put(base, put_task, name=f"{STYLE}:put:query")
    r.add_delete(base, delete_task, name=f"{STYLE}:delete:query")
    r.add_get(base + "/{taskID}", get_task, name=f"{STYLE}:get")
    r.add_put(base + "/{taskID}", put_task, name=f"{STYLE}:put")
    r.add_delete(base + "/{taskID}", delete_task, name=f"{STYLE}:delete")
    r.add_get(base + "/{taskID}/audit", get_audit, name=f"{STYLE}:audit")
    r.add_get(base + "/{taskID}/audit/{auditEntryID}", get_audit, name=f"{STYLE}:audit:entry")
    r.add_delete(base + "/{taskID}/audit/{auditEntryID}", rollback_task, name=f"{STYLE}:rollback")
    r.add_get("/rest/pub/opentasksearch", search_tasks, name=f"{STYLE}:search:get")
    r.add_post("/rest/pub/opentasksearch", search_tasks, name=f"{STYLE}:search:post")
    webmethods_clock.setup(app)


async def prepare(store: Any) -> None:
    """Indexes that lists, searches and the sweeper filter on."""
    await store.ensure_indexes(STYLE, INDEXED_FIELDS)
    await store.ensure_owner(STYLE, rules.OWNER_FIELD)


def import_task(doc: Any, now: str) -> tuple[str, dict[str, Any]]:
    """The id and stored form of an exported webMethods task (``taskgate import``):
    ``{"TaskInfo": {…, "taskID", "taskTypeID"}, "TaskData": {…}}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("TaskInfo"), dict):
        raise errors.BadRequest('a webMethods task needs {"TaskInfo": {…}, "TaskData": {…}}')
    info = doc["TaskInfo"]
    task_id = inputs.name(info.get("taskID"), "TaskInfo.taskID")
    type_id = inputs.name(info.get("taskTypeID"), "TaskInfo.taskTypeID")
    data = {} if doc.get("TaskData") is None else doc["TaskData"]
    if not isinstance(data, dict):
        raise errors.BadRequest("TaskData must be a JSON object")
    status = info.get("status") or "active"
    if status not in STATUSES:
        raise errors.BadRequest(f"TaskInfo.status {status!r} is not one of {', '.join(STATUSES)}")
    queue_info = load_or_400(_QUEUE_INFO, {k: v for k, v in info.items() if k in _QUEUE_INFO.fields
                                           and k != "status"}, "TaskInfo")
    task = rules.new_task(task_id, type_id, queue_info, data, user=inputs.name(info.get("createdBy") or "import",
                                                                               "TaskInfo.createdBy"), now=now)
    task["TaskInfo"]["status"] = status
    for key in ("createdDate", "lastModifiedDate", "lastAcceptedDate"):
        if info.get(key) is not None:
            try:
                task["TaskInfo"][key] = parse_wm_date(info[key])
            except ValueError as exc:
                raise errors.BadRequest(f"TaskInfo.{key}: {exc}") from None
    for key in ("lastModifiedBy", "lastAcceptedBy"):
        if isinstance(info.get(key), str):
            task["TaskInfo"][key] = info[key]
    if isinstance(info.get("taskVersionNumber"), int) and not isinstance(info["taskVersionNumber"], bool):
        task["TaskInfo"]["taskVersionNumber"] = info["taskVersionNumber"]
    return task_id, task
