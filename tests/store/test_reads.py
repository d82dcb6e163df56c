"""Reads beside the writer: lists compiled to SQL, exports in chunks, lookups by key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from gateway.limits import dumps
from gateway.query import And, Compare, Not, Or, Query, Sort
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite.keyed import KeyedFields
from gateway.store.sqlite.reads import FIRST_CHUNK, Lookup, TaskReads


async def test_list_compiles_queries_to_sql(store: SQLiteStore):
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


async def test_export_streams_in_order_across_chunks(store: SQLiteStore):
    for n in range(7):
        await store.create("b" if n % 2 else "a", f"t{n}", {"n": n}, actor="t", request_id="r")
    got = [(t.style, t.id) async for t in store.export(chunk=2)]
    assert got == [("a", "t0"), ("a", "t2"), ("a", "t4"), ("a", "t6"), ("b", "t1"), ("b", "t3"), ("b", "t5")]
    assert [t.id async for t in store.export("b", chunk=2)] == ["t1", "t3", "t5"]


@pytest.mark.sqlite_only("SQLite's point reader and its busy fallback")
async def test_a_lookup_sqlite_refuses_as_busy_is_read_on_the_reader_instead(store: SQLiteStore, tmp_path: Path):
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
    reader = await aiosqlite.connect(tmp_path / "t.db", isolation_level=None)
    reads = TaskReads(reader, Lookup(busy, reader), KeyedFields())  # the store's reads, with a busy point reader
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            busy.execute("SELECT 1 FROM tasks")
        task = await reads.get("sailpoint", "t1")
        assert (task.id, task.version, task.doc) == ("t1", 1, {"id": "t1", "n": 1})
        assert await reads.get("sailpoint", "nope") is None
    finally:
        await reader.close()
        busy.close()
        hog.close()


async def test_audit_reads_a_window_of_sequence_numbers(store: SQLiteStore):
    for n in range(5):
        await store.create("s", f"t{n}", {"n": n}, actor="t", request_id=f"r{n}")
    seqs = [c.seq for c in await store.audit(newest_first=False)]
    assert len(seqs) == 5 and seqs == sorted(seqs)
    assert [c.task_id for c in await store.audit(after=seqs[1], newest_first=False)] == ["t2", "t3", "t4"]
    assert [c.task_id for c in await store.audit(before=seqs[3], limit=2)] == ["t2", "t1"]
    assert [c.task_id for c in await store.audit(after=seqs[0], before=seqs[3], newest_first=False)] == ["t1", "t2"]
    assert await store.audit(after=seqs[-1]) == []


async def test_find_ids_and_read_chunks_give_find_s_page_a_chunk_at_a_time(store: SQLiteStore):
    sizes = [100, 300_000, 50, 400_000, 200_000, 10, 600_000, 20, 30, 700_000]
    for n, size in enumerate(sizes):
        await store.create("s", f"t{n}", {"k": len(sizes) - n, "pad": "p" * size}, actor="t", request_id="r")
    query = Query(Compare("$.k", "gt", (1,)), (Sort("$.k"),), limit=8, offset=1, count=True)
    tasks, total = await store.find("s", query)
    ids, counted = await store.find_ids("s", query)
    assert (ids, counted) == ([t.id for t in tasks], total) == (["t7", "t6", "t5", "t4", "t3", "t2", "t1", "t0"], 9)
    chunks = [c async for c in store.read_chunks("s", ids, chunk_bytes=700_000)]
    assert [t for c in chunks for t in c.tasks] == tasks  # the same tasks, versions and documents, in order
    assert [len(c.tasks) for c in chunks][0] == FIRST_CHUNK  # before any size is known
    assert all(c.stored_bytes == sum(len(dumps(t.doc)) for t in c.tasks) for c in chunks)
    assert len(chunks) > 2 and max(c.stored_bytes for c in chunks[1:]) < 1_800_000  # sized by what was read
    await store.delete("s", "t5", actor="t", request_id="r")  # gone since the ids were read: left out
    again = [t.id for c in [c async for c in store.read_chunks("s", ids)] for t in c.tasks]
    assert again == [i for i in ids if i != "t5"]
    assert [c async for c in store.read_chunks("s", [])] == []


async def test_audit_keeps_one_action_when_asked(store: SQLiteStore):
    await store.create("s", "a", {"v": 1}, actor="t", request_id="r")
    await store.update("s", "a", lambda d: {"v": 2}, actor="t", request_id="r")
    await store.delete("s", "a", actor="t", request_id="r")
    await store.create("s", "a", {"v": 3}, actor="t", request_id="r")
    created = await store.audit(style="s", task_id="a", action="created")
    assert [(c.action, c.version) for c in created] == [("created", 1), ("created", 1)]
    assert created[0].seq > created[1].seq  # newest first


async def test_trails_merge_tasks_and_audit_rows_in_key_order(store: SQLiteStore):
    """Every key either table holds, in (style, id) order across chunks of one: a live task
    with its rows, a deleted one with only rows, each row once and in its task's trail."""
    await store.create("b", "t2", {"n": 1}, actor="t", request_id="r1")
    await store.create("a", "t9", {"n": 2}, actor="t", request_id="r2")
    await store.update("b", "t2", lambda d: {**d, "n": 3}, actor="t", request_id="r3")
    await store.create("b", "t1", {"n": 4}, actor="t", request_id="r4")
    await store.delete("b", "t1", actor="t", request_id="r5")
    walked = [(style, task_id, stored.doc if stored else None, [(c.action, c.request_id) for c in trail])
              async for style, task_id, stored, trail in store.trails(chunk=1)]
    assert walked == [("a", "t9", {"n": 2}, [("created", "r2")]),
                      ("b", "t1", None, [("created", "r4"), ("deleted", "r5")]),
                      ("b", "t2", {"n": 3}, [("created", "r1"), ("updated", "r3")])]


