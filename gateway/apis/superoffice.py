"""SuperOffice WebAPI BatchTask's REST routes: their URLs, request bodies, headers and
the style's error body.

Routes, each also under a tenant prefix ``/{tenant}/api/v1/…``:

* ``GET|POST /api/v1/BatchTask`` (OData list; create → the new integer id),
* ``GET /api/v1/$metadata``, the OData metadata document the list's ``odata.metadata`` names,
* ``GET|PUT|DELETE /api/v1/BatchTask/{id}``, ``GET /api/v1/BatchTask/{state}``,
  ``POST /api/v1/BatchTask/{id}/Stop``,
* ``POST /login`` and ``POST /logout`` (cookie session with an XSRF token);

:func:`setup` also registers the Agents calls of :mod:`gateway.apis.superoffice_agents`.

Owns the REST URLs, how a PUT or create body is read in each of its seven media types,
and the error body of every SuperOffice route. Handlers are thin: negotiate, read the
body into a change, hand it to :mod:`gateway.apis.superoffice_service`, answer. Must
not hold rules (:mod:`gateway.apis.superoffice_rules`) or touch the store beyond reads.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis import superoffice_agents as agents
from gateway.apis import superoffice_carrier as carrier
from gateway.apis import superoffice_odata as odata
from gateway.apis import superoffice_rules as rules
from gateway.apis import superoffice_service as service
from gateway.apis.superoffice_carrier import Zone
from gateway.apis.superoffice_odata import parse_list_options
from gateway.apis.superoffice_service import BASE_ZONE, MAX_ID, STYLE, Ctx
from gateway.auth import sessions
from gateway.codecs import decode_form, decode_json, decode_xml, etag, json_response, read_body
from gateway.config import ConfigError
from gateway.context import CONFIG, store_of
from gateway.model import Task
from gateway.query import Query
from gateway.turns import caller_turn, takes_turns

__all__ = ["STYLE", "PATH_PATTERN", "BODY_TYPES", "ERROR_TYPES", "setup", "render_error", "import_task", "prepare"]

PATH_PATTERN = re.compile(r"^/([^/]+/)?api(/|$)|^/log(in|out)$")
BODY_TYPES = ("application/json", "text/json", "application/xml", "text/xml",
              "application/x-www-form-urlencoded", "application/json-patch+json", "application/merge-patch+json")
#: the .NET exception type named in the error body, by status
ERROR_TYPES = {400: "ArgumentException", 401: "SoAuthenticationException", 403: "SoAccessDeniedException",
               404: "SoNotFoundException", 405: "HttpMethodNotAllowedException", 406: "NotAcceptableException",
               408: "RequestTimeoutException", 409: "SoConflictException", 412: "SoPreconditionFailedException",
               413: "RequestEntityTooLargeException", 415: "UnsupportedMediaTypeException",
               429: "TooManyRequestsException", 500: "SoServerException"}
ERROR_SOURCE = "SuperOffice.Services.Implementation"
INDEXED_FIELDS = ("$.State", "$.Name", "$.AssociateId", "$.Id", "$.Created")  # the dashboard sorts by Created
_INT_ID = re.compile(r"[0-9]{1,10}")


# -- errors ------------------------------------------------------------------------------
def render_error(err: errors.TaskgateError, tracking_id: str) -> web.Response:
    """SuperOffice's REST error body, the same shape for every status."""
    body = {"Error": True, "ErrorType": ERROR_TYPES.get(err.status, "SoException"),
            "ErrorMessage": err.message, "ErrorSource": ERROR_SOURCE}
    headers = dict(err.headers)
    if err.status == 401:
        headers.setdefault("WWW-Authenticate", 'Basic realm="SuperOffice"')
    return json_response(body, status=err.status, headers=headers)


# -- requests ----------------------------------------------------------------------------
def _task_headers(task: Task) -> dict[str, str]:
    headers = {"ETag": etag(task.version)}
    if task.modified:
        headers["Last-Modified"] = email.utils.format_datetime(
            datetime.fromisoformat(task.modified).astimezone(UTC), usegmt=True)
    return headers


def _task_id(raw: str) -> str:
    """The store id of a path id: the canonical integer, or NotFound."""
    if not _INT_ID.fullmatch(raw) or int(raw) > MAX_ID:
        raise service.not_found(raw)
    return str(int(raw))


async def _read_change(request: web.Request, ctx: Ctx) -> tuple[str, Any]:
    """The body as ``(kind, payload)`` for :func:`~gateway.apis.superoffice_rules.put_mutation`."""
    ctype, body = await read_body(request, BODY_TYPES)
    if ctype in ("application/xml", "text/xml"):
        return "fields", carrier.fields_from_xml(await decode_xml(body))
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
@takes_turns
async def list_tasks(request: web.Request) -> web.StreamResponse:
    options = parse_list_options(request.query, carrier.state_name)
    ctx = service.context(request, body_format=options.format)
    ids, _ = await store_of(request).find_ids(
        STYLE, Query(options.where, options.order, options.top + 1, options.skip))
    more = options.top > 0 and len(ids) > options.top
    base = f"{request.scheme}://{request.host}{request.path.rsplit('/BatchTask', 1)[0]}"
    next_link = None
    if more:
        query = {k: v for k, v in request.query.items() if k.casefold() != "$skip"}
        query["$skip"] = str(options.skip + options.top)
        next_link = str(request.url.with_query(query))
    head = {"odata.metadata": f"{base}/$metadata#{odata.ENTITY_SET}", "odata.nextLink": next_link}
    return await service.respond_list(
        request, ctx, ids[:options.top], lambda t: service.carrier_for(ctx, t, options.select, with_rights=False),
        root="BatchTaskList", envelope=lambda value: {**head, "value": value})


