"""The webMethods clock at work: the changes time owes tasks (a scheduled task starting at
its ``taskScheduleDate``, an active one expiring at its ``expireDate``), applied by a
background sweep and before a task is read.

This module owns the clock every time rule of the style reads (:data:`CLOCK`; tests put a
:class:`~gateway.clock.ManualClock` there), the one write that catches a task up, the sweep
over every due task, and the sweeper's lifetime in the app. What the clock does to a task
is the rules' (:func:`~gateway.apis.webmethods_rules.due_status`,
:func:`~gateway.apis.webmethods_rules.catch_up`); a caller's change catches the task up in
its own write (:func:`~gateway.apis.webmethods_rules.after_clock`), not here. It must not
answer HTTP, judge a caller's change, or touch SQL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import structlog
from aiohttp import web

from gateway import errors
from gateway.apis import webmethods_rules as rules
from gateway.apis.webmethods_rules import STYLE
from gateway.clock import Clock
from gateway.context import CONFIG, STORE
from gateway.metrics import METRICS
from gateway.model import Store, Task
from gateway.query import And, Compare, Query, Sort

__all__ = ["CLOCK", "SWEEPER", "SWEEP_BATCH", "SWEEP_LEASE", "Sweeper", "catch_up", "due_queries", "sweep", "setup"]

#: the clock every time rule of this style reads; tests put a ManualClock here
CLOCK = web.AppKey("webmethods_clock", Clock)
#: the most due tasks one sweep query reads at a time
SWEEP_BATCH = 500

_log = structlog.get_logger("taskgate.webmethods")


async def catch_up(store: Store, task: Task, now: str, rid: str) -> Task:
    """*task* after every change the clock owes it at *now*: one write, each change its own
    audit row by ``system``. NotFound when the task was deleted meanwhile."""
    if rules.due_status(task.doc["TaskInfo"], now) is None:
        return task
    caught = await store.write(STYLE, task.id, rules.catch_up(now), request_id=rid)
    if caught is None:  # the clock's steps never delete; a write of a missing task raises NotFound
        raise errors.NotFound(f"task {task.id!r} does not exist")
    return caught


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
            ids, _ = await store.find_ids(STYLE, query)
            progress = 0
            # a chunk at a time (a due task may hold a megabyte TaskData), each chunk's
            # writes concurrently, so that the store commits them together
            async for chunk in store.read_chunks(STYLE, ids):
                results = await asyncio.gather(*(catch_up(store, t, now, rid) for t in chunk.tasks),
                                               return_exceptions=True)
                for listed, result in zip(chunk.tasks, results, strict=True):
                    if isinstance(result, errors.NotFound):
                        continue  # deleted meanwhile
                    if isinstance(result, BaseException):
                        raise result
                    progress += result.version != listed.version
            changed += progress
            # a full batch that changed nothing would come back unchanged: stop rather than spin
            if len(ids) < SWEEP_BATCH or not progress:
                break
    return changed


#: the store lease (:meth:`~gateway.model.Store.hold`) the one sweeping process holds
SWEEP_LEASE = "webmethods-sweeper"


class Sweeper:
    """The background task that applies the clock's changes every ``sweep_interval_seconds``,
    in one process of the service: the one that holds :data:`SWEEP_LEASE`. The others
    ask for it on each interval, so that one takes over within an interval of the holder's end.
    The holder asks too, before every pass: a lease can be lost while its process lives (on
    PostgreSQL, its session ended by a database restart), and then another may hold it."""

    def __init__(self, store: Store, clock: Clock, interval: float,
                 on_start: Callable[[], None] | None = None) -> None:
        self.store, self.clock, self.interval = store, clock, interval
        self._on_start = on_start
        #: whether this process sweeps (it holds the lease)
        self.sweeping = False
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
            held = self.store.hold(SWEEP_LEASE)
            if held and not self.sweeping:
                self.sweeping = True
                _log.info("webmethods.sweeper_started", pid=os.getpid())
                if self._on_start is not None:
                    self._on_start()
            elif self.sweeping and not held:
                self.sweeping = False
                _log.warning("webmethods.sweeper_lost_lease", pid=os.getpid())
            if not self.sweeping:
                await asyncio.sleep(self.interval)
                continue
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
    gauge = app[METRICS].singletons.labels(SWEEP_LEASE)
    gauge.set(0)
    sweeper = Sweeper(app[STORE], app[CLOCK], app[CONFIG].webmethods.sweep_interval_seconds,
                      on_start=lambda: gauge.set(1))
    app[SWEEPER] = sweeper
    sweeper.start()


async def _stop_sweeper(app: web.Application) -> None:
    # on_shutdown runs before cleanup_ctx exits, so the store is still open while it stops
    if SWEEPER in app:
        await app[SWEEPER].stop()


def setup(app: web.Application) -> None:
    """The clock (unless one is given) and the sweeper's lifetime."""
    if CLOCK not in app:
        app[CLOCK] = Clock()
    app.on_startup.append(_start_sweeper)
    app.on_shutdown.append(_stop_sweeper)
