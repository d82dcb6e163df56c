"""The one connection that writes, and the one way it is driven.

Owns a plain :mod:`sqlite3` connection (``check_same_thread=False``), the asyncio lock
that every use of it holds, and the one thread its blocking steps run on (a
single-thread executor, through ``loop.run_in_executor``). Statements that are quick run
on the event loop's thread under the lock: a batch's reads and writes, whose pages are in
memory or read ahead. Steps that may wait run on the writer's thread: COMMIT (the WAL
write and its sync), BEGIN IMMEDIATE when another connection holds the write lock, the
checkpoint that rewinds the WAL, migrations, bulk loads and whole admin transactions.
One thread keeps them in submission order, so a ROLLBACK queued after a COMMIT runs after
it.

It knows nothing of tasks, batches or checkpoint policy; it must not be used without its
lock, and nothing else may hold the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["WriteConnection", "is_busy"]

R = TypeVar("R")


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock it needs."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class WriteConnection:
    """The writer: :attr:`conn` on the loop's thread and :meth:`off_loop` on its own, both
    only while :attr:`lock` is held."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")

    @classmethod
    def connect(cls, path: str | Path, busy_timeout_ms: int, *, uri: bool = False) -> WriteConnection:
        """*uri*: *path* is a ``file:`` URI (a read-only database is opened so)."""
        return cls(sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, uri=uri),
                   busy_timeout_ms)

    async def off_loop(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """``fn(connection)`` on the writer's thread. Should the caller be cancelled, this
        still returns only once the thread is done with the connection, so that the lock is
        never let go while the thread uses it."""
        job = asyncio.get_running_loop().run_in_executor(self._thread, fn, self.conn)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            while not job.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):  # cancelled again, or the job failed
                    await asyncio.shield(job)
            if not job.cancelled():
                job.exception()  # retrieved: the caller hears of its cancellation instead
            raise

    def begin_now(self) -> bool:
        """BEGIN IMMEDIATE on the loop's thread if no other connection holds the write lock
        (then it takes microseconds); False if one does, without waiting."""
        self.conn.execute("PRAGMA busy_timeout = 0").fetchall()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return False
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}").fetchall()
        return True

    async def begin(self, *, rewind: bool = False) -> None:
        """BEGIN IMMEDIATE on the writer's thread, waiting up to the busy timeout for another
        connection's write lock. With *rewind*, first copy what the WAL still holds into the
        database, so that this transaction starts the WAL over."""
        def begin(conn: sqlite3.Connection) -> None:
            if rewind:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.execute("BEGIN IMMEDIATE")
        await self.off_loop(begin)

    async def commit(self) -> None:
        await self.off_loop(lambda conn: conn.execute("COMMIT").fetchall())

    async def rollback(self) -> None:
        """ROLLBACK if a transaction is open (SQLite may already have rolled back by itself:
        disk full, I/O error); after whatever the thread is still running."""
        def rollback(conn: sqlite3.Connection) -> None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        await self.off_loop(rollback)

    async def transaction(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Take the lock and run ``fn(connection)`` inside BEGIN IMMEDIATE … COMMIT on the
        writer's thread, as one job; rolled back when *fn* raises."""
        def run(conn: sqlite3.Connection) -> R:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        async with self.lock:
            return await self.off_loop(run)

    async def statement(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement on its own (autocommit) on the writer's thread, under the lock; its rows."""
        async with self.lock:
            return await self.off_loop(lambda conn: conn.execute(sql, params).fetchall())

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call *callback* with every statement the connection runs (None: stop)."""
        self.conn.set_trace_callback(callback)

    async def close(self) -> None:
        """Close the connection on its thread, then end the thread."""
        try:
            await self.off_loop(lambda conn: conn.close())
        finally:
            self._thread.shutdown(wait=True)
