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

import structlog
from aiohttp import web

from gateway import errors
from gateway.apis import webmethods_rules as rules
from gateway.apis.webmethods_rules import STYLE
from gateway.clock import Clock
from gateway.context import CONFIG, STORE
from gateway.model import Store, Task
from gateway.query import And, Compare, Query, Sort

__all__ = ["CLOCK", "SWEEPER", "SWEEP_BATCH", "Sweeper", "catch_up", "due_queries", "sweep", "setup"]

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


def setup(app: web.Application) -> None:
    """The clock (unless one is given) and the sweeper's lifetime."""
    if CLOCK not in app:
        app[CLOCK] = Clock()
    app.on_startup.append(_start_sweeper)
    app.on_shutdown.append(_stop_sweeper)
