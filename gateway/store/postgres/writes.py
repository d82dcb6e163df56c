"""The task write path on PostgreSQL: group commit, rows locked, savepoints where a write may be refused.

Writes are queued, and one writer task per process drains the queue: the writes queued
while a transaction runs go into the next one together (up to ``max_batch``, and at most
:data:`MAX_BATCH`), in queue order, and the batch commits once. A write the database may
refuse (a create, which can meet another gateway's insert of the same id) runs in a
``SAVEPOINT`` of its own and rolls back alone; a change of a row the batch locked at its
start runs no statement until the batch's end (each changed row is written once, as the
batch left it, in one pipelined statement), so a refused one has nothing to undo. Each
write runs as the SQLite store's does (the same :func:`gateway.store.write_step.apply_write`:
preconditions, steps, diffs, audit changes), inside one READ COMMITTED transaction:

1. the rows of every task the batch names are locked and read first, in one statement, in
   key order: two gateways' batches wait for each other on them but never deadlock;
2. a numbered create takes the style's next id from ``counters`` (the row locked, so ids
   are allocated by the database, in order, never reused, across gateways);
3. the steps run in Python against the task's row as the batch's earlier writes left it
   (a row the batch did not lock at its start is locked with ``SELECT … FOR UPDATE``);
   concurrent changes to one task, from any gateway, serialize on the row, and each runs
   against the version the last one committed;
4. a write held to a quota is checked against what its owner holds (the ``usage`` row as
   last committed, read once a batch, unlocked) with the batch's earlier writes counted;
5. a created or deleted row and the counter are written at once; a changed row is kept
   in the batch, and every changed row is written at the end;
6. at the end the owners' ``usage`` rows are locked and updated, in key order, and every
   quota check of the batch is made again against the locked counts: when one comes out
   otherwise (another gateway's commit moved its owner across the limit meanwhile), the
   transaction is rolled back and the batch runs again with each owner's row locked as
   it is first read, so quotas hold exactly across gateways;
7. last, ``audit_head`` is locked and advanced by the batch's changes, which get their
   seqs in commit order, and their audit rows are written; in the same statement the batch
   announces itself on :data:`.notify.CHANGES` (delivered to every gateway at the commit,
   so that their event feeds and webhook workers read it at once); COMMIT.
   Taking the rows every write shares (an owner's counts, ``audit_head``) only from there
   to the commit is what lets other gateways' batches run beside this one until then.

A create racing another gateway's create of the same id (no row to lock yet) meets the
primary key: its savepoint is rolled back and the write runs again, now against the row
that won. A deadlock or a serialization failure of the whole transaction runs the batch
again. A database out of reach is a 503 for every write of the batch. Callers are answered
and commit listeners told only after the commit, once per batch, in commit order.

It must not decide what a write does: the mutation and ``apply_write`` do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from gateway import errors
from gateway.clock import now_iso
from gateway.model import CLIENT, IMPERSONATION, QUOTA, Change, Doc, Expect, Quota, Step, Task
from gateway.store.owners import account, charge, check_quota
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database, unreachable
from gateway.store.postgres.notify import CHANGES
from gateway.store.postgres.owned import Usage, held
from gateway.store.rows import audit_row, check_id, is_counted, load_doc, text_bytes
from gateway.store.write_step import Stored, apply_write

__all__ = ["Write", "Writes", "MAX_BATCH"]

_log = structlog.get_logger("taskgate.store")
#: how often one write, or a batch, is run again after a race it lost (a create of the same id, a deadlock)
_ATTEMPTS = 3
#: most writes in one transaction: each write's savepoint is a subtransaction, and a
#: backend keeps the ids of at most 64 of them where other sessions' snapshots see them
#: cheaply (PGPROC's subxid cache); past that every snapshot in the cluster gets dearer
MAX_BATCH = 64
_RETRIED = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_AUDIT = ("INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, patch, undo, client, "
          "impersonator) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
_COLUMNS = "version, doc, created, modified, owner, size, octet_length(doc::text)"
_LOCK_ROWS = (f"SELECT style, id, {_COLUMNS} FROM tasks WHERE (style, id) IN "
              "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY style, id FOR UPDATE")
_ADD_USAGE = ("INSERT INTO usage (style, owner, tasks, bytes) VALUES ($1, $2, $3, $4) ON CONFLICT (style, owner) "
              "DO UPDATE SET tasks = usage.tasks + excluded.tasks, bytes = usage.bytes + excluded.bytes "
              "RETURNING tasks, bytes")
_UPDATE = ("UPDATE tasks SET version = $3, created = $4, modified = $5, doc = $6, keys = $7::jsonb, owner = $8, "
           "size = $9 WHERE style = $1 AND id = $2")
_LOCK_ROW = f"SELECT {_COLUMNS} FROM tasks WHERE style = $1 AND id = $2 FOR UPDATE"
#: the batch's seqs, and its notification to every gateway, in one round trip
_ADVANCE_HEAD = ("WITH head AS (UPDATE audit_head SET seq = seq + $1 RETURNING seq) "
                 f"SELECT seq FROM head, pg_notify('{CHANGES}', $2)")
#: a task's row as the batch holds it: version, document, created, modified, owner, size, document bytes
_Row = tuple[int, Doc, str, str, "str | None", int, int]


def _report(event: str, **fields: object) -> None:
    try:  # a failing log sink must never stop the writer
        _log.exception(event, **fields)
    except Exception:
        pass


class Write:
    """One write (a :class:`gateway.store.write_step.PendingWrite`), its context captured when it is submitted."""

    __slots__ = ("style", "task_id", "steps", "expect", "request_id", "if_match", "unmodified_since", "created",
                 "client", "impersonation", "quota", "build", "max_id", "numbered", "given", "future", "probe")

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
        self.future: asyncio.Future[Task | None] | None = None
        self.probe = False  # the probe: takes audit_head with its batch and writes nothing


#: one quota check of a batch: the owner's key, the quota, the tasks and bytes the write
#: adds, what the batch's earlier writes added, and whether it passed
_Check = tuple[tuple[str, str], Quota, int, int, list[int], bool]


class _Recheck(Exception):
    """A quota check came out otherwise against the locked counts: run the batch again, strictly."""


class _Batch:
    """What one transaction of writes comes to before its commit: each write's outcome,
    the changes (seqs still to come) and audit rows, and the owners' counts."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict  # each quota owner's row locked when first read, not only at the end
        self.checks: list[_Check] = []  # the quota checks made on unlocked counts, made again at the end
        self.results: list[tuple[Write, Task | None | BaseException]] = []
        self.changes: list[Change] = []
        self.audit: list[tuple[Any, ...]] = []
        self.usage: Usage = {}
        self.graves: list[tuple[int, str, str, str, str | None, int]] = []  # place of the delete, style, id, …
        self.held: dict[tuple[str, str], list[int]] = {}  # each quota owner's row, read once
        self.gone: dict[tuple[str, str], tuple[int, str, str]] = {}  # deleted in the batch: version, created, modified
        self.rows: dict[tuple[str, str], _Row] = {}  # locked, as the batch's earlier writes left them
        self.dirty: dict[tuple[str, str], tuple[Any, ...]] = {}  # each updated row's last values, written at the end
        self.savepoint = False  # whether savepoint w is open


