"""webMethods Task Engine ``opentask``: its URLs, request shapes, responses and error envelope.

Routes (Integration Server's WmTaskClient REST resources):

* ``GET|PUT|DELETE /rest/pub/opentask/{taskID}``, and the same on ``/rest/pub/opentask``
  with ``?taskID=`` (PUT also takes ``taskID`` in the body; a path value wins over the
  query, the query over the body). ``GET /rest/pub/opentask`` without an id lists.
* ``POST /rest/pub/opentask`` creates; ``GET|POST /rest/pub/opentasksearch`` searches.
* ``GET /rest/pub/opentask/{taskID}/audit[/{auditEntryID}]`` reads the audit trail;
  ``DELETE …/audit/{auditEntryID}`` rolls the task back to before that entry.

Handlers are thin: read and check the request, build a mutation from the pure rules in
:mod:`gateway.apis.webmethods_rules`, hand it to the store, write the answer. They never
decide what a change may do; they must not touch SQL. The clock's changes (a scheduled
task starting, an active one expiring) are applied by :class:`Sweeper` in the background
and, so that no answer is stale, before any read or update of a task.
"""

from __future__ import annotations

import asyncio
import functools
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web
from schemas.common import load_or_400
from schemas.webmethods import (
    SEARCH_OPERATORS,
    STATUSES,
    TaskInfoChangesSchema,
    TaskQueueInfoSchema,
    TaskSearchQuerySchema,
)
from schemas.webmethods_dates import DateEncoder, date_encoder, format_pattern, parse_wm_date

from gateway import errors
from gateway.apis import webmethods_rules as rules
from gateway.apis.webmethods_rules import Actor
from gateway.auth import reads_by_post
from gateway.clock import Clock, utc_now
from gateway.codecs import decode_json, etag, json_response, parse_if_match, read_body
from gateway.config import WebMethodsConfig
from gateway.context import CONFIG, STORE, principal, request_id
from gateway.limits import dumps
from gateway.model import Change, Task
from gateway.query import And, Compare, Expr, Or, Query, Sort
from gateway.store import Store

__all__ = ["STYLE", "PATH_PATTERN", "CLOCK", "SWEEPER", "ERROR_TYPE", "MAX_RESULTS", "Sweeper", "setup",
           "render_error", "import_task", "prepare", "sweep", "due_queries"]

STYLE = "webmethods"
PATH_PATTERN = re.compile(r"^/rest/pub/(opentask|opentasksearch)(/|$)")
#: the clock every time rule of this style reads; tests put a ManualClock here
CLOCK = web.AppKey("webmethods_clock", Clock)
ERROR_TYPE = "com.wm.app.b2b.server.ServiceException"
REALM = 'Basic realm="Integration Server"'
#: fields lists and searches filter or sort on; the store keeps an index on each
INDEXED_FIELDS = ("$.TaskInfo.status", "$.TaskInfo.createdDate", "$.TaskInfo.expireDate",
                  "$.TaskInfo.taskScheduleDate")
#: a TaskSearchQuery without maxResults returns this many, as IS documents
DEFAULT_MAX_RESULTS = 200
#: the most tasks one list or search answers with, whatever maxRes/maxResults say (0 = "all"
#: included): the answer is built in memory. Larger sets are paged with createdDate terms.
MAX_RESULTS = 10_000
MAX_ID_LENGTH = 255
SWEEP_BATCH = 500
#: read-only TaskInfo fields a create may set: the process linkage a Process Engine gives its tasks
CREATE_ONLY = frozenset({"processInstanceID", "rootProcessInstanceID", "processModelID", "processModelVersion",
                         "stepID"})
_USER = web.RequestKey("webmethods_user", str)

_log = structlog.get_logger("taskgate.webmethods")
_CHANGES = TaskInfoChangesSchema()
_QUEUE_INFO = TaskQueueInfoSchema()
_SEARCH_QUERY = TaskSearchQuerySchema()

