"""The keys column: a style's indexed fields kept apart from the document, so that a write
leaving them alone updates no index (real SQLite files, real WAL frame counts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.query import Compare, Query
from gateway.store.sqlite import SQLiteStore, wal
from tests.store.helpers import rows

# SQLite's keys column, read from the file and through SQLite's plans; PostgreSQL's keys are
# tested in tests/store/test_postgres.py
pytestmark = pytest.mark.sqlite_only("SQLite's keys column, WAL frames and query plans")

FIELDS = ["$.status", "$.owner", "$.info.created", "$.rank"]


def doc(n: int, **changes) -> dict:
    return {"status": "open", "owner": f"u{n % 7}", "info": {"created": f"2026-01-{n % 28 + 1:02d}"},
            "rank": n, "progress": 0, **changes}


def keys_agree_with_documents(path: Path, style: str) -> list[tuple]:
    """Rows of *style* whose keys column does not read as their document does."""
    checks = " OR ".join(f"json_extract(keys, '$.\"{f[2:]}\"') IS NOT json_extract(doc, '{f}')" for f in FIELDS)
    return rows(path, f"SELECT id, keys FROM tasks WHERE style = ? AND (keys IS NULL OR {checks})", (style,))


async def wal_frames(store: SQLiteStore) -> int:
    (_busy, frames, _copied), = await store.write_sql("PRAGMA wal_checkpoint(PASSIVE)")
    return frames


async def test_keys_read_as_the_document_reads_and_serve_the_filters(store: SQLiteStore, tmp_path: Path):
    await store.ensure_indexes("s", FIELDS)
    odd = doc(1, status=None, owner="ü\u2028\"x", rank=0.30000000000000004, info="not an object")
    big = doc(2, rank=123456789012345678901234567890)
    await store.create("s", "odd", odd, actor="t", request_id="r")
    await store.create("s", "big", big, actor="t", request_id="r")
    assert rows(tmp_path / "t.db", "SELECT id, keys FROM tasks ORDER BY id") == [
        ("big", '{"status":"open","owner":"u2","info.created":"2026-01-03","rank":123456789012345678901234567890}'),
        ("odd", '{"status":null,"owner":"ü\u2028\\"x","info.created":null,"rank":0.30000000000000004}')]
    assert keys_agree_with_documents(tmp_path / "t.db", "s") == []
    for field, value, found in (("$.owner", "ü\u2028\"x", ["odd"]), ("$.rank", 0.30000000000000004, ["odd"]),
                                ("$.info.created", "2026-01-03", ["big"]), ("$.status", "open", ["big"])):
        query = Query(Compare(field, "eq", (value,)))
        assert [t.id for t in (await store.find("s", query))[0]] == found
        assert "USING INDEX tasks_by_" in await store.explain("s", query)
    # the same fields of another style are read from its documents until it keys them
    await store.create("other", "x", doc(3), actor="t", request_id="r")
    assert rows(tmp_path / "t.db", "SELECT keys FROM tasks WHERE style = 'other'") == [(None,)]
    assert [t.id for t in (await store.find("other", Query(Compare("$.rank", "eq", (3,)))))[0]] == ["x"]


async def test_an_update_leaving_keyed_fields_alone_writes_no_index_page(tmp_path: Path, monkeypatch):
    """The same tasks in two databases, one with four indexes on keyed fields: updating a
    field that is not keyed writes as many WAL frames (pages) in both. Changing a keyed
    field writes the indexes' pages too."""
    monkeypatch.setattr(wal, "CHECKPOINT_SECONDS", 1e9)  # count every frame the writes make
    frames: dict[str, list[int]] = {}
    for name, fields in (("plain", []), ("indexed", FIELDS)):
        store = await SQLiteStore.open(tmp_path / f"{name}.db")
        try:
            if fields:
                await store.ensure_indexes("s", fields)
            await store.bulk_create("s", ((f"t{n:05d}", doc(n)) for n in range(3000)), actor="t", request_id="seed")
            await store.write_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            counts = []
            for change in ({"progress": 50}, {"progress": 60, "status": "done"}):
                before = await wal_frames(store)
                await store.update("s", "t01500", lambda old, change=change: {**old, **change}, actor="t",
                                   request_id="r")
                counts.append(await wal_frames(store) - before)
            frames[name] = counts
        finally:
            await store.close()
        if fields:
            assert keys_agree_with_documents(tmp_path / f"{name}.db", "s") == []
    assert frames["indexed"][0] == frames["plain"][0], frames
    assert frames["indexed"][1] >= frames["plain"][1] + len(FIELDS), frames


