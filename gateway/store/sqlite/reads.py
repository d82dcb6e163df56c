"""Reading tasks and the audit trail, beside the writer.

Two connections read, neither ever writes (``query_only``):

* the **reader**, an aiosqlite connection (its own thread), for lists, searches, exports
  and counts; WAL lets it run beside the writer. :meth:`TaskReads.read_snapshot` holds one
  read transaction across many reads (export, :meth:`TaskReads.trails` for ``audit verify``).
* the **point reader**, a plain :mod:`sqlite3` connection used on the event loop's own
  thread for lookups by primary key (a task by id, a token, a user, an OAuth client).
  Such a lookup takes less time than the hand-over to another thread and back, and in WAL
  mode a reader does not wait for the writer. Its busy timeout is zero: in the rare
  moments SQLite makes even a reader wait (a checkpoint truncating the WAL, another
  process recovering it) the lookup is read on the reader instead of holding up the loop
  (:class:`Lookup`).

A list of large tasks is read in two steps (:meth:`TaskReads.find_ids`, then
:meth:`TaskReads.read_chunks` by primary key, a few documents at a time), so that no
answer holds a whole page of megabyte documents; a chunk of many kilobytes is parsed in
a worker thread, one document per call, so that the event loop gets its turn between them.

A list or search statement (:meth:`TaskReads.find`, :meth:`TaskReads.find_ids`) still
running after :data:`~gateway.store.errors.QUERY_SECONDS` on the reader is stopped (:class:`Budget`)
and answered with a 400, so that one caller cannot hold the reader, and everyone's lists,
for as long as its terms cost.

A read that SQLite refuses because the file is damaged (``SQLITE_CORRUPT``,
``SQLITE_NOTADB``) is a 503 (:meth:`.health.Health.damaged`: logged once as an error, and
the store turns unready), never a 500 or a task that seems not to exist.

Owns those two connections' reads. It must not write, and it drives aiosqlite through its
public API only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import aiosqlite

from gateway.model import Change, Chunk, Task
from gateway.query import Query
from gateway.store import errors as store_errors
from gateway.store.rows import AUDIT_COLUMNS, change_from_row, load_doc
from gateway.store.sqlite import sql
from gateway.store.sqlite.health import Health, is_damage
from gateway.store.sqlite.keyed import KeyedFields
from gateway.store.sqlite.write_connection import is_busy
from gateway.store.trails import merge_trails

__all__ = ["Budget", "Lookup", "TaskReads", "FIRST_CHUNK", "MAX_CHUNK", "THREAD_BYTES"]

#: tasks in the first chunk of :meth:`TaskReads.read_chunks`, before their sizes are known
#: (a few of the largest documents, parsed, stay well within the memory a request may hold)
FIRST_CHUNK = 4
#: most tasks in one chunk, however small they are
MAX_CHUNK = 500
#: a chunk with more stored bytes than this is parsed in a worker thread
THREAD_BYTES = 262_144
#: what an audit row's patches take, in bytes (the measure of Store.audit's max_bytes)
_ROW_BYTES = "length(CAST(patch AS BLOB)) + length(CAST(undo AS BLOB))"


class Budget:
    """The reader's time limit: a statement marked by :meth:`armed` that still runs after
    :data:`~gateway.store.errors.QUERY_SECONDS` is interrupted (``sqlite3_interrupt``, called from the event loop, which
    SQLite allows from any thread). The trace callback, run on the reader's thread as each
    statement starts, says which statement runs, so the timer of a mark stops only its own
    statement: one that ended meanwhile has let another begin (not its mark: left alone)
    or none (an interrupt then does nothing). No callback runs while a statement runs."""

    _PREFIX = "/* budgeted "

    def __init__(self) -> None:
        self.seconds = store_errors.QUERY_SECONDS
        self._reader: aiosqlite.Connection | None = None
        self._running: str | None = None  # the mark of the statement running on the reader
        self._marks = itertools.count()

    async def install(self, reader: aiosqlite.Connection) -> None:
        self._reader = reader
        await reader.set_trace_callback(self._started)

    @contextlib.contextmanager
    def armed(self) -> Iterator[str]:
        """A mark to begin one statement with; its timer runs until the block ends."""
        mark = f"{self._PREFIX}{next(self._marks)} */ "
        timer = asyncio.get_running_loop().call_later(self.seconds, self._expire, mark)
        try:
            yield mark
        finally:
            timer.cancel()

    def _started(self, statement: str) -> None:
        self._running = statement[:statement.index("*/") + 3] if statement.startswith(self._PREFIX) else None

    def _expire(self, mark: str) -> None:
        asyncio.ensure_future(self._stop(mark))

    async def _stop(self, mark: str) -> None:
        if self._running == mark and self._reader is not None:
            await self._reader.interrupt()  # checked and called in one step: nothing runs between


class Lookup:
    """Lookups by primary key: on the loop's thread through *point*, or on *reader* when
    SQLite would make the lookup wait."""

    def __init__(self, point: sqlite3.Connection, reader: aiosqlite.Connection,
                 health: Health | None = None) -> None:
        self._point = point
        self._reader = reader
        self._health = health

    async def __call__(self, statement: str, params: Sequence[Any]) -> list[Any]:
        try:
            try:
                return self._point.execute(statement, params).fetchall()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
            return list(await self._reader.execute_fetchall(statement, params))
        except sqlite3.DatabaseError as exc:
            if self._health is None or not is_damage(exc):
                raise
            raise self._health.damaged(exc, "read") from None


class TaskReads:
    """The reads of tasks and audit rows, on the reader and, by key, through :class:`Lookup`."""

    def __init__(self, reader: aiosqlite.Connection, lookup: Lookup, keyed: KeyedFields,
                 health: Health | None = None, budget: Budget | None = None) -> None:
        self._reader = reader
        self.lookup = lookup
        self._keyed = keyed
        self._health = health
        self._budget = budget if budget is not None else Budget()  # installed on the reader by its opener

    async def rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement on the reader."""
        try:
            return list(await self._reader.execute_fetchall(statement, params))
        except sqlite3.DatabaseError as exc:
            if self._health is None or not is_damage(exc):
                raise
            raise self._health.damaged(exc, "read") from None

    async def get(self, style: str, task_id: str) -> Task | None:
        found = await self.lookup("SELECT version, doc, modified, created FROM tasks WHERE style = ? AND id = ?",
                                  (style, task_id))
        if not found:
            return None
        version, doc, modified, created = found[0]
        return Task(style, task_id, version, load_doc(doc), modified, created)

    async def get_text(self, style: str, task_id: str) -> tuple[int, str] | None:
        found = await self.lookup("SELECT version, doc FROM tasks WHERE style = ? AND id = ?", (style, task_id))
        return (found[0][0], found[0][1]) if found else None

    async def find(self, style: str, query: Query) -> tuple[list[Task], int | None]:
        found, total = await self._find(style, query, sql.TASK_COLUMNS)
        return [Task(style, i, v, load_doc(d), m, c) for i, v, d, m, c in found], total

    async def find_ids(self, style: str, query: Query) -> tuple[list[str], int | None]:
        found, total = await self._find(style, query, "id")
        return [i for i, in found], total

    async def _find(self, style: str, query: Query, columns: str) -> tuple[list[Any], int | None]:
        """The page's rows of *columns*, and the count when asked, each statement stopped
        at the :class:`Budget`'s deadline."""
        keyed = self._keyed.of(style)
        where, params = sql.where_clause(style, query, keyed)
        page, page_params = sql.page_sql(where, params, query, keyed, columns=columns)
        try:
            with self._budget.armed() as mark:
                found = await self.rows(mark + page, page_params)
            total = None
            if query.count:
                with self._budget.armed() as mark:
                    (total,), = await self.rows(mark + sql.count_sql(where), params)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_INTERRUPT:
                raise
            raise store_errors.search_stopped(style) from None
        return found, total

    async def read_chunks(self, style: str, ids: Sequence[str], *,
                          chunk_bytes: int = 1_048_576) -> AsyncIterator[Chunk]:
        """Chunks sized by what the tasks read so far weighed on average: the first holds
        :data:`FIRST_CHUNK` tasks, each later one about *chunk_bytes* of documents."""
        start, count, seen_tasks, seen_bytes = 0, FIRST_CHUNK, 0, 0
        while start < len(ids):
            part = ids[start:start + count]
            start += len(part)
            statement, params = sql.tasks_by_key_sql([(style, i) for i in part])
            rows = await self.rows(statement, params)
            size = sum(len(row[2]) for row in rows)
            if size > THREAD_BYTES:
                tasks = await asyncio.to_thread(_tasks, style, rows)
            else:
                tasks = _tasks(style, rows)
            place = {task_id: n for n, task_id in enumerate(part)}
            tasks.sort(key=lambda t: place[t.id])
            seen_tasks += len(part)
            seen_bytes += size
            count = max(1, min(MAX_CHUNK, chunk_bytes * seen_tasks // max(seen_bytes, 1)))
            if tasks:
                yield Chunk(tasks, size)

    async def explain(self, style: str, query: Query) -> str:
        keyed = self._keyed.of(style)
        page, params = sql.page_sql(*sql.where_clause(style, query, keyed), query, keyed)
        return "\n".join(row[-1] for row in await self.rows(f"EXPLAIN QUERY PLAN {page}", params))

    async def export(self, style: str | None = None, *, chunk: int = 500) -> AsyncIterator[Task]:
        after = ("", "")
        while True:
            params: list[Any] = [after[0], after[0], after[1]]
            statement = "SELECT style, id, version, doc FROM tasks WHERE (style > ? OR (style = ? AND id > ?))"
            if style is not None:
                statement += " AND style = ?"
                params.append(style)
            found = await self.rows(statement + " ORDER BY style, id LIMIT ?", [*params, chunk])
            for s, i, v, d in found:
                yield Task(s, i, v, json.loads(d))
            if len(found) < chunk:
                return
            after = (found[-1][0], found[-1][1])

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True,
                    after: int | None = None, before: int | None = None,
                    action: str | None = None, max_bytes: int | None = None) -> list[Change]:
        terms = (("action = ?", action), ("seq > ?", after), ("seq < ?", before), ("style = ?", style),
                 ("task_id = ?", task_id))
        where = [term for term, value in terms if value is not None]
        params: list[Any] = [value for _, value in terms if value is not None]
        params.append(-1 if limit is None else limit)
        order = f" ORDER BY seq {'DESC' if newest_first else 'ASC'}"
        matching = " FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + order + " LIMIT ?"
        if max_bytes is None:
            statement = f"SELECT {AUDIT_COLUMNS}{matching}"
        else:  # the rows' sizes first (no row leaves SQLite), then the rows that fit
            statement = (f"WITH page AS (SELECT seq, {_ROW_BYTES} AS n{matching}), kept AS (SELECT seq, sum(n) "
                         f"OVER ({order} ROWS UNBOUNDED PRECEDING) - n AS ahead FROM page) SELECT {AUDIT_COLUMNS} "
                         f"FROM audit WHERE seq IN (SELECT seq FROM kept WHERE ahead < ?){order}")
            params.append(max_bytes)
        rows = await self.rows(statement, params)
        if sum(len(r[8]) + len(r[9]) for r in rows) > THREAD_BYTES:  # megabyte patches: parsed off the loop
            return await asyncio.to_thread(_changes, rows)
        return _changes(rows)

    async def count_tasks(self, style: str | None = None) -> int:
        if style is None:
            (n,), = await self.rows("SELECT count(*) FROM tasks")
        else:
            (n,), = await self.rows("SELECT count(*) FROM tasks WHERE style = ?", (style,))
        return int(n)

    async def count_by_style(self) -> dict[str, int]:
        return {style: n for style, n in await self.rows("SELECT style, count(*) FROM tasks GROUP BY style")}

    async def count_audited_tasks(self) -> int:
        (n,), = await self.rows("SELECT count(*) FROM (SELECT DISTINCT style, task_id FROM audit)")  # audit_by_task
        return int(n)

    async def schema_version(self) -> int:
        return int((await self.rows("PRAGMA user_version"))[0][0])

    async def integrity_check(self) -> str:
        return str((await self.rows("PRAGMA integrity_check"))[0][0])

    async def trails(self, *, chunk: int = 500) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
        """Both tables read in keyset-paginated chunks and merged, inside one read
        transaction, so the whole walk sees one snapshot while writers go on; memory is a
        chunk of each plus one task's trail. The reader is held in that transaction until
        the walk ends."""
        async with self.read_snapshot():
            async for trail in merge_trails(self.export(chunk=chunk), self._audit_by_task(chunk)):
                yield trail

    @contextlib.asynccontextmanager
    async def read_snapshot(self) -> AsyncIterator[None]:
        """One read transaction on the reader; nested, the outer one holds."""
        if self._reader.in_transaction:
            yield
            return
        await self._reader.execute("BEGIN")
        try:
            yield
        finally:
            await self._reader.execute("COMMIT")

    async def _audit_by_task(self, chunk: int) -> AsyncIterator[Change]:
        after: tuple[str, str, int] = ("", "", 0)
        while True:
            found = await self.rows(
                f"SELECT {AUDIT_COLUMNS} FROM audit "
                "WHERE (style, task_id, seq) > (?, ?, ?) ORDER BY style, task_id, seq LIMIT ?", (*after, chunk))
            for r in found:
                yield change_from_row(r)
            if len(found) < chunk:
                return
            after = (found[-1][2], found[-1][3], found[-1][0])


def _tasks(style: str, rows: Sequence[Any]) -> list[Task]:
    """Tasks from rows read as :data:`~gateway.store.sqlite.sql.TASK_COLUMNS` (any thread)."""
    return [Task(style, i, v, load_doc(d), m, c) for i, v, d, m, c in rows]


def _changes(rows: Sequence[Any]) -> list[Change]:
    return [change_from_row(r) for r in rows]
