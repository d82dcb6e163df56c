"""``taskgate copy SRC DST``: a SQLite file into PostgreSQL and back gives the same tasks,
audit trails, accounts and webhooks, row for row, and a clean audit verify (the test
cluster; the command run in process, as tests/test_cli.py runs commands)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.model import Delivery
from gateway.store.copy import BOOLEANS, TABLES
from gateway.store.postgres import PostgreSQLStore
from gateway.store.sqlite import SQLiteStore


async def _fill(path: Path) -> None:
    store = await SQLiteStore.open(path)
    try:
        await store.add_user("ann", "admin", "hash", ("tok", True, 123, "cli"), associate_id=627)
        await store.add_user("bo", "user", None)
        await store.set_disabled("bo", True)
        await store.add_oauth_client("cid", "sec", "ann")
        await store.ensure_owner("sailpoint", "$.launcher")
        for n in range(30):
            await store.create("sailpoint", f"t{n:02d}", {"id": f"t{n:02d}", "launcher": "ann", "ü": "ß", "n": n},
                               actor="ann", request_id=f"r{n}")
        for n in range(0, 30, 3):
            await store.update("sailpoint", f"t{n:02d}", lambda old: {**old, "n": old["n"] + 100}, actor="bo",
                               request_id="u")
        await store.delete("sailpoint", "t05", actor="ann", request_id="d")
        for _ in range(5):
            await store.create_numbered("superoffice", lambda i: {"Id": i, "Name": "x"}, actor="ann", request_id="c")
        hook = await store.create_hook("sailpoint", None, lambda given: {"id": given, "url": "http://127.0.0.1:9/"},
                                       active=True)
        await store.advance_hook(hook.num, expected_cursor=hook.cursor, cursor=hook.cursor, failures=1,
                                 log=[Delivery(0, hook.num, 3, "2026-12-06T00:00:00.000Z", 1, None, "failed",
                                               "no", 2.0)])
    finally:
        await store.close()


async def _tables(store) -> dict[str, list[tuple]]:
    out = {}
    for table, (columns, key) in TABLES.items():
        rows = await store.read_sql(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns[:key])}")
        flags = [(table, c) in BOOLEANS for c in columns]
        out[table] = [tuple(int(v) if f and v is not None else v for v, f in zip(r, flags, strict=True)) for r in rows]
    return out


async def _read(opener) -> dict[str, list[tuple]]:
    store = await opener()
    try:
        return await _tables(store)
    finally:
        await store.close()


def test_a_file_copied_into_postgresql_and_back_is_the_same_row_for_row(pg_url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_DB", raising=False)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)
    asyncio.run(_fill(tmp_path / "src.db"))
    assert main(["copy", "src.db", pg_url]) == 0
    out = capsys.readouterr().out
    assert out == (f"copied src.db to {pg_url}: 34 task(s), 46 audit row(s), 2 user(s), 1 token(s), "
                   "1 OAuth client(s), 1 webhook(s)\n"
                   f"verified 35 task(s) in {pg_url}: 0 disagree with their audit trail\n")
    original = asyncio.run(_read(lambda: SQLiteStore.open(tmp_path / "src.db")))
    copied = asyncio.run(_read(lambda: PostgreSQLStore.open(pg_url)))
    assert copied == original and len(original["tasks"]) == 34 and len(original["hook_log"]) == 1
    assert main(["copy", pg_url, "back.db"]) == 0  # and back, into a new file
    assert capsys.readouterr().out.endswith("verified 35 task(s) in back.db: 0 disagree with their audit trail\n")
    assert asyncio.run(_read(lambda: SQLiteStore.open(tmp_path / "back.db"))) == original
    assert main(["--db", "back.db", "audit", "verify"]) == 0

    async def write_after_the_copy() -> tuple[int, str, int]:
        store = await PostgreSQLStore.open(pg_url)
        try:
            task = await store.create_numbered("superoffice", lambda i: {"Id": i}, actor="t", request_id="r")
            hook = await store.create_hook("sailpoint", None, lambda given: {}, active=True)
            return (await store.audit(limit=1))[0].seq, task.id, hook.num
        finally:
            await store.close()
    assert asyncio.run(write_after_the_copy()) == (47, "6", 2)  # seqs, ids and hook numbers go on


def test_a_target_that_holds_anything_is_refused_unless_replaced(pg_url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_DB", raising=False)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)
    asyncio.run(_fill(tmp_path / "src.db"))
    assert main(["copy", "src.db", pg_url]) == 0
    capsys.readouterr()
    assert main(["copy", "src.db", pg_url]) == 2
    assert capsys.readouterr().err == f"taskgate: {pg_url} is not empty; --replace empties it first\n"
    assert main(["copy", "src.db", pg_url, "--replace"]) == 0
    assert "0 disagree" in capsys.readouterr().out
    assert asyncio.run(_read(lambda: PostgreSQLStore.open(pg_url))) == \
        asyncio.run(_read(lambda: SQLiteStore.open(tmp_path / "src.db")))
    with pytest.raises(SystemExit):
        main(["copy", "src.db"])


@pytest.mark.parametrize("what, row", [("task", "a row of tasks ('sailpoint', 't1') holds U+0000"),
                                       ("user", "a row of users ('a\\x00', 'admin') holds U+0000")])
def test_a_row_postgresql_cannot_keep_is_refused_by_name(pg_url, tmp_path, monkeypatch, capsys, what, row):
    """A SQLite file keeps U+0000 in a document or a name; PostgreSQL cannot. The copy of a
    task holding one used to succeed and verify, and every gateway on the target then failed
    to start ("cannot index the sailpoint tasks: unsupported Unicode escape sequence"); the
    copy of a user so named died of the driver's traceback. Both are refused, the row named."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_DB", raising=False)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)

    async def fill() -> None:
        store = await SQLiteStore.open(tmp_path / "src.db")
        try:
            if what == "task":
                await store.create("sailpoint", "t1", {"id": "t1", "a": "x\u0000"}, actor="ann", request_id="r")
            else:
                await store.add_user("a\x00", "admin", None)
        finally:
            await store.close()
    asyncio.run(fill())
    assert main(["copy", "src.db", pg_url]) == 2
    err = capsys.readouterr().err
    assert row in err and err.endswith("which PostgreSQL cannot keep; change it in the source, then copy with "
                                       "--replace\n"), err
    assert asyncio.run(_read(lambda: PostgreSQLStore.open(pg_url)))[f"{what}s"] == []


