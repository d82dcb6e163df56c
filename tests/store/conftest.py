"""The fixture of the store's tests: a fresh store of each backend, so that the same tests
run on SQLite (a temporary file) and on PostgreSQL (a database of its own on the test
cluster, tests/pg_cluster.py).

Two marks say where a test does not run on both:

* ``sqlite_only("why")``: the test is about SQLite itself (its files, WAL, PRAGMAs, group
  commit's threads): it gets no PostgreSQL variant at all;
* ``pg_not_yet("… is not available on PostgreSQL yet")``: the contract the test checks is
  not implemented on PostgreSQL yet: its PostgreSQL variant runs and is expected to fail
  (``xfail(strict=True)``), so that it turns into a failure the day it passes, and is never
  skipped silently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.store.postgres import PostgreSQLStore
from gateway.store.sqlite import SQLiteStore

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(why): a store test of SQLite itself, with no PostgreSQL variant")
    config.addinivalue_line("markers", "pg_not_yet(reason): a store test whose PostgreSQL variant must fail "
                                       "(xfail, strict) until the backend offers what it checks")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    sqlite_only = metafunc.definition.get_closest_marker("sqlite_only")
    not_yet = metafunc.definition.get_closest_marker("pg_not_yet")
    params = []
    for backend in BACKENDS:
        if backend == "postgresql" and sqlite_only is not None:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=not_yet.args[0])] \
            if backend == "postgresql" and not_yet is not None else []
        params.append(pytest.param(backend, marks=marks, id=backend))
    metafunc.parametrize("backend", params)


Opener = Callable[[], Awaitable[SQLiteStore | PostgreSQLStore]]


@pytest.fixture(name="open_store")
def _open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    """Opens a store of the test's backend on the test's database (another one on the same
    database when called again: another process, as far as the store can tell)."""
    if backend == "sqlite":
        return lambda: SQLiteStore.open(tmp_path / "t.db")
    url = request.getfixturevalue("pg_url")
    return lambda: PostgreSQLStore.open(url)


@pytest.fixture(name="store")
async def _store(open_store: Opener):
    store = await open_store()
    yield store
    await store.close()


@pytest.fixture(name="store_pg")
async def _store_pg(pg_url: str):
    """A PostgreSQL store alone, for the tests of what only that backend does."""
    store = await PostgreSQLStore.open(pg_url)
    yield store
    await store.close()
