"""The writer's connection with a database: one lock, quick statements on the loop's
thread, blocking steps on the writer's own thread, and group commit through it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway.store.sqlite import SQLiteStore, schema
from gateway.store.sqlite.write_connection import WriteConnection
from tests.store.helpers import bump, rows


@pytest.fixture(name="writer")
async def _writer(tmp_path: Path):
    writer = WriteConnection.connect(tmp_path / "w.db", busy_timeout_ms=5000)
    await writer.off_loop(lambda conn: schema.configure(conn, "FULL", 5000, 0))
    await writer.off_loop(schema.migrate)
    yield writer
    await writer.close()


async def test_blocking_steps_run_on_the_writer_s_thread_and_quick_statements_on_the_loop_s(tmp_path: Path):
    """A batch's statements run on the event loop's thread; its BEGIN and COMMIT do not
    wait there (here BEGIN needs no wait, so it runs on the loop too)."""
    store = await SQLiteStore.open(tmp_path / "t.db")
    seen: list[tuple[str, str]] = []
    store.trace(lambda connection, statement: seen.append((threading.current_thread().name, statement))
                if connection == "writer" else None)
    try:
        await store.create("s", "a", {"n": 1}, actor="t", request_id="r")
    finally:
        store.trace(None)
        await store.close()
    loop_thread = threading.current_thread().name
    where = {statement.split()[0] + (" tasks" if "INTO tasks" in statement else ""): thread
             for thread, statement in seen}
    assert where["BEGIN"] == loop_thread
    assert where["INSERT tasks"] == loop_thread
    assert where["COMMIT"].startswith("store-writer") and where["COMMIT"] != loop_thread


async def test_begin_now_declines_without_waiting_while_another_connection_writes(writer: WriteConnection,
                                                                                   tmp_path: Path):
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        async with writer.lock:
            began = time.monotonic()
            assert writer.begin_now() is False
            assert time.monotonic() - began < 1  # the 5 s busy timeout was not waited for
            assert writer.conn.execute("PRAGMA busy_timeout").fetchall() == [(5000,)]  # and is back
        other.execute("ROLLBACK")
        async with writer.lock:
            assert writer.begin_now() is True
            writer.conn.execute("INSERT INTO counters (style, last) VALUES ('s', 1)")
            await writer.commit()
    finally:
        other.close()
    assert rows(tmp_path / "w.db", "SELECT style, last FROM counters") == [("s", 1)]


async def test_a_transaction_commits_whole_or_not_at_all(writer: WriteConnection, tmp_path: Path):
    def two(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO counters (style, last) VALUES ('a', 1)")
        conn.execute("INSERT INTO counters (style, last) VALUES ('b', 2)")
        return threading.current_thread().name

    assert (await writer.transaction(two)).startswith("store-writer")

    def half(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO counters (style, last) VALUES ('c', 3)")
        conn.execute("INSERT INTO counters (style, last) VALUES ('a', 9)")  # the primary key refuses it

    with pytest.raises(sqlite3.IntegrityError):
        await writer.transaction(half)
    assert not writer.conn.in_transaction and not writer.lock.locked()
    assert rows(tmp_path / "w.db", "SELECT style, last FROM counters ORDER BY style") == [("a", 1), ("b", 2)]
    assert await writer.statement("SELECT count(*) FROM counters") == [(2,)]


async def test_a_cancelled_caller_lets_go_of_the_lock_only_once_the_thread_is_done(writer: WriteConnection):
    finished = threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        time.sleep(0.3)
        finished.set()

    async def hold() -> None:
        async with writer.lock:
            await writer.off_loop(slow)

    task = asyncio.ensure_future(hold())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # the connection was no longer in use when the lock was free
    assert not writer.lock.locked()


async def test_rollback_follows_what_the_thread_still_runs_and_is_harmless_after_a_commit(writer: WriteConnection,
                                                                                          tmp_path: Path):
    async with writer.lock:
        await writer.begin()
        writer.conn.execute("INSERT INTO counters (style, last) VALUES ('gone', 1)")
        await writer.rollback()
        await writer.begin()
        writer.conn.execute("INSERT INTO counters (style, last) VALUES ('kept', 1)")
        await writer.commit()
        await writer.rollback()  # no transaction: nothing to do
    assert rows(tmp_path / "w.db", "SELECT style FROM counters") == [("kept",)]


async def test_a_rewinding_begin_copies_the_wal_first_so_that_the_transaction_starts_it_over(
        writer: WriteConnection, tmp_path: Path):
    """Without a rewind a commit appends to the WAL (no checkpoint runs here); with one,
    the WAL is copied first and the transaction writes from its start: the file stops growing."""
    wal_file = tmp_path / "w.db-wal"

    def fill(conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO counters (style, last) VALUES (?, ?)", [(f"s{n}", n) for n in range(2000)])

    async def one_write(rewind: bool) -> int:
        """The WAL file's growth in bytes from one small transaction."""
        before = wal_file.stat().st_size
        async with writer.lock:
            await writer.begin(rewind=rewind)
            writer.conn.execute("UPDATE counters SET last = last + 1 WHERE style = 's1'")
            await writer.commit()
        return wal_file.stat().st_size - before

    await writer.transaction(fill)
    assert await one_write(rewind=False) > 0  # appended after what the WAL held
    assert await one_write(rewind=True) == 0  # the WAL started over: written from its start
    assert rows(tmp_path / "w.db", "SELECT last FROM counters WHERE style = 's1'") == [(3,)]


