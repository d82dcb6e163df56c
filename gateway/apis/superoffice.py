"""SuperOffice WebAPI BatchTask: its URLs, headers, body formats and error body.

Routes, each also under a tenant prefix ``/{tenant}/api/v1/…``:

* ``GET|POST /api/v1/BatchTask`` (OData list; create → the new integer id),
* ``GET|PUT|DELETE /api/v1/BatchTask/{id}``, ``GET /api/v1/BatchTask/{state}``,
  ``POST /api/v1/BatchTask/{id}/Stop``,
* the Agents calls ``POST /api/v1/Agents/Batch/{Method}`` (``GET`` describes one),
* ``POST /login`` and ``POST /logout`` (cookie session with an XSRF token).

Handlers are thin: negotiate, read the body into a change, let the pure rules of
:mod:`gateway.apis.superoffice_carrier` build the mutation, store, answer in JSON or XML.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis import superoffice_carrier as carrier
from gateway.apis.superoffice_carrier import Caller, Zone
from gateway.apis.superoffice_odata import parse_list_options, parse_select
from gateway.auth import login, logout, reads_by_post
from gateway.clock import now_iso
from gateway.codecs import (
    decode_form,
    decode_json,
    decode_xml,
    etag,
    json_response,
    negotiate,
    parse_if_match,
    read_body,
    xml_response,
)
from gateway.config import ConfigError
from gateway.context import CONFIG, STORE, principal, request_id
from gateway.model import Task
from gateway.query import And, Compare, Expr, Query, Sort

__all__ = ["STYLE", "PATH_PATTERN", "setup", "render_error", "import_task", "prepare", "ERROR_TYPES"]

STYLE = "superoffice"
PATH_PATTERN = re.compile(r"^/([^/]+/)?api(/|$)|^/log(in|out)$")
BODY_TYPES = ("application/json", "text/json", "application/xml", "text/xml",
              "application/x-www-form-urlencoded", "application/json-patch+json", "application/merge-patch+json")
_OFFERED = ("application/json", "text/json", "application/xml", "text/xml",
            "application/json-patch+json", "application/merge-patch+json")
#: the .NET exception type named in the error body, by status
ERROR_TYPES = {400: "ArgumentException", 401: "SoAuthenticationException", 403: "SoAccessDeniedException",
               404: "SoNotFoundException", 405: "HttpMethodNotAllowedException", 406: "NotAcceptableException",
               408: "RequestTimeoutException", 409: "SoConflictException", 412: "SoPreconditionFailedException",
               413: "RequestEntityTooLargeException", 415: "UnsupportedMediaTypeException",
               429: "TooManyRequestsException", 500: "SoServerException"}
ERROR_SOURCE = "SuperOffice.Services.Implementation"
INDEXED_FIELDS = ("$.State", "$.Name", "$.AssociateId", "$.Id")
_LANGUAGE = re.compile(r"\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"q=(0(\.[0-9]{0,3})?|1(\.0{0,3})?)", re.IGNORECASE)
_INT_ID = re.compile(r"[0-9]{1,10}")
MAX_ID = 2**31 - 1  # ids are int32 in every SuperOffice carrier
#: most ids one Agents call may name (each is a query parameter or a write)
MAX_IDS = 1000
BASE_ZONE = web.AppKey("superoffice_base_zone", tzinfo)


# -- errors ------------------------------------------------------------------------------
def render_error(err: errors.TaskgateError, tracking_id: str) -> web.Response:
    """SuperOffice's REST error body, the same shape for every status."""
    body = {"Error": True, "ErrorType": ERROR_TYPES.get(err.status, "SoException"),
            "ErrorMessage": err.message, "ErrorSource": ERROR_SOURCE}
    headers = dict(err.headers)
    if err.status == 401:
        headers.setdefault("WWW-Authenticate", 'Basic realm="SuperOffice"')
    return json_response(body, status=err.status, headers=headers)


def _not_found(task_id: Any) -> errors.NotFound:
    return errors.NotFound(f"BatchTask id {str(task_id)[:40]} not found")


# -- per-request context -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ctx:
    caller: Caller
    zone: Zone
    out: str  # the media type answered with


