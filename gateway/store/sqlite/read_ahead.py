"""Reads ahead of the writer: the pages queued writes will read, read before their batch.

A write reads its task's row, and appends to the task's entries in the audit index,
inside the writer's transaction, on the event loop's thread. When those pages are not in
memory (a large file, or one the kernel has not read lately), each is a disk read, one
after another, while the loop and every queued write wait. So each queued write's key
also goes to :class:`ReadAhead`, whose threads read the same pages on connections of
their own, several keys at once, while the writer is busy with the batch before; the
writer then finds them in the operating system's cache. While the read-ahead finds every
page there it rests, and the writer's own reads tell it when that changes.

Owns those threads and their read-only connections. It is only a hint: a failed or late
read costs nothing but the wait it would have saved, and it must never write, nor hold
anything the writer waits for beyond :data:`WARM_WAIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gateway.store.sqlite.batch import QueuedWrite
from gateway.store.sqlite.sql import keys_table

try:
    import resource
    _RUSAGE_THREAD: int | None = resource.RUSAGE_THREAD  # Linux
except (ImportError, AttributeError):
    _RUSAGE_THREAD = None

__all__ = ["WARM_THREADS", "WARM_CHUNK", "WARM_WAIT", "ReadAhead", "blocks_read"]

#: threads (each with a connection) reading ahead of the writer, and keys each reads at once
WARM_THREADS = 4
WARM_CHUNK = 8
#: the longest a batch waits for the read-ahead of its tasks before reading them itself
WARM_WAIT = 0.05


class ReadAhead:
    """Reads, on threads and connections of its own, what queued writes will read inside
    their transaction: each task's row and the end of its audit trail.

    A batch waits (:meth:`settled`, at most :data:`WARM_WAIT`) until its writes have been
    read ahead: otherwise it starts before them and the loop's thread reads the pages from
    the disk itself.

    The keys of one turn of the event loop go to the threads together, in chunks of
    :data:`WARM_CHUNK`, so that a burst is read in parallel and a thread wakes once a chunk.

    When the file is in memory (a small database, or a hot one) the read-ahead saves
    nothing and costs the GIL. So each thread asks the kernel whether its last chunk read
    anything from the device (``getrusage(RUSAGE_THREAD).ru_inblock``: exact, and blind to
    how long the thread waited for the GIL, which a timing is not). While none did
    (:attr:`cold` is False), no write is read ahead: the writer asks the kernel the same of
    its own reads in each batch (:meth:`watch`, :meth:`watched`), and the first batch that
    reads from the device turns the read-ahead back on for every write. (It used to read
    one write in 16 ahead to notice that: a hand-over to a thread, and the GIL taken back,
    each time.)
    """

    def __init__(self, path: str, threads: int = WARM_THREADS, *, uri: bool = False) -> None:
        self._chunks: queue.SimpleQueue[list[QueuedWrite] | None] = queue.SimpleQueue()
        self._pending: list[QueuedWrite] = []
        self.cold = True  # whether the last chunk read from the device; set by the threads
        self._waiter: asyncio.Future[None] | None = None  # the writer's, while it waits (settled)
        self._conns: list[sqlite3.Connection] = []
        try:
            for _ in range(threads):
                self._conns.append(conn := sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                                           uri=uri))
                conn.execute("PRAGMA query_only = ON")
                conn.execute("PRAGMA cache_size = -1024")  # it reads each page once; the OS cache is what it fills
        except BaseException:
            for conn in self._conns:
                conn.close()
            raise
        self._threads = [threading.Thread(target=self._run, args=(conn,), name="store-warmer", daemon=True)
                         for conn in self._conns]
        for thread in self._threads:
            thread.start()

    def warm(self, write: QueuedWrite) -> None:
        """Read the pages of the write's task soon (on the event loop: the keys go out at the
        end of its turn), unless the file is in memory."""
        if not self.cold:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        write.warmed = False
        self._pending.append(write)

    def _flush(self) -> None:
        writes, self._pending = self._pending, []
        for start in range(0, len(writes), WARM_CHUNK):
            self._chunks.put(writes[start:start + WARM_CHUNK])

    def watch(self) -> int | None:
        """Before the writer's reads of a batch, on its thread: what :meth:`watched` compares
        with after them (None while the read-ahead reads every write anyway)."""
        return None if self.cold else blocks_read()

    def watched(self, before: int | None) -> None:
        """After the writer's reads of a batch: read ahead of every write again if they
        reached the device (*before*: what :meth:`watch` gave)."""
        if before is not None and blocks_read() != before:
            self.cold = True

    async def settled(self, writes: Sequence[QueuedWrite]) -> None:
        """Once every one of *writes* that went to the threads has been read ahead, or
        after :data:`WARM_WAIT` seconds. Meanwhile the loop serves other requests instead
        of waiting for the same disk reads inside the batch's statements. While the reads
        ahead find the file in memory, there is nothing to wait for."""
        if not self.cold:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WARM_WAIT
        try:
            while any(not w.warmed for w in writes):
                self._waiter = waiter = loop.create_future()
                if all(w.warmed for w in writes) or loop.time() >= deadline:  # a thread was quicker
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await waiter
        finally:
            self._waiter = None

    @property
    def running(self) -> bool:
        """Whether any of its threads still runs (none does after :meth:`close`)."""
        return any(thread.is_alive() for thread in self._threads)

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call *callback* with every statement its connections run, on their threads (None: stop)."""
        for conn in self._conns:
            conn.set_trace_callback(callback)

    def close(self) -> None:
        for _ in self._threads:
            self._chunks.put(None)
        for thread in self._threads:
            thread.join()
        for conn in self._conns:
            conn.close()

    def _run(self, conn: sqlite3.Connection) -> None:
        while (writes := self._chunks.get()) is not None:
            before = blocks_read()
            with contextlib.suppress(sqlite3.Error):
                self.read(conn, [(w.style, w.task_id) for w in writes if w.task_id is not None])
            self.cold = before is None or blocks_read() != before
            for w in writes:
                w.warmed = True
            if (waiter := self._waiter) is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    @staticmethod
    def read(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]], explain: bool = False) -> list[Any]:
        """For each key: the task's version and its last audit seq (None when absent), read
        through the pages the writer's transaction will read and write (with *explain*,
        SQLite's plan instead). One row for the whole chunk: each step of a statement
        lets go of the GIL and then waits, behind the busy event loop, to take it back."""
        table, params = keys_table(keys)
        select = ("SELECT json_group_array(json_array("
                  "(SELECT version FROM tasks AS t WHERE t.style = k.style AND t.id = k.id), "
                  "(SELECT seq FROM audit AS a WHERE a.style = k.style AND a.task_id = k.id "
                  "ORDER BY seq DESC LIMIT 1))) FROM k")
        if explain:
            return conn.execute("EXPLAIN QUERY PLAN " + table + select, params).fetchall()
        (found,), = conn.execute(table + select, params).fetchall()
        return [tuple(pair) for pair in json.loads(found)]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def blocks_read() -> int | None:
    """Blocks the calling thread has read from a device rather than from the page cache
    (None where the system does not count them per thread)."""
    if _RUSAGE_THREAD is None:
        return None
    return resource.getrusage(_RUSAGE_THREAD).ru_inblock