async def test_close_ends_the_writer_s_thread(tmp_path: Path):
    writer = WriteConnection.connect(tmp_path / "w.db", busy_timeout_ms=5000)
    assert (await writer.off_loop(lambda conn: threading.current_thread().name)).startswith("store-writer")
    await writer.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("store-writer")]
    with pytest.raises(sqlite3.ProgrammingError):
        writer.conn.execute("SELECT 1")


async def test_a_batch_waits_for_another_connection_s_write_lock_without_holding_up_the_loop(tmp_path: Path):
    path = tmp_path / "t.db"
    store = await SQLiteStore.open(path, busy_timeout_ms=3_600_000)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Were the wait on the loop's thread, nothing below would run until the lock is
    # released; this guard releases it after a while, and the batch then commits too early.
    guard = threading.Timer(10, other.execute, ("ROLLBACK",))
    try:
        await store.create("s", "a", {"n": 1}, actor="a", request_id="r1")
        other.execute("BEGIN IMMEDIATE")  # as `taskgate import` in another process would
        other.execute("INSERT INTO counters (style, last) VALUES ('x', 7)")
        guard.start()
        pending = asyncio.ensure_future(store.update("s", "a", bump("n"), actor="a", request_id="r2"))
        await asyncio.sleep(0.3)
        assert not pending.done()  # waiting in the writer's thread while the loop runs on
        assert (await store.get("s", "a")).doc == {"n": 1}
        guard.cancel()
        other.execute("COMMIT")
        assert (await pending).doc == {"n": 2}
        assert (await store.write_sql("PRAGMA busy_timeout")) == [(3_600_000,)]
    finally:
        guard.cancel()
        other.close()
        await store.close()
    assert rows(path, "SELECT style, last FROM counters WHERE style = 'x'") == [("x", 7)]
    assert rows(path, "SELECT task_id, version, action FROM audit ORDER BY seq") == [
        ("a", 1, "created"), ("a", 2, "updated")]


async def test_a_lease_is_held_by_one_store_of_a_database_until_it_closes(tmp_path: Path) -> None:
    first, second = await SQLiteStore.open(tmp_path / "l.db"), await SQLiteStore.open(tmp_path / "l.db")
    try:
        assert first.hold("sweeper") is True
        assert first.hold("sweeper") is True  # asked again while held
        assert second.hold("sweeper") is False
        assert second.hold("other") is True
        assert first.hold("../x") is False  # a name that is not a plain word holds nothing
        await first.close()
        assert second.hold("sweeper") is True
    finally:
        await first.close()
        await second.close()


async def test_writers_of_two_stores_take_turns_under_the_file_lock(tmp_path: Path) -> None:
    first, second = await SQLiteStore.open(tmp_path / "t.db"), await SQLiteStore.open(tmp_path / "t.db")
    try:
        assert (tmp_path / "t.db-writer.lock").exists()
        await first.create("sailpoint", "a", {"n": 0}, actor="t", request_id="r")

        def step(doc: dict) -> dict:
            return {**doc, "n": doc["n"] + 1}

        await asyncio.gather(*(store.update("sailpoint", "a", step, actor="t", request_id=f"r{i}")
                               for i in range(50) for store in (first, second)))
        task = await first.get("sailpoint", "a")
        assert task is not None and task.doc == {"n": 100} and task.version == 101
    finally:
        await first.close()
        await second.close()


@pytest.mark.sqlite_only("group commit's batches and the event loop's turns")
async def test_a_batch_of_slow_writes_lets_the_loop_run_between_them(tmp_path: Path):
    """Writes whose mutations take long (here 30 ms each, as a megabyte document's patch
    can) share one batch, and the event loop gets a turn between two of them
    (TURN_SECONDS): the other coroutine's ticks land between the mutations, not after
    the last of them. All three commit."""
    store = await SQLiteStore.open(tmp_path / "t.db")
    try:
        for n in range(3):
            await store.create("s", f"t{n}", {"n": 0}, actor="a", request_id="r")
        seen: list[str] = []

        def slow(name: str):
            def mutate(old):
                seen.append(name)
                time.sleep(0.03)
                return {**old, "n": old["n"] + 1}
            return mutate

        async def ticks():
            for _ in range(20):
                seen.append("tick")
                await asyncio.sleep(0)

        writes = [asyncio.ensure_future(store.update("s", f"t{n}", slow(f"w{n}"), actor="a", request_id="r"))
                  for n in range(3)]
        await asyncio.sleep(0)  # the three are queued: one batch takes them
        ticker = asyncio.ensure_future(ticks())
        await asyncio.gather(*writes, ticker)
        mutations = [i for i, name in enumerate(seen) if name.startswith("w")]
        assert [seen[i] for i in mutations] == ["w0", "w1", "w2"]
        assert "tick" in seen[mutations[0]:mutations[1]] and "tick" in seen[mutations[1]:mutations[2]], seen
        assert [(await store.get("s", f"t{n}")).doc for n in range(3)] == [{"n": 1}] * 3
        assert len({c.at for c in await store.audit(limit=3)}) == 1  # one batch: one time
    finally:
        await store.close()
