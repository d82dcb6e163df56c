"""``GET /events``: the change feed as Server-Sent Events, a taskgate extension.

Each event is one frame, ``id: <seq>`` and one ``data:`` line with the event's JSON
(:func:`gateway.events.feed.event_json`). A stream starts after ``Last-Event-ID`` (what
an EventSource sends when it reconnects) or else ``?since=``; with neither it carries
only changes to come. ``style`` (repeated or comma-separated), ``task`` and ``action``
filter; the caller sees only events of tasks it may read, by each style's read rule
(:mod:`gateway.events.access`). An idle stream gets a comment line every
``events.heartbeat_seconds``, and ``X-Accel-Buffering: no`` tells nginx not to buffer it.

A stream ends with one ``event: end`` frame whose data is ``{"reason", "last_id"}``:
``behind`` when the client fell further behind the feed than its window
(``events.buffer_events``), ``shutdown`` when the server stops. ``last_id`` is where to
resume: every event the caller may see up to it was written before the end. A client
that reads nothing is not waited for: its connection is aborted once the feed has passed
it and a short grace has run out, so that neither memory nor the graceful stop depend on it.
A process holds at most ``events.max_streams`` streams (503 beyond) and each user at most
``events.max_streams_per_user`` (429 beyond): every commit costs something per stream.

This module owns the route, its query, the stream's writing and its OpenAPI operation
(named ``events:…``; :mod:`gateway.openapi` looks the prefix up). It must not hold SQL
or a style's rule.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import structlog
from aiohttp import HttpVersion11, web

from gateway import errors
from gateway.codecs import negotiate
from gateway.context import CONFIG, REQUEST_ID, SCOPE, client_left, principal
from gateway.events.access import STYLE_NAMES, access_for
from gateway.events.feed import (
    CUT_GRACE_SECONDS,
    END_DELETED,
    END_RESET,
    TAKE_BYTES,
    Ended,
    Feed,
    Push,
    Selection,
    Subscription,
)
from gateway.events.scoped import feed_of
from gateway.openapi import param
from gateway.seats import Seats
from gateway.speedups import dumps_bytes
from schemas.common import PlainErrorSchema

__all__ = ["setup", "events", "ACTIONS", "TAG", "TAG_DESCRIPTION", "OPERATIONS", "ERRORS",
           "PATH_PARAMETERS", "RETRY_MS", "PUSH_LIMIT"]

#: the actions an event can have (the audit trail's)
ACTIONS = ("created", "updated", "deleted")
#: what an EventSource waits before reconnecting (the stream's ``retry:`` field)
RETRY_MS = 2000
#: bytes a stream's connection may hold unsent before the feed stops writing to it directly
PUSH_LIMIT = TAKE_BYTES
#: how often an idle stream looks whether its client is still there
LOOK_SECONDS = 1.0
_ID = re.compile(r"[0-9]{1,18}")
_PARAMETERS = frozenset({"since", "style", "task", "action"})
_MEDIA = "text/event-stream"
_log = structlog.get_logger("taskgate.events")
#: the streams open in this process, in all and per user (``events.max_streams`` and ``…_per_user``)
_SEATS = web.AppKey("events_seats", Seats)


def _position(request: web.Request) -> int | None:
    """``Last-Event-ID`` over ``?since=``; None when neither is given."""
    for name, raw in (("Last-Event-ID", request.headers.get("Last-Event-ID")),
                      ("since", request.query.get("since"))):
        if raw is None or (name == "Last-Event-ID" and not raw.strip()):
            continue
        if not _ID.fullmatch(raw.strip()):
            raise errors.BadRequest(f"{name} must be an event id (a whole number, 0 for the start); got {raw[:40]!r}")
        return int(raw)
    return None


def _values(request: web.Request, name: str, allowed: tuple[str, ...]) -> frozenset[str]:
    found = {v.strip() for raw in request.query.getall(name, ()) for v in raw.split(",") if v.strip()}
    unknown = sorted(found - set(allowed))
    if unknown:
        raise errors.BadRequest(f"{name} must be one of {', '.join(allowed)}; got {unknown[0][:40]!r}")
    return frozenset(found)


def _selection(request: web.Request) -> Selection:
    unknown = sorted(set(request.query) - _PARAMETERS)
    if unknown:
        raise errors.BadRequest(f"unknown parameter {unknown[0][:40]!r}; GET /events takes "
                                f"{', '.join(sorted(_PARAMETERS))}")
    tasks = request.query.getall("task", ())
    if len(tasks) > 1 or (tasks and not tasks[0]):
        raise errors.BadRequest("task names one task id, once")
    return Selection(styles=_values(request, "style", STYLE_NAMES), actions=_values(request, "action", ACTIONS),
                     task_id=tasks[0] if tasks else None, access=access_for(principal(request), STYLE_NAMES))


async def _past_head(request: web.Request, feed: Feed, since: int | None) -> None:
    """Conflict for a position past a test namespace's newest event: the id is from before
    the namespace was reset, restored or deleted (its ids began again), so no resume from
    it would be right. (On the server, a process's feed may trail another's commit by a
    poll: a position past its head is waited for.)"""
    scope = request.get(SCOPE)
    if scope is None or since is None or since <= feed.last or since <= await feed.store.last_seq():
        return
    raise errors.Conflict(f"event {since} is past the newest event ({feed.last}) of test namespace "
                          f"{scope.name!r}: the namespace was reset, restored or deleted after that id was sent, "
                          "and its ids began again; resume from 0 (Last-Event-ID: 0 or since=0)")


async def events(request: web.Request) -> web.StreamResponse:
    negotiate(request, (_MEDIA,))
    since = _position(request)
    selection = _selection(request)
    feed = await feed_of(request)
    await _past_head(request, feed, since)
    if request.method == "HEAD":
        return await _stream(request, feed, since, selection)
    seats, user = request.config_dict[_SEATS], principal(request).name
    seats.take(user)  # one user's streams are bounded: each costs something on every commit
    try:
        return await _stream(request, feed, since, selection)
    finally:
        seats.give_back(user)


async def _stream(request: web.Request, feed: Feed, since: int | None, selection: Selection) -> web.StreamResponse:
    heartbeat = request.config_dict[CONFIG].events.heartbeat_seconds
    response = web.StreamResponse(headers={
        "Content-Type": f"{_MEDIA}; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        "X-Request-ID": request.get(REQUEST_ID, "")})
    if request.method == "HEAD":  # the headers a stream would have; no stream
        await response.prepare(request)
        return response
    transport = request.transport
    chunked = request.version >= HttpVersion11
    if chunked:  # said outright, so that the feed's pushes can frame their chunks (see _pusher)
        response.enable_chunked_encoding()
    sub = feed.subscribe(since, selection, abort=transport.abort if transport is not None else None,
                         push=_pusher(transport) if chunked and transport is not None else None)
    try:
        await response.prepare(request)
        if response.compression:  # never set on this route; pushes would bypass the encoder
            sub.push = None
        await _write(response, sub, b"retry: %d\n: taskgate events after %d\n\n" % (RETRY_MS, sub.cursor))
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            try:
                # woken at least every LOOK_SECONDS: a client that left is noticed then, and
                # its seat given back, rather than at the next heartbeat's failed write
                frames = await sub.next(min(heartbeat, LOOK_SECONDS))
            except Ended as end:
                data = dumps_bytes({"reason": end.reason, "last_id": end.last_id})
                # a restarted feed's ids begin again: an EventSource is told so by the frame's
                # id, which it sends back as Last-Event-ID when it reconnects
                restart = b"id: 0\n" if end.reason in (END_RESET, END_DELETED) else b""
                async with asyncio.timeout(CUT_GRACE_SECONDS):  # a client that does not read is not waited for
                    await _write(response, sub, b"event: end\n%sdata: %s\n\n" % (restart, data))
                    await response.write_eof()
                break
            if client_left(request):
                break
            if frames:
                await _write(response, sub, b"".join(frames))
                feed.sent += len(frames)
            elif loop.time() - quiet_since < heartbeat:
                continue
            else:
                await _write(response, sub, b": heartbeat\n\n")
            quiet_since = loop.time()
    except (ConnectionError, TimeoutError):  # the client went away, or stopped reading at the end
        if transport is not None:
            transport.abort()
    except Exception:  # the trail could not be read: no error answer can follow a stream's headers
        _log.exception("events.stream_failed", request_id=request.get(REQUEST_ID, ""), last_id=sub.cursor)
        if transport is not None:
            transport.abort()  # the client reconnects with the last id it received
    finally:
        feed.unsubscribe(sub)
    return response


async def _write(response: web.StreamResponse, sub: Subscription, data: bytes) -> None:
    sub.writing = True  # an end meanwhile aborts the connection if this write does not finish
    try:
        await response.write(data)
    finally:
        sub.writing = False


def _pusher(transport: asyncio.Transport) -> Push:
    """The feed's way to write frames to this stream without waking it: one HTTP/1.1 chunk,
    straight to the connection after the stream's own writes, refused (False) once the
    connection holds :data:`PUSH_LIMIT` bytes its client has not taken (the stream's own
    write then waits for it, and a client that never reads falls behind and is cut off)."""
    def push(data: bytes) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size() > PUSH_LIMIT:
            return False
        transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        return True
    return push


def setup(app: web.Application) -> None:
    """The route, named ``events:stream``. The feed itself is made with the store
    (:func:`gateway.app.create_app`'s store context), as ``app[FEED]`` (:mod:`gateway.context`)."""
    events_config = app[CONFIG].events
    app[_SEATS] = Seats(events_config.max_streams, events_config.max_streams_per_user, "event streams")
    app.router.add_get("/events", events, name="events:stream")

# -- the OpenAPI operation -----------------------------------------------------------------------
TAG = "taskgate events"
TAG_DESCRIPTION = ("The change feed as Server-Sent Events (a taskgate extension): every committed change of a "
                   "task the caller may read, in commit order, resumable by event id")
PATH_PARAMETERS: dict[str, Any] = {}
ERRORS = {0: PlainErrorSchema}
_ERROR = {"application/json": {"schema": PlainErrorSchema}}
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("stream", "GET"): {
        "summary": "Follow task changes as Server-Sent Events",
        "description": (
            "Each event is `id: <audit sequence number>` and one `data:` line holding "
            "`{id, at, style, task_id, version, action, actor, request_id, patch}` (`patch`: RFC 6902, "
            "old to new; a `created` event's patch holds the whole document). Resumes after `Last-Event-ID`, "
            "else after `since`; with neither, only changes to come. Comment lines are heartbeats. The stream "
            "ends with `event: end`, data `{reason: behind | shutdown, last_id}`: reconnect after last_id."),
        "parameters": [
            param("since", "query", {"type": "integer", "minimum": 0},
                  "resume after this event id (0: from the start)"),
            param("Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]{1,18}$"},
                  "resume after this event id; wins over since"),
            param("style", "query", {"type": "string"}, f"only these styles ({', '.join(STYLE_NAMES)}), "
                                                          "comma-separated or repeated"),
            param("task", "query", {"type": "string"}, "only the events of the task with this id"),
            param("action", "query", {"type": "string"}, f"only these actions ({', '.join(ACTIONS)}), "
                                                           "comma-separated or repeated"),
        ],
        "responses": {
            "200": {"description": "the stream, until the client leaves, falls behind or the server stops",
                    "content": {_MEDIA: {"schema": {"type": "string"}}}},
            "400": {"description": "a bad parameter", "content": _ERROR},
            "401": {"description": "no valid credentials", "content": _ERROR},
            "409": {"description": "in a test namespace (testing on): a position past the namespace's newest "
                                   "event, from before it was reset, restored or deleted", "content": _ERROR},
            "406": {"description": "the Accept header admits no text/event-stream", "content": _ERROR},
            "429": {"description": "the caller has events.max_streams_per_user streams open already",
                    "content": _ERROR},
            "503": {"description": "the process has events.max_streams streams open already", "content": _ERROR},
        },
    },
}
