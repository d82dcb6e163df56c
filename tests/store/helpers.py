"""Helpers of the store's tests: reading a file behind the store's back, a mutation, a poll,
a PostgreSQL lease taken away."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg

from gateway.store.postgres.leases import lease_key


def rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """The rows of *sql* on a connection of its own to the file at *path*."""
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def bump(field: str):
    """A mutation adding one to *field*."""
    def mutate(old):
        return {**old, field: old[field] + 1}
    return mutate


async def until(condition: Callable[[], bool]) -> None:
    """Return once *condition* holds, or after about five seconds (the caller asserts it)."""
    for _ in range(500):  # the read-ahead threads read soon after the loop's turn, not before the answer
        if condition():
            return
        await asyncio.sleep(0.01)


async def take_lease_away(conn: asyncpg.Connection, name: str) -> None:
    """End the PostgreSQL session that holds lease *name*, as a database restart would,
    and hold the lease on *conn* before its gateway can ask again (unlock with
    :func:`give_lease_back`)."""
    ended = await conn.fetch("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND granted AND (classid::bigint << 32 | objid::bigint) = $1", lease_key(name))
    assert [r[0] for r in ended] == [True], f"one session held {name}: {ended}"
    await conn.execute("SELECT pg_advisory_lock($1)", lease_key(name))


async def give_lease_back(conn: asyncpg.Connection, name: str) -> None:
    assert await conn.fetchval("SELECT pg_advisory_unlock($1)", lease_key(name))
