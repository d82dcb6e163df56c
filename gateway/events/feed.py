"""The change feed: every committed change as an event, in commit order, from the audit trail.

An event is one audit row (:class:`~gateway.model.Change`): its id is the row's sequence
number, and it carries the style, task id, version, action, actor, time, request id and
the RFC 6902 patch old → new (:func:`event_json`). The undo patch and the client's
address stay in the trail. The patch of a ``created`` event adds every member of the new
document, so a follower that starts from a task's creation (or from a list, at a
version) knows every later state of the task from the events alone; nothing larger than
the change itself is sent.

One :class:`Feed` per process follows the audit table: it reads the rows after the last
one it published, every ``events.poll_seconds``, at once when this process's store
commits (:meth:`~gateway.model.Store.on_commit`), and at once when the store hears that
another gateway did (:meth:`~gateway.model.Store.on_other_commit`: PostgreSQL's
notification). A commit of this process that follows the last published row directly is
published from the listener without a read; rows that another process (a second
``taskgate serve`` on the file, a worker, another gateway) committed are found by the
read, in sequence order. Sequence numbers are allocated inside the write transaction
and SQLite lets one writer commit at a time, so a row with a lower number never commits
after one with a higher number: following ``seq > last`` misses nothing, and a change
that did not commit has no row and no event. While nobody subscribes (no stream, no open
dashboard page) the feed encodes nothing and reads no row: its position moves on with each
commit of this process and, at each poll, to the newest seq; the window is emptied, so a
stream that resumes from before it reads the trail.

Published events are kept in one window shared by every subscriber (at most
``events.buffer_events`` events and ``events.buffer_bytes`` bytes of encoded frames), so
memory does not grow with the number of clients or with a client's lag. A
:class:`Subscription` is a position in the feed: one that resumes from before the window
reads the trail a page at a time until it reaches the window, then takes events from the
window. One that the window has passed (a client that stopped reading) is ended with
the reason ``behind`` and the id it last took, so that it can resume from there.

Pushing an event costs little per subscriber: its frame is encoded once, when it is
published; subscribers are woken together a moment after a commit (so a burst goes out in
one write each; under a steady flow, at most every 100 ms); and one that is waiting with
every event taken is not woken at all for events of the styles its caller reads whole
(every task of them): the feed joins the frames once per position and selection and
writes the same bytes to each such connection
(:data:`Push`), as long as the connection holds little unsent. Events of a style the
caller reads by a rule on the task's document (webMethods for a non-admin) still wake the
stream, which applies the rule.

This module does no HTTP (:mod:`gateway.events.sse` is the stream) and holds no SQL: it
reads through the store contract.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import structlog

from gateway.events.judging import Judging
from gateway.events.published import Ended, Event, Key, Push, Selection, deleted_document, event_json, frame
from gateway.model import Change, Doc, Store

__all__ = ["Event", "Feed", "Subscription", "Ended", "Selection", "Key", "Push", "event_json", "frame", "CATCH_UP_PAGE",
           "READ_PAGE", "READ_BYTES", "TAKE_EVENTS", "TAKE_BYTES", "END_BEHIND", "END_SHUTDOWN", "END_RESET",
           "END_DELETED", "CUT_GRACE_SECONDS"]

_log = structlog.get_logger("taskgate.events")

#: most audit rows one subscription reads per query while it catches up from before the window
CATCH_UP_PAGE = 100
#: audit rows the feed reads per query while it follows the trail, and their most bytes
#: (patch and undo; the row that passes them is left to the next query)
READ_PAGE = 500
READ_BYTES = 4 * 2**20
#: most events and bytes of frames one :meth:`Subscription.next` hands over at once
TAKE_EVENTS = 256
TAKE_BYTES = 256 * 1024
#: subscribers of one process reading the trail at once (the others wait their turn)
_CATCHING_UP = 4
#: how long subscribers are left to sleep after an event, so that a burst of commits reaches
#: each of them in one write rather than one write per commit
_LINGER_SECONDS = 0.01
#: the shortest time between two wake-ups of the subscribers; under a steady flow of events
#: (at least _BUSY_EVENTS between two wake-ups), the longer one: each wake-up writes to every
#: stream, and fewer, larger writes cost the server and the clients less per event
_WAKE_INTERVAL = 0.025
_BUSY_WAKE_INTERVAL = 0.1
_BUSY_EVENTS = 32
#: bytes of frames one turn of the event loop writes to the streams: a wake-up that writes
#: to many streams goes on in the turns after, so that a burst of writes (a 100 ms flow of
#: events times a hundred streams is megabytes) does not hold every request up behind it
_WAKE_SLICE_BYTES = 512 * 1024
#: most events one wake-up writes to a stream itself (and at most about TAKE_BYTES)
_PUSH_EVENTS = 1024
#: seconds a subscription ended while its client is not reading gets to take its last
#: event, before its connection is aborted
CUT_GRACE_SECONDS = 2.0
END_BEHIND = "behind"
END_SHUTDOWN = "shutdown"
#: a test namespace's feed restarted (reset, restore) or went (deleted): its ids begin again,
#: so such an end says to resume from 0 (:meth:`Feed.restart`)
END_RESET = "reset"
END_DELETED = "deleted"


class Subscription:
    """One subscriber's position in the feed; :meth:`next` hands over its next events."""

    def __init__(self, feed: Feed, since: int, selection: Selection, abort: Callable[[], None] | None,
                 push: Push | None = None) -> None:
        self._feed = feed
        self.selection = selection
        #: the selection's :meth:`Selection.key`; with *push*, the feed writes new events to
        #: the subscriber itself while it waits (see :meth:`Feed._wake_subscribers`)
        self.key = selection.key()
        self.push = push
        #: the id of the last event taken (handed over or filtered out): where its client
        #: resumes once what was handed over is written
        self.cursor = since
        self._wake = asyncio.Event()
        self._ended: str | None = None
        self._end_id: int | None = None  # where to resume, when not the cursor (a restarted feed)
        self._abort = abort
        self._catching_up = not feed.covers(since)  # reads the trail until it reaches the window
        #: set by the stream while it writes: an end then gives it CUT_GRACE_SECONDS, then aborts
        self.writing = False
        #: waiting for the feed with every event taken: events it does not want pass it by unwoken
        self.idle = False

    @property
    def ended(self) -> str | None:
        return self._ended

    def _notify(self) -> None:
        self._wake.set()

    def end(self, reason: str, resume_at: int | None = None) -> None:
        """End the subscription: the next :meth:`next` raises :class:`Ended`, with
        *resume_at* (else the cursor) as the id to resume from. A client that is not taking
        what was written to it has its connection aborted after a grace."""
        if self._ended is not None:
            return
        self._ended = reason
        self._end_id = resume_at
        self._wake.set()
        if self.writing and self._abort is not None:
            asyncio.get_running_loop().call_later(CUT_GRACE_SECONDS, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        if self.writing and self._abort is not None:
            self._abort()

    async def next(self, timeout: float) -> list[bytes]:
        """The frames of the next events this subscriber may see, in order; an empty list
        when *timeout* seconds pass without one (time for a heartbeat); :class:`Ended` once
        the subscription is over."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self._ended is not None:
                raise Ended(self._ended, self.cursor if self._end_id is None else self._end_id)
            frames = await (self._catch_up() if self._catching_up else self._take())
            if frames:
                return frames
            if frames is None:  # nothing new: wait for the feed
                self._wake.clear()
                self.idle = not self._catching_up
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._wake.wait()
                except TimeoutError:
                    return []
                finally:
                    self.idle = False
            elif asyncio.get_running_loop().time() >= deadline:  # events, none of them for this subscriber
                return []

    async def _catch_up(self) -> list[bytes] | None:
        """Frames read from the trail while the position is before the feed's window: at
        most :data:`TAKE_BYTES` (and one event) at a time, read by at most
        :data:`_CATCHING_UP` subscribers of the process at once, so that resuming clients
        hold no more than that, however large the tasks are."""
        feed = self._feed
        if feed.covers(self.cursor):
            self._catching_up = False
            feed.following(self)
            return await self._take()
        sel = self.selection
        style = next(iter(sel.styles)) if len(sel.styles) == 1 else None
        out: list[bytes] = []
        size = 0
        async with feed.catching_up:
            head = feed.last  # the trail holds at least this much at the query below
            # rows of at most TAKE_BYTES in all (and one more): a hundred rows of megabyte
            # patches, parsed, held gigabytes, and rows the stream does not want fill no write
            rows = await feed.store.audit(after=self.cursor, newest_first=False, limit=CATCH_UP_PAGE, style=style,
                                          task_id=sel.task_id, max_bytes=TAKE_BYTES)
            for c in rows:
                if size >= TAKE_BYTES:  # the rest is read again next time
                    return out
                self.cursor = c.seq
                ev = Event(c.seq, c.style, c.task_id, c.action, b"")
                if sel.wants(ev) and await feed.readable(ev, sel, deleted_document(c)):
                    out.append(frame(c))
                    size += len(out[-1])
        if not rows:  # a page cut short by its bytes is not the end: only an empty one is
            self.cursor = max(self.cursor, head)  # no row it wants lies between
        return out

    async def _take(self) -> list[bytes] | None:
        feed = self._feed
        if not feed.covers(self.cursor):  # the window passed it before its wake-up did
            feed.cut_behind(self)
            return []
        events = feed.after(self.cursor)
        if not events:
            return None
        out: list[bytes] = []
        size = 0
        sel = self.selection
        for ev in events:
            if len(out) >= TAKE_EVENTS or size >= TAKE_BYTES:
                break
            self.cursor = ev.seq
            if not sel.wants(ev):
                continue
            check = sel.access[ev.style]
            if check is None or check(await feed.judging.document_of(ev)):
                out.append(ev.frame)
                size += len(ev.frame)
            if self._ended is not None:  # cut off while a document was read
                break
        return out


class Feed:
    """The process's one follower of the audit trail, and its subscribers.

    *poll_seconds*: how often the trail is read for changes this process did not commit;
    *buffer_events* and *buffer_bytes* bound the window of recent events kept for the
    subscribers (see the module's docstring)."""

    def __init__(self, store: Store, *, poll_seconds: float, buffer_events: int, buffer_bytes: int) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._max_events = buffer_events
        self._max_bytes = buffer_bytes
        self._window: collections.deque[Event] = collections.deque()
        self._bytes = 0
        self.last = 0  # the id of the last event published
        self._subscribers: set[Subscription] = set()
        self._to_wake: set[Subscription] = set()
        #: no subscriber that takes from the window has a cursor below this (see _sweep)
        self._floor = 0
        #: held by a subscriber while it reads a page of the trail (see Subscription._catch_up)
        self.catching_up = asyncio.Semaphore(_CATCHING_UP)
        self._waking: asyncio.TimerHandle | None = None
        self._continuing: asyncio.Handle | None = None  # the rest of a wake-up (_wake_some)
        self._woken_at = 0.0  # the loop's time of the last wake-up
        self._published = 0  # events published since the last wake-up
        self._interval = _WAKE_INTERVAL  # the shortest time until the next one
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: the documents the subscribers' read rules judge events by
        self.judging = Judging(store)
        #: counts the metrics read: subscriptions ended because they fell behind
        self.cut_off = 0
        #: events handed to subscribers
        self.sent = 0

    # -- lifetime ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start at the newest row of the trail, and follow it."""
        newest = await self.store.audit(limit=1)
        self.last = newest[0].seq if newest else 0
        self.store.on_commit(self._heard)
        self.store.on_other_commit(self._heard_elsewhere)
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="taskgate-events-feed")

    def stop_streams(self) -> None:
        """End every subscription (graceful shutdown): each stream sends its last id and closes."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.end(END_SHUTDOWN)

    async def restart(self, reason: str = END_RESET) -> None:
        """The trail was replaced under the feed (a test namespace's reset or restore: its
        ids begin again): every subscription ends with *reason* and 0 as the id to resume
        from, the window and the documents are dropped, and the feed follows the new trail
        from its newest row."""
        for sub in list(self._subscribers):
            sub.end(reason, resume_at=0)
        if self._waking is not None:
            self._waking.cancel()
            self._waking = None
        if self._continuing is not None:
            self._continuing.cancel()
            self._continuing = None
        self._to_wake.clear()
        self._window.clear()
        self._bytes = 0
        self.judging.forget()
        self._floor = 0
        self.last = 0  # a stream opened meanwhile starts at 0 and catches up
        head = await self.store.last_seq()
        self._window.clear()  # a commit published during the read is read again, after head
        self._bytes = 0
        self.last = head

    async def close(self, reason: str = END_SHUTDOWN) -> None:
        """Stop following; every subscription ends (*reason*: :data:`END_DELETED` ends
        them with 0 as the id to resume from, like :meth:`restart`)."""
        if reason != END_SHUTDOWN:
            for sub in list(self._subscribers):
                sub.end(reason, resume_at=0)
        self.stop_streams()
        if self._waking is not None:
            self._waking.cancel()
            self._waking = None
        if self._continuing is not None:
            self._continuing.cancel()
            self._continuing = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, since: int | None, selection: Selection,
                  abort: Callable[[], None] | None = None, push: Push | None = None) -> Subscription:
        """A position after event *since* (None: after the newest, only changes to come).
        *abort* closes the subscriber's connection at once (see :meth:`Subscription.end`);
        *push* writes frames to it without a task switch (see :meth:`_wake_subscribers`)."""
        sub = Subscription(self, self.last if since is None else since, selection, abort, push)
        if self._closed:
            sub.end(END_SHUTDOWN)
        self._subscribers.add(sub)
        if not sub._catching_up:
            self.following(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self._to_wake.discard(sub)

    # -- following the trail ------------------------------------------------------------------
    def _heard(self, changes: Sequence[Change]) -> None:
        """The store's commit listener: publish a commit that follows on directly; else read."""
        fresh = [c for c in changes if c.seq > self.last]
        if not fresh:
            return
        if not self._subscribers:
            self._pass(fresh[-1].seq)
        elif fresh[0].seq == self.last + 1:
            self._publish(fresh)
        else:  # another process committed in between: read the rows in order
            self._wake.set()

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.read()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database that fails now may answer at the next poll
                _log.warning("events.read_failed", exc_info=True)

    def _heard_elsewhere(self) -> None:
        if self._subscribers:  # else the poll moves the position on
            self._wake.set()

    def _pass(self, seq: int) -> None:
        """With nobody subscribed, move on to *seq* without reading or encoding an event: the
        window is emptied, so that a subscriber resuming from before it reads the trail."""
        self.last = seq
        self._window.clear()
        self._bytes = 0
        self.judging.forget()

    async def read(self) -> None:
        """Publish the rows committed after the last published one, in order (with nobody
        subscribed, only move on to the newest)."""
        if not self._subscribers:
            newest = await self.store.last_seq()
            if newest > self.last and not self._subscribers:  # one may have come meanwhile
                self._pass(newest)
            return
        while True:
            rows = await self.store.audit(after=self.last, newest_first=False, limit=READ_PAGE, max_bytes=READ_BYTES)
            fresh = [c for c in rows if c.seq > self.last]  # the listener may have published some meanwhile
            if fresh:
                self._publish(fresh)
            if not rows:  # a page cut short by its bytes is not the end
                return

    def _publish(self, changes: Iterable[Change]) -> None:
        window = self._window
        before = self.last
        fresh = []
        for c in changes:
            ev = Event.of(c)
            self._published += 1
            fresh.append(ev)
            window.append(ev)
            self._bytes += len(ev.frame)
            self.last = c.seq
            self.judging.published(c)
        while len(window) > 1 and (len(window) > self._max_events or self._bytes > self._max_bytes):
            self._bytes -= len(window.popleft().frame)
        if window[0].seq - 1 > self._floor:  # the window may have passed a subscriber
            self._sweep(window[0].seq - 1)
        to_wake = self._to_wake
        if len(to_wake) < len(self._subscribers):  # else each is to be woken already: nothing to decide
            wanted: dict[Key, bool] = {}  # whether a fresh event is for a selection: once per selection
            fresh_ids: set[str] | None = None  # the fresh events' task ids, for selections of one task
            for sub in self._subscribers:
                if sub in to_wake:
                    continue
                if sub.idle and sub.cursor == before:
                    key = sub.key
                    wants = wanted.get(key)
                    if wants is None:
                        if key[3] is not None:  # one task: most commits are of others, found at a glance
                            if fresh_ids is None:
                                fresh_ids = {ev.task_id for ev in fresh}
                            wants = key[3] in fresh_ids and any(sub.selection.wants(ev) for ev in fresh)
                        else:
                            wants = any(sub.selection.wants(ev) for ev in fresh)
                        wanted[key] = wants
                    if not wants:
                        sub.cursor = self.last  # none of these is for it: passed by without a wake-up
                        continue
                to_wake.add(sub)
        if to_wake and self._waking is None:
            # woken a moment later, together: commits that follow meanwhile go out in the same write;
            # and no sooner than _WAKE_INTERVAL after the last wake-up, so that under a steady flow
            # of commits each stream gets a write per interval, not one per commit
            loop = asyncio.get_running_loop()
            at = max(loop.time() + _LINGER_SECONDS, self._woken_at + self._interval)
            self._waking = loop.call_at(at, self._wake_subscribers)

    def _wake_subscribers(self) -> None:
        """Hand the events published since the last wake-up to the subscribers. One that
        waits with every event taken, and whose selection needs no document, is written to
        here, without waking its stream, up to the first event whose task's document its
        read rule needs: the frames for one position and :data:`Key` are joined once and the
        same bytes go to every subscriber that shares them (one write each). The others, one
        with an event left that needs a document, and one whose connection holds too much
        unsent, are woken."""
        self._waking = None
        self._woken_at = asyncio.get_running_loop().time()
        self._interval = _BUSY_WAKE_INTERVAL if self._published >= _BUSY_EVENTS else _WAKE_INTERVAL
        self._published = 0
        woken, self._to_wake = self._to_wake, set()
        self._wake_some(iter(list(woken)))

    def _wake_some(self, woken: Iterator[Subscription]) -> None:
        """The part of a wake-up that writes about :data:`_WAKE_SLICE_BYTES` (each
        subscriber's frames are joined again here, from its cursor); the rest of *woken*
        follows in a later turn of the event loop, so that requests are answered between."""
        self._continuing = None
        chunks: dict[tuple[int, Key], tuple[bytes, int, int]] = {}
        passed = self._window[0].seq - 1 if self._window else self.last  # before this, events are missed
        budget = _WAKE_SLICE_BYTES
        for sub in woken:
            if sub.ended is not None:
                continue
            if sub.cursor < passed and not sub._catching_up:
                self.cut_behind(sub)
                continue
            if sub.push is not None and sub.idle:
                shared = (sub.cursor, sub.key)
                chunk = chunks.get(shared)
                if chunk is None:
                    chunk = chunks[shared] = self._chunk(sub.cursor, sub.key)
                data, cursor, count = chunk
                if not data or sub.push(data):
                    sub.cursor = cursor
                    self.sent += count
                    if cursor < self.last:  # more than one chunk's worth: its stream takes the rest
                        sub._notify()
                    budget -= len(data)
                    if budget <= 0:
                        self._continuing = asyncio.get_running_loop().call_soon(self._wake_some, woken)
                        return
                    continue
            sub._notify()

    def _sweep(self, passed: int) -> None:
        """End the subscribers whose cursor is before *passed* (they missed events), and
        note the lowest cursor of the others: until the window passes that, no subscriber
        needs looking at (cursors only move on), so a commit costs no walk of them."""
        floor = self.last
        for sub in self._subscribers:
            if sub.ended is not None or sub._catching_up:
                continue
            if sub.cursor < passed:
                self.cut_behind(sub)
            elif sub.cursor < floor:
                floor = sub.cursor
        self._floor = floor

    def following(self, sub: Subscription) -> None:
        """*sub* takes from the window from here on (made so, or done catching up)."""
        if sub.cursor < self._floor:
            self._floor = sub.cursor

    def cut_behind(self, sub: Subscription) -> None:
        """End *sub*, which the window has passed (its client stopped taking events), with
        the id it last took. Found when it is woken (every subscriber that is not passed
        by is woken after the commits that move the window) or when it takes."""
        self.cut_off += 1
        _log.info("events.client_behind", last_id=sub.cursor, oldest=self._window[0].seq if self._window else 0)
        sub.end(END_BEHIND)

    def _chunk(self, cursor: int, key: Key) -> tuple[bytes, int, int]:
        """The frames after *cursor* that a subscriber with *key* gets, joined (at most
        :data:`_PUSH_EVENTS` events and about :data:`TAKE_BYTES`), the id of the last event
        taken, and how many frames there are. It stops before an event it wants whose style
        it reads by a rule on the task's document: its stream reads the document for that."""
        whole, checked, actions, task_id = key
        frames: list[bytes] = []
        size = 0
        last = cursor
        for ev in self.after(cursor, _PUSH_EVENTS):
            if len(frames) >= _PUSH_EVENTS or size >= TAKE_BYTES:
                break
            if (not actions or ev.action in actions) and (task_id is None or ev.task_id == task_id):
                if ev.style in checked:
                    break
                if ev.style in whole:
                    frames.append(ev.frame)
                    size += len(ev.frame)
            last = ev.seq
        return b"".join(frames), last, len(frames)

    # -- what subscribers read ------------------------------------------------------------------
    def covers(self, cursor: int) -> bool:
        """Whether every event after *cursor* is in the window or still to come."""
        if not self._window:
            return cursor >= self.last
        return cursor >= self._window[0].seq - 1

    def after(self, cursor: int, limit: int = TAKE_EVENTS) -> list[Event]:
        """The window's events after *cursor*, at most *limit*."""
        window = self._window
        start = bisect.bisect_right(window, cursor, key=lambda e: e.seq)
        return [window[i] for i in range(start, min(len(window), start + limit))]

    async def readable(self, ev: Event, selection: Selection, gone: Doc | None) -> bool:
        """Whether *selection*'s subscriber may read *ev*'s task: by the style's read rule,
        applied to the document *ev* is judged by (:mod:`gateway.events.judging`; *gone*,
        for a delete)."""
        check = selection.access.get(ev.style)
        if check is None:
            return ev.style in selection.access
        return check(gone if gone is not None else await self.judging.document_of(ev))