PUT_KEYS = frozenset({"taskID", "TaskInfo", "taskInfo", "TaskData", "taskData", "user",
                      "retryOnFailureCount", "retryDelay"})
#: CallbackServiceName, CallbackData and ruleSet are IS inputs taskgate accepts and ignores
CREATE_KEYS = frozenset({"taskTypeID", "taskQueueInfo", "TaskQueueInfo", "taskInfo", "TaskInfo", "taskData",
                         "TaskData", "user", "CallbackServiceName", "CallbackData", "ruleSet"})
SEARCH_KEYS = frozenset({"includeTaskData", "maxRes", "nonActive", "notOthers", "searchUserTasks", "user",
                         "taskSearchQuery", "TaskSearchQuery"})
#: TaskSearchQueryTerm fields taskgate searches, and the operators each allows
_TEXT_OPS = frozenset({"eq", "ne"})
_SEARCH_FIELDS: Mapping[str, frozenset[str]] = {
    **{f: _TEXT_OPS for f in ("status", "priority", "taskTypeID", "taskID", "createdBy", "customTaskID",
                              "lastModifiedBy", "lastAcceptedBy", "processInstanceID")},
    **{f: _TEXT_OPS | {"co"} for f in ("name", "description")},
    **{f: frozenset({"eq", "co"}) for f in ("assignedToList", "acceptedByList")},
    **{f: frozenset({"eq", "ne", "gt", "ge", "lt", "le"}) for f in ("createdDate", "expireDate",
                                                                   "lastModifiedDate")},
}


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
    body = _envelope(err.message, user=who, moment=request.app[CLOCK].now(), dump=dump)
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
def _flag(value: Any, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise errors.BadRequest(f"{name} must be true or false; got {value!r}")


def _count(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str)
                                                                  and re.fullmatch(r"\s*\d{1,9}\s*", value))):
        raise errors.BadRequest(f"{name} must be a whole number of at least 0; got {value!r}")
    number = int(value)
    if not 0 <= number <= 999_999_999:
        raise errors.BadRequest(f"{name} must be a whole number of at least 0; got {value!r}")
    return number


def _name(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSON clients may send numeric task ids as numbers
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise errors.BadRequest(f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} characters; "
                                f"got {value!r}")
    return value.strip()


def _one_of(body: Mapping[str, Any], *names: str) -> Any:
    given = [n for n in names if body.get(n) is not None]
    if len(given) > 1:
        raise errors.BadRequest(f"send only one of {', '.join(given)}")
    return body[given[0]] if given else None


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


async def _call(request: web.Request, body: Mapping[str, Any]) -> Call:
    """The effective user is the caller, or ``user`` (query over body) when an admin names
    someone else; a non-admin naming another user is refused."""
    who = principal(request)
    raw_user = request.query.get("user") if "user" in request.query else body.get("user")
    store = request.app[STORE]
    actor = Actor(who.name, who.is_admin)
    if raw_user is not None:
        name = _name(raw_user, "user")
        if name != who.name:
            if not who.is_admin:
                raise errors.Forbidden(f"user {who.name} may not act for {name}: only an admin may impersonate")
            named = await store.get_user(name)
            actor = Actor(name, named is not None and named.role == "admin")
    request[_USER] = actor.name
    try:
        encode = date_encoder(request.query.get("jsonDateEncoding"))
    except ValueError as exc:
        raise errors.BadRequest(str(exc)) from None
    return Call(store, request.app[CONFIG].webmethods, actor, request.app[CLOCK].now_iso(), encode,
                request_id(request))


def _task_id(request: web.Request, body: Mapping[str, Any]) -> str:
    """Path over query over body."""
    for source in (request.match_info, request.query, body):
        if source.get("taskID") is not None:
            return _name(source["taskID"], "taskID")
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


# -- the clock ---------------------------------------------------------------------------------------
async def _catch_up(store: Store, task: Task, now: str, rid: str) -> Task:
    """*task* after every change the clock owes it at *now*, each audited as ``system``."""
    while rules.due_status(task.doc["TaskInfo"], now) is not None:
        task = await store.update(STYLE, task.id, rules.time_mutation(now), actor=rules.SYSTEM, request_id=rid)
    return task


