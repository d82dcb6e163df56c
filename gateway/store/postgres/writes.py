"""The task write path on PostgreSQL: one write, one transaction, the row locked.

Each write runs as the SQLite store's does (the same :func:`gateway.store.write_step.apply_write`:
preconditions, steps, diffs, audit changes), inside one READ COMMITTED transaction:

1. a numbered create takes the style's next id from ``counters`` (the row locked, so ids
   are allocated by the database, in order, never reused, across gateways);
2. ``SELECT … FOR UPDATE`` locks the task's row: concurrent changes to one task, from
   any gateway, serialize on it, and each runs against the version the last one committed;
3. the steps run in Python against that row;
4. ``audit_head`` is locked and advanced: the changes get their seqs in commit order;
5. the row, its audit rows and the counter are written, and the transaction commits.

A create racing another create of the same id (no row to lock yet) meets the primary
key, and the write runs again once, now against the row that won. A deadlock or a
serialization failure is retried likewise. A database out of reach is a 503.

In one process the writes run one at a time, in submission order (an asyncio lock), so
that commit listeners hear every commit in order and a burst of writes to one task
applies in the order it was sent; gateways write beside each other on the row locks.
Group commit (several writes in one transaction, as the SQLite store's) is not done here
yet. It must not decide what a write does: the mutation and ``apply_write`` do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
import structlog

from gateway import errors
from gateway.clock import now_iso
from gateway.model import CLIENT, IMPERSONATION, QUOTA, Change, Doc, Expect, Step, Task
from gateway.store.owners import check_quota, owner_of
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database, unreachable
from gateway.store.postgres.owned import Usage, add_usage, held
from gateway.store.rows import audit_row, is_counted, load_doc, text_bytes
from gateway.store.write_step import apply_write

__all__ = ["Write", "Writes"]

_log = structlog.get_logger("taskgate.store")
#: how often one write is run again after a race it lost (a create of the same id, a deadlock)
_ATTEMPTS = 3


def _report(event: str, **fields: object) -> None:
    try:  # a failing log sink must never stop the writer
        _log.exception(event, **fields)
    except Exception:
        pass


class Write:
    """One write (a :class:`gateway.store.write_step.PendingWrite`), its context captured when it is submitted."""

    __slots__ = ("style", "task_id", "steps", "expect", "request_id", "if_match", "unmodified_since", "created",
                 "client", "impersonation", "quota", "build", "max_id", "numbered", "given")

    def __init__(self, style: str, task_id: str | None, steps: Sequence[Step], expect: Expect, request_id: str,
                 if_match: frozenset[int] | None = None, unmodified_since: datetime | None = None,
                 created: str | None = None, build: Callable[[int], Doc] | None = None, max_id: int = 0) -> None:
        self.style, self.task_id, self.steps, self.expect = style, task_id, list(steps), expect
        self.request_id, self.if_match, self.created = request_id, if_match, created
        self.unmodified_since = unmodified_since
        self.client = CLIENT.get()
        self.impersonation = IMPERSONATION.get()
        self.quota = QUOTA.get()
        self.build, self.max_id = build, max_id
        self.numbered, self.given = task_id is None, self.steps  # a numbered create's id comes with each attempt


class Writes:
    """The write path; *keyed* and *owners* are the store's copies of each style's keyed
    fields and owner field."""

    def __init__(self, db: Database, keyed: dict[str, tuple[str, ...]], owners: dict[str, str], *,
                 now: Callable[[], str] = now_iso) -> None:
        self._db = db
        self._keyed = keyed
        self._owners = owners
        self._now = now
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[Sequence[Change]], None]] = []
        self._batch_listeners: list[Callable[[int, float], None]] = []
        self.closed = False

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        self._listeners.append(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self._batch_listeners.append(listener)

    async def close(self) -> None:
        """Let the writes already submitted finish; later ones are refused."""
        async with self._lock:
            self.closed = True

    def check_open(self) -> None:
        if self.closed:
            raise errors.InternalError("the store is closed")

    async def probe(self) -> None:
        """A transaction that takes the lock every write takes last, and changes nothing."""
        self.check_open()
        async with self._lock:
            self.check_open()
            async with self._db.transaction() as conn:
                await conn.fetchval("SELECT seq FROM audit_head FOR UPDATE")

    async def submit(self, w: Write) -> Task | None:
        """Run *w*; its task after the last step (None when deleted or absent)."""
        self.check_open()
        async with self._lock:
            self.check_open()
            started = time.monotonic()
            for attempt in range(_ATTEMPTS):
                try:
                    task, made = await self._run(w)
                    break
                except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError,
                        asyncpg.SerializationError):
                    if attempt == _ATTEMPTS - 1:
                        raise errors.Conflict(f"task {w.task_id!r} was changed by another writer meanwhile; "
                                              "try again") from None
                except errors.TaskgateError:
                    raise
                except Exception as exc:
                    if (refusal := unreachable(exc)) is not None:
                        raise refusal from None
                    raise
            if made:
                self._tell(made, time.monotonic() - started)
            return task

    def _tell(self, made: list[Change], seconds: float) -> None:
        for listener in self._listeners:
            try:
                listener(made)
            except Exception:
                _report("store.listener_failed")
        for batch_listener in self._batch_listeners:
            try:
                batch_listener(1, seconds)
            except Exception:
                _report("store.listener_failed")

    async def _run(self, w: Write) -> tuple[Task | None, list[Change]]:
        async with self._db.transaction() as conn:
            style = w.style
            number = None
            if w.numbered:  # the next id, from the locked counter
                last = await conn.fetchval(
                    "INSERT INTO counters (style, last) VALUES ($1, 0) ON CONFLICT (style) "
                    "DO UPDATE SET last = counters.last RETURNING last", style)
                number = int(last) + 1
                if number > w.max_id:
                    raise errors.Conflict(f"no integer id is left for {style} tasks (the last is {w.max_id})")
                build = w.build
                assert build is not None
                w.task_id, w.steps = str(number), [(w.given[0][0], lambda _old: build(number))]
            task_id = w.task_id
            assert task_id is not None
            row = await conn.fetchrow("SELECT version, doc, created, modified, owner, size, octet_length(doc::text) "
                                      "FROM tasks WHERE style = $1 AND id = $2 FOR UPDATE",
                                      style, task_id) if sql.storable(task_id) else None  # no row holds a NUL
            current = (row[0], load_doc(row[1]), row[2], row[3]) if row is not None else None
            at = self._now()
            try:
                task, made, text = apply_write(w, current, 1, at)
            except errors.TaskgateError:
                raise
            except Exception:  # a bug in a mutate function is this write's InternalError alone
                _report("store.mutation_failed", style=style, task_id=task_id)
                raise errors.InternalError("An internal fault occurred.") from None
            if not made:
                return task, made
            if task is not None and (sql.holds_nul(text) or not sql.storable(task_id)):
                raise errors.BadRequest(sql.NUL_REFUSED)  # jsonb (keys, every filter) cannot hold it
            # the seqs, in commit order: audit_head stays locked until this transaction commits
            head = int(await conn.fetchval("UPDATE audit_head SET seq = seq + $1 RETURNING seq", len(made)))
            made = [dataclasses.replace(c, seq=head - len(made) + 1 + n) for n, c in enumerate(made)]
            audit = [audit_row(c) for c in made]
            owner, size, usage = self._account(w, row, task, made, text, [n for _, n in audit])
            if w.quota is not None and (style, w.quota.owner) in usage:
                tasks, grows = usage[(style, w.quota.owner)]
                check_quota(w.quota, style, await held(conn, style, w.quota.owner), tasks, grows)
            await add_usage(conn, usage)
            recreated = any(c.action == "created" for c in made)
            created = current[2] if current is not None and not recreated else at
            if task is not None:
                if task.created != created:
                    task = Task(task.style, task.id, task.version, task.doc, task.modified, created)
                keys = sql.keys_value(self._keyed.get(style, ()), task.doc)
                if current is None:  # no row to lock: a create racing this one meets the primary key
                    await conn.execute("INSERT INTO tasks (style, id, version, created, modified, doc, keys, owner, "
                                       "size) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
                                       style, task_id, task.version, created, at, text, keys, owner, size)
                else:
                    await conn.execute("UPDATE tasks SET version = $3, created = $4, modified = $5, doc = $6, "
                                       "keys = $7::jsonb, owner = $8, size = $9 WHERE style = $1 AND id = $2",
                                       style, task_id, task.version, created, at, text, keys, owner, size)
            elif current is not None:
                await conn.execute("DELETE FROM tasks WHERE style = $1 AND id = $2", style, task_id)
            await conn.executemany(
                "INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, patch, undo, client, "
                "impersonator) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                [values for values, _ in audit])
            if number is not None:
                await conn.execute("UPDATE counters SET last = $2 WHERE style = $1", style, number)
            elif recreated and is_counted(task_id):
                await conn.execute("INSERT INTO counters (style, last) VALUES ($1, $2) ON CONFLICT (style) "
                                   "DO UPDATE SET last = greatest(counters.last, excluded.last)", style, int(task_id))
            return task, made

    def _account(self, w: Write, row: asyncpg.Record | None, task: Task | None, made: list[Change], text: str,
                 audit_bytes: list[int]) -> tuple[str | None, int, Usage]:
        """The task's owner and size after the write, and what each owner's holdings change
        by, as the SQLite store's batch counts them: a task's size is its document's bytes
        and its audit rows' (of this life of the task), given back when it is deleted."""
        field = self._owners.get(w.style)
        delta: Usage = {}
        owner, size = None, 0
        if row is not None and row[4] is not None:
            _charge(delta, (w.style, row[4]), -1, -int(row[5] or 0))
        if task is not None:
            trail = int(row[5] or 0) - int(row[6]) if row is not None and made[0].action != "created" else 0
            size = text_bytes(text) + max(trail, 0) + sum(audit_bytes)
            owner = owner_of(field, task.doc)
            if owner is not None:
                _charge(delta, (w.style, owner), 1, size)
        return owner, size, delta


def _charge(usage: Usage, key: tuple[str, str], tasks: int, size: int) -> None:
    held_now = usage.setdefault(key, [0, 0])
    held_now[0] += tasks
    held_now[1] += size
