"""Reading tasks and the audit trail from PostgreSQL, beside the writers.

Every read is one statement on a pooled connection (READ COMMITTED: committed data only),
or, inside :meth:`Database.read_snapshot`, on the task's one repeatable-read transaction.
The answers are those of the SQLite store's reads (:mod:`gateway.store.sqlite.reads`):
the same tasks in the same order, lists in two steps for large documents
(:meth:`TaskReads.find_ids`, then :meth:`TaskReads.read_chunks`), exports and trails in
keyset-paginated chunks. It must not write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway.model import Change, Chunk, Task
from gateway.query import Query
from gateway.store import errors as store_errors
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database
from gateway.store.rows import AUDIT_COLUMNS, change_from_row, load_doc
from gateway.store.trails import merge_trails

__all__ = ["TaskReads", "FIRST_CHUNK", "MAX_CHUNK", "THREAD_BYTES"]

#: as the SQLite store's reads (gateway/store/sqlite/reads.py): the first chunk's tasks, the
#: most in one chunk, and the stored bytes past which a chunk is parsed off the loop
FIRST_CHUNK = 4
MAX_CHUNK = 500
THREAD_BYTES = 262_144


class TaskReads:
    """The reads of tasks and audit rows; *keyed* is the store's copy of each style's keyed fields."""

    def __init__(self, db: Database, keyed: dict[str, tuple[str, ...]]) -> None:
        self._db = db
        self._keyed = keyed

    async def get(self, style: str, task_id: str) -> Task | None:
        if not sql.storable(task_id):
            return None
        found = await self._db.fetch("SELECT version, doc, modified, created FROM tasks WHERE style = $1 AND id = $2",
                                     style, task_id)
        if not found:
            return None
        version, doc, modified, created = found[0]
        return Task(style, task_id, version, load_doc(doc), modified, created)

    async def get_text(self, style: str, task_id: str) -> tuple[int, str] | None:
        if not sql.storable(task_id):  # no row holds a NUL, and no parameter can
            return None
        found = await self._db.fetch("SELECT version, doc FROM tasks WHERE style = $1 AND id = $2", style, task_id)
        return (found[0][0], found[0][1]) if found else None

    async def find(self, style: str, query: Query) -> tuple[list[Task], int | None]:
        found, total = await self._find(style, query, sql.TASK_COLUMNS)
        return [Task(style, i, v, load_doc(d), m, c) for i, v, d, m, c in found], total

    async def find_ids(self, style: str, query: Query) -> tuple[list[str], int | None]:
        found, total = await self._find(style, query, "id")
        return [row[0] for row in found], total

    async def _find(self, style: str, query: Query, columns: str) -> tuple[list[Any], int | None]:
        """The page's rows of *columns*, and the count when asked, each statement cancelled
        after :data:`~gateway.store.errors.QUERY_SECONDS` as on SQLite (a 400)."""
        keyed = self._keyed.get(style, ())
        where, params = sql.where_clause(style, query, keyed)
        page, page_params = sql.page_sql(where, params, query, keyed, columns=columns)
        seconds = store_errors.QUERY_SECONDS
        try:
            found = await self._db.fetch(page, *page_params, timeout=seconds)
            total = None
            if query.count:
                total = int((await self._db.fetch(sql.count_sql(where), *params, timeout=seconds))[0][0])
        except TimeoutError:
            raise store_errors.search_stopped(style) from None
        return found, total

    async def read_chunks(self, style: str, ids: Sequence[str], *,
                          chunk_bytes: int = 1_048_576) -> AsyncIterator[Chunk]:
        """Chunks sized by what the tasks read so far weighed on average, as on SQLite."""
        start, count, seen_tasks, seen_bytes = 0, FIRST_CHUNK, 0, 0
        while start < len(ids):
            part = list(ids[start:start + count])
            start += len(part)
            rows = await self._db.fetch(f"SELECT {sql.TASK_COLUMNS} FROM tasks WHERE style = $1 AND id = ANY($2)",
                                        style, part)
            size = sum(len(row[2].encode("utf-8")) for row in rows)
            tasks = await asyncio.to_thread(_tasks, style, rows) if size > THREAD_BYTES else _tasks(style, rows)
            place = {task_id: n for n, task_id in enumerate(part)}
            tasks.sort(key=lambda t: place[t.id])
            seen_tasks += len(part)
            seen_bytes += size
            count = max(1, min(MAX_CHUNK, chunk_bytes * seen_tasks // max(seen_bytes, 1)))
            if tasks:
                yield Chunk(tasks, size)

    async def explain(self, style: str, query: Query) -> str:
        """PostgreSQL's plan of the page *query* reads (EXPLAIN's lines)."""
        keyed = self._keyed.get(style, ())
        page, params = sql.page_sql(*sql.where_clause(style, query, keyed), query, keyed)
        return "\n".join(row[0] for row in await self._db.fetch(f"EXPLAIN {page}", *params))

    async def export(self, style: str | None = None, *, chunk: int = 500,
                     conn: Any = None) -> AsyncIterator[Task]:
        after = ("", "")
        while True:
            statement = "SELECT style, id, version, doc FROM tasks WHERE (style, id) > ($1, $2)"
            params: list[Any] = [*after]
            if style is not None:
                statement += " AND style = $3"
                params.append(style)
            found = await self._db.fetch(statement + f" ORDER BY style, id LIMIT {int(chunk)}", *params, conn=conn)
            for s, i, v, d in found:
                yield Task(s, i, v, load_doc(d))
            if len(found) < chunk:
                return
            after = (found[-1][0], found[-1][1])

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True,
                    after: int | None = None, before: int | None = None,
                    action: str | None = None, max_bytes: int | None = None) -> list[Change]:
        if not sql.storable(task_id):
            return []
        terms = (("action", "=", action), ("seq", ">", after), ("seq", "<", before), ("style", "=", style),
                 ("task_id", "=", task_id))
        params = sql.Params()
        where = [f"{name} {op} {params.add(item)}" for name, op, item in terms if item is not None]
        order = f" ORDER BY seq {'DESC' if newest_first else 'ASC'}"
        matching = " FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + order + \
            f" LIMIT {params.add(limit)}"
        if max_bytes is None:
            statement = f"SELECT {AUDIT_COLUMNS}{matching}"
        else:  # the rows' sizes first (no row leaves the server), then the rows that fit
            statement = (f"WITH page AS (SELECT seq, octet_length(patch::text) + octet_length(undo::text) AS n"
                         f"{matching}), kept AS (SELECT seq, sum(n) OVER ({order} ROWS UNBOUNDED PRECEDING) - n "
                         f"AS ahead FROM page) SELECT {AUDIT_COLUMNS} FROM audit WHERE seq IN (SELECT seq FROM kept "
                         f"WHERE ahead < {params.add(max_bytes)}){order}")
        rows = await self._db.fetch(statement, *params)
        if sum(len(r[8]) + len(r[9]) for r in rows) > THREAD_BYTES:  # megabyte patches: parsed off the loop
            return await asyncio.to_thread(_changes, rows)
        return _changes(rows)

    async def count_tasks(self, style: str | None = None) -> int:
        if style is None:
            found = await self._db.fetch("SELECT count(*) FROM tasks")
        else:
            found = await self._db.fetch("SELECT count(*) FROM tasks WHERE style = $1", style)
        return int(found[0][0])

    async def count_by_style(self) -> dict[str, int]:
        return {style: int(n) for style, n in
                await self._db.fetch("SELECT style, count(*) FROM tasks GROUP BY style ORDER BY style")}

    async def count_audited_tasks(self) -> int:
        found = await self._db.fetch("SELECT count(*) FROM (SELECT DISTINCT style, task_id FROM audit) AS t")
        return int(found[0][0])

    async def trails(self, *, chunk: int = 500) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
        """Both tables read in chunks and merged, all in one snapshot (as on SQLite)."""
        async with self._db.snapshot() as conn:
            async for trail in merge_trails(self.export(chunk=chunk, conn=conn), self._audit_by_task(chunk, conn)):
                yield trail

    async def _audit_by_task(self, chunk: int, conn: Any) -> AsyncIterator[Change]:
        after: tuple[str, str, int] = ("", "", 0)
        while True:
            found = await self._db.fetch(
                f"SELECT {AUDIT_COLUMNS} FROM audit WHERE (style, task_id, seq) > ($1, $2, $3) "
                f"ORDER BY style, task_id, seq LIMIT {int(chunk)}", *after, conn=conn)
            for r in found:
                yield change_from_row(r)
            if len(found) < chunk:
                return
            after = (found[-1][2], found[-1][3], found[-1][0])


def _tasks(style: str, rows: Sequence[Any]) -> list[Task]:
    return [Task(style, i, v, load_doc(d), m, c) for i, v, d, m, c in rows]


def _changes(rows: Sequence[Any]) -> list[Change]:
    return [change_from_row(r) for r in rows]