class Writes:
    """The write path; *keyed* and *owners* are the store's copies of each style's keyed
    fields and owner field."""

    def __init__(self, db: Database, keyed: dict[str, tuple[str, ...]], owners: dict[str, str], *,
                 now: Callable[[], str] = now_iso, max_batch: int = MAX_BATCH, sender: str = "") -> None:
        self._db = db
        self._sender = sender  # the payload of the batch's notification: lets this store ignore its own
        self._keyed = keyed
        self._owners = owners
        self._now = now
        self._max_batch = max(1, min(max_batch, MAX_BATCH))
        self._queue: asyncio.Queue[Write | None] = asyncio.Queue()
        self._drainer: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Sequence[Change]], None]] = []
        self._batch_listeners: list[Callable[[int, float], None]] = []
        self.closed = False

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        self._listeners.append(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self._batch_listeners.append(listener)

    async def close(self) -> None:
        """Refuse new writes, and return once every queued one is committed or refused."""
        self.closed = True
        if self._drainer is not None:
            self._queue.put_nowait(None)
            await asyncio.shield(self._drainer)

    def check_open(self) -> None:
        if self.closed:
            raise errors.InternalError("the store is closed")

    def _start(self) -> None:
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain(), name="taskgate-pg-writer")

    async def probe(self) -> None:
        """A write that takes, in its batch, the lock every batch takes last, and changes nothing."""
        w = Write("", "", [], Expect.ANY, "")
        w.probe = True
        await self.submit(w)

    async def submit(self, w: Write) -> Task | None:
        """Queue *w*; once its batch committed, its task after the last step (None when
        deleted or absent), or the error it met."""
        self.check_open()
        check_id(w.task_id)
        self._start()
        w.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(w)
        return await w.future

    # -- the writer -----------------------------------------------------------------------
    async def _drain(self) -> None:
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:  # closing: this batch is the last
                    stop = True
                    break
                batch.append(item)
            live = [w for w in batch if w.future is not None and not w.future.cancelled()]
            try:
                if live:
                    await self._commit(live)
            except Exception:  # a bug here must not stop the writer: the batch's callers hear a 500
                _report("store.writer_failed", batch=len(live))
                for w in live:
                    if w.future is not None and not w.future.done():
                        w.future.set_exception(errors.InternalError("the store could not commit the change"))

    async def _commit(self, live: list[Write]) -> None:
        started = time.monotonic()
        try:
            outcome = await self._run_batch(live)
        except Exception as exc:  # the transaction failed: nobody's change is stored
            refused: BaseException = exc
            if not isinstance(exc, errors.TaskgateError):
                refused = unreachable(exc) or exc
                if refused is exc:
                    _report("store.commit_failed", batch=len(live))
                    refused = errors.InternalError("the store could not commit the change")
            for w in live:
                if w.future is not None and not w.future.done():
                    w.future.set_exception(refused)
            return
        for w, result in outcome.results:
            if w.future is None or w.future.done():
                continue
            if isinstance(result, BaseException):
                w.future.set_exception(result)
            else:
                w.future.set_result(result)
        if outcome.changes:
            for listener in self._listeners:
                try:
                    listener(outcome.changes)
                except Exception:
                    _report("store.listener_failed")
        self._tell_batch(len(live), time.monotonic() - started)

    def _tell_batch(self, size: int, seconds: float) -> None:
        for batch_listener in self._batch_listeners:
            try:
                batch_listener(size, seconds)
            except Exception:
                _report("store.listener_failed")

    async def _run_batch(self, live: list[Write]) -> _Batch:
        """The batch in one transaction, run again whole when the database undid it (a
        deadlock), or strictly when a quota check came out otherwise at the end."""
        strict = False
        for _attempt in range(_ATTEMPTS):
            try:
                return await self._transaction(live, strict)
            except _Recheck:
                strict = True
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                pass
        raise errors.Conflict("the tasks were changed by another writer meanwhile; try again")

    async def _transaction(self, live: list[Write], strict: bool) -> _Batch:
        out = _Batch(strict)
        async with self._db.transaction() as conn:
            writes = [w for w in live if not w.probe]
            keys = sorted({(w.style, w.task_id) for w in writes  # no row holds a NUL, nor can a parameter
                           if w.task_id is not None and not w.numbered and sql.storable(w.task_id)})
            if keys:  # in key order: two batches never hold each other's rows
                for r in await conn.fetch(_LOCK_ROWS, [k[0] for k in keys], [k[1] for k in keys]):
                    out.rows[(r[0], r[1])] = _row(r[2:])
            for w in writes:
                out.results.append((w, await self._one(conn, w, out)))
            if out.dirty:  # each updated row once, as the batch left it, in one pipelined statement
                await conn.executemany(_UPDATE, list(out.dirty.values()))
            out.results.extend((w, None) for w in live if w.probe)
            if not out.changes and len(writes) < len(live):  # the probe: the lock, and nothing written
                await conn.fetchval("SELECT seq FROM audit_head FOR UPDATE")
            await self._count(conn, out)
            if out.changes:
                # the seqs, in commit order: audit_head stays locked until this transaction commits
                total = len(out.changes)
                head = int(await conn.fetchval(_ADVANCE_HEAD, total, self._sender))
                first = head - total + 1
                out.changes = [dataclasses.replace(c, seq=first + n) for n, c in enumerate(out.changes)]
                await conn.executemany(_AUDIT, [(first + n, *values[1:]) for n, values in enumerate(out.audit)])
                if out.graves:
                    await conn.executemany("INSERT INTO graves (seq, style, task_id, at, owner, bytes) "
                                           "VALUES ($1, $2, $3, $4, $5, $6)",
                                           [(first + n, *values) for n, *values in out.graves])
        return out

    @staticmethod
    async def _count(conn: asyncpg.Connection, out: _Batch) -> None:
        """The owners' counts updated (their rows locked in key order), and the batch's
        quota checks made again against them; _Recheck when one comes out otherwise."""
        checked = {check[0] for check in out.checks}
        before: dict[tuple[str, str], list[int]] = {}
        for key in sorted(set(out.usage) | checked):
            tasks, size = out.usage.get(key, (0, 0))
            if not (tasks or size or key in checked):
                continue
            now = await conn.fetchrow(_ADD_USAGE, key[0], key[1], tasks, size)
            before[key] = [int(now[0]) - tasks, int(now[1]) - size]
        for key, quota, tasks, size, pending, passed in out.checks:
            if _passes(quota, key[0], [before[key][0] + pending[0], before[key][1] + pending[1]], tasks, size) \
                    is not passed:
                raise _Recheck()

    async def _one(self, conn: asyncpg.Connection, w: Write, out: _Batch) -> Task | None | BaseException:
        """One write of the batch: its task, or the error it met. A write that may meet the
        database's refusal (a create, a numbered create, a row the batch did not lock at
        its start) runs in a savepoint, rolled back when it fails. A change of a row the
        batch holds needs none: it runs no statement that can fail (its row is written at
        the batch's end), so a refused one has nothing to undo."""
        for attempt in range(_ATTEMPTS):
            locked, checks = set(out.held), len(out.checks)
            guarded = w.numbered or (w.style, w.task_id) not in out.rows
            if guarded:
                await conn.execute("RELEASE SAVEPOINT w; SAVEPOINT w" if out.savepoint else "SAVEPOINT w")
                out.savepoint = True
            try:
                return await self._run(conn, w, out)
            except errors.TaskgateError as exc:
                if guarded:
                    await self._undo(conn, out, locked, checks)
                else:
                    out.checks[checks:] = [check for check in out.checks[checks:] if not check[-1]]
                return exc
            except _RETRIED:
                if not guarded:  # the transaction is lost (a deadlock): the batch runs again
                    raise
                await self._undo(conn, out, locked, checks)
                if attempt == _ATTEMPTS - 1:
                    return errors.Conflict(f"task {w.task_id!r} was changed by another writer meanwhile; try again")
        raise AssertionError("unreachable")

    @staticmethod
    async def _undo(conn: asyncpg.Connection, out: _Batch, locked: set[tuple[str, str]], checks: int) -> None:
        """Roll the write's savepoint back; the usage rows it locked are let go with it, so
        the batch reads them again (locked) when a later write needs them. A quota check
        it failed stands; one it passed is void with it."""
        await conn.execute("ROLLBACK TO SAVEPOINT w")
        for key in set(out.held) - locked:
            del out.held[key]
        out.checks[checks:] = [check for check in out.checks[checks:] if not check[-1]]

    async def _run(self, conn: asyncpg.Connection, w: Write, out: _Batch) -> Task | None:
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
        row = out.rows.get((style, task_id))
        if row is None:  # not there when the batch began (a create), or a numbered create's new id
            found = await conn.fetchrow(_LOCK_ROW, style, task_id) if sql.storable(task_id) else None
            row = _row(found) if found is not None else None
        current: Stored | None = (row[0], row[1], row[2], row[3]) if row is not None else None
        if current is None and (style, task_id) in out.gone:  # deleted earlier in the batch: versions go on
            version, was_created, modified = out.gone[(style, task_id)]
            current = (version, None, was_created, modified)
        at = self._now()
        try:
            task, made, text = apply_write(w, current, 1, at)
        except errors.TaskgateError:
            raise
        except Exception:  # a bug in a mutate function is this write's InternalError alone
            _report("store.mutation_failed", style=style, task_id=task_id)
            raise errors.InternalError("An internal fault occurred.") from None
        if not made:
            return task
        if task is not None and (sql.holds_nul(text) or not sql.storable(task_id)):
            raise errors.BadRequest(sql.NUL_REFUSED)  # jsonb (keys, every filter) cannot hold it
        audit = [audit_row(c) for c in made]
        counted = account(style, self._owners.get(style), None if row is None else (row[4], row[5], row[6]), made,
                          [n for _, n in audit], task.doc if task is not None else None,
                          text_bytes(text) if task is not None else 0)
        owner, size, usage = counted.owner, counted.size, counted.delta
        if w.quota is not None and (style, w.quota.owner) in usage:
            key = (style, w.quota.owner)
            if key not in out.held:
                out.held[key] = await (held(conn, style, w.quota.owner) if out.strict else _peek(conn, key))
            pending = list(out.usage.get(key, [0, 0]))
            tasks, grows = counted.held_against(key)
            counts = [out.held[key][0] + pending[0], out.held[key][1] + pending[1]]
            if not out.strict:
                out.checks.append((key, w.quota, tasks, grows, pending, _passes(w.quota, style, counts, tasks, grows)))
            check_quota(w.quota, style, counts, tasks, grows)
        recreated = any(c.action == "created" for c in made)
        deferred: tuple[Any, ...] | None = None
        created = current[2] if current is not None and not recreated else at
        if task is not None:
            if task.created != created:
                task = Task(task.style, task.id, task.version, task.doc, task.modified, created)
            keys = sql.keys_value(self._keyed.get(style, ()), task.doc)
            if row is None:  # no row to lock: a create racing this one meets the primary key
                await conn.execute("INSERT INTO tasks (style, id, version, created, modified, doc, keys, owner, "
                                   "size) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
                                   style, task_id, task.version, created, at, text, keys, owner, size)
            else:
                deferred = (style, task_id, task.version, created, at, text, keys, owner, size)
        elif row is not None:
            await conn.execute("DELETE FROM tasks WHERE style = $1 AND id = $2", style, task_id)
        if number is not None:
            await conn.execute("UPDATE counters SET last = $2 WHERE style = $1", style, number)
        elif recreated and is_counted(task_id):
            await conn.execute("INSERT INTO counters (style, last) VALUES ($1, $2) ON CONFLICT (style) "
                               "DO UPDATE SET last = greatest(counters.last, excluded.last)", style, int(task_id))
        # the write stands (its savepoint is released with the next one's, or at the commit);
        # a grave names its delete by its place among the batch's changes (seqs come at the end)
        out.graves.extend((len(out.changes) + seq - 1, style, task_id, at, grave_owner, grave_bytes)
                          for seq, grave_owner, grave_bytes in counted.graves)
        out.changes.extend(made)
        if deferred is not None:
            out.dirty[(style, task_id)] = deferred
        if task is None:
            out.gone[(style, task_id)] = (made[-1].version, created, at)
            out.rows.pop((style, task_id), None)
            out.dirty.pop((style, task_id), None)
        else:
            out.rows[(style, task_id)] = (task.version, task.doc, created, at, owner, size, text_bytes(text))
        out.audit.extend(values for values, _ in audit)
        for key, (tasks, size_delta) in usage.items():
            charge(out.usage, key, tasks, size_delta)
        return task


async def _peek(conn: asyncpg.Connection, key: tuple[str, str]) -> list[int]:
    """What an owner holds as last committed, its row not locked."""
    row = await conn.fetchrow("SELECT tasks, bytes FROM usage WHERE style = $1 AND owner = $2", *key)
    return [int(row[0]), int(row[1])] if row is not None else [0, 0]


def _passes(quota: Quota, style: str, counts: list[int], tasks: int, size: int) -> bool:
    try:
        check_quota(quota, style, counts, tasks, size)
    except errors.PayloadTooLarge:
        return False
    return True


def _row(found: Sequence[Any]) -> _Row:
    return (found[0], load_doc(found[1]), found[2], found[3], found[4], int(found[5] or 0), int(found[6]))