async def test_one_batch_writes_the_keys_of_each_task_s_final_document(store: SQLiteStore, tmp_path: Path):
    await store.ensure_indexes("s", FIELDS)
    await store.create("s", "a", doc(1), actor="t", request_id="r")
    await store.create("s", "gone", doc(2), actor="t", request_id="r")
    results = await asyncio.gather(  # queued together: one writer batch
        store.update("s", "a", lambda old: {**old, "status": "done"}, actor="t", request_id="1"),
        store.update("s", "a", lambda old: {**old, "progress": 9}, actor="t", request_id="2"),
        store.delete("s", "gone", actor="t", request_id="3"),
        store.create("s", "gone", doc(5, status="reborn"), actor="t", request_id="4"),
        store.create("s", "new", doc(6), actor="t", request_id="5"),
        store.update("s", "new", lambda old: {**old, "progress": 1}, actor="t", request_id="6"))
    assert [getattr(r, "version", r) for r in results] == [2, 3, None, 3, 1, 2]
    assert rows(tmp_path / "t.db", "SELECT id, version, keys FROM tasks ORDER BY id") == [
        ("a", 3, '{"status":"done","owner":"u1","info.created":"2026-01-02","rank":1}'),
        ("gone", 3, '{"status":"reborn","owner":"u5","info.created":"2026-01-06","rank":5}'),
        ("new", 2, '{"status":"open","owner":"u6","info.created":"2026-01-07","rank":6}')]
    assert [t.id for t in (await store.find("s", Query(Compare("$.status", "eq", ("open",)))))[0]] == ["new"]


async def test_keying_other_fields_recomputes_the_keys_of_every_task_of_the_style(store: SQLiteStore, tmp_path: Path):
    """As on an upgrade: tasks stored before their style keyed anything (indexes on the
    document, no keys), then keyed fields, then other keyed fields."""
    path = tmp_path / "t.db"
    await store.bulk_create("s", ((f"t{n}", doc(n, rank=n + 0.1)) for n in range(50)), actor="t", request_id="r")
    await store.write_sql("CREATE INDEX tasks_by_rank ON tasks (style, json_extract(doc, '$.rank'), id)")
    await store.ensure_indexes("s", FIELDS[:2])
    assert rows(path, "SELECT count(*) FROM tasks WHERE keys IS NULL") == [(0,)]
    await store.ensure_indexes("s", FIELDS)
    assert keys_agree_with_documents(path, "s") == []
    assert rows(path, "SELECT sql FROM sqlite_master WHERE name = 'tasks_by_rank'") == [
        ("CREATE INDEX tasks_by_rank ON tasks (style, json_extract(keys, '$.\"rank\"'), id) WHERE style = 's'",)]
    assert rows(path, "SELECT style, fields FROM keyed") == [
        ("s", '["$.status", "$.owner", "$.info.created", "$.rank"]')]
    assert [t.id for t in (await store.find("s", Query(Compare("$.rank", "eq", (7.1,)))))[0]] == ["t7"]
    # an update rewrites the keys that SQLite computed only if it changes them: still one answer
    await store.update("s", "t7", lambda old: {**old, "progress": 3}, actor="t", request_id="r")
    assert [t.id for t in (await store.find("s", Query(Compare("$.rank", "eq", (7.1,)))))[0]] == ["t7"]
    assert keys_agree_with_documents(path, "s") == []
    # the same keyed fields with an index gone: the index is built again, no task is rewritten
    await store.write_sql("DROP INDEX tasks_by_owner")
    await store.write_sql("UPDATE tasks SET keys = '{}' WHERE id = 't9'")  # would be recomputed by a rewrite
    await store.ensure_indexes("s", FIELDS)
    assert rows(path, "SELECT count(*) FROM sqlite_master WHERE name = 'tasks_by_owner'") == [(1,)]
    assert keys_agree_with_documents(path, "s") == [("t9", "{}")]