def due_queries(now: str, limit: int) -> tuple[Query, Query]:
    """The tasks the clock owes a change at *now*, one query per rule. Each is a range on
    its date's index, sorted by that date: an OR of the two, or a sort by id, makes SQLite
    read every task of the style (on each sweep, and before every list and search)."""
    def due(status: str, field: str) -> Query:
        return Query(And((Compare("$.TaskInfo.status", "eq", (status,)),
                          Compare(f"$.TaskInfo.{field}", "le", (now,)))), (Sort(f"$.TaskInfo.{field}"),), limit)
    return due("scheduled", "taskScheduleDate"), due("active", "expireDate")


async def sweep(store: Store, now: str, rid: str) -> int:
    """Apply every change the clock owes any task at *now*; returns how many tasks changed."""
    changed = 0
    for query in due_queries(now, SWEEP_BATCH):
        while True:
            due, _ = await store.find(STYLE, query)
            # concurrently, so that the store commits them together
            results = await asyncio.gather(*(_catch_up(store, t, now, rid) for t in due), return_exceptions=True)
            progress = 0
            for listed, result in zip(due, results):
                if isinstance(result, errors.NotFound):
                    continue  # deleted meanwhile
                if isinstance(result, BaseException):
                    raise result
                progress += result.version != listed.version
            changed += progress
            # a full batch that changed nothing would come back unchanged: stop rather than spin
            if len(due) < SWEEP_BATCH or not progress:
                break
    return changed


class Sweeper:
    """The background task that applies the clock's changes every ``sweep_interval_seconds``."""

    def __init__(self, store: Store, clock: Clock, interval: float) -> None:
        self.store, self.clock, self.interval = store, clock, interval
        self.passes = 0
        self._passed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webmethods-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await sweep(self.store, self.clock.now_iso(), "sweeper")
            except Exception:  # a failed pass is retried on the next; the sweeper must live on
                _log.exception("webmethods.sweep_failed")
            async with self._passed:
                self.passes += 1
                self._passed.notify_all()
            await asyncio.sleep(self.interval)

    async def next_pass(self) -> None:
        """Return once a pass that started after this call has finished."""
        async with self._passed:
            target = self.passes + 2  # the pass running now may have read the time before the call
            await self._passed.wait_for(lambda: self.passes >= target)


SWEEPER = web.AppKey("webmethods_sweeper", Sweeper)


async def _start_sweeper(app: web.Application) -> None:
    # on_startup runs after every cleanup_ctx has entered, so the store is open by now
    sweeper = Sweeper(app[STORE], app[CLOCK], app[CONFIG].webmethods.sweep_interval_seconds)
    app[SWEEPER] = sweeper
    sweeper.start()


async def _stop_sweeper(app: web.Application) -> None:
    # on_shutdown runs before cleanup_ctx exits, so the store is still open while it stops
    if SWEEPER in app:
        await app[SWEEPER].stop()


# -- one task -----------------------------------------------------------------------------------------
async def _current(call: Call, task_id: str) -> Task:
    """The task as it is now (the clock's changes applied), or the one not-found answer."""
    task = await call.store.get(STYLE, task_id)
    if task is None or not rules.may_access(task.doc["TaskInfo"], call.actor):
        raise rules.not_found(task_id)
    try:
        task = await _catch_up(call.store, task, call.now, call.request_id)
    except errors.NotFound:
        raise rules.not_found(task_id) from None
    # the catch-up returns the newest version, which a concurrent change may have taken from the user
    if not rules.may_access(task.doc["TaskInfo"], call.actor):
        raise rules.not_found(task_id)
    return task


