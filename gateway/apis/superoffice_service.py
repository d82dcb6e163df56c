"""What SuperOffice's two fronts share: its REST routes (:mod:`gateway.apis.superoffice`)
and its Agents calls (:mod:`gateway.apis.superoffice_agents`) are two faces of one
service, ``IBatchAgent``, and this module is that service.

Owns the per-request context (the caller, ``SO-TimeZone``, the language headers, the
media type answered with), the carrier answered in JSON or XML with the caller's rights,
``?$select=``, the write preconditions, and the BatchTask operations on the store that
both fronts call: create, find, update, stop and delete. Must not register routes or
know a front's URLs, and must not decide a rule itself: what a caller may change or do is
:mod:`gateway.apis.superoffice_rules`, the carrier's shape :mod:`gateway.apis.superoffice_carrier`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis import superoffice_carrier as carrier
from gateway.apis import superoffice_rules as rules
from gateway.apis.superoffice_carrier import Zone
from gateway.apis.superoffice_odata import parse_select
from gateway.apis.superoffice_rules import Caller
from gateway.clock import now_iso
from gateway.codecs import json_response, negotiate, parse_http_date, parse_if_match, xml_response
from gateway.context import CONFIG, STORE, principal, request_id
from gateway.model import Task
from gateway.query import And, Compare, Expr, Query, Sort
from gateway.streaming import answer_list, json_list, task_parts, xml_list
from schemas.superoffice import FIELDS

__all__ = ["STYLE", "BASE_ZONE", "MAX_ID", "Ctx", "context", "respond", "respond_list", "carrier_for", "select",
           "http_date", "not_found", "create", "find", "update", "stop", "delete"]

STYLE = "superoffice"
MAX_ID = 2**31 - 1  # ids are int32 in every SuperOffice carrier
BASE_ZONE = web.AppKey("superoffice_base_zone", tzinfo)
_OFFERED = ("application/json", "text/json", "application/xml", "text/xml",
            "application/json-patch+json", "application/merge-patch+json")
_LANGUAGE = re.compile(r"\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"q=(0(\.[0-9]{0,3})?|1(\.0{0,3})?)", re.IGNORECASE)


def not_found(task_id: Any) -> errors.NotFound:
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


def context(request: web.Request, *, body_format: str | None = None) -> Ctx:
    """The request's context; *body_format* (``$format``: ``json`` or ``xml``) overrides Accept."""
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


def respond(ctx: Ctx, value: Any, *, root: str = "BatchTaskInfo", status: int = 200,
            headers: dict[str, str] | None = None) -> web.Response:
    """*value* in the negotiated type; in XML its root element is *root*."""
    headers = {"Content-Language": "en", **(headers or {})}
    if ctx.out in ("application/xml", "text/xml"):
        return xml_response(carrier.to_xml(root, value), status=status, headers=headers, content_type=ctx.out)
    return json_response(value, status=status, headers=headers, content_type=ctx.out)


def respond_list(request: web.Request, ctx: Ctx, ids: Sequence[str], shape: Callable[[Task], Any], *,
                 root: str, envelope: Callable[[list[Any]], Any] = lambda items: items,
                 headers: dict[str, str] | None = None) -> Awaitable[web.StreamResponse]:
    """The tasks *ids* name, each as *shape* makes it, in *envelope* (the list itself, or
    an object holding it), as :func:`respond` would answer it, streamed
    (:mod:`gateway.streaming`); in XML the root element is *root*."""
    headers = {"Content-Language": "en", **(headers or {})}
    if ctx.out in ("application/xml", "text/xml"):
        body = xml_list(lambda items: carrier.to_xml(root, envelope(items)),
                        lambda item: carrier.to_xml("BatchTaskInfo", item), ctx.out)
    else:
        body = replace(json_list(envelope), content_type=ctx.out)
    return answer_list(request, task_parts(request.app[STORE].read_chunks(STYLE, ids)), shape, body, headers=headers)


