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

Across processes (``serve --workers``, a command beside a server) every transaction is
taken under :class:`WriteLock` first, an ``flock`` on a file beside the database, and
only then ``BEGIN IMMEDIATE``: a writer that finds another process writing sleeps in the
kernel and is woken the moment that commit ends, rather than in SQLite's busy handler,
which sleeps and polls (1, 2, 5, 10 … 100 ms) and let two processes' group commits
starve each other (p99 925 ms where one process had 26 ms). SQLite's own lock still
guards the data; the file lock only orders the waiters.

It knows nothing of tasks, batches or checkpoint policy; it must not be used without its
lock, and nothing else may hold the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import SimpleQueue
from threading import Thread
from typing import Any, TypeVar

__all__ = ["WriteConnection", "WriteLock", "is_busy", "lock_path"]

R = TypeVar("R")


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock it needs."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def lock_path(db: str | Path) -> Path:
    """The file whose lock orders the writers of the database at *db*."""
    return Path(f"{db}-writer.lock")


class WriteLock:
    """An exclusive ``flock`` on a file beside the database, held from before ``BEGIN
    IMMEDIATE`` to after ``COMMIT`` or ``ROLLBACK``. The kernel wakes a waiter as soon as
    the holder lets go, and lets go for a process that dies (``kill -9``) with it.
    Only writers of taskgate take it, for one transaction at a time. Without a *path* (a
    database opened read-only, where no write begins and no lock file can be made) it
    orders nothing."""

    def __init__(self, path: str | Path | None) -> None:
        self._fd = -1 if path is None else os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if no other writer holds it; False at once if one does."""
        try:
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def acquire(self) -> None:
        """Take the lock, waiting in the kernel for the writer that holds it (a thread's call)."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        if self._fd >= 0:
            os.close(self._fd)


def _settle(future: asyncio.Future[Any], ok: bool, outcome: Any) -> None:
    if not future.cancelled():
        if ok:
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


class _WriterThread:
    """One thread running the writer's jobs in order, each answered on the loop that sent
    it. One hand-over each way and nothing else: a ThreadPoolExecutor job (its work item,
    locks, concurrent future and the asyncio future chained to it) cost several times that
    in Python on the loop's thread, once per batch."""

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]] | None] = \
            SimpleQueue()
        self._thread = Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], R]) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._jobs.put((loop, future, fn))
        return future

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn = job
            try:
                outcome, ok = fn(), True
            except BaseException as exc:  # the caller's to handle, as an executor would hand it over
                outcome, ok = exc, False
            try:
                loop.call_soon_threadsafe(_settle, future, ok, outcome)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass
            del job, future, outcome

    def shutdown(self) -> None:
        """End the thread once the jobs before have run."""
        self._jobs.put(None)
        self._thread.join()


class WriteConnection:
    """The writer: :attr:`conn` on the loop's thread and :meth:`off_loop` on its own, both
    only while :attr:`lock` is held; each transaction also under :attr:`file_lock`."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout_ms: int, file_lock: WriteLock) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()
        self.file_lock = file_lock
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._thread = _WriterThread("store-writer")

    @classmethod
    def connect(cls, path: str | Path, busy_timeout_ms: int, *, uri: bool = False) -> WriteConnection:
        """*uri*: *path* is a ``file:`` URI (a read-only database is opened so, and takes no
        file lock: it never begins a write)."""
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, uri=uri)
        try:
            return cls(conn, busy_timeout_ms, WriteLock(None if uri else lock_path(path)))
        except OSError:
            conn.close()
            raise

    async def off_loop(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """``fn(connection)`` on the writer's thread. Should the caller be cancelled, this
        still returns only once the thread is done with the connection, so that the lock is
        never let go while the thread uses it."""
        conn = self.conn
        job = self._thread.submit(lambda: fn(conn))
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
        """The file lock and BEGIN IMMEDIATE on the loop's thread if no other writer holds
        either (then it takes microseconds); False if one does, without waiting."""
        if not self.file_lock.try_acquire():
            return False
        self.conn.execute("PRAGMA busy_timeout = 0").fetchall()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self.file_lock.release()
            if not is_busy(exc):
                raise
            return False
        except BaseException:
            self.file_lock.release()
            raise
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}").fetchall()
        return True

    def begin_on_thread(self, conn: sqlite3.Connection, rewind: bool = False) -> None:
        """On the writer's thread: wait for the file lock, then BEGIN IMMEDIATE (waiting up
        to the busy timeout for a connection that is not taskgate's, such as a sqlite3 shell)."""
        self.file_lock.acquire()
        try:
            if rewind:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.file_lock.release()
            raise

    async def begin(self, *, rewind: bool = False) -> None:
        """The file lock and BEGIN IMMEDIATE on the writer's thread. With *rewind*, first
        copy what the WAL still holds into the database, so that this transaction starts
        the WAL over."""
        await self.off_loop(lambda conn: self.begin_on_thread(conn, rewind))

    def _end(self, conn: sqlite3.Connection, statement: str) -> None:
        try:
            if statement == "COMMIT" or conn.in_transaction:
                conn.execute(statement).fetchall()
        finally:
            if not conn.in_transaction:  # a failed COMMIT leaves it open: the ROLLBACK after it lets go
                self.file_lock.release()

    async def commit(self) -> None:
        """COMMIT, then let the next writer (of any process) in."""
        await self.off_loop(lambda conn: self._end(conn, "COMMIT"))

    async def rollback(self) -> None:
        """ROLLBACK if a transaction is open (SQLite may already have rolled back by itself:
        disk full, I/O error); after whatever the thread is still running."""
        await self.off_loop(lambda conn: self._end(conn, "ROLLBACK"))

    async def transaction(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Take the lock and run ``fn(connection)`` inside BEGIN IMMEDIATE … COMMIT on the
        writer's thread, as one job; rolled back when *fn* raises."""
        def run(conn: sqlite3.Connection) -> R:
            self.begin_on_thread(conn)
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self.file_lock.release()
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
            self._thread.shutdown()
            self.file_lock.close()
