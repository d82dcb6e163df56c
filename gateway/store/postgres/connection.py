"""The pool of connections to one PostgreSQL database, and what its failures mean.

Owns the asyncpg pool, the one snapshot transaction a task may hold
(:meth:`Database.read_snapshot`), the translation of a statement written with ``?``
placeholders (as the tests and tools write them for either backend) into PostgreSQL's
``$1``, and the mapping of a database that cannot be reached to a 503
(:class:`gateway.errors.ServiceUnavailable`) rather than a 500. Documents travel as the
text of ``json`` columns: asyncpg hands ``json`` to and from Python as ``str``, which keeps
the text exactly as taskgate wrote it.

It knows nothing of tasks or accounts; it must not decide what a transaction does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any

import asyncpg

from gateway import errors
from gateway.config import redact_url as redact
from gateway.store.errors import StoreError

__all__ = ["Database", "placeholders", "redact", "unreachable", "RETRY_AFTER_SECONDS"]

#: seconds a client is told to wait when the database cannot be reached
RETRY_AFTER_SECONDS = 1

#: the failures of a database that is down, restarting or out of reach (not of a statement);
#: InternalClientError is a pooled connection whose protocol the shutdown left mid-operation
#: ("cannot switch to state …"), seen on the first statement after the server went away
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError)
_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def placeholders(statement: str) -> str:
    """*statement* with each ``?`` outside quotes as ``$1``, ``$2``, … in order."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"
    return _QUOTED_OR_MARK.sub(number, statement)


def unreachable(exc: BaseException) -> errors.ServiceUnavailable | None:
    """The 503 of *exc* when it says the database cannot be reached, else None."""
    if isinstance(exc, _UNREACHABLE):
        return errors.ServiceUnavailable(f"the database cannot be reached: {type(exc).__name__}: {exc}",
                                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                                         summary="database unreachable")
    return None


class Database:
    """A pool of connections to one database; :meth:`close` ends them."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self._snapshot: ContextVar[asyncpg.Connection | None] = ContextVar(f"taskgate_pg_snapshot_{id(self)}",
                                                                          default=None)

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> Database:
        """A pool on *url*; StoreError, with the reason, when no connection can be made."""
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        except (asyncpg.PostgresError, *_UNREACHABLE, ValueError) as exc:
            raise StoreError(f"cannot connect to {redact(url)}: {type(exc).__name__}: {exc}") from None
        return cls(pool, url)

    async def fetch(self, statement: str, *args: Any, conn: asyncpg.Connection | None = None,
                    timeout: float | None = None) -> list[asyncpg.Record]:
        """The rows of one statement: on *conn* when given, else on the task's snapshot when
        it holds one, else on a pooled connection. With *timeout*, a statement still running
        after that many seconds is cancelled in the server and TimeoutError raised."""
        held = conn if conn is not None else self._snapshot.get()
        try:
            if held is not None:
                return list(await held.fetch(statement, *args, timeout=timeout))
            return list(await self.pool.fetch(statement, *args, timeout=timeout))
        except Exception as exc:
            if isinstance(exc, TimeoutError) and timeout is not None:
                raise  # the statement's own limit (a TimeoutError is also an OSError, as the network's are)
            if (refusal := unreachable(exc)) is not None:
                raise refusal from None
            raise

    async def fetch_plain(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a statement written with ``?`` placeholders, as tuples."""
        return [tuple(row) for row in await self.fetch(placeholders(statement), *params)]

    @contextlib.asynccontextmanager
    async def transaction(self, *, isolation: str = "read_committed",
                          readonly: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside one transaction, committed when the block ends (rolled back
        when it raises); a database out of reach is a 503."""
        try:
            async with self.pool.acquire() as conn, conn.transaction(isolation=isolation, readonly=readonly):
                yield conn
        except Exception as exc:
            if (refusal := unreachable(exc)) is not None:
                raise refusal from None
            raise

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in one repeatable-read, read-only transaction (the task's own
        snapshot when it holds one), for reads that pass it on (``fetch(conn=…)``)."""
        held = self._snapshot.get()
        if held is not None:
            yield held
            return
        async with self.transaction(isolation="repeatable_read", readonly=True) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read_snapshot(self) -> AsyncIterator[None]:
        """One repeatable-read, read-only transaction that every :meth:`fetch` of this task
        reads through until the block ends; nested, the outer one holds."""
        if self._snapshot.get() is not None:
            yield
            return
        async with self.snapshot() as conn:
            token = self._snapshot.set(conn)
            try:
                yield
            finally:
                self._snapshot.reset(token)

    async def close(self) -> None:
        await self.pool.close()