def _check_languages(request: web.Request) -> None:
    """Accept-Language, SO-Language and SO-Culture must be well formed (400 otherwise).

    taskgate's texts exist in English only, which ``Content-Language`` says."""
    header = request.headers.get("Accept-Language")
    if header is not None:
        for part in header.split(","):
            tag, *params = [p.strip() for p in part.split(";")]
            if not _LANGUAGE.fullmatch(tag) or any(not _QVALUE.fullmatch(p.replace(" ", "")) for p in params):
                raise errors.BadRequest(f"Accept-Language: {part.strip()[:40]!r} is not a language range")
    for name in ("SO-Language", "SO-Culture"):
        value = request.headers.get(name)
        if value is not None and not (_LANGUAGE.fullmatch(value.strip()) or value.strip().lower() == "x"):
            raise errors.BadRequest(f"{name}: {value[:40]!r} is not a language code")


def _context(request: web.Request, *, body_format: str | None = None) -> Ctx:
    _check_languages(request)
    zone = carrier.parse_time_zone(request.headers.get("SO-TimeZone"), request.app[BASE_ZONE])
    if body_format == "xml":
        out = "application/xml"
    elif body_format == "json":
        out = "application/json"
    else:
        try:
            out = negotiate(request, _OFFERED)
        except errors.NotAcceptable:  # unknown or misspelled (the Python SDK's "aplication/json")
            out = "application/json"
        if out not in ("text/json", "application/xml", "text/xml"):
            out = "application/json"
    who = principal(request)
    return Ctx(Caller(who.name, who.is_admin, who.associate_id, who.read_only), zone, out)


