"""The dashboard's live updates: ``GET /ui/live``, a Server-Sent Events stream of HTML.

Each open page holds one stream, for the tasks it shows (``?keys=``: each task's
:func:`gateway.ui.pages.live_key`, at most :data:`MAX_KEYS`). When one of them changes, the
stream sends an event named after the task whose data is the task's row in the list,
rendered on the server; htmx's SSE extension swaps it into the row of that name
(``sse-swap``), and a task's page fetches its document and timeline again on it
(``hx-trigger="sse:…"``). Nothing polls: the page waits on its stream, and the stream on
the changes the store commits.

:class:`LiveHub` follows the process's change feed (:mod:`gateway.events.feed`: every
process's commits, from the audit trail, in order) as one subscriber, keeps those of tasks some page shows,
coalesces them per task, reads each such task once (whatever the number of pages showing
it), renders its row once, and hands the event to each stream showing it whose user may
read the task by its style's rule. A change to a task no page shows costs one hash. A stream's queue is
bounded (:data:`QUEUE`): a page that cannot keep up is closed, and its browser reconnects
(one whose client stopped reading, its write waiting, has its connection aborted).
The number of streams is bounded by ``ui.max_live_streams`` (503 beyond), and one user's
by ``ui.max_live_streams_per_user`` (429 beyond). Streams end
when the server starts its graceful stop.

A list page's stream also says which list it shows (``?list=``: the list's query string).
A task created after the page was loaded is read once, and each list stream whose user
may read it and whose filters (style, status, owner, text) it matches is told: on the
first page sorted newest first (the default) the task's row is sent as ``new-row``, which
htmx puts at the top of the table, and the stream follows that task from then on (at most
:data:`MAX_ADDED` rows a stream); in any other sort or page, or beyond that bound, the
stream sends ``new-tasks``, a notice of how many new tasks match, with the link that shows
them. A round reads at most :data:`NEW_PER_ROUND` new tasks (the newest); when more were
created at once, list pages get a notice that more may match.

Must hold no SQL and no vendor rule (:mod:`gateway.ui.views` has the read rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web

from gateway import errors
from gateway.audit import logger
from gateway.auth import Principal
from gateway.context import CONFIG, FEED, STORE, TRAFFIC, client_left
from gateway.events.feed import END_SHUTDOWN, Ended, Feed, Selection
from gateway.model import Store, Task
from gateway.seats import Seats
from gateway.ui import pages, views

__all__ = ["MAX_KEYS", "MAX_ADDED", "NEW_PER_ROUND", "Listing", "LiveHub", "HUB", "live", "live_ctx", "sse_event",
           "QUEUE", "KEEPALIVE_SECONDS", "LINGER_SECONDS"]

#: events a stream may have waiting; a page further behind is closed (it reconnects)
QUEUE = 256
#: a comment this often keeps proxies from closing an idle stream
KEEPALIVE_SECONDS = 15.0
#: tasks one stream may follow (a list page shows 50)
MAX_KEYS = 100
#: rows of new tasks one list page is sent (and then follows); more are counted in its notice
MAX_ADDED = 50
#: new tasks the hub reads in one round; beyond them list pages are told that more may match
NEW_PER_ROUND = 100
_KEY = re.compile(r"t[0-9a-f]{20}")
_TICK = 1.0  # how often a waiting stream looks whether the server is stopping or its client left
#: how long the hub lets changes gather after one arrives: a task changed many times in that
#: while is read, rendered and sent once (pages still see a change well within a second)
LINGER_SECONDS = 0.1


def sse_event(name: str, data: str, event_id: int | None = None) -> bytes:
    """One Server-Sent Event: each line of *data* its own ``data:`` field."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {name}")
    lines += [f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class Listing:
    """The list a page shows: its filters, the SuperOffice associate its owner filter names,
    and whether a new task that matches goes to its top."""

    filters: views.Filters
    associate: int | None

    @property
    def top(self) -> bool:
        return views.adds_at_top(self.filters)


@dataclass(eq=False)
class _Stream:
    who: Principal
    keys: set[str]
    listing: Listing | None = None
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    added: int = 0  # rows of new tasks sent
    new: int = 0  # new tasks counted in the notice
    abort: Callable[[], None] | None = None  # ends the connection at once
    writing: bool = False  # a write to the connection is waiting for its client

    def send(self, event: bytes | None) -> bool:
        """Queue *event*; False when the page is too far behind (it is then closed)."""
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            return False

    def close(self) -> None:
        """End the stream: what waits is dropped, and the end is the next thing it reads;
        a stream whose write is stuck on a client that does not read has its connection
        aborted, so that it holds neither a request nor the graceful stop."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        if self.writing and self.abort is not None:
            self.abort()


class LiveHub:
    """Committed changes in, one event per changed task out to every stream that may read it."""

    def __init__(self, store: Store, max_streams: int, max_per_user: int = 0) -> None:
        self._store = store
        self._seats = Seats(max_streams, max_per_user, "live pages")
        self._streams: set[_Stream] = set()
        self._watched: dict[str, set[_Stream]] = {}  # a task's live key → the streams showing it
        self._pending: dict[tuple[str, str], int] = {}  # (style, id) → the last sequence number heard
        self._lists: set[_Stream] = set()  # the streams of list pages
        self._created: dict[tuple[str, str], int] = {}  # tasks created while a list page is open
        self._fresh: set[tuple[str, str]] = set()  # the created tasks of the round being sent
        self._wake = asyncio.Event()
        self._open = asyncio.Event()  # set while a page is open

    @property
    def streams(self) -> int:
        return len(self._streams)

    def join(self, who: Principal, keys: frozenset[str], listing: Listing | None = None) -> _Stream:
        self._seats.take(who.name)
        stream = _Stream(who, set(keys), listing)
        self._streams.add(stream)
        if listing is not None:
            self._lists.add(stream)
        self._open.set()
        for key in keys:
            self._watched.setdefault(key, set()).add(stream)
        return stream

    def leave(self, stream: _Stream) -> None:
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        self._lists.discard(stream)
        self._seats.give_back(stream.who.name)
        for key in stream.keys:
            watching = self._watched.get(key)
            if watching is not None:
                watching.discard(stream)
                if not watching:
                    del self._watched[key]

    def heard(self, style: str, task_id: str, seq: int, action: str = "updated") -> None:
        """A change of the feed: remembered when a page shows its task, or when it creates
        a task while a list page is open."""
        task = (style, task_id)
        if (self._watched and pages.live_key(style, task_id) in self._watched) or task in self._fresh \
                or task in self._created:  # shown, or just created and maybe added to a page
            self._pending[task] = seq
            self._wake.set()
        if action == "created" and self._lists:
            self._created[task] = seq
            self._wake.set()

    async def follow(self, feed: Feed) -> None:
        """Forever: while pages are open, hear every event of the process's change feed
        (every process's commits, in order) as one subscriber, resuming where an end left
        it; with no page open, the hub is no subscriber at all."""
        every = Selection(access={style: None for style in views.VIEWS})  # each page's user is judged here
        while True:
            await self._open.wait()
            sub = feed.subscribe(None, every)
            try:
                while self._streams:
                    try:
                        frames = await sub.next(_TICK)
                    except Ended as end:
                        feed.unsubscribe(sub)
                        if end.reason == END_SHUTDOWN:
                            return
                        sub = feed.subscribe(end.last_id, every)
                        continue
                    for frame in frames:
                        event = json.loads(frame.partition(b"\ndata: ")[2])
                        self.heard(event["style"], event["task_id"], event["id"], event["action"])
            finally:
                feed.unsubscribe(sub)
            if not self._streams:
                self._open.clear()

    async def run(self) -> None:
        """Forever: send the tasks changed since the last round (at most one round per
        :data:`LINGER_SECONDS`), each read and rendered once."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(LINGER_SECONDS)
            self._wake.clear()
            created, self._created = self._created, {}
            pending, self._pending = self._pending, {}
            if created:
                await self._send_created(created)
            for (style, task_id), seq in pending.items():
                try:
                    task = await self._store.get(style, task_id)
                except errors.TaskgateError:  # the database refused a read: the next change tries again
                    continue
                self._publish(style, task_id, seq, task)

    async def _send_created(self, created: dict[tuple[str, str], int]) -> None:
        """Each new task to the list pages it belongs on (a row at the top, or the count of
        their notice); changes heard meanwhile are sent by the next round."""
        newest = list(created.items())[-NEW_PER_ROUND:]
        many = len(created) > NEW_PER_ROUND
        self._fresh = {task for task, _ in newest}
        try:
            noticed: set[_Stream] = set()
            for (style, task_id), seq in newest:
                try:
                    task = await self._store.get(style, task_id)
                except errors.TaskgateError:
                    continue
                if task is not None:
                    noticed |= self._offer(task, seq)
            for stream in list(self._lists if many else noticed):
                listing = stream.listing
                assert listing is not None
                self._send(stream, sse_event("new-tasks", pages.render_new_tasks(stream.new, listing.filters, many)))
        finally:
            self._fresh = set()

    def _offer(self, task: Task, seq: int) -> set[_Stream]:
        """*task*, just created, to each list page it matches: its row at the top, or one
        more in the page's notice (those pages are returned)."""
        key = pages.live_key(task.style, task.id)
        row: bytes | None = None
        noticed = set()
        for stream in list(self._lists):
            listing = stream.listing
            if listing is None or key in stream.keys or not views.may_read(stream.who, task) or not \
                    views.matches(listing.filters, stream.who, task, owner_associate=listing.associate):
                continue
            if listing.top and stream.added < MAX_ADDED:
                if row is None:
                    row = sse_event("new-row", pages.render_new_row(views.row_of(task)), seq)
                stream.added += 1
                stream.keys.add(key)
                self._watched.setdefault(key, set()).add(stream)
                self._send(stream, row)
            else:
                stream.new += 1
                noticed.add(stream)
        return noticed

    def _send(self, stream: _Stream, event: bytes) -> None:
        if not stream.send(event):
            self.leave(stream)
            stream.close()

    def _publish(self, style: str, task_id: str, seq: int, task: Task | None) -> None:
        key = pages.live_key(style, task_id)
        watching = self._watched.get(key)
        if not watching:
            return
        if task is None:
            html = pages.render_deleted(style, task_id)
        else:
            html = pages.render_row(views.row_of(task))
        event = sse_event(key, html, seq)
        for stream in list(watching):
            # a deleted task: only whoever could read every task of its style is told
            readable = views.may_read(stream.who, task) if task is not None else \
                views.may_read_style(stream.who, style)
            if readable:
                self._send(stream, event)

    def close_all(self) -> None:
        for stream in list(self._streams):
            self.leave(stream)
            stream.close()


HUB = web.AppKey("ui_live_hub", LiveHub)


@pages.page_handler
async def live(request: web.Request) -> web.StreamResponse:
    """``GET /ui/live``: the stream of the signed-in user's page."""
    who = await pages.signed_in(request)
    if who is None:
        raise errors.Unauthorized("sign in first")
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
               "X-Content-Type-Options": "nosniff"}
    if request.method == "HEAD":  # the headers, and no stream
        return web.Response(headers=headers)
    raw = request.query.get("keys", "")
    keys = frozenset(k for k in raw.split(",") if k)
    if len(keys) > MAX_KEYS or not all(_KEY.fullmatch(k) for k in keys):
        raise errors.BadRequest(f"keys must be at most {MAX_KEYS} tasks' live keys, comma-separated")
    listing = None
    if "list" in request.query:
        if len(request.query["list"]) > 1000:
            raise errors.BadRequest("list must be a list page's query string, at most 1000 characters")
        filters = views.parse_filters(dict(parse_qsl(request.query["list"])))
        listing = Listing(filters, await pages.owner_associate(request, filters))
    hub = request.app[HUB]
    stream = hub.join(who, keys, listing)
    transport = request.transport
    stream.abort = transport.abort if transport is not None else None
    traffic = request.app[TRAFFIC]
    try:
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await response.write(b"retry: 1000\n: live\n\n")
        idle = 0.0
        while not traffic.draining:
            try:
                event = await asyncio.wait_for(stream.queue.get(), _TICK)
            except TimeoutError:
                if client_left(request):
                    break  # the tab was closed: its place comes back now, not at the next keep-alive
                idle += _TICK
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    await _write(response, stream, b": keep-alive\n\n")
                continue
            if event is None:
                break
            idle = 0.0
            await _write(response, stream, event)
    except ConnectionError:
        pass
    finally:
        hub.leave(stream)
    return response


async def _write(response: web.StreamResponse, stream: _Stream, data: bytes) -> None:
    stream.writing = True  # a close meanwhile aborts the connection if this write does not finish
    try:
        await response.write(data)
    finally:
        stream.writing = False


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub of *app*, listening to its store from start-up to shutdown."""
    hub = LiveHub(app[STORE], app[CONFIG].ui.max_live_streams, app[CONFIG].ui.max_live_streams_per_user)
    app[HUB] = hub
    app[TRAFFIC].on_drain(hub.close_all)  # pages end when the drain begins, not at its timeout
    tasks = [asyncio.create_task(hub.run(), name="taskgate-ui-live"),
             asyncio.create_task(hub.follow(app[FEED]), name="taskgate-ui-feed")]
    try:
        yield
    finally:
        hub.close_all()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        logger.debug("ui.live stopped")
