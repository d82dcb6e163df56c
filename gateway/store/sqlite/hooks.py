"""Webhook subscriptions, their cursors into the audit trail, the delivery log, and the
one-dispatcher-per-database lock.

Owns the ``hooks`` and ``hook_log`` rows. A hook's document is its style's own shape,
stored as given; this module never reads inside it. Changes are small transactions run
whole on the writer's thread (beside group commit, under the writer's lock); reads run
on the reader. The dispatcher lock is an exclusive ``flock`` on a file beside the
database: the kernel drops it when the process ends, however it ends (kill -9 too), so a
restarted or second ``serve`` takes over at once. It must not decide what is delivered,
when, or how: :mod:`gateway.events.delivery` does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway import errors
from gateway.clock import now_iso
from gateway.model import Delivery, Doc, Hook
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["Hooks"]

Rows = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
_COLUMNS = "num, style, id, doc, active, cursor, failures, created, updated"


def _hook(row: Sequence[Any]) -> Hook:
    num, style, hook_id, doc, active, cursor, failures, created, updated = row
    return Hook(num, style, hook_id, json.loads(doc), bool(active), cursor, failures, created, updated)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


def _newest_seq(conn: sqlite3.Connection) -> int:
    (seq,), = conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchall()
    return int(seq)


class Hooks:
    """Hook rows: *rows* reads on the reader, *writer* changes them; *committed* is called
    after each change commits (the checkpointer's cue)."""

    def __init__(self, writer: WriteConnection, rows: Rows, committed: Callable[[], None]) -> None:
        self._writer = writer
        self._rows = rows
        self._committed = committed

    async def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            result = await self._writer.transaction(fn)
        except sqlite3.IntegrityError as exc:
            raise errors.Conflict(str(exc)) from None
        self._committed()
        return result

    async def create(self, style: str, hook_id: str | None, build: Callable[[str], Doc], *, active: bool) -> Hook:
        def run(conn: sqlite3.Connection) -> Hook:
            now = now_iso()
            cursor = conn.execute(
                "INSERT INTO hooks (style, id, doc, active, cursor, failures, created, updated) "
                "VALUES (?, ?, '{}', ?, ?, 0, ?, ?)", (style, hook_id or "", int(active), _newest_seq(conn), now, now))
            num = int(cursor.lastrowid or 0)
            given = hook_id if hook_id is not None else str(num)
            doc = build(given)
            conn.execute("UPDATE hooks SET id = ?, doc = ? WHERE num = ?", (given, json.dumps(doc), num))
            return _hook(conn.execute(f"SELECT {_COLUMNS} FROM hooks WHERE num = ?", (num,)).fetchone())
        hook: Hook = await self._write(run)
        return hook

    async def all(self, style: str | None = None) -> list[Hook]:
        where, params = ("WHERE style = ? ", (style,)) if style is not None else ("", ())
        found = await self._rows(f"SELECT {_COLUMNS} FROM hooks {where}ORDER BY num", params)
        return [_hook(row) for row in found]

    async def get(self, style: str, hook_id: str) -> Hook | None:
        found = await self._rows(f"SELECT {_COLUMNS} FROM hooks WHERE style = ? AND id = ?", (style, hook_id))
        return _hook(found[0]) if found else None

    async def by_num(self, num: int) -> Hook | None:
        found = await self._rows(f"SELECT {_COLUMNS} FROM hooks WHERE num = ?", (num,))
        return _hook(found[0]) if found else None

    async def replace(self, style: str, hook_id: str, doc: Doc, *, active: bool) -> Hook | None:
        def run(conn: sqlite3.Connection) -> Hook | None:
            row = conn.execute("SELECT active FROM hooks WHERE style = ? AND id = ?", (style, hook_id)).fetchone()
            if row is None:
                return None
            if active and not row[0]:  # started again: from now on, with a clean slate
                conn.execute("UPDATE hooks SET cursor = ?, failures = 0 WHERE style = ? AND id = ?",
                             (_newest_seq(conn), style, hook_id))
            conn.execute("UPDATE hooks SET doc = ?, active = ?, updated = ? WHERE style = ? AND id = ?",
                         (json.dumps(doc), int(active), now_iso(), style, hook_id))
            return _hook(conn.execute(f"SELECT {_COLUMNS} FROM hooks WHERE style = ? AND id = ?",
                                      (style, hook_id)).fetchone())
        hook: Hook | None = await self._write(run)
        return hook

    async def delete(self, style: str, hook_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT num FROM hooks WHERE style = ? AND id = ?", (style, hook_id)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM hook_log WHERE hook = ?", (row[0],))
            conn.execute("DELETE FROM hooks WHERE num = ?", (row[0],))
            return True
        done: bool = await self._write(run)
        return done

    async def advance(self, num: int, *, expected_cursor: int, cursor: int, failures: int,
                      log: Sequence[Delivery], disable: Doc | None = None, keep_log: int = 10_000) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            moved = conn.execute("UPDATE hooks SET cursor = ?, failures = ? WHERE num = ? AND cursor = ?",
                                 (cursor, failures, num, expected_cursor)).rowcount
            if moved and disable is not None:
                conn.execute("UPDATE hooks SET doc = ?, active = 0, updated = ? WHERE num = ?",
                             (json.dumps(disable), now_iso(), num))
            if log:
                conn.executemany(
                    "INSERT INTO hook_log (hook, event, at, attempt, status, outcome, error, ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(d.hook, d.event, d.at, d.attempt, d.status, d.outcome, d.error[:500], d.ms) for d in log])
                conn.execute("DELETE FROM hook_log WHERE seq <= (SELECT max(seq) FROM hook_log) - ?", (keep_log,))
            return bool(moved)
        done: bool = await self._write(run)
        return done

    async def log(self, *, hook: int | None = None, limit: int = 100) -> list[Delivery]:
        where, params = ("WHERE hook = ? ", (hook,)) if hook is not None else ("", ())
        found = await self._rows("SELECT seq, hook, event, at, attempt, status, outcome, error, ms FROM hook_log "
                                 f"{where}ORDER BY seq DESC LIMIT ?", (*params, int(limit)))
        return [_delivery(row) for row in found]

    async def last_seq(self) -> int:
        (seq,), = await self._rows("SELECT coalesce(max(seq), 0) FROM audit", ())
        return int(seq)
