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


_HOLDERS = ("SELECT {what} FROM pg_locks WHERE locktype = 'advisory' AND {granted} granted "
            "AND (classid::bigint << 32 | objid::bigint) = $1")


async def take_lease_away(url: str, name: str) -> asyncpg.Connection:
    """End the PostgreSQL session that holds lease *name*, as a database restart would, and
    hold the lease on a session of the test's own before the gateway can take it back:
    that session queues for the lock first, and PostgreSQL hands a released lock to the
    session waiting for it. Returns that session (let go with :func:`give_lease_back`)."""
    key = lease_key(name)
    blocker, killer = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        waiting = asyncio.ensure_future(blocker.execute("SELECT pg_advisory_lock($1)", key))
        for _ in range(2000):
            if await killer.fetchval(_HOLDERS.format(what="count(*)", granted="NOT"), key):
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"the test's session never queued for {name}")
        ended = await killer.fetch(_HOLDERS.format(what="pg_terminate_backend(pid)", granted=""), key)
        assert [r[0] for r in ended] == [True], f"one session held {name}: {ended}"
        await asyncio.wait_for(waiting, 30)
    except BaseException:
        await blocker.close()
        raise
    finally:
        await killer.close()
    return blocker


async def give_lease_back(conn: asyncpg.Connection, name: str) -> None:
    assert await conn.fetchval("SELECT pg_advisory_unlock($1)", lease_key(name))