@_service
async def get_task(request: web.Request) -> web.Response:
    """``GET /rest/pub/opentask/{taskID}``: ``{"TaskInfo", "TaskData"?}``."""
    call = await _call(request, {})
    task_id = _task_id(request, {})
    include = _flag(request.query.get("includeTaskData"), "includeTaskData")
    task = await _current(call, task_id)  # after every check of the request: bad input changes nothing
    return _ok(_task_out(task, call, include_data=include, with_id=False), task)


@_service
async def put_task(request: web.Request) -> web.Response:
    """``PUT /rest/pub/opentask/{taskID}``: merge TaskInfo, replace TaskData, under the rules."""
    body = await _read_object(request, PUT_KEYS)
    task_id = _task_id(request, body)
    call = await _call(request, body)
    for name in ("retryOnFailureCount", "retryDelay"):  # IS retries failed updates; here none fail transiently
        _count(request.query.get(name, body.get(name)), name, 0)
    info = _one_of(body, "TaskInfo", "taskInfo")
    if info is not None and not isinstance(info, dict):
        raise errors.BadRequest("TaskInfo must be a JSON object")
    changes = load_or_400(_CHANGES, {k: v for k, v in (info or {}).items() if k not in rules.READ_ONLY},
                          "TaskInfo")
    data = _one_of(body, "TaskData", "taskData")
    if data is not None and not isinstance(data, dict):
        raise errors.BadRequest("TaskData must be a JSON object")
    mutate = rules.update_mutation(task_id, changes, rules.KEEP_TASK_DATA if data is None else data,
                                   actor=call.actor, now=call.now,
                                   update_completed_task=call.config.update_completed_task)
    if_match = parse_if_match(request.headers.get("If-Match"))  # beyond IS: the ETag of a GET, as a condition
    for _attempt in range(5):
        await _current(call, task_id)
        try:
            task = await call.store.update(STYLE, task_id, mutate, actor=call.actor.name,
                                           request_id=call.request_id, if_match=if_match)
        except rules.TimeRuleDue:
            continue  # a concurrent change made a clock change due: apply it as system's, then retry
        except errors.NotFound:
            raise rules.not_found(task_id) from None
        return _ok(task=task)
    raise errors.Conflict(f"Task {task_id} is being changed by others; try again")


@_service
async def delete_task(request: web.Request) -> web.Response:
    """``DELETE /rest/pub/opentask/{taskID}``: any status; same not-found rule as the rest."""
    task_id = _task_id(request, {})
    call = await _call(request, {})
    if_match = parse_if_match(request.headers.get("If-Match"))
    for _attempt in range(5):
        task = await call.store.get(STYLE, task_id)
        if task is None or not rules.may_access(task.doc["TaskInfo"], call.actor):
            raise rules.not_found(task_id)
        if if_match is not None and task.version not in if_match:
            raise errors.PreconditionFailed(f"Task {task_id} is at version {task.version}, not "
                                            + ", ".join(map(str, sorted(if_match))))
        try:  # the version read is the one whose access was checked
            await call.store.delete(STYLE, task_id, actor=call.actor.name, request_id=call.request_id,
                                    if_match=frozenset({task.version}))
            return _ok()
        except errors.PreconditionFailed:
            continue
        except errors.NotFound:
            raise rules.not_found(task_id) from None
    raise errors.Conflict(f"Task {task_id} is being changed by others; try again")