def test_a_keyed_value_longer_than_postgresql_indexes_is_refused_by_name(pg_url, tmp_path, monkeypatch, capsys):
    """SQLite indexes a keyed field's value of any length; PostgreSQL's B-tree entries stop
    at 2704 bytes, so its store refuses a write whose keyed value is over 2000. A SQLite
    file holding one used to copy and verify; then every write of that task was refused
    (400, for any change), and past the B-tree's limit every gateway on the target failed
    to start ("index row size 3032 exceeds btree version 4 maximum 2704"). The copy refuses
    it, the row and field named; a value of exactly 2000 bytes copies, and a gateway starts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_DB", raising=False)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)

    async def fill(path: Path, name: str) -> None:
        store = await SQLiteStore.open(path)
        try:
            await store.create("sailpoint", "t1", {"id": "t1", "uniqueName": name}, actor="ann", request_id="r")
        finally:
            await store.close()
    asyncio.run(fill(tmp_path / "long.db", "é" * 1000))  # 2,002 bytes of JSON: over by two
    assert main(["copy", "long.db", pg_url]) == 2
    err = capsys.readouterr().err
    assert err == (f"taskgate: copying into {pg_url}: a row of tasks ('sailpoint', 't1'): uniqueName is 2002 "
                   "bytes long; the PostgreSQL store indexes at most 2000 bytes of it; change it in the source, "
                   "then copy with --replace\n"), err
    assert asyncio.run(_read(lambda: PostgreSQLStore.open(pg_url)))["tasks"] == []
    asyncio.run(fill(tmp_path / "fits.db", "é" * 999))  # 2,000 bytes
    assert main(["copy", "fits.db", pg_url, "--replace"]) == 0
    capsys.readouterr()

    async def start_and_read() -> str:
        from gateway.apis import sailpoint

        store = await PostgreSQLStore.open(pg_url)
        try:
            await sailpoint.prepare(store)  # what every gateway does as it starts
            task = await store.get("sailpoint", "t1")
            assert task is not None
            return task.doc["uniqueName"]
        finally:
            await store.close()
    assert asyncio.run(start_and_read()) == "é" * 999


def test_a_copy_into_its_own_source_or_onto_a_non_file_is_refused_and_changes_nothing(tmp_path, monkeypatch,
                                                                                      capsys):
    """`copy s.db s.db --replace` (or through a symlink) emptied the database it copied
    and then verified nothing, exit status 0; a FIFO or a device (as root, /dev/null) as
    DST, or as a backup's DEST with --force, was replaced by a database file."""
    import os

    monkeypatch.chdir(tmp_path)
    asyncio.run(_fill(tmp_path / "src.db"))
    before = asyncio.run(_read(lambda: SQLiteStore.open(tmp_path / "src.db")))
    (tmp_path / "link.db").symlink_to(tmp_path / "src.db")
    os.mkfifo(tmp_path / "fifo")
    for target in ("src.db", "./src.db", str(tmp_path / "src.db"), "link.db"):
        assert main(["copy", "src.db", target, "--replace"]) == 2
        assert capsys.readouterr().err == "taskgate: the copy cannot go into its own source\n"
    assert main(["copy", "link.db", "src.db", "--replace"]) == 2
    assert capsys.readouterr().err == "taskgate: the copy cannot go into its own source\n"
    assert main(["copy", "src.db", "fifo", "--replace"]) == 2
    assert capsys.readouterr().err == "taskgate: 'fifo' exists and is not a regular file\n"
    assert main(["--db", "src.db", "backup", "fifo", "--force"]) == 1
    assert capsys.readouterr().err == \
        "taskgate: 'fifo' exists and is not a regular file; the backup replaces only files\n"
    assert (tmp_path / "fifo").is_fifo()
    assert asyncio.run(_read(lambda: SQLiteStore.open(tmp_path / "src.db"))) == before