async def metadata(request: web.Request) -> web.Response:
    """The CSDL document, in XML whatever the Accept says: OData 3 has no other form of it,
    and this style answers unknown or misspelled types rather than refusing them."""
    return web.Response(body=odata.metadata_document(), content_type=odata.METADATA_TYPE, charset="utf-8",
                        headers={"DataServiceVersion": odata.DATA_SERVICE_VERSION, "Content-Language": "en"})


async def create_task(request: web.Request) -> web.Response:
    ctx = service.context(request)
    kind, payload = await _read_change(request, ctx)
    if kind != "fields":
        raise errors.BadRequest("a new BatchTask is created from a BatchTaskInfo, not a patch")
    return service.respond(ctx, await service.create(request, ctx, payload), root="int")


async def get_task_or_state(request: web.Request) -> web.StreamResponse:
    key = request.match_info["id"]
    ctx = service.context(request)
    if not key.isdigit():  # /BatchTask/{state}: the user tasks in that state
        state = _state_path(key)
        async with caller_turn(request):
            ids = await service.find(request, state=state, system=False)
            return await service.respond_list(request, ctx, ids, lambda t: service.carrier_for(ctx, t),
                                              root="ArrayOfBatchTaskInfo")
    task = await store_of(request).get(STYLE, _task_id(key))
    if task is None:
        raise service.not_found(key)
    since = service.http_date(request, "If-Modified-Since")
    headers = _task_headers(task)
    if since is not None and task.modified and \
            datetime.fromisoformat(task.modified).replace(microsecond=0) <= since:
        return web.Response(status=304, headers={"Content-Language": "en", **headers})
    return service.respond(ctx, service.carrier_for(ctx, task, service.select(request)), headers=headers)


def _state_path(key: str) -> str:
    try:
        if not key.isalpha():  # a number is an id; " 1" is neither
            raise errors.BadRequest(key)
        return carrier.state_name(key)
    except errors.BadRequest:
        raise errors.BadRequest(f"{key[:40]!r} is neither a BatchTask id nor a BatchTaskState; states: "
                                + ", ".join(carrier.STATES)) from None


async def put_task(request: web.Request) -> web.Response:
    ctx = service.context(request)
    task_id = _task_id(request.match_info["id"])
    kind, payload = await _read_change(request, ctx)
    task = await service.update(request, ctx, task_id, kind, payload)
    return service.respond(ctx, service.carrier_for(ctx, task), headers=_task_headers(task))


async def delete_task(request: web.Request) -> web.Response:
    ctx = service.context(request)
    await service.delete(request, ctx, _task_id(request.match_info["id"]))
    return web.Response(status=204, headers={"Content-Language": "en"})


async def stop_task(request: web.Request) -> web.Response:
    ctx = service.context(request)
    return service.respond(ctx, await service.stop(request, ctx, _task_id(request.match_info["id"])), root="boolean")


# -- wiring -----------------------------------------------------------------------------------
def _routes(prefix: str, tag: str, r: web.UrlDispatcher) -> None:
    base = f"{prefix}/api/v1"
    r.add_get(f"{base}/$metadata", metadata, name=f"{STYLE}:metadata{tag}")
    for slash in ("", "/"):  # superoffice-python-sdk's create() posts to ".../BatchTask/"
        r.add_get(f"{base}/BatchTask{slash}", list_tasks, name=f"{STYLE}:list{tag}{slash and ':slash'}")
        r.add_post(f"{base}/BatchTask{slash}", create_task, name=f"{STYLE}:create{tag}{slash and ':slash'}")
    r.add_get(f"{base}/BatchTask/{{id}}", get_task_or_state, name=f"{STYLE}:get{tag}")
    r.add_put(f"{base}/BatchTask/{{id}}", put_task, name=f"{STYLE}:put{tag}")
    r.add_delete(f"{base}/BatchTask/{{id}}", delete_task, name=f"{STYLE}:delete{tag}")
    r.add_post(f"{base}/BatchTask/{{id}}/Stop", stop_task, name=f"{STYLE}:stop{tag}")
    agents.add_routes(r, base, tag)


def setup(app: web.Application) -> None:
    zone = carrier.find_zone(app[CONFIG].superoffice.time_zone)
    if zone is None:
        raise ConfigError(f"superoffice.time_zone: unknown time zone {app[CONFIG].superoffice.time_zone!r}")
    app[BASE_ZONE] = zone
    r = app.router
    sessions.add_routes(r, name_prefix=STYLE)
    _routes("", "", r)
    _routes("/{tenant:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}}", ":tenant", r)


def import_task(doc: Any, now: str) -> tuple[str, dict[str, Any]]:
    """The id and stored document of an imported BatchTaskInfo (``taskgate import``)."""
    if not isinstance(doc, dict):
        raise errors.BadRequest("a BatchTaskInfo is a JSON object")
    fields = carrier.canonical(doc)
    task_id = fields.get("Id")
    if not isinstance(task_id, int) or isinstance(task_id, bool) or not 0 < task_id <= MAX_ID:
        raise errors.BadRequest("a BatchTaskInfo needs a positive integer Id")
    return str(task_id), rules.new_batch_task(fields, task_id, now, zone=Zone(UTC),
                                              owner=fields.get("AssociateId"))


async def prepare(store: Any) -> None:
    """Indexes for the list filters and the Agents searches."""
    await store.ensure_indexes(STYLE, INDEXED_FIELDS)
    await store.ensure_owner(STYLE, rules.OWNER_FIELD)