def _respond(request: web.Request, ctx: Ctx, value: Any, *, root: str = "BatchTaskInfo",
             status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    headers = {"Content-Language": "en", **(headers or {})}
    if ctx.out in ("application/xml", "text/xml"):
        return xml_response(carrier.to_xml(root, value), status=status, headers=headers, content_type=ctx.out)
    return json_response(value, status=status, headers=headers, content_type=ctx.out)


def _carrier(ctx: Ctx, task: Task, select: tuple[str, ...] | None = None, *,
             with_rights: bool = True) -> dict[str, Any]:
    """The task as the caller sees it; list rows (archive rows) carry no rights."""
    out = carrier.view(task.doc, ctx.zone)
    if with_rights:
        out.update(carrier.rights(ctx.caller, task.doc))
    return {k: out[k] for k in select} if select else out


def _task_headers(task: Task) -> dict[str, str]:
    headers = {"ETag": etag(task.version)}
    if task.modified:
        headers["Last-Modified"] = email.utils.format_datetime(
            datetime.fromisoformat(task.modified).astimezone(UTC), usegmt=True)
    return headers


def _http_date(request: web.Request, name: str) -> datetime | None:
    """An HTTP-date header; an invalid one is ignored, as RFC 9110 §13.1.4 requires."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _preconditions(request: web.Request) -> dict[str, Any]:
    """``If-Match`` and ``If-Unmodified-Since`` as the store's write conditions."""
    if_match = request.headers.get("If-Match")
    return {"if_match": parse_if_match(if_match),  # with If-Match, If-Unmodified-Since is ignored (RFC 9110)
            "unmodified_since": None if if_match is not None else _http_date(request, "If-Unmodified-Since")}


def _task_id(raw: str) -> str:
    """The store id of a path id: the canonical integer, or NotFound."""
    if not _INT_ID.fullmatch(raw) or int(raw) > 2**31 - 1:
        raise _not_found(raw)
    return str(int(raw))


async def _read_change(request: web.Request, ctx: Ctx) -> tuple[str, Any]:
    """The body as ``(kind, payload)`` for :func:`carrier.put_mutation`."""
    ctype, body = await read_body(request, BODY_TYPES)
    if ctype in ("application/xml", "text/xml"):
        return "fields", carrier.fields_from_xml(decode_xml(body))
    if ctype == "application/x-www-form-urlencoded":
        return "fields", carrier.fields_from_form(decode_form(body))
    value = decode_json(body)
    if ctype == "application/json-patch+json" or (isinstance(value, list) and ctype != "application/merge-patch+json"):
        return "patch", carrier.normalize_patch(value)
    if not isinstance(value, dict):
        raise errors.BadRequest("the body must be a BatchTaskInfo object" +
                                ("" if ctype == "application/merge-patch+json" else " or a JSON Patch array"))
    if ctype == "application/merge-patch+json":
        return "merge", value
    return "fields", carrier.canonical(value)


# -- REST handlers -------------------------------------------------------------------------
async def list_tasks(request: web.Request) -> web.Response:
    options = parse_list_options(request.query, carrier.state_name)
    ctx = _context(request, body_format=options.format)
    tasks, _ = await request.app[STORE].find(
        STYLE, Query(options.where, options.order, options.top + 1, options.skip))
    more = options.top > 0 and len(tasks) > options.top
    base = f"{request.scheme}://{request.host}{request.path.rsplit('/BatchTask', 1)[0]}"
    next_link = None
    if more:
        query = {k: v for k, v in request.query.items() if k.casefold() != "$skip"}
        query["$skip"] = str(options.skip + options.top)
        next_link = str(request.url.with_query(query))
    value = [_carrier(ctx, t, options.select, with_rights=False) for t in tasks[:options.top]]
    return _respond(request, ctx, {"odata.metadata": f"{base}/$metadata#BatchTask", "odata.nextLink": next_link,
                                   "value": value}, root="BatchTaskList")


async def _create(request: web.Request, ctx: Ctx, raw: dict[str, Any]) -> int:
    if not ctx.caller.is_admin or ctx.caller.read_only:
        raise errors.Forbidden("only an administrator may create batch tasks")
    doc = carrier.new_batch_task(raw, 0, now_iso(), zone=ctx.zone, owner=ctx.caller.associate_id)
    task = await request.app[STORE].create_numbered(STYLE, lambda n: {**doc, "Id": n}, actor=ctx.caller.name,
                                                    request_id=request_id(request), max_id=MAX_ID)
    return int(task.id)


async def create_task(request: web.Request) -> web.Response:
    ctx = _context(request)
    kind, payload = await _read_change(request, ctx)
    if kind != "fields":
        raise errors.BadRequest("a new BatchTask is created from a BatchTaskInfo, not a patch")
    return _respond(request, ctx, await _create(request, ctx, payload), root="int")


async def get_task_or_state(request: web.Request) -> web.Response:
    key = request.match_info["id"]
    ctx = _context(request)
    if not key.isdigit():  # /BatchTask/{state}: the user tasks in that state
        state = _state_path(key)
        tasks = await _find(request, state=state, system=False)
        return _respond(request, ctx, [_carrier(ctx, t) for t in tasks], root="ArrayOfBatchTaskInfo")
    task = await request.app[STORE].get(STYLE, _task_id(key))
    if task is None:
        raise _not_found(key)
    since = _http_date(request, "If-Modified-Since")
    headers = _task_headers(task)
    if since is not None and task.modified and \
            datetime.fromisoformat(task.modified).replace(microsecond=0) <= since:
        return web.Response(status=304, headers={"Content-Language": "en", **headers})
    return _respond(request, ctx, _carrier(ctx, task, _select(request)), headers=headers)


def _state_path(key: str) -> str:
    try:
        if not key.isalpha():  # a number is an id; " 1" is neither
            raise errors.BadRequest(key)
        return carrier.state_name(key)
    except errors.BadRequest:
        raise errors.BadRequest(f"{key[:40]!r} is neither a BatchTask id nor a BatchTaskState; states: "
                                + ", ".join(carrier.STATES)) from None


async def _find(request: web.Request, *, state: str | None = None, system: bool | None = None,
                name: str | None = None, associates: list[int] | None = None) -> list[Task]:
    """Tasks by the Agents' criteria. ``State All`` is the vendor's match-any value."""
    terms: list[Expr] = []
    if state is not None and state != "All":
        terms.append(Compare("$.State", "eq", (state,)))
    if system is not None:
        terms.append(Compare("$.IsSystemTask", "eq", (system,)))
    if name is not None:
        terms.append(Compare("$.Name", "eq", (name,)))
    if associates is not None:
        associates = [a for a in associates if -2**31 <= a < 2**31]  # no task has another
        if not associates:
            return []
        terms.append(Compare("$.AssociateId", "in", tuple(associates)))
    where = None if not terms else terms[0] if len(terms) == 1 else And(tuple(terms))
    tasks, _ = await request.app[STORE].find(STYLE, Query(where, (Sort("$.Id"),)))
    return tasks


async def _update(request: web.Request, ctx: Ctx, task_id: str, kind: str, payload: Any) -> Task:
    mutate = carrier.put_mutation(kind, payload, zone=ctx.zone, strict=request.app[CONFIG].superoffice.strict_readonly,
                                  caller=ctx.caller, task_id=int(task_id))
    try:
        return await request.app[STORE].update(STYLE, task_id, mutate, actor=ctx.caller.name,
                                               request_id=request_id(request), **_preconditions(request))
    except errors.NotFound:
        raise _not_found(task_id) from None


async def put_task(request: web.Request) -> web.Response:
    ctx = _context(request)
    task_id = _task_id(request.match_info["id"])
    kind, payload = await _read_change(request, ctx)
    task = await _update(request, ctx, task_id, kind, payload)
    return _respond(request, ctx, _carrier(ctx, task), headers=_task_headers(task))


async def _delete(request: web.Request, ctx: Ctx, task_id: str) -> None:
    if not ctx.caller.is_admin or ctx.caller.read_only:
        raise errors.Forbidden("only an administrator may delete batch tasks")
    try:
        await request.app[STORE].delete(STYLE, task_id, actor=ctx.caller.name, request_id=request_id(request),
                                        **_preconditions(request))
    except errors.NotFound:
        raise _not_found(task_id) from None


async def delete_task(request: web.Request) -> web.Response:
    ctx = _context(request)
    await _delete(request, ctx, _task_id(request.match_info["id"]))
    return web.Response(status=204, headers={"Content-Language": "en"})


async def _stop(request: web.Request, ctx: Ctx, task_id: str) -> bool:
    outcome: list[bool] = []
    try:
        await request.app[STORE].update(STYLE, task_id, carrier.stop_mutation(ctx.caller, int(task_id), outcome),
                                        actor=ctx.caller.name, request_id=request_id(request))
    except errors.NotFound:
        raise _not_found(task_id) from None
    return outcome[0]


async def stop_task(request: web.Request) -> web.Response:
    ctx = _context(request)
    return _respond(request, ctx, await _stop(request, ctx, _task_id(request.match_info["id"])), root="boolean")


# -- Agents --------------------------------------------------------------------------------
AgentCall = Callable[[web.Request, Ctx, dict[str, Any]], Awaitable[Any]]


def _arg(args: dict[str, Any], name: str, kind: str) -> Any:
    """An Agents argument by name (any case): ``int``, ``ints``, ``str``, ``state``, ``object``."""
    found = [v for k, v in args.items() if k.casefold() == name.casefold()]
    if len(found) != 1:
        raise errors.BadRequest(f"the request needs {name}" if not found else f"{name} is given more than once")
    value = found[0]
    if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise errors.BadRequest(f"{name} must be an integer")
    if kind == "ints" and not (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in value)):
        raise errors.BadRequest(f"{name} must be an array of integers")
    if kind == "ints" and len(value) > MAX_IDS:
        raise errors.BadRequest(f"{name} has {len(value)} members; at most {MAX_IDS} are allowed")
    if kind == "str" and not isinstance(value, str):
        raise errors.BadRequest(f"{name} must be a string")
    if kind == "object" and not isinstance(value, dict):
        raise errors.BadRequest(f"{name} must be an object")
    if kind == "state":
        return carrier.state_name(value)
    return value


