"""The throwaway PostgreSQL cluster of the tests (tests/pg_cluster.py): it serves each test
a database of its own, and when PostgreSQL cannot start it fails loudly, never skips."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import asyncpg
import pytest

from tests.pg_cluster import RUN_AS, Cluster, ClusterError


async def test_each_test_gets_an_empty_schema_on_a_fast_utf8_c_cluster(pg_url: str, pg_cluster: Cluster):
    conn = await asyncpg.connect(pg_url)
    try:
        settings = {name: await conn.fetchval(f"SHOW {name}") for name in (
            "server_encoding", "lc_collate", "fsync", "synchronous_commit", "full_page_writes", "listen_addresses")}
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        await conn.execute("CREATE TABLE mine (x int)")  # the next test's schema will not have it
        schema = await conn.fetchval("SELECT current_schema()")
    finally:
        await conn.close()
    assert settings == {"server_encoding": "UTF8", "lc_collate": "C", "fsync": "off", "synchronous_commit": "off",
                        "full_page_writes": "off", "listen_addresses": ""}
    assert tables == [] and schema.startswith("test_")
    folder = pg_cluster.socket_dir
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and folder.parent == Path("/tmp")
    if os.geteuid() == 0:
        assert folder.stat().st_uid == pwd.getpwnam(RUN_AS).pw_uid  # PostgreSQL refuses root


async def test_a_second_test_does_not_see_the_first_ones_tables(pg_url: str):
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetch("SELECT tablename FROM pg_tables WHERE tablename = 'mine'") == []
    finally:
        await conn.close()


def test_a_missing_initdb_fails_loudly_with_where_it_looked():
    cluster = Cluster(Path("/nonexistent/postgresql/bin"))
    with pytest.raises(ClusterError, match=r"PostgreSQL's initdb is not in /nonexistent/postgresql/bin"):
        cluster.start()
    assert cluster.folder is None


def test_an_initdb_that_fails_raises_with_its_stderr_and_leaves_no_folder():
    """A stand-in initdb that refuses, as a real one does on a folder it cannot write."""
    bindir = Path(tempfile.mkdtemp(prefix="taskgate-fake-pg-"))
    try:
        for tool in ("initdb", "pg_ctl"):
            (bindir / tool).write_text("#!/bin/sh\necho 'initdb: error: could not create directory: "
                                       "Permission denied' >&2\nexit 1\n")
            (bindir / tool).chmod(0o755)
        bindir.chmod(0o755)
        before = set(Path("/tmp").glob("taskgate-pg-*"))
        with pytest.raises(ClusterError) as raised:
            Cluster(bindir).start()
        assert "failed (exit 1):\ninitdb: error: could not create directory: Permission denied" in str(raised.value)
        assert set(Path("/tmp").glob("taskgate-pg-*")) == before  # its folder was removed
    finally:
        for tool in ("initdb", "pg_ctl"):
            (bindir / tool).unlink(missing_ok=True)
        bindir.rmdir()


def test_a_cluster_stops_and_removes_its_folder():
    cluster = Cluster().start()
    folder = cluster.folder
    assert folder is not None and (folder / "data" / "postmaster.pid").exists()
    cluster.stop()
    assert not folder.exists() and cluster.folder is None