@_service
async def create_task(request: web.Request) -> web.Response:
    """``POST /rest/pub/opentask``: ``{"taskID"}``; a future ``taskScheduleDate`` makes it scheduled."""
    body = await _read_object(request, CREATE_KEYS)
    call = await _call(request, body)
    if body.get("taskTypeID") is None:
        raise errors.BadRequest("taskTypeID is required")
    type_id = _name(body["taskTypeID"], "taskTypeID")
    info = _one_of(body, "taskQueueInfo", "TaskQueueInfo", "taskInfo", "TaskInfo")
    if info is not None and not isinstance(info, dict):
        raise errors.BadRequest("taskQueueInfo must be a JSON object")
    # a new task's status follows from its schedule; other read-only fields are ignored, as in a PUT
    ignored = (rules.READ_ONLY - CREATE_ONLY) | {"status"}
    queue_info = load_or_400(_QUEUE_INFO, {k: v for k, v in (info or {}).items() if k not in ignored},
                             "taskQueueInfo")
    data = _one_of(body, "taskData", "TaskData")
    if data is not None and not isinstance(data, dict):
        raise errors.BadRequest("taskData must be a JSON object")
    doc = rules.new_task("", type_id, queue_info, data or {}, user=call.actor.name, now=call.now)
    # numeric ids, as IS's are (clients call Long.parseLong), handed out by the store in order
    task = await call.store.create_numbered(
        STYLE, lambda n: {**doc, "TaskInfo": {**doc["TaskInfo"], "taskID": str(n)}},
        actor=call.actor.name, request_id=call.request_id, max_id=2**53)  # exact in a JavaScript number
    return _ok({"taskID": task.id}, task)


# -- lists and searches ------------------------------------------------------------------------------
def _user_tasks(user: str) -> Expr:
    return Or((Compare("$.TaskInfo.assignedToList", "has", (user,)),
               Compare("$.TaskInfo.acceptedByList", "has", (user,))))


def _not_accepted_by_others(user: str) -> Expr:
    # lastAcceptedBy is null exactly when acceptedByList is empty (the rules keep them in step)
    return Or((Compare("$.TaskInfo.acceptedByList", "has", (user,)), Compare("$.TaskInfo.lastAcceptedBy", "isnull")))


def _term(index: int, term: Mapping[str, Any]) -> Expr:
    """One TaskSearchQueryTerm as a query: the fields are OR-ed, as the Task Engine does."""
    names = term.get("fields_") or term.get("Fields")
    operator = term.get("operator") or term.get("Operator") or "equals"
    value = term.get("value") if term.get("value") is not None else term.get("Value")
    where = f"terms[{index}]"
    if not names:
        raise errors.BadRequest(f"{where}.fields is required")
    op = SEARCH_OPERATORS.get(operator.strip().lower())
    if op is None:
        raise errors.BadRequest(f"{where}.operator {operator!r} is not supported; use "
                                + ", ".join(k for k in SEARCH_OPERATORS if k[0].isalpha()))
    if value is None:
        raise errors.BadRequest(f"{where}.value is required")
    items: list[Expr] = []
    for name in names:
        allowed = _SEARCH_FIELDS.get(name)
        if allowed is None:
            raise errors.BadRequest(f"{where}.fields: {name!r} is not searchable here; searchable: "
                                    + ", ".join(sorted(_SEARCH_FIELDS)))
        if op not in allowed:
            raise errors.BadRequest(f"{where}: operator {operator!r} does not apply to {name}")
        items.append(_compare(where, name, op, value))
    return items[0] if len(items) == 1 else Or(tuple(items))


def _compare(where: str, name: str, op: str, value: Any) -> Expr:
    path = f"$.TaskInfo.{name}"
    if name in rules.DATE_FIELDS:
        try:
            return Compare(path, op, (parse_wm_date(value),))
        except ValueError as exc:
            raise errors.BadRequest(f"{where}.value: {exc}") from None
    if not isinstance(value, str):
        raise errors.BadRequest(f"{where}.value must be a string for {name}")
    if name == "status" and value not in STATUSES:
        raise errors.BadRequest(f"{where}.value: {value!r} is not a status; use one of {', '.join(STATUSES)}")
    if name in ("assignedToList", "acceptedByList"):
        return Compare(path, "has", (value,))
    return Compare(path, op, (value,))


async def _tasks_answer(call: Call, where: list[Expr], include: bool, limit: int) -> web.Response:
    """The matching tasks the user may see, oldest first: at most *limit* (0: all), and
    never more than :data:`MAX_RESULTS`."""
    await sweep(call.store, call.now, call.request_id)
    if not call.actor.is_admin:
        where = [rules.access_filter(call.actor.name), *where]
    limit = min(limit, MAX_RESULTS) if limit else MAX_RESULTS
    query = Query(And(tuple(where)) if where else None, (Sort("$.TaskInfo.createdDate"),), limit)
    tasks, _ = await call.store.find(STYLE, query)
    return _ok({"Tasks": [_task_out(t, call, include_data=include, with_id=True) for t in tasks]})