def _agent_id(value: int) -> str | None:
    """The store id of an Agents id, or None when no task can have it (→ null)."""
    return str(value) if 0 < value <= 2**31 - 1 else None


async def _agent_get(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    task_id = _agent_id(_arg(args, "Id", "int"))
    task = await request.app[STORE].get(STYLE, task_id) if task_id else None
    return _carrier(ctx, task, _select(request)) if task else None


async def _agent_update(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    fields = carrier.canonical(_arg(args, "BatchTaskInfo", "object"))
    if not isinstance(fields.get("Id"), int) or isinstance(fields.get("Id"), bool):
        raise errors.BadRequest("BatchTaskInfo.Id must be the integer id of the task to update")
    task_id = _agent_id(fields["Id"])
    if task_id is None:
        return None
    try:
        task = await _update(request, ctx, task_id, "fields", fields)
    except errors.NotFound:
        return None
    return _carrier(ctx, task, _select(request))


async def _agent_start(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    return await _create(request, ctx, carrier.canonical(_arg(args, "BatchTaskInfo", "object")))


async def _agent_stop(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    task_id = _agent_id(_arg(args, "Id", "int"))
    if task_id is None:
        return None
    try:
        return await _stop(request, ctx, task_id)
    except errors.NotFound:
        return None


async def _agent_delete(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    task_id = _agent_id(_arg(args, "BatchTaskId", "int"))
    try:
        if task_id is None:
            raise errors.NotFound()
        await _delete(request, ctx, task_id)
    except errors.NotFound:
        return None
    return web.Response(status=204, headers={"Content-Language": "en"})


async def _agent_delete_many(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    """Delete every task named; ids with no task are skipped. Preconditions name one
    version and so do not apply here. The deletes are queued together, so group commit
    writes them in one transaction."""
    ids = [task_id for value in dict.fromkeys(_arg(args, "BatchTaskIds", "ints"))
           if (task_id := _agent_id(value)) is not None]
    if not ctx.caller.is_admin or ctx.caller.read_only:
        raise errors.Forbidden("only an administrator may delete batch tasks")
    store = request.app[STORE]
    results = await asyncio.gather(*(store.delete(STYLE, task_id, actor=ctx.caller.name,
                                                  request_id=request_id(request)) for task_id in ids),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, errors.NotFound)]
    if failed:
        raise failed[0]
    return web.Response(status=204, headers={"Content-Language": "en"})


def _finder(**criteria: tuple[str, str]) -> AgentCall:
    """An Agents search: each criterion maps a _find keyword to (argument name, kind)."""
    fixed = {k: v for k, v in criteria.items() if not isinstance(v, tuple)}
    named = {k: v for k, v in criteria.items() if isinstance(v, tuple)}

    async def call(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
        values = {key: _arg(args, name, kind) for key, (name, kind) in named.items()}
        tasks = await _find(request, **fixed, **values)
        return [_carrier(ctx, t, _select(request)) for t in tasks]
    return call


def _select(request: web.Request) -> tuple[str, ...] | None:
    """``?$select=`` of a call that answers whole carriers."""
    raw = request.query.get("$select")
    return parse_select(raw, (*carrier.FIELDS, "TableRight", "FieldProperties")) if raw else None


#: the Agents calls of BatchAgent: name → (handler, request members, what it returns)
AGENTS: dict[str, tuple[AgentCall, str, str]] = {
    "GetBatchTaskInfo": (_agent_get, "Id", "BatchTaskInfo, or null when there is none"),
    "GetBatchTaskInfosByAssociates": (_finder(associates=("AssociateIds", "ints")), "AssociateIds",
                                      "BatchTaskInfo[] owned by those associates"),
    "StartBatchJob": (_agent_start, "BatchTaskInfo", "the new task's integer id"),
    "StopBatchJob": (_agent_stop, "Id", "true if the task was stopped, false if it could not be, null if none"),
    "GetBatchTaskInfosByState": (_finder(state=("State", "state"), system=False), "State",
                                 "user BatchTaskInfo[] in that state"),
    "UpdateBatchTask": (_agent_update, "BatchTaskInfo", "the updated BatchTaskInfo, or null when there is none"),
    "GetBatchTaskInfosByNameAndState": (_finder(name=("Name", "str"), state=("State", "state"), system=False),
                                        "Name, State", "user BatchTaskInfo[] with that name and state"),
    "GetBatchTaskInfosByNameAndAssociates": (_finder(name=("Name", "str"), associates=("AssociateIds", "ints")),
                                             "Name, AssociateIds", "BatchTaskInfo[] with that name and owners"),
    "GetBatchTaskInfosByAssociatesAndState": (_finder(associates=("AssociateIds", "ints"), state=("State", "state")),
                                              "AssociateIds, State", "BatchTaskInfo[] with those owners and state"),
    "DeleteBatchTasks": (_agent_delete_many, "BatchTaskIds", "nothing (204)"),
    "DeleteBatchTask": (_agent_delete, "BatchTaskId", "nothing (204), or null when there is none"),
    "GetAllBatchTaskInfosByName": (_finder(name=("TaskName", "str")), "TaskName",
                                   "system and user BatchTaskInfo[] with that name"),
    "GetAllBatchTaskInfosByNameAndState": (_finder(name=("TaskName", "str"), state=("State", "state")),
                                           "TaskName, State", "system and user BatchTaskInfo[] with that name and state"),
    "GetSystemBatchTaskInfosByName": (_finder(name=("TaskName", "str"), system=True), "TaskName",
                                      "system BatchTaskInfo[] with that name"),
    "GetSystemBatchTaskInfosByNameAndState": (_finder(name=("TaskName", "str"), state=("State", "state"), system=True),
                                              "TaskName, State", "system BatchTaskInfo[] with that name and state"),
}


def _agent(request: web.Request) -> tuple[str, AgentCall, str, str]:
    """The canonical name and entry of the Agents method the URL names (in any case)."""
    method = request.match_info["method"]
    name = next((k for k in AGENTS if k.casefold() == method.casefold()), None)
    if name is None:
        raise errors.NotFound(f"BatchAgent has no method {method[:60]!r}")
    return (name, *AGENTS[name])


@reads_by_post  # every write path below refuses read-only callers itself
async def call_agent(request: web.Request) -> web.StreamResponse:
    _name, call, _members, _returns = _agent(request)
    ctx = _context(request)
    _ctype, body = await read_body(request, ("application/json", "text/json"))
    args = decode_json(body)
    if not isinstance(args, dict):
        raise errors.BadRequest("an Agents request body is a JSON object")
    result = await call(request, ctx, args)
    if isinstance(result, web.StreamResponse):
        return result
    return _respond(request, ctx, result, root="Result")


async def describe_agent(request: web.Request) -> web.Response:
    method, _call, members, returns = _agent(request)
    return json_response({"Method": f"Batch/{method}", "HttpMethod": "POST",
                          "Request": f"a JSON object with {members}", "Returns": returns})


# -- wiring -----------------------------------------------------------------------------------
def _routes(prefix: str, tag: str, r: web.UrlDispatcher) -> None:
    base = f"{prefix}/api/v1"
    for slash in ("", "/"):  # superoffice-python-sdk's create() posts to ".../BatchTask/"
        r.add_get(f"{base}/BatchTask{slash}", list_tasks, name=f"{STYLE}:list{tag}{slash and ':slash'}")
        r.add_post(f"{base}/BatchTask{slash}", create_task, name=f"{STYLE}:create{tag}{slash and ':slash'}")
    r.add_get(f"{base}/BatchTask/{{id}}", get_task_or_state, name=f"{STYLE}:get{tag}")
    r.add_put(f"{base}/BatchTask/{{id}}", put_task, name=f"{STYLE}:put{tag}")
    r.add_delete(f"{base}/BatchTask/{{id}}", delete_task, name=f"{STYLE}:delete{tag}")
    r.add_post(f"{base}/BatchTask/{{id}}/Stop", stop_task, name=f"{STYLE}:stop{tag}")
    r.add_post(f"{base}/Agents/Batch/{{method}}", call_agent, name=f"{STYLE}:agent{tag}")
    r.add_get(f"{base}/Agents/Batch/{{method}}", describe_agent, name=f"{STYLE}:describe{tag}")


def setup(app: web.Application) -> None:
    zone = carrier.find_zone(app[CONFIG].superoffice.time_zone)
    if zone is None:
        raise ConfigError(f"superoffice.time_zone: unknown time zone {app[CONFIG].superoffice.time_zone!r}")
    app[BASE_ZONE] = zone
    r = app.router
    r.add_post("/login", login, name=f"{STYLE}:login")
    r.add_post("/logout", logout, name=f"{STYLE}:logout")
    _routes("", "", r)
    _routes("/{tenant:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}}", ":tenant", r)


def import_task(doc: Any, now: str) -> tuple[str, dict[str, Any]]:
    """The id and stored document of an imported BatchTaskInfo (``taskgate import``)."""
    if not isinstance(doc, dict):
        raise errors.BadRequest("a BatchTaskInfo is a JSON object")
    fields = carrier.canonical(doc)
    task_id = fields.get("Id")
    if not isinstance(task_id, int) or isinstance(task_id, bool) or not 0 < task_id <= 2**31 - 1:
        raise errors.BadRequest("a BatchTaskInfo needs a positive integer Id")
    return str(task_id), carrier.new_batch_task(fields, task_id, now, zone=Zone(UTC),
                                                owner=fields.get("AssociateId"))


async def prepare(store: Any) -> None:
    """Indexes for the list filters and the Agents searches."""
    await store.ensure_indexes(STYLE, INDEXED_FIELDS)