async def test_get_text_and_a_written_task_s_text_are_the_stored_text_of_its_document(store: SQLiteStore,
                                                                                      backend: str):
    doc = {"ü": "ß \u2028", "n": [1, 1.0, 1e-05, -0.0, 2**70, {"x": None}], "b": True}
    created = await store.create("s", "a", doc, actor="t", request_id="r")
    # PostgreSQL's write path makes a created task anew with its creation time, without it
    assert created.text == (dumps(doc) if backend == "sqlite" else "")
    assert await store.get_text("s", "a") == (1, dumps(doc))
    assert await store.get_text("s", "missing") is None

    def reorder_then_change(old):  # a first step that changes nothing but the order of the members
        return dict(reversed(old.items()))

    updated = await store.write("s", "a", [("t", reorder_then_change), ("t", lambda old: {**old, "b": False})],
                                request_id="r")
    assert updated is not None and updated.text == dumps(updated.doc) == dumps({**doc, "b": False})
    stored = await store.get("s", "a")
    assert stored is not None and stored.text == "" and stored == updated
    assert await store.get_text("s", "a") == (2, dumps(updated.doc))
    unchanged = await store.update("s", "a", reorder_then_change, actor="t", request_id="r")
    assert unchanged.text == "" and unchanged.version == 2
    assert await store.get_text("s", "a") == (2, dumps(updated.doc))


@pytest.mark.sqlite_only
async def test_starts_with_and_contains_take_needles_holding_nul_and_long_needles(store: SQLiteStore):
    """SQLite's LIKE reads its pattern as a C string, so that a needle "w<NUL>" was the
    needle "w", and it refuses patterns over 50,000 bytes (a 500): such needles are matched
    by taskgate_like, exactly, against the field as SQLite reads it. (SQLite 3.40's JSON
    functions end a string at an escaped U+0000, so a stored "w<NUL>x" reads as "w": no
    needle holding NUL finds it, as none finds anything on PostgreSQL, which keeps no NUL.)"""
    long_name = "q" * 30_000 + "needle" + "q" * 30_000
    for task_id, name in (("w", "w"), ("wnul", "w\x00x"), ("long", long_name), ("other", "Wx")):
        await store.create("s", task_id, {"name": name}, actor="t", request_id="r")

    async def ids(op: str, needle: str) -> list[str]:
        tasks, _ = await store.find("s", Query(Compare("$.name", op, (needle,))))
        return sorted(t.id for t in tasks)

    assert await ids("co", "w\x00") == []
    assert await ids("sw", "W\x00X") == []
    assert await ids("co", "\x00") == []
    assert await ids("co", "q" * 20_000 + "needle") == ["long"]
    assert await ids("co", "Q" * 30_000) == ["long"]
    assert await ids("sw", "q" * 30_000 + "NEEDLE") == ["long"]
    assert await ids("co", "q" * 30_001 + "needle") == []
    assert await ids("co", "w") == ["other", "w", "wnul"]
    assert await ids("eq", "w") == ["w", "wnul"]  # as docs/scaling.md says
    assert await ids("co", "x") == ["other"]


async def test_a_search_past_the_time_limit_is_stopped_with_a_400_and_the_reader_goes_on(
        open_store, monkeypatch: pytest.MonkeyPatch):
    """A costly search (here fifty 16-letter needles that almost match everywhere in 100 KB
    fields, OR-ed so that each is tried) is stopped once it has run QUERY_SECONDS, with the
    400 that says so; the reads after it, cheap searches too, are answered. (The limit is
    lowered so that the test takes a fraction of a second.)"""
    import structlog

    import gateway.store.errors as store_errors
    from gateway import errors

    monkeypatch.setattr(store_errors, "QUERY_SECONDS", 0.2)
    store = await open_store()
    try:
        await store.bulk_create("s", [(f"t{n:03}", {"name": "a" * 100_000, "n": n}) for n in range(60)],
                                actor="t", request_id="r")
        costly = Or(tuple(Compare("$.name", "co", ("a" * 15 + chr(98 + k % 20) + str(k),)) for k in range(50)))
        for count in (False, True):
            with pytest.raises(errors.BadRequest) as stopped, structlog.testing.capture_logs() as logs:
                await store.find_ids("s", Query(costly, limit=5, count=count))
            assert logs == [{"event": "store.search_stopped", "log_level": "warning", "style": "s", "seconds": 0.2}]
            assert stopped.value.message == ("this search ran more than 0.2 s in the database and was stopped; "
                                             "narrow it (fewer or shorter terms, a smaller page)")
        tasks, total = await store.find("s", Query(Compare("$.n", "ge", (58,)), (Sort("$.n"),), count=True))
        assert [(t.id, t.doc["n"]) for t in tasks] == [("t058", 58), ("t059", 59)] and total == 2
        assert len(await store.audit(limit=100)) == 60
    finally:
        await store.close()
