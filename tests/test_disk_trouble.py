"""Disk trouble and damage on the real app: a full database (SQLite's ``max_page_count``
on the writer, the store's :meth:`~gateway.store.sqlite.SQLiteStore.limit_pages` hook), a
final checkpoint the disk refuses, the file deleted or replaced while serving, a
zero-length file and damaged pages. Each ends with no acknowledged write lost, no 500, and
a 503 in the style's shape or a clear StoreError."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway import errors
from gateway.context import STORE
from gateway.metrics import low_space
from gateway.store import SCHEMA_VERSION, StoreError
from gateway.store.sqlite import SQLiteStore
from tests.test_busy_database import WRITES, _expected, _rows
from tests.test_ops import start


def _create(style: str, n: int) -> tuple[str, str, dict]:
    """A create of a task that needs room: filling the capped file creates by creates."""
    if style == "sailpoint":
        return "POST", "/task-status/v1", {"id": f"{n:032x}", "type": "QUARTZ", "uniqueName": "u" * 200,
                                           "attributes": {"k": "x" * 2000}}
    if style == "superoffice":
        return "POST", "/api/v1/BatchTask", {"Name": "n", "State": "Started", "Description": "d" * 254,
                                             "Response": "r" * 254, "Request": "q" * 254}
    return "POST", "/rest/pub/opentask", {"taskTypeID": "T", "TaskData": {"n": "x" * 2000}}


def _expected_with(style: str, body: dict, message: str) -> dict:
    return _replace_message(_expected(style, body), message)


def _replace_message(value, message: str):
    from tests.test_busy_database import MESSAGE
    if isinstance(value, dict):
        return {k: _replace_message(v, message) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_message(v, message) for v in value]
    return message if value == MESSAGE else value


@pytest.mark.parametrize("style", WRITES)
async def test_a_full_database_refuses_writes_with_503_keeps_what_was_acknowledged_and_recovers(
        aiohttp_client, tmp_path: Path, style: str):
    c = await start(aiohttp_client, tmp_path)
    await c.one_update_per_style()
    store = c.client.app[STORE]
    db = tmp_path / "taskgate.db"
    (pages,), = await store.read_sql("PRAGMA page_count")
    await store.limit_pages(pages + 4)
    acknowledged = 0
    with capture_logs() as logs:
        for n in range(1, 200):
            method, path, body = _create(style, n)
            status, got, headers = await c.call(method, path, body)
            if status >= 300:
                break
            acknowledged += 1
        assert status == 503, got
        assert headers["Retry-After"] == "1"
        assert got == _expected(style, got)
        status, ready, _ = await c.call("GET", "/readyz", auth=False)
    assert acknowledged > 0  # the cap left room for some: those are kept
    # anyone may ask: the coarse reason; SQLite's words go to the log
    assert (status, ready) == (503, {"status": "unavailable", "reason": "database not writable"})
    unready, = [e for e in logs if e["event"] == "readyz.unready"]
    assert (unready["log_level"], unready["reason"]) == ("warning", "database not writable")
    assert unready["detail"].startswith("the last commit failed at ")
    assert unready["detail"].endswith(": OperationalError: database or disk is full")
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    assert [(e["event"], e["log_level"], e.get("exc_info")) for e in logs if e["event"].startswith("store.")] == \
        [("store.disk_refused", "warning", None)]
    stored, audit = _rows(db)
    assert len([r for r in stored if r[0] == style]) == 1 + acknowledged  # nothing acknowledged lost
    assert len(audit) == 6 + acknowledged  # and nothing of the refused write
    await store.limit_pages(None)  # space freed
    method, path, body = _create(style, 500)
    status, got, _ = await c.call(method, path, body)
    assert status in (200, 201), got
    status, ready, _ = await c.call("GET", "/readyz", auth=False)
    assert (status, ready) == (200, {"status": "ready", "schema": SCHEMA_VERSION})
    assert len(_rows(db)[1]) == 7 + acknowledged


async def test_close_survives_a_final_checkpoint_the_disk_refuses_and_the_next_start_keeps_every_write(
        tmp_path: Path, monkeypatch):
    db = tmp_path / "t.db"
    store = await SQLiteStore.open(db)
    await store.create("webmethods", "1", {"n": 1}, actor="a", request_id="r")
    writer = store._writer
    real = writer.off_loop

    async def refusing(fn):
        if getattr(fn, "__name__", "") == "<lambda>" and "wal_checkpoint" in repr(fn.__code__.co_consts):
            raise sqlite3.OperationalError("database or disk is full")
        return await real(fn)

    monkeypatch.setattr(writer, "off_loop", refusing)
    with capture_logs() as logs:
        await store.close()  # does not raise
    assert [(e["event"], e["log_level"], e["step"], e["reason"]) for e in logs] == \
        [("store.close_step_failed", "warning", "final checkpoint",
          "OperationalError: database or disk is full")]
    with pytest.raises(errors.InternalError, match="^the store is closed$"):
        await store.add_user("bob", "user", None)
    with pytest.raises(errors.InternalError, match="^the store is closed$"):
        await store.create("webmethods", "2", {}, actor="a", request_id="r")
    again = await SQLiteStore.open(db)  # restart: the WAL left behind is replayed
    try:
        task = await again.get("webmethods", "1")
        assert task is not None and task.doc == {"n": 1}
    finally:
        await again.close()


async def test_a_deleted_database_file_turns_the_store_unready_and_refuses_writes(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path)
    await c.one_update_per_style()
    db = tmp_path / "taskgate.db"
    kept = tmp_path / "kept.db"
    shutil.copy(db, kept)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    method, path, ctype, body = WRITES["webmethods"]
    message = ("the store refuses writes: the database file was deleted while taskgate had it open")
    with capture_logs() as logs:
        status, got, headers = await c.call(method, path, body, content_type=ctype)
    assert status == 503, got
    assert headers["Retry-After"] == "1"
    assert got == _expected_with("webmethods", got, message)
    assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("store.")] == \
        [("store.file_gone", "error")]
    with capture_logs() as logs:
        status, ready, _ = await c.call("GET", "/readyz", auth=False)
    assert (status, ready) == (503, {"status": "unavailable", "reason": "database file deleted"})
    assert [(e["reason"], e["detail"]) for e in logs if e["event"] == "readyz.unready"] == [
        ("database file deleted", "the database file was deleted while taskgate had it open")]
    assert not db.exists()  # nothing made a new, empty database behind the server's back


async def test_a_replaced_database_file_turns_the_store_unready(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path)
    db = tmp_path / "taskgate.db"
    other = tmp_path / "other.db"
    shutil.copy(db, other)
    other.replace(db)
    with capture_logs() as logs:
        status, ready, _ = await c.call("GET", "/readyz", auth=False)
        assert (await c.call("GET", "/readyz", auth=False))[1] == ready  # the same cause: logged once
    assert (status, ready) == (503, {"status": "unavailable", "reason": "database file replaced"})
    assert [(e["reason"], e["detail"]) for e in logs if e["event"] == "readyz.unready"] == [
        ("database file replaced", "the database file was replaced while taskgate had it open")]


async def test_a_zero_length_file_is_refused_unless_a_new_database_is_asked_for(tmp_path: Path):
    db = tmp_path / "t.db"
    db.write_bytes(b"")
    with pytest.raises(StoreError) as refused:
        await SQLiteStore.open(db)
    assert str(refused.value) == (
        "the database file is empty (zero bytes): it is not a taskgate database; restore it from a backup, "
        "or create a new one deliberately (taskgate init, or serve --allow-new)")
    with pytest.raises(StoreError):
        await SQLiteStore.open(db, allow_new=False)
    assert db.stat().st_size == 0  # refused without touching it
    store = await SQLiteStore.open(db, allow_new=True)
    await store.close()
    assert db.stat().st_size > 0


async def test_a_missing_file_is_refused_when_no_new_database_may_be_made(tmp_path: Path):
    db = tmp_path / "t.db"
    with pytest.raises(StoreError) as refused:
        await SQLiteStore.open(db, allow_new=False)
    assert str(refused.value) == ("there is no database file; create a new one deliberately (taskgate init, "
                                  "or serve --allow-new), or restore it from a backup")
    assert not db.exists()


def _root_page(db: Path, name: str) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        (page,), = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchall()
        (size,), = conn.execute("PRAGMA page_size").fetchall()
    return page, size


def _smash(db: Path, page: int, size: int) -> None:
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)


async def _seeded(db: Path) -> None:
    store = await SQLiteStore.open(db)
    try:
        await store.add_user("root", "admin", None)
        for n in range(50):
            await store.create("webmethods", str(n), {"n": n}, actor="a", request_id="r")
    finally:
        await store.close()


@pytest.mark.parametrize("table", ["users", "tasks"])
async def test_a_damaged_page_is_a_clear_store_error_at_open(tmp_path: Path, table: str):
    db = tmp_path / "t.db"
    await _seeded(db)
    _smash(db, *_root_page(db, table))
    with pytest.raises(StoreError) as refused:
        await SQLiteStore.open(db)
    message = str(refused.value)
    assert message.startswith("the database file is damaged"), message
    assert message.endswith("restore it from a backup, or start over with a new database deliberately"), message


async def test_a_page_damaged_while_serving_is_503_and_unready_not_500(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path)
    await c.one_update_per_style()
    store = c.client.app[STORE]
    db = tmp_path / "taskgate.db"
    await store.write_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    _smash(db, *_root_page(db, "tokens"))
    store.forget_tokens()
    for conn in (store._point,):  # drop cached pages, as memory pressure would
        conn.execute("PRAGMA shrink_memory")
    await store.read_sql("PRAGMA shrink_memory")
    with capture_logs() as logs:
        status, got, headers = await c.call("GET", "/rest/pub/opentask/1")
    assert status == 503, got
    assert headers["Retry-After"] == "1"
    assert got == _expected_with("webmethods", got, "the store's database file is damaged") | \
        {"$errorInfo": got["$errorInfo"]}
    assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("store.")] == \
        [("store.damaged", "error")]
    with capture_logs() as logs:
        status, ready, _ = await c.call("GET", "/readyz", auth=False)
    assert (status, ready) == (503, {"status": "unavailable", "reason": "database file damaged"})
    unready, = [e for e in logs if e["event"] == "readyz.unready"]
    assert unready["detail"].startswith("the database file is damaged: ")


def test_low_space_is_reported_below_the_floor(tmp_path: Path):
    assert low_space(str(tmp_path), 0) is None
    reason = low_space(str(tmp_path), 2**40)
    assert reason is not None and reason.endswith(" MiB free beside the database, below storage.min_free_mib "
                                                  "(1099511627776 MiB)")
    assert low_space(str(tmp_path / "missing"), 1) == \
        "cannot check the free space of the database's folder: No such file or directory"