def carrier_for(ctx: Ctx, task: Task, members: tuple[str, ...] | None = None, *,
                with_rights: bool = True) -> dict[str, Any]:
    """The task as the caller sees it; list rows (archive rows) carry no rights."""
    out = carrier.view(task.doc, ctx.zone)
    if with_rights:
        out.update(rules.rights(ctx.caller, task.doc))
    return {k: out[k] for k in members} if members else out


def select(request: web.Request) -> tuple[str, ...] | None:
    """``?$select=`` of a call that answers whole carriers."""
    raw = request.query.get("$select")
    return parse_select(raw, (*FIELDS, "TableRight", "FieldProperties")) if raw else None


# -- preconditions -----------------------------------------------------------------------
def http_date(request: web.Request, name: str) -> datetime | None:
    """An HTTP-date header; an invalid one is ignored, as RFC 9110 §13.1.4 requires."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    return parse_http_date(raw)


def _preconditions(request: web.Request) -> dict[str, Any]:
    """``If-Match`` and ``If-Unmodified-Since`` as the store's write conditions."""
    if_match = request.headers.get("If-Match")
    return {"if_match": parse_if_match(if_match),  # with If-Match, If-Unmodified-Since is ignored (RFC 9110)
            "unmodified_since": None if if_match is not None else http_date(request, "If-Unmodified-Since")}


# -- the operations ----------------------------------------------------------------------
async def create(request: web.Request, ctx: Ctx, raw: dict[str, Any]) -> int:
    """A new task from carrier members; its id is the next free one."""
    if not ctx.caller.is_admin or ctx.caller.read_only:
        raise errors.Forbidden("only an administrator may create batch tasks")
    doc = rules.new_batch_task(raw, 0, now_iso(), zone=ctx.zone, owner=ctx.caller.associate_id)
    task = await request.app[STORE].create_numbered(STYLE, lambda n: {**doc, "Id": n}, actor=ctx.caller.name,
                                                    request_id=request_id(request), max_id=MAX_ID)
    return int(task.id)


async def find(request: web.Request, *, state: str | None = None, system: bool | None = None,
               name: str | None = None, associates: list[int] | None = None) -> list[str]:
    """The ids of the tasks matching the Agents' criteria, by id (read them with
    :func:`respond_list`). ``State All`` is the vendor's match-any value."""
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
    ids, _ = await request.app[STORE].find_ids(STYLE, Query(where, (Sort("$.Id"),)))
    return ids


async def update(request: web.Request, ctx: Ctx, task_id: str, kind: str, payload: Any) -> Task:
    """A PUT's change (see :func:`~gateway.apis.superoffice_rules.put_mutation`), stored."""
    mutate = rules.put_mutation(kind, payload, zone=ctx.zone, strict=request.app[CONFIG].superoffice.strict_readonly,
                                caller=ctx.caller, task_id=int(task_id))
    try:
        return await request.app[STORE].update(STYLE, task_id, mutate, actor=ctx.caller.name,
                                               request_id=request_id(request), **_preconditions(request))
    except errors.NotFound:
        raise not_found(task_id) from None


async def delete(request: web.Request, ctx: Ctx, task_id: str) -> None:
    if not ctx.caller.is_admin or ctx.caller.read_only:
        raise errors.Forbidden("only an administrator may delete batch tasks")
    try:
        await request.app[STORE].delete(STYLE, task_id, actor=ctx.caller.name, request_id=request_id(request),
                                        **_preconditions(request))
    except errors.NotFound:
        raise not_found(task_id) from None


async def stop(request: web.Request, ctx: Ctx, task_id: str) -> bool:
    """Whether the task was stopped (see :func:`~gateway.apis.superoffice_rules.stop_mutation`)."""
    outcome: list[bool] = []
    try:
        await request.app[STORE].update(STYLE, task_id, rules.stop_mutation(ctx.caller, int(task_id), outcome),
                                        actor=ctx.caller.name, request_id=request_id(request))
    except errors.NotFound:
        raise not_found(task_id) from None
    return outcome[0]