@_service
async def list_tasks(request: web.Request) -> web.Response:
    """``GET /rest/pub/opentask``: every task the user may see (one task with ``?taskID=``)."""
    if "taskID" in request.query:
        return await get_task.__wrapped__(request)  # type: ignore[attr-defined]
    call = await _call(request, {})
    where = [_user_tasks(call.actor.name)] if _flag(request.query.get("searchUserTasks"), "searchUserTasks") else []
    include = _flag(request.query.get("includeTaskData"), "includeTaskData")
    return await _tasks_answer(call, where, include, 0)


@reads_by_post  # a search is a read whether it comes as GET or POST; it changes nothing of the caller's
@_service
async def search_tasks(request: web.Request) -> web.Response:
    """``GET|POST /rest/pub/opentasksearch``: the simple search, or a TaskSearchQuery."""
    body = await _read_object(request, SEARCH_KEYS) if request.method == "POST" else {}
    params = {k: v for k, v in request.query.items() if k in SEARCH_KEYS}
    params.update(body)
    call = await _call(request, params)
    include = _flag(params.get("includeTaskData"), "includeTaskData")
    user_tasks = _flag(params.get("searchUserTasks"), "searchUserTasks")
    where: list[Expr] = [_user_tasks(call.actor.name)] if user_tasks else []
    raw_query = _one_of(params, "taskSearchQuery", "TaskSearchQuery")
    if raw_query is None:
        if not _flag(params.get("nonActive"), "nonActive"):
            where.append(Compare("$.TaskInfo.status", "eq", ("active",)))
        if _flag(params.get("notOthers"), "notOthers"):
            where.append(_not_accepted_by_others(call.actor.name))
        limit = _count(params.get("maxRes"), "maxRes", 0)
    else:
        if not isinstance(raw_query, dict):
            raise errors.BadRequest("taskSearchQuery must be a JSON object")
        tsq = load_or_400(_SEARCH_QUERY, raw_query, "taskSearchQuery")
        where.extend(_term(i, t) for i, t in enumerate(tsq.get("terms") or ()))
        if user_tasks and not _flag(tsq.get("showNonActiveTasks"), "showNonActiveTasks"):
            where.append(Compare("$.TaskInfo.status", "eq", ("active",)))
        if _flag(tsq.get("doNotShowAcceptedByOthers"), "doNotShowAcceptedByOthers"):
            where.append(_not_accepted_by_others(call.actor.name))
        raw_max = tsq.get("maxResults") if tsq.get("maxResults") is not None else tsq.get("MaxResults")
        limit = _count(raw_max, "maxResults", DEFAULT_MAX_RESULTS)
    return await _tasks_answer(call, where, include, limit)


# -- audit and rollback ---------------------------------------------------------------------------------
async def _trail(call: Call, task_id: str) -> list[Change]:
    """The task's audit rows, oldest first, since its (latest) creation."""
    rows = await call.store.audit(style=STYLE, task_id=task_id, newest_first=False)
    starts = [i for i, c in enumerate(rows) if c.action == "created"]
    return rows[starts[-1]:] if starts else rows


def _audit_out(change: Change, call: Call) -> dict[str, Any]:
    return {"id": change.seq, "createdDate": call.encode(change.at), "operation": rules.operation_code(change),
            "difference": [_difference(op) for op in change.patch], "sourceURI": f"user:{change.actor}",
            "TaskURI": f"/rest/pub/opentask/{change.task_id}", "taskVersionNumber": rules.version_of(change),
            "userID": change.actor}


def _difference(op: Mapping[str, Any]) -> str:
    return f"{op['op']} {op['path']}" + (f" {dumps(op['value'])}" if "value" in op else "")


