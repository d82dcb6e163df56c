"""Copying every row of one store into another, across backends (``taskgate copy``).

Tasks keep their ids, versions, documents and times; audit rows keep their seqs, patches
and inverses; users, tokens, OAuth clients, id counters, owners and what they hold, webhook
subscriptions and their delivery log come along as they are. Each table is read in
keyset-paginated chunks of its primary key (the same order on both backends: bytes) and
written in one transaction a chunk, so memory stays a chunk whatever the size. The keys
column and the ``keyed`` table are not copied: the target's gateway computes them for its
own indexes when it starts (``ensure_indexes`` finds no keyed fields and rekeys).

Owns the list of copied tables and columns, the emptiness check of a target, and the
writing of raw rows into each backend (SQLite through a connection of its own to the file,
after its store has closed; PostgreSQL with ``COPY``). It must not decide what to copy
from where: :mod:`gateway.copying` does.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.model import Store

__all__ = ["TABLES", "count_rows", "is_empty", "read_chunks", "SQLiteTarget", "PostgreSQLTarget"]

#: table → (its columns, the leading ones being its primary key), in the order they are copied
TABLES: dict[str, tuple[tuple[str, ...], int]] = {
    "users": (("name", "role", "password_hash", "created", "associate_id", "disabled"), 1),
    "tokens": (("hash", '"user"', "read_only", "expires", "source", "created"), 1),
    "oauth_clients": (("client_id", "secret_hash", '"user"', "created"), 1),
    "tasks": (("style", "id", "version", "created", "modified", "doc", "owner", "size"), 2),
    "audit": (("seq", "at", "style", "task_id", "version", "action", "actor", "request_id", "patch", "undo",
               "client", "impersonator"), 1),
    "counters": (("style", "last"), 1),
    "owners": (("style", "field"), 1),
    "usage": (("style", "owner", "tasks", "bytes"), 2),
    "graves": (("seq", "style", "task_id", "at", "owner", "bytes"), 1),
    "hooks": (("num", "style", "id", "doc", "active", "cursor", "failures", "created", "updated"), 1),
    "hook_log": (("seq", "hook", "event", "at", "attempt", "status", "outcome", "error", "ms"), 1),
}
#: columns SQLite holds as 0 and 1 and PostgreSQL as booleans
BOOLEANS = {("users", "disabled"), ("tokens", "read_only"), ("hooks", "active")}
#: the tables whose rows make a database not empty
CONTENT = ("users", "tasks", "audit", "hooks")


async def count_rows(store: Store, table: str) -> int:
    return int((await store.read_sql(f"SELECT count(*) FROM {table}"))[0][0])  # type: ignore[attr-defined]


async def is_empty(store: Store) -> bool:
    """Whether *store* holds no users, tasks, audit rows or webhooks."""
    return all([await count_rows(store, table) == 0 for table in CONTENT])


async def read_chunks(store: Store, table: str, chunk: int = 2000) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The rows of *table* (as :data:`TABLES` lists its columns) in chunks, by primary key."""
    columns, key = TABLES[table]
    listed, keys = ", ".join(columns), ", ".join(columns[:key])
    after: tuple[Any, ...] | None = None
    while True:
        where = "" if after is None else f" WHERE ({keys}) > ({', '.join('?' * key)})"
        rows = await store.read_sql(f"SELECT {listed} FROM {table}{where} ORDER BY {keys} LIMIT {int(chunk)}",  # type: ignore[attr-defined]
                                    after or ())
        if rows:
            yield [tuple(r) for r in rows]
        if len(rows) < chunk:
            return
        after = tuple(rows[-1][:key])


def _convert(table: str, rows: Sequence[tuple[Any, ...]], to_bool: bool) -> list[tuple[Any, ...]]:
    columns, _ = TABLES[table]
    flags = [(table, c) in BOOLEANS for c in columns]
    if not any(flags):
        return list(rows)
    return [tuple((bool(v) if to_bool else int(v)) if flag and v is not None else v
                  for v, flag in zip(r, flags, strict=True)) for r in rows]


class SQLiteTarget:
    """Rows written into a SQLite file whose store has been closed (a connection of its own)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA foreign_keys = ON")

    async def clear(self) -> None:
        await asyncio.to_thread(self._script, [f"DELETE FROM {t}" for t in reversed(TABLES)] + ["DELETE FROM keyed"])

    def _script(self, statements: list[str]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    async def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        columns, _ = TABLES[table]
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        values = _convert(table, rows, to_bool=False)

        def run() -> None:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(statement, values)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        await asyncio.to_thread(run)

    async def finish(self) -> None:
        await asyncio.to_thread(self._conn.execute, "PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._conn.close()


class PostgreSQLTarget:
    """Rows written into a PostgreSQL store's database with ``COPY``, one transaction a chunk.
    *keyed*: the fields each style's gateway keys (indexes), whose values the store checks."""

    def __init__(self, load: Callable[..., Any], statements: Callable[[list[str]], Any],
                 keyed: Mapping[str, Sequence[str]] | None = None) -> None:
        self._load = load
        self._statements = statements
        self._keyed = keyed

    async def clear(self) -> None:
        await self._statements([f"DELETE FROM {t}" for t in reversed(TABLES)] + ["DELETE FROM keyed",
                                                                                 "UPDATE audit_head SET seq = 0"])

    async def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        columns, _ = TABLES[table]
        await self._load(table, [c.strip('"') for c in columns], _convert(table, rows, to_bool=True),
                         keyed=self._keyed)

    async def finish(self) -> None:
        """The newest audit seq and the serials where the copied rows left them."""
        await self._statements([
            "UPDATE audit_head SET seq = (SELECT coalesce(max(seq), 0) FROM audit)",
            "SELECT setval(pg_get_serial_sequence('hooks', 'num'), (SELECT coalesce(max(num), 0) + 1 FROM hooks), "
            "false)",
            "SELECT setval(pg_get_serial_sequence('hook_log', 'seq'), "
            "(SELECT coalesce(max(seq), 0) + 1 FROM hook_log), false)"])

    def close(self) -> None:
        pass
