"""The store on real SQLite files: migrations, PRAGMAs, the single write path, audit rows."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import jsonpatch
import pytest

from gateway import errors
from gateway.clock import parse_iso
from gateway.query import And, Compare, Not, Or, Query, Sort
from gateway import store as store_module
from gateway.store import CLIENT, MIGRATIONS, SCHEMA_VERSION, Store, StoreError, Task, User


@pytest.fixture(name="store")
async def _store(tmp_path: Path):
    store = await Store.open(tmp_path / "t.db")
    yield store
    await store.close()


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def bump(field: str):
    def mutate(old):
        return {**old, field: old[field] + 1}
    return mutate


async def test_new_database_is_migrated_and_configured(tmp_path: Path):
    store = await Store.open(tmp_path / "new.db", synchronous="NORMAL", busy_timeout_ms=1234)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        pragmas = {name: (await store._writer.execute_fetchall(f"PRAGMA {name}"))[0][0]
                   for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "wal_autocheckpoint")}
        assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 1234, "foreign_keys": 1,
                           "wal_autocheckpoint": 0}  # checkpoints run beside the writer
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()
    assert rows(tmp_path / "new.db", "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert {r[0] for r in rows(tmp_path / "new.db", "SELECT name FROM sqlite_master WHERE type='table'")} == {
        "tasks", "audit", "users", "tokens", "oauth_clients", "counters", "keyed"}


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
async def test_every_earlier_schema_version_migrates(tmp_path: Path, version: int):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:version]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    store = await Store.open(path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        await store.create("s", "a", {"n": 1}, actor="t", request_id="r")
        assert (await store.get("s", "a")).doc == {"n": 1}
    finally:
        await store.close()


async def test_migration_2_seeds_the_id_counters_from_every_integer_id_ever_created(tmp_path: Path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        audit = [("so", "7", "created"), ("so", "12", "created"), ("so", "12", "deleted"),
                 ("so", "x9", "created"), ("sp", "3", "created")]
        conn.executemany("INSERT INTO audit (at, style, task_id, version, action, actor, request_id, patch, undo) "
                         "VALUES ('t', ?, ?, 1, ?, 'a', 'r', '[]', '[]')", audit)
        conn.execute("INSERT INTO users (name, role, created) VALUES ('ann', 'user', 't')")
    store = await Store.open(path)
    try:
        assert await store.get_user("ann") == User("ann", "user", None, None)
        # 12 was deleted but is never handed out again
        task = await store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="r")
        assert (task.id, task.doc) == ("13", {"Id": 13})
        task = await store.create_numbered("new", lambda n: {"Id": n}, actor="t", request_id="r")
        assert task.id == "1"
    finally:
        await store.close()


async def test_numbered_creates_in_one_batch_get_consecutive_ids_above_explicit_ones(store: Store):
    await store.create("so", "41", {"Id": 41}, actor="t", request_id="r")

    def broken(n):
        raise errors.BadRequest("no")

    results = await asyncio.gather(
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="1"),
        store.create_numbered("so", broken, actor="t", request_id="2"),
        store.create("so", "100", {"Id": 100}, actor="t", request_id="3"),
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="4"),
        return_exceptions=True)
    # in queue order: the refused one used up its number (like an identity column), and
    # "100" lifts the counter for the numbered create after it
    assert [r.id if isinstance(r, Task) else type(r).__name__ for r in results] == ["42", "BadRequest", "100", "101"]
    results = await asyncio.gather(
        store.create("so", "102", {"Id": 102}, actor="t", request_id="5"),
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="6"),
        store.put("so", "104", {"Id": 104}, actor="t", request_id="7"),
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="8"))
    assert [r.id for r in results] == ["102", "103", "104", "105"]
    await store.delete("so", "105", actor="t", request_id="9")
    assert (await store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="10")).id == "106"
    assert [r[0] for r in await store._reader.execute_fetchall("SELECT last FROM counters")] == [106]
    with pytest.raises(errors.Conflict, match="no integer id is left for so tasks \\(the last is 106\\)"):
        await store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="11", max_id=106)
    assert await store.get("so", "107") is None


async def test_unmodified_since_refuses_a_task_changed_after_that_second(store: Store):
    task = await store.create("s", "a", {"n": 1}, actor="t", request_id="r")
    assert task.modified and (await store.get("s", "a")).modified == task.modified
    changed = parse_iso(task.modified)
    with pytest.raises(errors.PreconditionFailed, match="was modified after"):
        await store.update("s", "a", bump("n"), actor="t", request_id="r",
                           unmodified_since=changed.replace(microsecond=0) - timedelta(seconds=1))
    with pytest.raises(errors.PreconditionFailed):
        await store.delete("s", "a", actor="t", request_id="r",
                           unmodified_since=changed.replace(microsecond=0) - timedelta(seconds=1))
    task = await store.update("s", "a", bump("n"), actor="t", request_id="r",
                              unmodified_since=changed.replace(microsecond=0))
    assert task.doc == {"n": 2}


async def test_newer_or_foreign_databases_are_refused(tmp_path: Path):
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this taskgate"):
        await Store.open(newer)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE x (y)")
    with pytest.raises(StoreError, match="not a taskgate database"):
        await Store.open(foreign)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        await Store.open(junk)


async def test_create_update_delete_write_versions_and_audit(store: Store, tmp_path: Path):
    await store.create("s", "a", {"n": 1, "l": [1]}, actor="ann", request_id="r1")
    task = await store.update("s", "a", bump("n"), actor="bob", request_id="r2")
    assert (task.version, task.doc) == (2, {"n": 2, "l": [1]})
    await store.delete("s", "a", actor="cy", request_id="r3")
    assert await store.get("s", "a") is None
    trail = await store.audit(style="s", task_id="a", newest_first=False)
    assert [(c.seq, c.version, c.action, c.actor, c.request_id) for c in trail] == [
        (1, 1, "created", "ann", "r1"), (2, 2, "updated", "bob", "r2"), (3, 3, "deleted", "cy", "r3")]
    assert trail[1].patch == [{"op": "replace", "path": "/n", "value": 2}]
    assert trail[1].undo == [{"op": "replace", "path": "/n", "value": 1}]
    # replaying the patches from nothing gives every version; the undos walk back
    doc: dict = {}
    for change, expected in zip(trail, [{"n": 1, "l": [1]}, {"n": 2, "l": [1]}, {}]):
        doc = jsonpatch.apply_patch(doc, change.patch)
        assert doc == expected
    for change, expected in zip(reversed(trail), [{"n": 2, "l": [1]}, {"n": 1, "l": [1]}, {}]):
        doc = jsonpatch.apply_patch(doc, change.undo)
        assert doc == expected


async def test_the_warmer_reads_each_task_s_row_and_audit_end_through_their_indexes(store: Store, tmp_path: Path):
    await store.create("s", "a", {"n": 1}, actor="ann", request_id="r1")
    await store.create("s", "b", {"n": 1}, actor="ann", request_id="r2")
    await store.update("s", "a", bump("n"), actor="ann", request_id="r3")
    keys = [("s", "a"), ("s", "b"), ("s", "gone"), ("other", "a")]
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert store_module._Warmer.read(conn, keys) == [(2, 3), (1, 2), (None, None), (None, None)]
        plan = [row[3] for row in store_module._Warmer.read(conn, keys, explain=True)]
    # one index search per key, never a scan: a scan would read the whole file
    assert "SEARCH t USING INDEX sqlite_autoindex_tasks_1 (style=? AND id=?)" in plan
    assert "SEARCH a USING COVERING INDEX audit_by_task (style=? AND task_id=?)" in plan
    assert not [step for step in plan if step.startswith(("SCAN t", "SCAN a"))]


async def _until(condition) -> None:
    for _ in range(500):  # the warmer's threads read soon after the loop's turn, not before the answer
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_each_queued_write_is_read_ahead_by_the_warmer_threads(tmp_path: Path):
    store = await Store.open(tmp_path / "t.db")
    seen: list[str] = []
    for conn in store._warmer._conns:
        conn.set_trace_callback(seen.append)  # called on the warmer's threads with the bound values

    def read_ahead() -> set[int]:
        return {n for n in range(20) if any(f"('s', 't{n}')" in statement for statement in list(seen))}
    try:
        await asyncio.gather(*(store.create("s", f"t{n}", {"n": n}, actor="ann", request_id="r") for n in range(20)))
        await _until(lambda: read_ahead() == set(range(20)))
        assert read_ahead() == set(range(20))
    finally:
        await store.close()
    assert not [thread for thread in store._warmer._threads if thread.is_alive()]


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
        before = store_module._blocks_read()
        with open(path, "rb") as file:
            file.read(4096)
        counted.append(before is not None and store_module._blocks_read() != before)
    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return counted == [True]


async def test_the_read_ahead_samples_while_the_file_is_in_memory_and_reads_every_write_once_it_is_not(
        tmp_path: Path):
    path = tmp_path / "t.db"
    store = await Store.open(path)
    seen: list[str] = []
    for conn in store._warmer._conns:
        conn.set_trace_callback(seen.append)

    def read_ahead() -> int:  # keys read ahead since *seen* was cleared
        return sum(statement.count("('s', 't") for statement in list(seen) if "(SELECT version FROM tasks AS t" in statement)

    def ids(name: str):
        return [f"{name}{n}" for n in range(32)]
    try:
        await asyncio.gather(*(store.create("s", i, {"n": 0}, actor="a", request_id="r") for i in ids("t")))
        await _until(lambda: read_ahead() == 32 and not store._warmer.cold)
        assert (read_ahead(), store._warmer.cold) == (32, False)  # every write, each found in memory
        seen.clear()
        await asyncio.gather(*(store.update("s", i, bump("n"), actor="a", request_id="r") for i in ids("t")))
        await _until(lambda: read_ahead() == 32 // store_module.WARM_SAMPLE)
        assert read_ahead() == 32 // store_module.WARM_SAMPLE  # a sample: one write in WARM_SAMPLE
        if not _device_reads_are_counted(path):
            pytest.skip("no read of this file reaches the device, or the kernel does not count them per thread")
        _evict(path)
        await asyncio.gather(*(store.update("s", i, bump("n"), actor="a", request_id="r") for i in ids("t")))
        await _until(lambda: store._warmer.cold)
        assert store._warmer.cold  # the sampled write's read went to the device
        seen.clear()
        await asyncio.gather(*(store.update("s", i, bump("n"), actor="a", request_id="r") for i in ids("t")))
        await _until(lambda: read_ahead() == 32)
        assert read_ahead() == 32  # every write again
    finally:
        await store.close()
    assert [task.doc for task in await _reopen_all(path, ids("t"))] == [{"n": 3}] * 32


async def _reopen_all(path: Path, ids: list[str]) -> list[Task]:
    store = await Store.open(path)
    try:
        return [await store.get("s", i) for i in ids]
    finally:
        await store.close()


async def test_a_batch_reads_its_tasks_only_after_the_read_ahead_of_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(store_module, "WARM_WAIT", 10.0)  # a bound, never reached here
    store = await Store.open(tmp_path / "t.db")
    events: list[str] = []

    def slow_disk(statement: str) -> None:  # on a read-ahead thread, before its read
        if "(SELECT version FROM tasks AS t" in statement:
            time.sleep(0.02)
            events.append("read ahead")
    for conn in store._warmer._conns:
        conn.set_trace_callback(slow_disk)
    store._writer._conn.set_trace_callback(lambda statement: events.append("batch read")
                                           if "JOIN tasks AS t" in statement else None)
    try:
        assert store._warmer.cold  # a new store reads ahead of every write until it knows better
        await asyncio.gather(*(store.create("s", f"t{n}", {"n": n}, actor="a", request_id="r")
                               for n in range(store_module.WARM_CHUNK)))
    finally:
        await store.close()
    assert events == ["read ahead", "batch read"]


async def test_a_batch_waits_for_another_connection_s_write_lock_without_holding_up_the_loop(tmp_path: Path):
    path = tmp_path / "t.db"
    store = await Store.open(path, busy_timeout_ms=3_600_000)
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
        assert (await store._writer.execute_fetchall("PRAGMA busy_timeout")) == [(3_600_000,)]
    finally:
        guard.cancel()
        other.close()
        await store.close()
    assert rows(path, "SELECT style, last FROM counters WHERE style = 'x'") == [("x", 7)]
    assert rows(path, "SELECT task_id, version, action FROM audit ORDER BY seq") == [
        ("a", 1, "created"), ("a", 2, "updated")]


async def test_domain_errors_of_the_write_path(store: Store):
    await store.create("s", "a", {"n": 1}, actor="t", request_id="r")
    with pytest.raises(errors.Conflict, match="task 'a' already exists"):
        await store.create("s", "a", {"n": 9}, actor="t", request_id="r")
    with pytest.raises(errors.NotFound, match="task 'b' does not exist"):
        await store.update("s", "b", bump("n"), actor="t", request_id="r")
    with pytest.raises(errors.PreconditionFailed, match="task 'a' is at version 1, not 3, 4"):
        await store.update("s", "a", bump("n"), actor="t", request_id="r", if_match=frozenset({3, 4}))
    task = await store.update("s", "a", bump("n"), actor="t", request_id="r", if_match=frozenset({1}))
    assert task.version == 2
    # the same id in another style is another task
    await store.create("other", "a", {"n": 5}, actor="t", request_id="r")
    assert (await store.get("s", "a")).doc == {"n": 2}


async def test_one_batch_applies_in_order_and_leaves_out_a_failing_mutation(store: Store):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")

    def explode(old):
        raise errors.BadRequest("nope")

    def crash(old):
        raise ZeroDivisionError("bug")

    # queued together, so one writer batch takes them all
    results = await asyncio.gather(
        store.update("s", "a", bump("n"), actor="t", request_id="1"),
        store.update("s", "a", explode, actor="t", request_id="2"),
        store.update("s", "a", bump("n"), actor="t", request_id="3"),
        store.update("s", "a", crash, actor="t", request_id="4"),
        store.create("s", "b", {"n": 7}, actor="t", request_id="5"),
        store.update("s", "b", bump("n"), actor="t", request_id="6"),
        return_exceptions=True)
    assert [(r.version, r.doc) if not isinstance(r, Exception) else type(r).__name__ for r in results] == [
        (2, {"n": 1}), "BadRequest", (3, {"n": 2}), "InternalError", (1, {"n": 7}), (2, {"n": 8})]
    assert [(c.task_id, c.version, c.request_id) for c in await store.audit(newest_first=False)] == [
        ("a", 1, "r"), ("a", 2, "1"), ("a", 3, "3"), ("b", 1, "5"), ("b", 2, "6")]


async def test_an_unchanged_document_writes_nothing(store: Store):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    task = await store.update("s", "a", lambda old: dict(old), actor="t", request_id="r")
    assert task.version == 1
    assert len(await store.audit()) == 1


async def test_listeners_hear_each_commit_after_it(store: Store):
    heard = []
    store.on_commit(lambda changes: heard.append([(c.task_id, c.action, c.version) for c in changes]))
    await asyncio.gather(store.create("s", "a", {}, actor="t", request_id="r"),
                         store.create("s", "b", {}, actor="t", request_id="r"))
    await store.delete("s", "a", actor="t", request_id="r")
    assert heard == [[("a", "created", 1), ("b", "created", 1)], [("a", "deleted", 2)]]


async def test_close_finishes_queued_writes(tmp_path: Path):
    store = await Store.open(tmp_path / "t.db")
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    pending = [asyncio.ensure_future(store.update("s", "a", bump("n"), actor="t", request_id=str(i)))
               for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    assert all(p.done() and not p.exception() for p in pending)
    assert rows(tmp_path / "t.db", "SELECT version, doc FROM tasks") == [(51, '{"n":50}')]
    with pytest.raises(errors.InternalError):
        await store.update("s", "a", bump("n"), actor="t", request_id="late")


async def test_list_compiles_queries_to_sql(store: Store):
    docs = [{"s": "A", "k": 1}, {"s": None, "k": 2}, {"s": "B", "k": 3}, {"k": 4}]
    for n, doc in enumerate(docs):
        await store.create("s", f"t{n}", doc, actor="t", request_id="r")
    await store.create("other", "x", {"s": "A"}, actor="t", request_id="r")

    async def ids(where, order=(), **kw) -> list[str]:
        tasks, _ = await store.find("s", Query(where, tuple(order), **kw))
        return [t.id for t in tasks]

    assert await ids(Compare("$.s", "eq", ("A",))) == ["t0"]
    assert await ids(Compare("$.s", "isnull")) == ["t1", "t3"]
    assert await ids(Not(Compare("$.s", "eq", ("A",)))) == ["t1", "t2", "t3"]
    assert await ids(Not(Compare("$.s", "in", ("A", "B")))) == ["t1", "t3"]
    assert await ids(Or((Compare("id", "eq", ("t3",)), And((Compare("$.k", "ge", (2,)),
                                                           Compare("$.k", "lt", (3,))))))) == ["t1", "t3"]
    assert await ids(Compare("$.s", "sw", ("%",))) == []
    assert await ids(Compare("$.s", "co", ("A",))) == ["t0"]
    assert await ids(Compare("$.s", "co", ("_",))) == []
    assert await ids(None, [Sort("$.k", descending=True)], limit=2, offset=1) == ["t2", "t1"]
    tasks, total = await store.find("s", Query(Compare("$.k", "gt", (1,)), limit=1, count=True))
    assert ([t.id for t in tasks], total) == (["t1"], 3)
    with pytest.raises(ValueError):
        await store.find("s", Query(Compare("$.x') OR 1=1 --", "eq", ("a",))))


async def test_users_tokens_and_clients(store: Store):
    await store.add_user("ann", "admin", "hash", ("tokhash", True, 123, "cli"))
    assert (await store.get_user("ann")).role == "admin"
    row = await store.find_token("tokhash")
    assert (row.user.name, row.read_only, row.expires) == ("ann", True, 123)
    with pytest.raises(errors.Conflict):
        await store.add_user("ann", "user", None)
    with pytest.raises(errors.Conflict):  # a token for nobody
        await store.add_token("ghost", "h2", read_only=False, expires=None, source="cli")
    await store.add_oauth_client("cid", "sechash", "ann")
    assert (await store.get_oauth_client("cid")).user == "ann"
    await store.add_token("ann", "h3", read_only=False, expires=200, source="oauth", purge_before=150)
    assert await store.find_token("tokhash") is None  # expired at 123 < 150: purged
    assert await store.count_users() == 1


async def test_export_streams_in_order_across_chunks(store: Store):
    for n in range(7):
        await store.create("b" if n % 2 else "a", f"t{n}", {"n": n}, actor="t", request_id="r")
    got = [(t.style, t.id) async for t in store.export(chunk=2)]
    assert got == [("a", "t0"), ("a", "t2"), ("a", "t4"), ("a", "t6"), ("b", "t1"), ("b", "t3"), ("b", "t5")]
    assert [t.id async for t in store.export("b", chunk=2)] == ["t1", "t3", "t5"]


async def test_documents_are_stored_as_compact_json(store: Store, tmp_path: Path):
    await store.create("s", "a", {"ü": "ß", "n": [1, {"x": None}]}, actor="t", request_id="r")
    assert rows(tmp_path / "t.db", "SELECT doc FROM tasks") == [('{"ü":"ß","n":[1,{"x":null}]}',)]
    assert json.loads(rows(tmp_path / "t.db", "SELECT patch FROM audit")[0][0])[0]["op"] == "add"


async def test_an_unstorable_document_fails_alone_in_its_batch(store: Store):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    results = await asyncio.gather(
        store.update("s", "a", bump("n"), actor="t", request_id="1"),
        store.update("s", "a", lambda old: {**old, "bad": "\ud800"}, actor="t", request_id="2"),
        store.update("s", "a", lambda old: {**old, "big": "x" * 1_048_576}, actor="t", request_id="3"),
        store.update("s", "a", bump("n"), actor="t", request_id="4"),
        return_exceptions=True)
    assert [r.version if not isinstance(r, Exception) else f"{type(r).__name__}: {r.message}" for r in results] == [
        2, "BadRequest: the task cannot be stored: UnicodeEncodeError",
        "PayloadTooLarge: the task would be 1048592 bytes; at most 1048576 are kept", 3]


async def test_a_failing_listener_does_not_silence_the_others(store: Store):
    heard = []

    def broken(changes):
        raise OSError("disk full")

    store.on_commit(broken)
    store.on_commit(lambda changes: heard.append(len(changes)))
    await store.create("s", "a", {}, actor="t", request_id="r")
    assert heard == [1] and (await store.get("s", "a")).version == 1


async def test_the_writer_survives_a_broken_log_sink(store: Store):
    import structlog

    class Closed:
        def write(self, text: str) -> int:
            raise ValueError("I/O operation on closed file")

        def flush(self) -> None:
            pass

    def crash(old):
        raise ZeroDivisionError("bug")

    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=Closed()))
    try:
        with pytest.raises(errors.InternalError, match="An internal fault occurred."):
            await asyncio.wait_for(store.update("s", "a", crash, actor="t", request_id="1"), 5)
        task = await asyncio.wait_for(store.update("s", "a", bump("n"), actor="t", request_id="2"), 5)
    finally:
        structlog.reset_defaults()
    assert (task.version, task.doc) == (2, {"n": 1})


async def test_migration_3_gives_old_audit_rows_an_empty_client(tmp_path: Path):
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:2]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO audit (at, style, task_id, version, action, actor, request_id, patch, undo) "
                     "VALUES ('t', 's', 'a', 1, 'created', 'ann', 'r', '[]', '[]')")
    store = await Store.open(path)
    try:
        token = CLIENT.set("203.0.113.7")
        try:
            await store.create("s", "b", {}, actor="bob", request_id="r2")
        finally:
            CLIENT.reset(token)
        await store.create("s", "c", {}, actor="cli", request_id="r3")
        assert [(c.task_id, c.client) for c in await store.audit(newest_first=False)] == [
            ("a", ""), ("b", "203.0.113.7"), ("c", "")]
    finally:
        await store.close()


async def test_batch_listeners_hear_each_commit_s_size_and_the_probe_writes_nothing(store: Store):
    heard = []
    store.on_batch(lambda size, seconds: heard.append((size, seconds > 0)))
    await asyncio.gather(*(store.create("s", str(i), {}, actor="t", request_id="r") for i in range(5)))
    await store.probe_write()
    assert heard == [(5, True), (1, True)]
    assert len(await store.audit()) == 5 and await store.count_by_style() == {"s": 5}
    await store.close()
    with pytest.raises(errors.InternalError, match="the store is closed"):
        await store.probe_write()


async def test_one_batch_is_one_commit_and_its_failing_mutation_changes_nothing(store: Store, tmp_path: Path):
    """Group commit: writes queued together commit in one transaction, in queue order;
    a write whose mutation raises is left out alone and the others are stored."""
    await asyncio.gather(store.create("s", "a", {"n": 0}, actor="t", request_id="r"),
                         store.create("s", "b", {"n": 0}, actor="t", request_id="r"))
    commits: list[list[tuple[str, int, str]]] = []
    store.on_commit(lambda changes: commits.append([(c.task_id, c.version, c.request_id) for c in changes]))

    def append(tag: str):
        def mutate(old):
            return {**old, "log": [*old.get("log", []), tag]}  # sees every earlier write of the batch
        return mutate

    def refuse(old):
        raise errors.Conflict("refused")

    results = await asyncio.gather(
        store.update("s", "a", append("first"), actor="t", request_id="1"),
        store.update("s", "b", append("other"), actor="t", request_id="2"),
        store.update("s", "a", refuse, actor="t", request_id="3"),
        store.update("s", "a", append("second"), actor="t", request_id="4"),
        return_exceptions=True)
    assert [r.doc if isinstance(r, Task) else type(r).__name__ for r in results] == [
        {"n": 0, "log": ["first"]}, {"n": 0, "log": ["other"]}, "Conflict", {"n": 0, "log": ["first", "second"]}]
    assert commits == [[("a", 2, "1"), ("b", 2, "2"), ("a", 3, "4")]]
    assert rows(tmp_path / "t.db", "SELECT id, version, doc FROM tasks ORDER BY id") == [
        ("a", 3, '{"n":0,"log":["first","second"]}'), ("b", 2, '{"n":0,"log":["other"]}')]
    assert rows(tmp_path / "t.db", "SELECT task_id, version, request_id, patch FROM audit WHERE seq > 2 ORDER BY seq") == [
        ("a", 2, "1", '[{"op":"add","path":"/log","value":["first"]}]'),
        ("b", 2, "2", '[{"op":"add","path":"/log","value":["other"]}]'),
        ("a", 3, "4", '[{"op":"replace","path":"/log","value":["first","second"]}]')]


async def test_a_write_of_several_steps_commits_them_in_one_transaction_as_an_audit_row_each(
        store: Store, tmp_path: Path):
    """Each step sees the document the step before left, and each change is its own audit
    row (and version) under its own actor; a step that changes nothing writes no row."""
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r0")
    commits: list[list[tuple[int, int, str]]] = []
    store.on_commit(lambda changes: commits.append([(c.seq, c.version, c.actor) for c in changes]))
    task = await store.write("s", "a", [("system", bump("n")), ("nobody", lambda old: old),
                                        ("ann", lambda old: {**old, "by": "ann", "n": old["n"] * 10})],
                             request_id="r1", if_match=frozenset({1}))
    assert task == Task("s", "a", 3, {"n": 10, "by": "ann"}, task.modified)
    assert commits == [[(2, 2, "system"), (3, 3, "ann")]]  # one commit
    assert rows(tmp_path / "t.db", "SELECT seq, version, actor, request_id, patch FROM audit WHERE seq > 1") == [
        (2, 2, "system", "r1", '[{"op":"replace","path":"/n","value":1}]'),
        (3, 3, "ann", "r1", '[{"op":"add","path":"/by","value":"ann"},{"op":"replace","path":"/n","value":10}]')]
    assert rows(tmp_path / "t.db", "SELECT version, doc FROM tasks") == [(3, '{"n":10,"by":"ann"}')]


async def test_a_write_whose_later_step_raises_stores_none_of_its_steps(store: Store, tmp_path: Path):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r0")

    def refuse(old):
        raise errors.Conflict("refused")

    with pytest.raises(errors.Conflict, match="refused"):
        await store.write("s", "a", [("system", bump("n")), ("ann", refuse)], request_id="r1")
    with pytest.raises(errors.PreconditionFailed):  # checked before the first step
        await store.write("s", "a", [("system", bump("n"))], request_id="r2", if_match=frozenset({7}))
    assert rows(tmp_path / "t.db", "SELECT version, doc FROM tasks") == [(1, '{"n":0}')]
    assert rows(tmp_path / "t.db", "SELECT count(*) FROM audit") == [(1,)]
    # a step may delete: the steps after it see no document
    seen = []
    assert await store.write("s", "a", [("system", bump("n")), ("ann", lambda old: None),
                                        ("cy", lambda old: seen.append(old))], request_id="r3") is None
    assert seen == [None]
    assert rows(tmp_path / "t.db", "SELECT seq, version, action, actor FROM audit WHERE seq > 1") == [
        (2, 2, "updated", "system"), (3, 3, "deleted", "ann")]
    assert rows(tmp_path / "t.db", "SELECT count(*) FROM tasks") == [(0,)]


async def test_bulk_create_stores_tasks_with_created_audit_rows_and_counts_their_ids(store: Store, tmp_path: Path):
    assert await store.bulk_create("s", ((str(i), {"n": i}) for i in range(1, 6)), actor="seed",
                                   request_id="bulk", chunk=2) == 5
    assert [(t.id, t.version, t.doc) for t in (await store.find("s", Query(order=(Sort("$.n"),))))[0]] == [
        (str(i), 1, {"n": i}) for i in range(1, 6)]
    assert [(c.task_id, c.action, c.actor, c.patch, c.undo) for c in await store.audit(newest_first=False)] == [
        (str(i), "created", "seed", [{"op": "add", "path": "/n", "value": i}], [{"op": "remove", "path": "/n"}])
        for i in range(1, 6)]
    numbered = await store.create_numbered("s", lambda n: {"n": n}, actor="t", request_id="r")
    assert numbered.id == "6"  # above every bulk-created integer id
    with pytest.raises(errors.Conflict):
        await store.bulk_create("s", [("7", {}), ("3", {})], actor="seed", request_id="bulk")
    assert rows(tmp_path / "t.db", "SELECT count(*) FROM tasks") == [(6,)]  # the failing chunk left nothing


async def test_token_rows_are_remembered_until_users_or_tokens_change_through_the_store(store: Store,
                                                                                        tmp_path: Path):
    await store.add_user("u", "user", None, ("h1", False, None, "cli"))
    assert (await store.find_token("h1")).user.name == "u"
    with sqlite3.connect(tmp_path / "t.db") as conn:  # another process revokes the token
        conn.execute("DELETE FROM tokens WHERE hash = 'h1'")
    assert await store.find_token("h1") is not None  # seen within TOKEN_CACHE_SECONDS, not at once
    store.forget_tokens()
    assert await store.find_token("h1") is None
    await store.add_token("u", "h2", read_only=True, expires=None, source="cli")
    assert (await store.find_token("h2")).read_only is True
    await store.delete_token("h2")  # through the store: refused at once
    assert await store.find_token("h2") is None


async def test_indexes_hold_one_style_and_replace_an_earlier_all_styles_index(store: Store, tmp_path: Path):
    await store._writer.execute("CREATE INDEX tasks_by_n ON tasks (style, json_extract(doc, '$.n'), id)")  # as before
    await store.ensure_indexes("s", ["$.n"])
    await store.ensure_indexes("t", ["$.n"])  # the same field in another style gets its own
    await store.ensure_indexes("s", ["$.n"])  # and a restart changes nothing
    assert rows(tmp_path / "t.db", "SELECT name, sql FROM sqlite_master WHERE name LIKE 'tasks_by_%' ORDER BY name") == [
        ("tasks_by_n", "CREATE INDEX tasks_by_n ON tasks (style, json_extract(keys, '$.\"n\"'), id) WHERE style = 's'"),
        ("tasks_by_t_n", "CREATE INDEX tasks_by_t_n ON tasks (style, json_extract(keys, '$.\"n\"'), id) WHERE style = 't'")]
    for style, index in (("s", "tasks_by_n"), ("t", "tasks_by_t_n")):
        assert index in await store.explain(style, Query(Compare("$.n", "eq", (1,))))
    with pytest.raises(ValueError):
        await store.ensure_indexes("s'; DROP TABLE tasks; --", ["$.n"])
    with pytest.raises(ValueError):
        await store.ensure_indexes("s", ["$.n') --"])


async def test_a_lookup_sqlite_refuses_as_busy_is_read_on_the_reader_instead(store: Store, tmp_path: Path):
    """Lookups by key run on the loop's thread with no busy timeout; when SQLite answers
    SQLITE_BUSY there (rare in WAL mode, and hard to provoke on demand), the lookup is
    read on the reader, whose busy timeout waits off the loop. The busy connection here
    is a real one, to a second file that another connection holds exclusively."""
    await store.create("sailpoint", "t1", {"id": "t1", "n": 1}, actor="a", request_id="r")
    locked = tmp_path / "locked.db"
    hog = sqlite3.connect(locked, isolation_level=None)
    hog.execute("CREATE TABLE tasks (x)")
    hog.execute("BEGIN EXCLUSIVE")
    busy = sqlite3.connect(locked, isolation_level=None)
    busy.execute("PRAGMA busy_timeout = 0")
    point, store._point = store._point, busy
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            busy.execute("SELECT 1 FROM tasks")
        task = await store.get("sailpoint", "t1")
        assert (task.id, task.version, task.doc) == ("t1", 1, {"id": "t1", "n": 1})
        assert await store.get("sailpoint", "nope") is None
    finally:
        store._point = point
        busy.close()
        hog.close()


async def test_background_checkpoints_keep_the_wal_bounded_under_a_steady_load(tmp_path: Path, monkeypatch):
    """The writer never checkpoints by itself; checkpoints run beside it, and once the WAL
    holds WAL_RESTART_FRAMES frames the writer makes it start over. Without that, these
    writes would leave a WAL of several megabytes."""
    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(store_module, "WAL_RESTART_FRAMES", 40)
    path = tmp_path / "wal.db"
    store = await Store.open(path)
    wal = Path(f"{path}-wal")
    largest = 0
    try:
        for round_ in range(40):
            await asyncio.gather(*(store.create("s", f"t{round_}-{n}", {"n": n, "pad": "x" * 3000}, actor="a",
                                                request_id="r") for n in range(25)))
            largest = max(largest, wal.stat().st_size)
        assert await store.count_tasks() == 1000
    finally:
        await store.close()
    assert not wal.exists()  # the last connection checkpointed it and removed it
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]
    assert rows(path, "SELECT count(*), sum(version) FROM tasks") == [(1000, 1000)]
    written = 1000 * 3000  # the documents alone, before pages, indexes and audit rows
    # about 9.5 MB without the rewind; 0.76 to 1.2 MB with it (more on a busy machine: each
    # rewind waits for passes to catch up)
    assert largest < written / 2, (largest, written)


def test_checkpoints_catch_up_before_the_writer_rewinds_the_wal(monkeypatch):
    """Past WAL_RESTART_FRAMES, passes follow one another until two in a row copied at most
    REWIND_FRAMES (the writer then has milliseconds of copying left, not a whole pass), or
    the WAL reached four times WAL_RESTART_FRAMES without catching up."""
    monkeypatch.setattr(store_module, "WAL_RESTART_FRAMES", 100)
    monkeypatch.setattr(store_module, "REWIND_FRAMES", 30)

    def steps(passes: list[tuple[int, int]]) -> list[str]:
        out, small = [], False
        for frames, work in passes:
            step, small = store_module._after_pass(frames, work, small)
            out.append(step)
        return out
    assert steps([(99, 99)]) == ["done"]
    assert steps([(150, 150), (210, 60), (220, 10), (230, 10)]) == ["again", "again", "again", "rewind"]
    assert steps([(150, 150), (160, 10), (220, 60), (230, 10), (231, 1)]) == ["again"] * 4 + ["rewind"]
    assert steps([(300, 300), (399, 99), (400, 100)]) == ["again", "again", "rewind"]