async def test_a_writer_follows_keyed_fields_another_connection_changed(store: SQLiteStore, tmp_path: Path):
    """Two stores on one file, as the server and a command-line import are: the one that
    did not key the fields writes them in the keys column all the same."""
    other = await SQLiteStore.open(tmp_path / "t.db")
    try:
        await other.ensure_indexes("s", FIELDS)
        await store.create("s", "a", doc(1), actor="t", request_id="r")
        await store.bulk_create("s", [("b", doc(2))], actor="t", request_id="r")
        assert keys_agree_with_documents(tmp_path / "t.db", "s") == []
        assert [t.id for t in (await other.find("s", Query(Compare("$.owner", "eq", ("u2",)))))[0]] == ["b"]
    finally:
        await other.close()


async def test_indexes_hold_one_style_and_replace_an_earlier_all_styles_index(store: SQLiteStore, tmp_path: Path):
    await store.write_sql("CREATE INDEX tasks_by_n ON tasks (style, json_extract(doc, '$.n'), id)")  # as before
    await store.ensure_indexes("s", ["$.n"])
    await store.ensure_indexes("t", ["$.n"])  # the same field in another style gets its own
    await store.ensure_indexes("s", ["$.n"])  # and a restart changes nothing
    assert rows(tmp_path / "t.db",
                "SELECT name, sql FROM sqlite_master WHERE name LIKE 'tasks_by_%' ORDER BY name") == [
        ("tasks_by_n",
         "CREATE INDEX tasks_by_n ON tasks (style, json_extract(keys, '$.\"n\"'), id) WHERE style = 's'"),
        ("tasks_by_t_n",
         "CREATE INDEX tasks_by_t_n ON tasks (style, json_extract(keys, '$.\"n\"'), id) WHERE style = 't'")]
    for style, index in (("s", "tasks_by_n"), ("t", "tasks_by_t_n")):
        assert index in await store.explain(style, Query(Compare("$.n", "eq", (1,))))
    with pytest.raises(ValueError):
        await store.ensure_indexes("s'; DROP TABLE tasks; --", ["$.n"])
    with pytest.raises(ValueError):
        await store.ensure_indexes("s", ["$.n') --"])


async def test_fields_whose_names_differ_only_in_case_keep_both_indexes(store: SQLiteStore, tmp_path: Path):
    """SQLite's names are case-insensitive: SuperOffice's $.Created must not take SailPoint's
    $.created index's name (each start would then drop the other's and build its own)."""
    for _start in range(2):
        await store.ensure_indexes("s", ["$.created"])
        await store.ensure_indexes("t", ["$.Created"])
    assert rows(tmp_path / "t.db",
                "SELECT name, sql FROM sqlite_master WHERE name LIKE 'tasks_by_%' ORDER BY name") == [
        ("tasks_by_created",
         "CREATE INDEX tasks_by_created ON tasks (style, json_extract(keys, '$.\"created\"'), id) WHERE style = 's'"),
        ("tasks_by_t_Created",
         "CREATE INDEX tasks_by_t_Created ON tasks (style, json_extract(keys, '$.\"Created\"'), id) WHERE style = 't'")]
