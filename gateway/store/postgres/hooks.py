"""Webhook subscriptions on PostgreSQL: their cursors into the audit trail and the delivery log.

The rows and rules of the SQLite store's hooks (:mod:`gateway.store.sqlite.hooks`): a hook's
document is its style's own shape, stored as given; each change is one transaction; a new
hook (or one made active again) starts at the newest audit seq. The one-dispatcher lock is
a lease (:mod:`.leases`), held by one gateway of all those sharing the database. It must not
decide what is delivered, when, or how: :mod:`gateway.events.delivery` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from gateway.clock import now_iso
from gateway.model import Delivery, Doc, Hook
from gateway.store.postgres.accounts import conflict
from gateway.store.postgres.connection import Database
from gateway.store.postgres.sql import storable

__all__ = ["Hooks"]

_COLUMNS = "num, style, id, doc, active, cursor, failures, created, updated"


def _hook(row: Sequence[Any]) -> Hook:
    num, style, hook_id, doc, active, cursor, failures, created, updated = row
    return Hook(num, style, hook_id, json.loads(doc), bool(active), cursor, failures, created, updated)


class Hooks:
    """Hook rows on *db*."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, style: str, hook_id: str | None, build: Callable[[str], Doc], *, active: bool) -> Hook:
        now = now_iso()
        try:
            async with self._db.transaction() as conn:
                num = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('hooks', 'num'))")
                given = hook_id if hook_id is not None else str(num)
                row = await conn.fetchrow(
                    "INSERT INTO hooks (num, style, id, doc, active, cursor, failures, created, updated) "
                    "VALUES ($1, $2, $3, $4, $5, (SELECT seq FROM audit_head), 0, $6, $6) "
                    f"RETURNING {_COLUMNS}", num, style, given, json.dumps(build(given)), bool(active), now)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise conflict(exc) from None
        return _hook(row)

    async def all(self, style: str | None = None) -> list[Hook]:
        if style is None:
            found = await self._db.fetch(f"SELECT {_COLUMNS} FROM hooks ORDER BY num")
        else:
            found = await self._db.fetch(f"SELECT {_COLUMNS} FROM hooks WHERE style = $1 ORDER BY num", style)
        return [_hook(row) for row in found]

    async def get(self, style: str, hook_id: str) -> Hook | None:
        if not storable(hook_id):
            return None
        found = await self._db.fetch(f"SELECT {_COLUMNS} FROM hooks WHERE style = $1 AND id = $2", style, hook_id)
        return _hook(found[0]) if found else None

    async def by_num(self, num: int) -> Hook | None:
        found = await self._db.fetch(f"SELECT {_COLUMNS} FROM hooks WHERE num = $1", num)
        return _hook(found[0]) if found else None

    async def replace(self, style: str, hook_id: str, doc: Doc, *, active: bool) -> Hook | None:
        if not storable(hook_id):
            return None
        async with self._db.transaction() as conn:
            was = await conn.fetchval("SELECT active FROM hooks WHERE style = $1 AND id = $2 FOR UPDATE",
                                      style, hook_id)
            if was is None:
                return None
            if active and not was:  # started again: from now on, with a clean slate
                await conn.execute("UPDATE hooks SET cursor = (SELECT seq FROM audit_head), failures = 0 "
                                   "WHERE style = $1 AND id = $2", style, hook_id)
            row = await conn.fetchrow(f"UPDATE hooks SET doc = $1, active = $2, updated = $3 "
                                      f"WHERE style = $4 AND id = $5 RETURNING {_COLUMNS}",
                                      json.dumps(doc), bool(active), now_iso(), style, hook_id)
        return _hook(row)

    async def delete(self, style: str, hook_id: str) -> bool:
        if not storable(hook_id):
            return False
        async with self._db.transaction() as conn:
            num = await conn.fetchval("DELETE FROM hooks WHERE style = $1 AND id = $2 RETURNING num", style, hook_id)
            if num is None:
                return False
            await conn.execute("DELETE FROM hook_log WHERE hook = $1", num)
        return True

    async def advance(self, num: int, *, expected_cursor: int, cursor: int, failures: int,
                      log: Sequence[Delivery], disable: Doc | None = None, keep_log: int = 10_000) -> bool:
        async with self._db.transaction() as conn:
            moved = await conn.fetchval("UPDATE hooks SET cursor = $1, failures = $2 WHERE num = $3 AND cursor = $4 "
                                        "RETURNING num", cursor, failures, num, expected_cursor)
            if moved is not None and disable is not None:
                await conn.execute("UPDATE hooks SET doc = $1, active = false, updated = $2 WHERE num = $3",
                                   json.dumps(disable), now_iso(), num)
            if log:
                await conn.executemany(
                    "INSERT INTO hook_log (hook, event, at, attempt, status, outcome, error, ms) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    [(d.hook, d.event, d.at, d.attempt, d.status, d.outcome, d.error[:500], d.ms) for d in log])
                await conn.execute("DELETE FROM hook_log WHERE seq <= (SELECT max(seq) FROM hook_log) - $1",
                                   int(keep_log))
        return moved is not None

    async def log(self, *, hook: int | None = None, limit: int = 100) -> list[Delivery]:
        columns = "seq, hook, event, at, attempt, status, outcome, error, ms"
        if hook is None:
            found = await self._db.fetch(f"SELECT {columns} FROM hook_log ORDER BY seq DESC LIMIT $1", int(limit))
        else:
            found = await self._db.fetch(f"SELECT {columns} FROM hook_log WHERE hook = $1 ORDER BY seq DESC LIMIT $2",
                                         hook, int(limit))
        return [Delivery(*row) for row in found]
