"""SuperOffice's Agents calls for batch tasks: ``POST /api/v1/Agents/Batch/{Method}``
(``GET`` describes one), also under a tenant prefix, as the official ``BatchAgent``
client (``@superoffice/webapi``) sends them.

Owns the table of the fifteen ``BatchAgent`` methods (:data:`AGENTS`), how each reads its
JSON arguments (member names in any case), and the Agents conventions: a task that is
not there is ``200 null``, not an error. Must not hold rules or store calls of its own:
every call goes through the same service as the REST routes
(:mod:`gateway.apis.superoffice_service`), so an Agents update is exactly a REST PUT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

from gateway import errors
from gateway.apis import superoffice_carrier as carrier
from gateway.apis import superoffice_service as service
from gateway.apis.superoffice_service import MAX_ID, STYLE, Ctx
from gateway.auth import reads_by_post
from gateway.codecs import decode_json, json_response, read_body
from gateway.context import request_id, store_of
from gateway.turns import caller_turn

__all__ = ["AGENTS", "MAX_IDS", "call_agent", "describe_agent", "add_routes"]

#: most ids one Agents call may name (each is a query parameter or a write)
MAX_IDS = 1000

AgentCall = Callable[[web.Request, Ctx, dict[str, Any]], Awaitable[Any]]
#: what an argument must be: an integer, an array of integers, a string, a BatchTaskState
#: (name or number), or an object
Kind = Literal["int", "ints", "str", "state", "object"]


def _arg(args: dict[str, Any], name: str, kind: Kind) -> Any:
    """An Agents argument by name (any case), checked to be of *kind*."""
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
    return str(value) if 0 < value <= MAX_ID else None


# -- the calls ---------------------------------------------------------------------------
async def _get(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    members = service.select(request)
    task_id = _agent_id(_arg(args, "Id", "int"))
    task = await store_of(request).get(STYLE, task_id) if task_id else None
    return service.carrier_for(ctx, task, members) if task else None


async def _update(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    members = service.select(request)  # a bad $select is refused before anything is written
    fields = carrier.canonical(_arg(args, "BatchTaskInfo", "object"))
    if not isinstance(fields.get("Id"), int) or isinstance(fields.get("Id"), bool):
        raise errors.BadRequest("BatchTaskInfo.Id must be the integer id of the task to update")
    task_id = _agent_id(fields["Id"])
    if task_id is None:
        return None
    try:
        task = await service.update(request, ctx, task_id, "fields", fields)
    except errors.NotFound:
        return None
    return service.carrier_for(ctx, task, members)


async def _start(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    return await service.create(request, ctx, carrier.canonical(_arg(args, "BatchTaskInfo", "object")))


async def _stop(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    task_id = _agent_id(_arg(args, "Id", "int"))
    if task_id is None:
        return None
    try:
        return await service.stop(request, ctx, task_id)
    except errors.NotFound:
        return None


async def _delete(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    task_id = _agent_id(_arg(args, "BatchTaskId", "int"))
    try:
        if task_id is None:
            raise errors.NotFound()
        await service.delete(request, ctx, task_id)
    except errors.NotFound:
        return None
    return web.Response(status=204, headers={"Content-Language": "en"})


async def _delete_many(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
    """Delete every task named; ids with no task are skipped. Preconditions name one
    version and so do not apply here. The deletes are queued together, so group commit
    writes them in one transaction."""
    ids = [task_id for value in dict.fromkeys(_arg(args, "BatchTaskIds", "ints"))
           if (task_id := _agent_id(value)) is not None]
    if not ctx.caller.is_admin or ctx.caller.read_only:
        raise errors.Forbidden("only an administrator may delete batch tasks")
    store = store_of(request)
    results = await asyncio.gather(*(store.delete(STYLE, task_id, actor=ctx.caller.name,
                                                  request_id=request_id(request)) for task_id in ids),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, errors.NotFound)]
    if failed:
        raise failed[0]
    return web.Response(status=204, headers={"Content-Language": "en"})


def _finder(*, system: bool | None = None, **named: tuple[str, Kind]) -> AgentCall:
    """An Agents search: user (``system=False``), system (``True``) or all tasks (None);
    each other criterion maps a :func:`~gateway.apis.superoffice_service.find` keyword
    to the argument that gives it, as ``(name, kind)``."""
    async def call(request: web.Request, ctx: Ctx, args: dict[str, Any]) -> Any:
        values = {key: _arg(args, name, kind) for key, (name, kind) in named.items()}
        members = service.select(request)
        async with caller_turn(request):
            ids = await service.find(request, system=system, **values)
            return await service.respond_list(request, ctx, ids, lambda t: service.carrier_for(ctx, t, members),
                                              root="Result")
    return call


#: the Agents calls of BatchAgent: name → (handler, request members, what it returns)
AGENTS: dict[str, tuple[AgentCall, str, str]] = {
    "GetBatchTaskInfo": (_get, "Id", "BatchTaskInfo, or null when there is none"),
    "GetBatchTaskInfosByAssociates": (_finder(associates=("AssociateIds", "ints")), "AssociateIds",
                                      "BatchTaskInfo[] owned by those associates"),
    "StartBatchJob": (_start, "BatchTaskInfo", "the new task's integer id"),
    "StopBatchJob": (_stop, "Id", "true if the task was stopped, false if it could not be, null if none"),
    "GetBatchTaskInfosByState": (_finder(state=("State", "state"), system=False), "State",
                                 "user BatchTaskInfo[] in that state"),
    "UpdateBatchTask": (_update, "BatchTaskInfo", "the updated BatchTaskInfo, or null when there is none"),
    "GetBatchTaskInfosByNameAndState": (_finder(name=("Name", "str"), state=("State", "state"), system=False),
                                        "Name, State", "user BatchTaskInfo[] with that name and state"),
    "GetBatchTaskInfosByNameAndAssociates": (_finder(name=("Name", "str"), associates=("AssociateIds", "ints")),
                                             "Name, AssociateIds", "BatchTaskInfo[] with that name and owners"),
    "GetBatchTaskInfosByAssociatesAndState": (_finder(associates=("AssociateIds", "ints"), state=("State", "state")),
                                              "AssociateIds, State", "BatchTaskInfo[] with those owners and state"),
    "DeleteBatchTasks": (_delete_many, "BatchTaskIds", "nothing (204)"),
    "DeleteBatchTask": (_delete, "BatchTaskId", "nothing (204), or null when there is none"),
    "GetAllBatchTaskInfosByName": (_finder(name=("TaskName", "str")), "TaskName",
                                   "system and user BatchTaskInfo[] with that name"),
    "GetAllBatchTaskInfosByNameAndState": (_finder(name=("TaskName", "str"), state=("State", "state")),
                                           "TaskName, State",
                                           "system and user BatchTaskInfo[] with that name and state"),
    "GetSystemBatchTaskInfosByName": (_finder(name=("TaskName", "str"), system=True), "TaskName",
                                      "system BatchTaskInfo[] with that name"),
    "GetSystemBatchTaskInfosByNameAndState": (_finder(name=("TaskName", "str"), state=("State", "state"), system=True),
                                              "TaskName, State", "system BatchTaskInfo[] with that name and state"),
}


# -- HTTP --------------------------------------------------------------------------------
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
    ctx = service.context(request)
    _ctype, body = await read_body(request, ("application/json", "text/json"))
    args = decode_json(body)
    if not isinstance(args, dict):
        raise errors.BadRequest("an Agents request body is a JSON object")
    result = await call(request, ctx, args)
    if isinstance(result, web.StreamResponse):
        return result
    return service.respond(ctx, result, root="Result")


async def describe_agent(request: web.Request) -> web.Response:
    method, _call, members, returns = _agent(request)
    return json_response({"Method": f"Batch/{method}", "HttpMethod": "POST",
                          "Request": f"a JSON object with {members}", "Returns": returns})


def add_routes(router: web.UrlDispatcher, base: str, tag: str) -> None:
    """The Agents routes under *base* (``[/{tenant}]/api/v1``); *tag* ends their names."""
    router.add_post(f"{base}/Agents/Batch/{{method}}", call_agent, name=f"{STYLE}:agent{tag}")
    router.add_get(f"{base}/Agents/Batch/{{method}}", describe_agent, name=f"{STYLE}:describe{tag}")