def test_a_source_or_target_that_cannot_be_opened_is_named_as_such(tmp_path, monkeypatch, capsys):
    """The refusal names SRC or DST, not the configured storage.path (taskgate.db), and
    nothing is made."""
    monkeypatch.chdir(tmp_path)
    asyncio.run(_fill(tmp_path / "src.db"))
    (tmp_path / "dir.db").mkdir()
    (tmp_path / "junk.db").write_bytes(b"not a database\n" * 100)
    damaged = ("the database file is damaged or not a database (file is not a database); restore it from a "
               "backup, or start over with a new database deliberately")
    for argv, err in [
        (["copy", "missing.db", "out.db"], "taskgate: database 'missing.db' (SRC): there is no database file; "
                                           "create a new one deliberately (taskgate init, or serve --allow-new), "
                                           "or restore it from a backup\n"),
        (["copy", "dir.db", "out.db"], "taskgate: database 'dir.db' (SRC): cannot open it: unable to open "
                                       "database file\n"),
        (["copy", "junk.db", "out.db"], f"taskgate: database 'junk.db' (SRC): {damaged}\n"),
        (["copy", "src.db", "junk.db"], f"taskgate: database 'junk.db' (DST): {damaged}\n"),
    ]:
        assert main(argv) == 2
        assert capsys.readouterr() == ("", err)
    assert not (tmp_path / "out.db").exists() and not (tmp_path / "taskgate.db").exists()
    assert (tmp_path / "junk.db").read_bytes() == b"not a database\n" * 100
