"""Shared fixtures: a fresh app on a temporary SQLite file, built by the production factory."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password
from gateway.config import Config
from gateway.context import STORE
from gateway.store import Store
from tests.pg_cluster import Cluster

# the pytest plugin taskgate ships (its entry point loads it once the package is installed;
# named so that this line is then a no-op): the e2e tests' `taskgate` namespaces
pytest_plugins = ["gateway.testing.plugin"]


@functools.cache
def _alice_hash() -> str:
    """alice's password hash, made once per process: scrypt is slow by design, and every
    test's app would otherwise pay for it."""
    return hash_password("alice-password")


@pytest.fixture(name="pg_cluster", scope="session")
def _pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster per test process (each pytest-xdist worker starts its
    own, so that workers share no server and need no coordination), started when the first
    test asks for it and stopped at the end, with one database the tests share. When
    PostgreSQL cannot start, every test that needs it fails with PostgreSQL's own message:
    nothing is skipped."""
    cluster = Cluster().start()
    cluster.sql(f"CREATE DATABASE {PG_DATABASE} TEMPLATE template0")
    yield cluster
    cluster.stop()


PG_DATABASE = "tests"
_schemas = itertools.count(1)
_used_schemas: list[str] = []


@pytest.fixture(name="pg_url")
def _pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a new, empty schema of the cluster's test database, for this test alone
    (its ``search_path``, so that every table the store makes is in it). A schema costs
    milliseconds where a new database costs a tenth of a second. The schemas of earlier
    tests are dropped here rather than at their teardown, when the store that a test's app
    opened may not be closed yet (pytest tears fixtures down in the reverse order of their
    setup, and this one is often set up after the app's client)."""
    if _used_schemas:
        pg_cluster.sql("SET lock_timeout = '10s'; " + "; ".join(f"DROP SCHEMA {s} CASCADE" for s in _used_schemas),
                       PG_DATABASE)
        _used_schemas.clear()
    name = f"test_{next(_schemas)}"
    pg_cluster.sql(f"CREATE SCHEMA {name}", PG_DATABASE)
    _used_schemas.append(name)
    yield f"{pg_cluster.dsn(PG_DATABASE)}&search_path={name}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: the module's tests run on a SQLite file and on PostgreSQL "
                                       "(the config fixture's storage, parametrised as backend)")
    config.addinivalue_line("markers", "sqlite_only(why): a test of SQLite itself, with no PostgreSQL variant")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_backends") is not None and "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", [pytest.param(b, id=b) for b in ("sqlite", "postgresql")
                                         if not (only and b == "postgresql")])


@pytest.fixture(name="backend")
def _backend() -> str:
    """The store backend of a test's config: SQLite, unless its module runs on both."""
    return "sqlite"


@pytest.fixture(name="config")
def _config(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Config:
    config = Config(base_dir=str(tmp_path))
    if backend == "postgresql":
        return config.replace("storage", path=request.getfixturevalue("pg_url"))
    return config


@dataclass
class Api:
    """A test client plus tokens for an admin, a plain user and a read-only user."""

    client: TestClient
    store: Store
    admin: str
    user: str
    read_only: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    async def request(self, method: str, path: str, *, token: str | None = None, body: Any = None,
                      data: bytes | str | None = None, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        """Send a request; returns (status, parsed JSON body or None, response headers)."""
        hdrs = {**self.auth(token), **(headers or {})}
        if body is not None:
            data = json.dumps(body)
        if data is not None:
            hdrs.setdefault("Content-Type", content_type)
        resp = await self.client.request(method, path, data=data, headers=hdrs)
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None), resp.headers

    async def db_rows(self, sql: str, *params: Any) -> list[tuple]:
        return await self.store.read_sql(sql, params)  # tests may peek at storage (SQLiteStore's hook)

    async def snapshot(self) -> tuple[list[tuple], list[tuple]]:
        """Every task row and audit row: compared before and after a refused request."""
        return (await self.db_rows("SELECT style, id, version, modified, doc FROM tasks ORDER BY style, id"),
                await self.db_rows("SELECT * FROM audit ORDER BY seq"))


@pytest.fixture(name="api")
async def _api(aiohttp_client, config: Config) -> Api:
    client = await aiohttp_client(create_app(config))
    store = client.app[STORE]
    auth = client.app[AUTHENTICATOR]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", _alice_hash())
    await store.add_user("reader", "user", None)
    return Api(client, store,
               admin=await auth.create_token("root"),
               user=await auth.create_token("alice"),
               read_only=await auth.create_token("reader", read_only=True))