def _entry_id(request: web.Request, task_id: str) -> int:
    raw = request.match_info["auditEntryID"]
    if not re.fullmatch(r"[0-9]{1,18}", raw):
        raise errors.NotFound(f"audit entry {raw} of task {task_id} not found")
    return int(raw)


@_service
async def get_audit(request: web.Request) -> web.Response:
    """``GET …/{taskID}/audit[/{auditEntryID}]``: ``{"taskAudits": [TaskAudit…]}``, oldest first."""
    call = await _call(request, {})
    task_id = _task_id(request, {})
    seq = _entry_id(request, task_id) if "auditEntryID" in request.match_info else None
    await _current(call, task_id)
    trail = await _trail(call, task_id)
    if seq is not None:
        trail = [c for c in trail if c.seq == seq]
        if not trail:
            raise errors.NotFound(f"audit entry {seq} of task {task_id} not found")
    return _ok({"taskAudits": [_audit_out(c, call) for c in trail]})


@_service
async def rollback_task(request: web.Request) -> web.Response:
    """``DELETE …/{taskID}/audit/{auditEntryID}``: the task as before that entry, as a new change."""
    call = await _call(request, {})
    task_id = _task_id(request, {})
    seq = _entry_id(request, task_id)
    for _attempt in range(5):
        task = await _current(call, task_id)
        newest_first = list(reversed(await _trail(call, task_id)))
        if not any(c.seq == seq for c in newest_first):
            raise errors.NotFound(f"audit entry {seq} of task {task_id} not found")
        mutate = rules.rollback_mutation(task_id, newest_first, seq, actor=call.actor, now=call.now,
                                         update_completed_task=call.config.update_completed_task)
        try:  # the undo patches read are exactly those up to the version they were read at
            task = await call.store.update(STYLE, task_id, mutate, actor=call.actor.name,
                                           request_id=f"{call.request_id}{rules.ROLLBACK_MARK}{seq}",
                                           if_match=frozenset({task.version}))
        except errors.PreconditionFailed:
            continue
        except errors.NotFound:
            raise rules.not_found(task_id) from None
        return _ok(task=task)
    raise errors.Conflict(f"Task {task_id} is being changed by others; try again")


# -- the style interface ----------------------------------------------------------------------------------
def setup(app: web.Application) -> None:
    """Every opentask route, the clock (unless one is given) and the sweeper's lifetime."""
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
    if CLOCK not in app:
        app[CLOCK] = Clock()
    app.on_startup.append(_start_sweeper)
    app.on_shutdown.append(_stop_sweeper)


async def prepare(store: Any) -> None:
    """Indexes that lists, searches and the sweeper filter on."""
    await store.ensure_indexes(STYLE, INDEXED_FIELDS)


def import_task(doc: Any, now: str) -> tuple[str, dict[str, Any]]:
    """The id and stored form of an exported webMethods task (``taskgate import``):
    ``{"TaskInfo": {…, "taskID", "taskTypeID"}, "TaskData": {…}}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("TaskInfo"), dict):
        raise errors.BadRequest('a webMethods task needs {"TaskInfo": {…}, "TaskData": {…}}')
    info = doc["TaskInfo"]
    task_id = _name(info.get("taskID"), "TaskInfo.taskID")
    type_id = _name(info.get("taskTypeID"), "TaskInfo.taskTypeID")
    data = {} if doc.get("TaskData") is None else doc["TaskData"]
    if not isinstance(data, dict):
        raise errors.BadRequest("TaskData must be a JSON object")
    status = info.get("status") or "active"
    if status not in STATUSES:
        raise errors.BadRequest(f"TaskInfo.status {status!r} is not one of {', '.join(STATUSES)}")
    queue_info = load_or_400(_QUEUE_INFO, {k: v for k, v in info.items() if k in _QUEUE_INFO.fields
                                           and k != "status"}, "TaskInfo")
    task = rules.new_task(task_id, type_id, queue_info, data, user=_name(info.get("createdBy") or "import",
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
