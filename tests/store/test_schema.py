"""Migrations and the PRAGMAs of a store's connections, on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.model import CLIENT, User
from gateway.store import SCHEMA_VERSION, StoreError
from gateway.store.sqlite import MIGRATIONS, SQLiteStore
from gateway.store.sqlite.schema import pragmas
from tests.store.helpers import rows


async def test_new_database_is_migrated_and_configured(tmp_path: Path):
    store = await SQLiteStore.open(tmp_path / "new.db", synchronous="NORMAL", busy_timeout_ms=1234)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        pragmas = {name: (await store.write_sql(f"PRAGMA {name}"))[0][0]
                   for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "wal_autocheckpoint")}
        assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 1234, "foreign_keys": 1,
                           "wal_autocheckpoint": 0}  # checkpoints run beside the writer
        assert await store.read_sql("PRAGMA busy_timeout") == [(1234,)]  # the reader's too
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()
    assert rows(tmp_path / "new.db", "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert {r[0] for r in rows(tmp_path / "new.db", "SELECT name FROM sqlite_master WHERE type='table'")} == {
        "tasks", "audit", "users", "tokens", "oauth_clients", "counters", "keyed", "owners", "usage", "hooks",
        "hook_log", "graves", "sqlite_sequence"}  # hooks' AUTOINCREMENT keeps its counter there


def test_every_connection_starts_in_wal_mode_without_automatic_checkpoints():
    assert pragmas("normal", 1234, 0) == [
        "PRAGMA busy_timeout = 1234", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL",
        "PRAGMA foreign_keys = ON", "PRAGMA wal_autocheckpoint = 0"]
    assert pragmas("FULL", 5000, 16)[1] == "PRAGMA cache_size = -16384"


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
async def test_every_earlier_schema_version_migrates(tmp_path: Path, version: int):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:version]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    store = await SQLiteStore.open(path)
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
    store = await SQLiteStore.open(path)
    try:
        assert await store.get_user("ann") == User("ann", "user", None, None)
        # 12 was deleted but is never handed out again
        task = await store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="r")
        assert (task.id, task.doc) == ("13", {"Id": 13})
        task = await store.create_numbered("new", lambda n: {"Id": n}, actor="t", request_id="r")
        assert task.id == "1"
    finally:
        await store.close()


async def test_migration_3_gives_old_audit_rows_an_empty_client(tmp_path: Path):
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:2]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO audit (at, style, task_id, version, action, actor, request_id, patch, undo) "
                     "VALUES ('t', 's', 'a', 1, 'created', 'ann', 'r', '[]', '[]')")
    store = await SQLiteStore.open(path)
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


async def test_newer_or_foreign_databases_are_refused(tmp_path: Path):
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this taskgate"):
        await SQLiteStore.open(newer)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE x (y)")
    with pytest.raises(StoreError, match="not a taskgate database"):
        await SQLiteStore.open(foreign)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        await SQLiteStore.open(junk)
    # a refused file leaves no thread of the store behind
    assert not [t for t in threading.enumerate() if t.name.startswith(("store-writer", "store-warmer"))]


async def test_the_owner_migration_counts_existing_tasks_once_their_style_names_its_owner_field(tmp_path: Path):
    """A file from before the quotas: its tasks get no owner until the style names its
    owner field; then each owner holds its tasks and their documents' and audit rows' bytes,
    and old audit rows name no impersonator."""
    before = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE usage" in script)
    path = tmp_path / "old.db"
    docs = {"a": {"who": "ann", "pad": "é" * 100}, "b": {"who": "ann"}, "c": {"who": "bob"}, "d": {"who": 7}}
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:before]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {before}")
        for n, (task_id, doc) in enumerate(docs.items(), 1):
            text = json.dumps(doc, ensure_ascii=False)
            conn.execute("INSERT INTO tasks (style, id, version, created, modified, doc) VALUES "
                         "('s', ?, 1, 't', 't', ?)", (task_id, text))
            conn.execute("INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, patch, "
                         "undo) VALUES (?, 't', 's', ?, 1, 'created', 'x', 'r', ?, '[]')",
                         (n, task_id, json.dumps([{"op": "add", "path": "", "value": doc}], ensure_ascii=False)))
    store = await SQLiteStore.open(path)
    try:
        assert await store.usage("s", "ann") == (0, 0)
        await store.ensure_owner("s", "$.who")
        counted = {owner: await store.usage("s", owner) for owner in ("ann", "bob", "7")}
        sizes = await store.read_sql(
            "SELECT json_extract(t.doc, '$.who'), count(*), sum(length(CAST(t.doc AS BLOB)) + "
            "length(CAST(a.patch AS BLOB)) + length(CAST(a.undo AS BLOB))) FROM tasks AS t JOIN audit AS a "
            "ON a.style = t.style AND a.task_id = t.id GROUP BY 1 ORDER BY 1")
        assert counted == {str(who): (tasks, size) for who, tasks, size in sizes}
        assert counted["ann"][0] == 2 and counted["7"][0] == 1
        assert {c.impersonator for c in await store.audit()} == {""}
        # the write path goes on from the recount: a new task of ann's adds exactly its bytes
        await store.create("s", "e", {"who": "ann"}, actor="ann", request_id="r")
        (size,), = await store.read_sql("SELECT size FROM tasks WHERE id = 'e'")
        assert await store.usage("s", "ann") == (3, counted["ann"][1] + size)
    finally:
        await store.close()


async def test_migration_8_gives_lives_deleted_before_it_graves_counted_for_nobody_and_purgeable(tmp_path: Path):
    """A file from before graves: its deleted lives get graves owned by nobody (they were
    counted for nobody), a recount gives a task the rows of its present life only, and a
    purge drops the old life's rows."""
    before = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE graves" in script)
    path = tmp_path / "v7.db"
    rows_of = [(1, "created", '[{"op": "add", "path": "/who", "value": "ann"}]', '[{"op": "remove", "path": "/who"}]'),
               (2, "deleted", '[{"op": "remove", "path": "/who"}]', '[{"op": "add", "path": "/who", "value": "ann"}]'),
               (3, "created", '[{"op": "add", "path": "/who", "value": "bob"}]', '[{"op": "remove", "path": "/who"}]')]
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:before]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {before}")
        conn.execute("INSERT INTO tasks (style, id, version, created, modified, doc) VALUES "
                     "('s', 'a', 3, 't', 't', '{\"who\":\"bob\"}')")
        for seq, action, patch, undo in rows_of:
            conn.execute("INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, patch, "
                         "undo) VALUES (?, '2020-01-01T00:00:00Z', 's', 'a', ?, ?, 'x', 'r', ?, ?)",
                         (seq, seq, action, patch, undo))
    store = await SQLiteStore.open(path)
    try:
        assert await store.read_sql("SELECT seq, style, task_id, owner, bytes FROM graves") == [(2, "s", "a", None, 0)]
        await store.ensure_owner("s", "$.who")
        present = len(rows_of[2][2].encode()) + len(rows_of[2][3].encode()) + len('{"who":"bob"}')
        assert (await store.usage("s", "bob"), await store.usage("s", "ann")) == ((1, present), (0, 0))
        assert await store.purge_deleted("2021-01-01T00:00:00Z") == (1, 2)
        assert [c.seq for c in await store.audit()] == [3] and await store.read_sql("SELECT * FROM graves") == []
        assert await store.usage("s", "bob") == (1, present)
    finally:
        await store.close()
