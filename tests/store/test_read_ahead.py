"""The read-ahead: its threads read each queued write's pages, rest while the file is in
memory, and a batch waits for them (real threads, real files)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway.model import Task
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite import read_ahead as read_ahead_module
from gateway.store.sqlite.read_ahead import ReadAhead, blocks_read
from tests.store.helpers import bump, until

pytestmark = pytest.mark.sqlite_only("SQLite's read-ahead threads")

async def test_the_read_ahead_reads_each_task_s_row_and_audit_end_through_their_indexes(
        store: SQLiteStore, tmp_path: Path):
    await store.create("s", "a", {"n": 1}, actor="ann", request_id="r1")
    await store.create("s", "b", {"n": 1}, actor="ann", request_id="r2")
    await store.update("s", "a", bump("n"), actor="ann", request_id="r3")
    keys = [("s", "a"), ("s", "b"), ("s", "gone"), ("other", "a")]
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert ReadAhead.read(conn, keys) == [(2, 3), (1, 2), (None, None), (None, None)]
        plan = [row[3] for row in ReadAhead.read(conn, keys, explain=True)]
    # one index search per key, never a scan: a scan would read the whole file
    assert "SEARCH t USING INDEX sqlite_autoindex_tasks_1 (style=? AND id=?)" in plan
    assert "SEARCH a USING COVERING INDEX audit_by_task (style=? AND task_id=?)" in plan
    assert not [step for step in plan if step.startswith(("SCAN t", "SCAN a"))]


async def test_each_queued_write_is_read_ahead_by_the_read_ahead_threads(tmp_path: Path):
    store = await SQLiteStore.open(tmp_path / "t.db")
    seen: list[str] = []
    # called on the read-ahead threads with the bound values
    store.trace(lambda connection, statement: seen.append(statement) if connection == "read-ahead" else None)

    def read_ahead() -> set[int]:
        return {n for n in range(20) if any(f"('s', 't{n}')" in statement for statement in list(seen))}
    try:
        await asyncio.gather(*(store.create("s", f"t{n}", {"n": n}, actor="ann", request_id="r") for n in range(20)))
        await until(lambda: read_ahead() == set(range(20)))
        assert read_ahead() == set(range(20))
    finally:
        await store.close()
    assert not store.read_ahead.running


def _evict(path: Path) -> None:
    """Drop the file's (and its WAL's) pages from the operating system's cache, as the
    kernel does with a file nobody read lately."""
    for name in (path, path.with_name(path.name + "-wal")):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _device_reads_are_counted(path: Path) -> bool:
    """Whether reading an evicted page of *path* shows in the reading thread's count of
    blocks read from the device, which the read-ahead goes by."""
    _evict(path)
    counted: list[bool] = []

    def read() -> None:
        before = blocks_read()
        with open(path, "rb") as file:
            file.read(4096)
        counted.append(before is not None and blocks_read() != before)
    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return counted == [True]


async def test_the_read_ahead_rests_while_the_file_is_in_memory_and_reads_every_write_once_a_batch_reaches_the_device(
        tmp_path: Path):
    path = tmp_path / "t.db"
    store = await SQLiteStore.open(path)
    seen: list[str] = []
    store.trace(lambda connection, statement: seen.append(statement) if connection == "read-ahead" else None)

    def read_ahead() -> int:  # keys read ahead since *seen* was cleared
        return sum(statement.count("('s', 't") for statement in list(seen)
                   if "(SELECT version FROM tasks AS t" in statement)

    def ids(name: str):
        return [f"{name}{n}" for n in range(32)]
    try:
        await asyncio.gather(*(store.create("s", i, {"n": 0}, actor="a", request_id="r") for i in ids("t")))
        await until(lambda: read_ahead() == 32 and not store.read_ahead.cold)
        assert (read_ahead(), store.read_ahead.cold) == (32, False)  # every write, each found in memory
        seen.clear()
        await asyncio.gather(*(store.update("s", i, bump("n"), actor="a", request_id="r") for i in ids("t")))
        await asyncio.sleep(0.2)  # what a thread was handed it would have read by now
        assert (read_ahead(), store.read_ahead.cold) == (0, False)  # none: the file is in memory
        if not _device_reads_are_counted(path):
            pytest.skip("no read of this file reaches the device, or the kernel does not count them per thread")
        other = await SQLiteStore.open(path)  # another process's commit: the writer's page cache is stale
        try:
            await other.create("s", "other", {"n": 0}, actor="a", request_id="r")
        finally:
            await other.close()
        _evict(path)
        await asyncio.gather(*(store.update("s", i, bump("n"), actor="a", request_id="r") for i in ids("t")))
        assert store.read_ahead.cold  # the batch's own reads went to the device
        assert read_ahead() == 0  # (and no write of it was read ahead)
        seen.clear()
        await asyncio.gather(*(store.update("s", i, bump("n"), actor="a", request_id="r") for i in ids("t")))
        await until(lambda: read_ahead() == 32)
        assert read_ahead() == 32  # every write again
    finally:
        await store.close()
    assert [task.doc for task in await _reopen_all(path, ids("t"))] == [{"n": 3}] * 32


async def _reopen_all(path: Path, ids: list[str]) -> list[Task]:
    store = await SQLiteStore.open(path)
    try:
        return [await store.get("s", i) for i in ids]
    finally:
        await store.close()


async def test_a_batch_reads_its_tasks_only_after_the_read_ahead_of_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(read_ahead_module, "WARM_WAIT", 10.0)  # a bound, never reached here
    store = await SQLiteStore.open(tmp_path / "t.db")
    events: list[str] = []

    def slow_disk(connection: str, statement: str) -> None:  # on a read-ahead thread, before its read
        if connection == "read-ahead" and "(SELECT version FROM tasks AS t" in statement:
            time.sleep(0.02)
            events.append("read ahead")
        elif connection == "writer" and "JOIN tasks AS t" in statement:
            events.append("batch read")
    store.trace(slow_disk)
    try:
        assert store.read_ahead.cold  # a new store reads ahead of every write until it knows better
        await asyncio.gather(*(store.create("s", f"t{n}", {"n": n}, actor="a", request_id="r")
                               for n in range(read_ahead_module.WARM_CHUNK)))
    finally:
        await store.close()
    assert events == ["read ahead", "batch read"]
