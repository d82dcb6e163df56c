"""Group commit: the one write path for tasks.

Task writes go through one queue drained by one writer task. It takes every queued write
(up to ``max_batch``), runs them in order inside one ``BEGIN IMMEDIATE … COMMIT``, and
only after the commit answers each caller. A batch that had to wait for another
process's write lock takes in the writes queued meanwhile before it reads its rows.
A write whose mutation raises is left out alone; the others commit. Each change writes
the new document, bumps ``version`` and appends an audit row holding the RFC 6902 patch
old→new and its inverse, in the same transaction.

A batch's statements run on the event loop's thread: the pages they need are in memory,
or were read ahead (:mod:`.read_ahead`), and a hand-over to another thread for each
would cost more than the statement. Only what may wait goes to the writer's thread:
COMMIT (the WAL write and its sync), and BEGIN IMMEDIATE when another connection holds
the write lock or the WAL is to be rewound first (:mod:`.wal`). A batch whose writes
take long (mutations of megabyte documents) lets the loop run between two of them, every
:data:`TURN_SECONDS`, still inside its transaction.

Owns the queue, the writer task, the batch's reads and writes of rows, and the commit
listeners. It must not run a mutation outside a batch, nor answer a caller before the
commit; the rules of what a write does to a row are :mod:`.batch`'s.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence

import structlog

from gateway import errors
from gateway.clock import now_iso
from gateway.model import Change, Task
from gateway.store.rows import AUDIT_COLUMNS, check_id, load_doc, text_bytes
from gateway.store.sqlite.batch import Applied, Held, QueuedWrite, Stored, apply_steps, needs_counters
from gateway.store.sqlite.health import RETRY_AFTER_SECONDS, Health, is_damage, is_disk_trouble, unavailable
from gateway.store.sqlite.keyed import KeyedFields
from gateway.store.sqlite.log import report
from gateway.store.sqlite.owned import add_usage, read_usage
from gateway.store.sqlite.read_ahead import ReadAhead
from gateway.store.sqlite.sql import keys_table
from gateway.store.sqlite.wal import Checkpoints
from gateway.store.sqlite.write_connection import WriteConnection, is_busy

__all__ = ["GroupCommit"]

#: keys a batch reads per statement: far below SQLite's limit on bound variables
_KEYS_PER_READ = 400
#: the longest a batch runs its writes before the event loop gets a turn: 32 concurrent
#: writes to one user's 780 KB task, each patching a copy, held the loop for 2.6 s
TURN_SECONDS = 0.02


def _busy(summary: str = "database busy") -> errors.ServiceUnavailable:
    """Another connection (another process, an admin's sqlite3 shell) held the write lock
    past ``storage.busy_timeout_ms``, or the disk refused the commit (full, read-only):
    nothing is stored, and trying again may succeed."""
    # the same words as any failed commit (readiness reports them); the status and
    # Retry-After say that this one may pass on a later try
    return unavailable("the store could not commit the change", summary)


def _log_disk(batch: int, exc: BaseException) -> None:
    try:
        structlog.get_logger("taskgate.store").warning("store.disk_refused", batch=batch, reason=str(exc))
    except Exception:  # the writer goes on whatever the log sink does
        pass


def _log_busy(batch: int) -> None:
    try:
        structlog.get_logger("taskgate.store").warning("store.busy", batch=batch, retry_after=RETRY_AFTER_SECONDS)
    except Exception:  # the writer goes on whatever the log sink does
        pass


class GroupCommit:
    """The queue of task writes and the task that commits them in batches."""

    def __init__(self, writer: WriteConnection, checkpoints: Checkpoints, read_ahead: ReadAhead,
                 keyed: KeyedFields, *, max_batch: int, health: Health | None = None,
                 now: Callable[[], str] = now_iso) -> None:
        self._writer = writer
        self._now = now
        self._health = health
        self._checkpoints = checkpoints
        self._read_ahead = read_ahead
        self._keyed = keyed
        self._max_batch = max_batch
        self._queue: asyncio.Queue[QueuedWrite | None] = asyncio.Queue()
        self._listeners: list[Callable[[Sequence[Change]], None]] = []
        self._batch_listeners: list[Callable[[int, float], None]] = []
        self._closed = False
        self._stop = False  # the close marker was taken from the queue
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="store-writer")

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        self._listeners.append(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self._batch_listeners.append(listener)

    async def submit(self, write: QueuedWrite) -> tuple[Task | None, list[Change]]:
        """Queue *write*; once its batch committed, the task after it and its changes (or
        the domain error it raised). InternalError once the store is closing."""
        if self._closed:
            raise errors.InternalError("the store is closed")
        check_id(write.task_id)
        if write.task_id:
            self._read_ahead.warm(write)
        self._queue.put_nowait(write)
        return await write.future

    async def close(self) -> None:
        """Refuse new writes, and return once every queued one is committed or refused."""
        self._closed = True
        await self._queue.put(None)
        await self._task

    async def _drain(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            self._stop = False
            self._top_up(batch)
            live = [w for w in batch if not w.future.cancelled()]
            if live:
                try:
                    started = time.perf_counter()
                    await self._commit_batch(live)
                    self._batch_done(len(live), time.perf_counter() - started)
                except Exception as exc:  # the database failed: nobody's change is stored
                    refused = self._refusal(exc, len(live))
                    for w in live:
                        if not w.future.done():
                            w.future.set_exception(refused)
            if self._stop:
                return

    def _top_up(self, batch: list[QueuedWrite]) -> None:
        """Add writes queued meanwhile to *batch*, up to ``max_batch`` (the close marker ends it)."""
        while not self._stop and len(batch) < self._max_batch and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._stop = True
            elif not item.future.cancelled():
                batch.append(item)

    def _refusal(self, exc: Exception, size: int) -> errors.TaskgateError:
        """What the callers of a failed batch hear, logged and remembered for readiness.
        Operational states (a held lock, a full or read-only disk, a damaged or vanished
        file) are 503s logged without a traceback; anything else is a fault (500)."""
        if isinstance(exc, errors.ServiceUnavailable):  # refused before it was tried
            return exc
        health = self._health
        if health is not None and not (isinstance(exc, sqlite3.OperationalError) and is_busy(exc)):
            health.commit_failed(exc)
        if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
            _log_busy(size)
            return _busy()
        if is_damage(exc):
            return health.damaged(exc, "commit") if health is not None else _busy("database file damaged")
        if is_disk_trouble(exc):
            _log_disk(size, exc)
            return _busy("database not writable")
        report("store.commit_failed", batch=size)
        return errors.InternalError("the store could not commit the change")

    async def _commit_batch(self, batch: list[QueuedWrite]) -> None:
        if self._health is not None and (refusal := self._health.write_refusal()) is not None:
            raise unavailable(f"the store refuses writes: {refusal}", self._health.summary())
        await self._read_ahead.settled(batch)
        writer = self._writer
        async with writer.lock:
            keys = list(dict.fromkeys((w.style, w.task_id) for w in batch if w.task_id is not None))
            rewind = await self._checkpoints.take_rewind()
            try:  # BEGIN inside: a drain cancelled while BEGIN waits must not leave a transaction open
                if rewind or not writer.begin_now():
                    await writer.begin(rewind=rewind)
                    # the wait (another process's batch, most often) let writes queue up:
                    # they join this transaction rather than wait for the next one
                    self._top_up(batch)
                    keys = list(dict.fromkeys((w.style, w.task_id) for w in batch if w.task_id is not None))
                watch = self._read_ahead.watch()  # did the pages of this batch have to come from the device?
                current, stored_keys, held_rows, seq, counters = self._read_batch(keys, needs_counters(batch))
                quotas = {(w.style, w.quota.owner) for w in batch if w.quota is not None}
                held = read_usage(writer.conn, quotas) if quotas else {}
                stored_created = {key: row[2] for key, row in current.items()}
                applied = Applied(at=self._now())
                turn = time.perf_counter()
                for _ in apply_steps(applied, batch, current, seq, counters, self._keyed, held_rows, held):
                    if time.perf_counter() - turn > TURN_SECONDS:  # writes of megabyte documents: the loop's turn
                        await asyncio.sleep(0)
                        turn = time.perf_counter()
                self._write_rows(applied, stored_keys, stored_created, counters)
                self._read_ahead.watched(watch)
                await writer.commit()
            except BaseException:
                await writer.rollback()
                raise
        if self._health is not None and (applied.touched or applied.changes):
            self._health.commit_succeeded()  # a commit that wrote nothing (the probe) proves no space
        self._checkpoints.after_commit()
        for w, outcome in applied.results:
            if w.future.done():
                continue
            if isinstance(outcome, BaseException):
                w.future.set_exception(outcome)
            else:
                w.future.set_result(outcome)
        if applied.changes:
            for listener in self._listeners:
                try:
                    listener(applied.changes)
                except Exception:  # the commit stands; one listener's failure must not hide it from others
                    report("store.listener_failed", listener=repr(listener))

    def _batch_done(self, size: int, seconds: float) -> None:
        for listener in self._batch_listeners:
            try:
                listener(size, seconds)
            except Exception:
                report("store.listener_failed", listener=repr(listener))

    def _read_batch(self, keys: list[tuple[str, str]], with_counters: bool) \
            -> tuple[dict[tuple[str, str], Stored], dict[tuple[str, str], str | None], dict[tuple[str, str], Held],
                     int, dict[str, int] | None]:
        """Inside the batch's transaction, on the loop's thread: the rows the batch touches,
        their stored keys columns, owners and sizes, the last audit sequence number, and
        (when needed) the id counters. Follows the keyed and owner fields when another
        connection committed."""
        conn = self._writer.conn
        changed = self._keyed.changed_since(conn)
        if changed is not None:  # another process committed: it may have keyed other fields
            self._keyed.replace(changed)
        counters = dict(conn.execute("SELECT style, last FROM counters").fetchall()) if with_counters else None
        found: dict[tuple[str, str], Stored] = {}
        stored_keys: dict[tuple[str, str], str | None] = {}
        held: dict[tuple[str, str], Held] = {}
        for start in range(0, len(keys), _KEYS_PER_READ):
            table, params = keys_table(keys[start:start + _KEYS_PER_READ])
            rows = conn.execute(
                table + "SELECT t.style, t.id, t.version, t.doc, t.created, t.modified, t.keys, t.owner, t.size "
                "FROM k JOIN tasks AS t ON t.style = k.style AND t.id = k.id", params).fetchall()
            for style, task_id, version, doc, created, modified, keys_column, owner, size in rows:
                found[(style, task_id)] = (version, load_doc(doc), created, modified)
                stored_keys[(style, task_id)] = keys_column
                doc_bytes = text_bytes(doc)
                held[(style, task_id)] = (owner, doc_bytes if size is None else size, doc_bytes)
        (seq,), = conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchall()
        return found, stored_keys, held, seq, counters

    def _write_rows(self, applied: Applied, stored_keys: dict[tuple[str, str], str | None],
                    stored_created: dict[tuple[str, str], str], counters: dict[str, int] | None) -> None:
        """Inside the batch's transaction, on the loop's thread: each touched task's final
        row, the audit rows, the graves of deleted lives, the owners' usage and the id
        counters. A row whose keys column stays as stored is written without it, so SQLite
        leaves the style's indexes alone (see :mod:`.keyed`); a task deleted and created
        again in the batch gets its new ``created`` too."""
        conn = self._writer.conn
        deletes: list[tuple[str, str]] = []
        updates: list[tuple[int, str, str, str | None, int, str, str]] = []
        upserts: list[tuple[str, str, int, str, str, str, str | None, str | None, int]] = []
        for key, (v, created, doc, text, keys_column, owner, size) in applied.touched.items():
            if doc is None:
                deletes.append(key)
            elif key in stored_keys and stored_keys[key] == keys_column and stored_created.get(key) == created:
                updates.append((v, applied.at, text, owner, size, *key))
            else:
                upserts.append((*key, v, created, applied.at, text, keys_column, owner, size))
        if deletes:
            conn.executemany("DELETE FROM tasks WHERE style = ? AND id = ?", deletes)
        if updates:
            conn.executemany("UPDATE tasks SET version = ?, modified = ?, doc = ?, owner = ?, size = ? "
                             "WHERE style = ? AND id = ?", updates)
        if upserts:
            conn.executemany(
                "INSERT INTO tasks (style, id, version, created, modified, doc, keys, owner, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (style, id) DO UPDATE SET version = excluded.version, created = excluded.created, "
                "modified = excluded.modified, doc = excluded.doc, keys = excluded.keys, owner = excluded.owner, "
                "size = excluded.size", upserts)
        if applied.audit_rows:
            conn.executemany(f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             applied.audit_rows)
        if applied.graves:
            conn.executemany("INSERT INTO graves (style, task_id, seq, at, owner, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                             applied.graves)
        add_usage(conn, applied.usage)
        if counters:
            conn.executemany(
                "INSERT INTO counters (style, last) VALUES (?, ?) "
                "ON CONFLICT (style) DO UPDATE SET last = max(last, excluded.last)", counters.items())
