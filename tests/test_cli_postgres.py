"""The command line on a PostgreSQL database: ``--db postgresql://…`` and ``TASKGATE_DB``
pick the PostgreSQL store, whose commands answer as they do on a SQLite file (the test
cluster, tests/pg_cluster.py; in process, as tests/test_cli.py runs them)."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest

from gateway.auth import secret_hash
from gateway.cli import main
from gateway.config import load_config
from gateway.store import open_store
from gateway.store.postgres import SCHEMA_VERSION, PostgreSQLStore


@pytest.fixture(name="run")
def _run(pg_url: str, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("TASKGATE_CONFIG", "TASKGATE_DB", "TASKGATE_HOST", "TASKGATE_PORT"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--db", pg_url, *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def rows(url: str, statement: str) -> list[tuple]:
    """The rows of *statement*, on a connection of its own (the commands run their own loops)."""
    async def read() -> list[tuple]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(statement)]
        finally:
            await conn.close()
    return asyncio.run(read())


def test_a_command_on_a_database_without_taskgate_s_tables_exits_2_until_init(run, pg_url: str):
    code, out, err = run("user", "add", "ann")
    assert (code, out) == (2, "")
    assert err == (f"taskgate: database {pg_url!r} (storage.path): the database has no taskgate tables; create them "
                   "deliberately (taskgate init, or serve --allow-new), or restore it from a backup\n")
    assert rows(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()") == []
    assert run("init") == (0, f"database {pg_url} is at schema version {SCHEMA_VERSION}\n", "")


def test_users_tokens_and_refusals_answer_as_on_sqlite(run, pg_url: str):
    assert run("init")[0] == 0
    assert run("user", "add", "ann", "--role", "admin", "--password-stdin", stdin="s3cret\n") == (
        0, "added user 'ann' (role admin, with a password)\n", "")
    assert run("user", "add", "ann") == (1, "", "taskgate: already exists: UNIQUE constraint failed: users.name\n")
    assert run("token", "create", "ghost")[::2] == (1, "taskgate: no user 'ghost'\n")
    code, token, _ = run("token", "create", "ann", "--read-only", "--expires-in", "60")
    token = token.strip()
    assert code == 0 and token.startswith("tg_")
    assert rows(pg_url, 'SELECT hash, "user", read_only, source FROM tokens') == [
        (secret_hash(token), "ann", True, "cli")]


def test_a_postgresql_url_from_the_environment_is_kept_as_it_is(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)
    monkeypatch.setenv("TASKGATE_DB", "postgresql://ann:pw@db.internal:5433/tasks")
    config = load_config(None)
    assert (config.storage.path, config.storage_url) == ("postgresql://ann:pw@db.internal:5433/tasks",) * 2
    monkeypatch.setenv("TASKGATE_DB", "t.db")
    config = load_config(None)
    assert (config.storage.path, config.storage_url) == (str(tmp_path / "t.db"), None)


async def test_open_store_picks_postgresql_for_a_url(pg_url: str, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)
    monkeypatch.setenv("TASKGATE_DB", pg_url)
    store = await open_store(load_config(None))
    try:
        assert isinstance(store, PostgreSQLStore) and await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()
