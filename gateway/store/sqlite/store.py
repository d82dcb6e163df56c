"""The SQLite store: the contract of :mod:`gateway.store` on one database file in WAL mode.

:class:`SQLiteStore` opens the connections, hands each to the part that owns it, and
answers the contract by delegating to those parts:

* the **writer** (:mod:`.write_connection`), a plain sqlite3 connection driven one way:
  quick statements on the event loop's thread, blocking steps on its own thread, always
  under its lock. Task writes reach it only through group commit (:mod:`.group_commit`,
  applying :mod:`.batch`), bulk loads (:mod:`.bulk`), account changes
  (:mod:`.accounts`) and index builds (:mod:`.keyed`);
* the **reader** and the **point reader** (:mod:`.reads`), which never write;
* the **checkpointer** (:mod:`.wal`), which copies the WAL into the file beside the writer;
* the **read-ahead** threads (:mod:`.read_ahead`), each with a read-only connection.

The store also watches its own file (:mod:`.health`): at open it refuses a zero-length file
(unless a new database is asked for) and one that fails ``PRAGMA quick_check``; while
serving, writes to a file that was deleted or replaced, to a damaged file or onto a disk
that refuses them are 503s, and :meth:`SQLiteStore.probe_write` (``/readyz``) says why.
Closing never raises: a final checkpoint the disk refuses is logged and left to the next
start, which replays the WAL.

It knows nothing of HTTP or of any vendor's rules: callers pass pure functions
``mutate(old_doc) -> new_doc`` and vendor-neutral :mod:`gateway.query` filters. It must
not hold SQL of its own beyond opening and closing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

from gateway import errors
from gateway.model import (
    Change,
    Delivery,
    Doc,
    Expect,
    Hook,
    Mutate,
    OAuthClient,
    Step,
    Task,
    TokenInfo,
    TokenRow,
    User,
)
from gateway.query import Query
from gateway.store.errors import StoreError
from gateway.store.sqlite import schema
from gateway.store.sqlite.accounts import Accounts
from gateway.store.sqlite.batch import QueuedWrite
from gateway.store.sqlite.bulk import bulk_create
from gateway.store.sqlite.group_commit import GroupCommit
from gateway.store.sqlite.health import Health, is_damage, is_disk_trouble, unavailable
from gateway.store.sqlite.hooks import DispatcherLock, Hooks
from gateway.store.sqlite.keyed import KeyedFields, ensure_indexes, read_keyed
from gateway.store.sqlite.read_ahead import ReadAhead
from gateway.store.sqlite.reads import Lookup, TaskReads
from gateway.store.sqlite.wal import Checkpoints
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["SQLiteStore"]

_log = structlog.get_logger("taskgate.store")
R = TypeVar("R")


def _warn(event: str, **fields: Any) -> None:
    try:  # closing goes on whatever the log sink does
        _log.warning(event, **fields)
    except Exception:
        pass


def _quick_check(conn: sqlite3.Connection) -> None:
    """StoreError unless SQLite finds the file sound (``PRAGMA quick_check``: every page and
    record well formed; it does not compare indexes with their tables' rows)."""
    try:
        found = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        found = [str(exc)]
    if found != ["ok"]:
        raise StoreError("the database file is damaged (PRAGMA quick_check: " + "; ".join(found)
                         + "); restore it from a backup, or start over with a new database deliberately")


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        fn()
    return run


class SQLiteStore:
    """Open with :meth:`open`, close with :meth:`close`; one instance per process."""

    def __init__(self, writer: WriteConnection, reader: aiosqlite.Connection, point: sqlite3.Connection,
                 checkpoints: Checkpoints, read_ahead: ReadAhead, keyed: KeyedFields, *, max_batch: int,
                 health: Health | None = None) -> None:
        self._writer = writer
        self._reader = reader
        self._point = point
        self._checkpoints = checkpoints
        self._read_ahead = read_ahead
        self._keyed = keyed
        self._health = health
        self._reads = TaskReads(reader, Lookup(point, reader, health), keyed, health)
        self._commits = GroupCommit(writer, checkpoints, read_ahead, keyed, max_batch=max_batch, health=health)
        self._accounts = Accounts(writer, self._reads.lookup, self._reads.rows, checkpoints.after_commit)
        self._hooks = Hooks(writer, self._reads.rows, checkpoints.after_commit)
        self._dispatcher_lock = DispatcherLock(health.path) if health is not None else None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, *, synchronous: str = "FULL",
                   busy_timeout_ms: int = 5000, max_batch: int = 256, cache_mib: int = 16,
                   allow_new: bool | None = None) -> SQLiteStore:
        """Open (creating or migrating) the database at *path*. *cache_mib* sets each
        connection's page cache (SQLite's default is 2 MiB, which a million tasks' index
        pages thrash; 0 keeps it): bulk loads and index builds over millions of rows sort
        in memory with a large one. StoreError when the file cannot be used: damaged
        (``PRAGMA quick_check``), or not a database.

        *allow_new* says whether a new database may be made: True makes one from a missing
        or zero-length file; False refuses both (a database that existed before and is
        gone or emptied is trouble, not a first start); None, the default while the
        command line does not pass it, makes a missing file new as before but refuses a
        zero-length one (SQLite never leaves an empty file behind a database it made)."""
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous: {synchronous!r}")
        try:
            size: int | None = os.stat(path).st_size
        except FileNotFoundError:
            size = None
        except OSError as exc:
            raise StoreError(f"cannot open it: {exc.strerror or exc}") from None
        if size is None and allow_new is False:
            raise StoreError("there is no database file; create a new one deliberately (taskgate init, "
                             "or serve --allow-new), or restore it from a backup")
        if size == 0 and not allow_new:
            raise StoreError("the database file is empty (zero bytes): it is not a taskgate database; "
                             "restore it from a backup, or create a new one deliberately (taskgate init, "
                             "or serve --allow-new)")
        writer: WriteConnection | None = None
        reader: aiosqlite.Connection | None = None
        point: sqlite3.Connection | None = None
        checkpoints: Checkpoints | None = None
        read_ahead: ReadAhead | None = None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # The writer opens first, and it is the file's first use: a file that cannot be
            # opened fails here, before aiosqlite starts a thread that would outlive the failure.
            writer = WriteConnection.connect(path, busy_timeout_ms)
            health = Health(path)  # the file just opened: its identity, for later checks
            await writer.off_loop(lambda conn: schema.configure(conn, synchronous, busy_timeout_ms, cache_mib))
            await writer.off_loop(_quick_check)  # before a migration writes into a damaged file
            await writer.off_loop(schema.migrate)
            keyed = KeyedFields(*await writer.off_loop(read_keyed))
            reader = await aiosqlite.connect(str(path), isolation_level=None)
            for pragma in [*schema.pragmas(synchronous, busy_timeout_ms, cache_mib), "PRAGMA query_only = ON"]:
                rows = await reader.execute_fetchall(pragma)
                if pragma == schema.JOURNAL_MODE:
                    schema.check_journal_mode(rows)
            point = sqlite3.connect(str(path), isolation_level=None)
            for pragma in ("busy_timeout = 0", "query_only = ON", f"cache_size = {-1024 * int(cache_mib)}"):
                point.execute(f"PRAGMA {pragma}")
            checkpoints = Checkpoints.connect(path, synchronous)
            read_ahead = ReadAhead(str(path))
        except BaseException as exc:
            if writer is not None:
                await writer.close()
            if reader is not None:
                await reader.close()
            for plain in (point, checkpoints, read_ahead):
                if plain is not None:
                    plain.close()
            if isinstance(exc, sqlite3.Error) and is_damage(exc):
                raise StoreError(f"the database file is damaged or not a database ({exc}); restore it from "
                                 "a backup, or start over with a new database deliberately") from None
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StoreError(f"cannot open it: {exc}") from exc
            raise
        return cls(writer, reader, point, checkpoints, read_ahead, keyed, max_batch=max_batch, health=health)

    async def close(self) -> None:
        """Finish every queued write, then checkpoint and close every connection. Never
        raises: each step runs however the ones before it ended, and what fails (a final
        checkpoint on a full or read-only disk) is logged as a warning. The WAL then
        stays, and the next start copies it into the file."""
        if self._closed:
            return
        self._closed = True
        async with contextlib.AsyncExitStack() as stack:
            # callbacks run last-in first-out: the writer closes last, after everything else
            stack.push_async_callback(self._quietly, "writer", self._writer.close)
            stack.push_async_callback(self._quietly, "reader", self._reader.close)
            for name, plain in (("point reader", self._point), ("checkpointer", self._checkpoints),
                                ("read-ahead", self._read_ahead)):
                stack.push_async_callback(self._quietly, name, _async(plain.close))
            await self._quietly("queued writes", self._commits.close)
            if self._dispatcher_lock is not None:
                self._dispatcher_lock.close()
            await self._quietly("background checkpoint", self._checkpoints.finish)
            async with self._writer.lock:
                await self._quietly("final checkpoint", functools.partial(
                    self._writer.off_loop, lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()))

    @staticmethod
    async def _quietly(step: str, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            await fn()
        except Exception as exc:
            _warn("store.close_step_failed", step=step, reason=f"{type(exc).__name__}: {exc}")

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InternalError("the store is closed")
        if self._health is not None and (refusal := self._health.write_refusal()) is not None:
            raise unavailable(f"the store refuses writes: {refusal}")

    async def _account_write(self, change: Awaitable[R]) -> R:
        """An account change, refused like a task write once closed or when the file is
        gone, damaged or the disk refuses it (503, remembered for readiness)."""
        try:
            self._check_open()
        except BaseException:
            if hasattr(change, "close"):
                change.close()  # never awaited: no "coroutine was never awaited" warning
            raise
        try:
            result = await change
        except sqlite3.DatabaseError as exc:
            if self._health is None:
                raise
            if is_damage(exc):
                self._health.commit_failed(exc)
                raise self._health.damaged(exc, "account write") from None
            if is_disk_trouble(exc):
                self._health.commit_failed(exc)
                _warn("store.disk_refused", batch=1, reason=str(exc))
                raise unavailable("the store could not commit the change") from None
            raise
        if self._health is not None:
            self._health.commit_succeeded()
        return result

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        self._commits.on_commit(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self._commits.on_batch(listener)

    async def probe_write(self) -> None:
        """What readiness asks: unavailable (503) with the reason when the file is gone or
        damaged, or the last commit failed; then a write through the write path."""
        if self._health is not None and (problem := self._health.problem()) is not None:
            raise unavailable(problem)
        await self._commits.submit(QueuedWrite("", "", [("probe", lambda old: old)], Expect.ANY, "", None))

    async def schema_version(self) -> int:
        return await self._reads.schema_version()

    async def integrity_check(self) -> str:
        return await self._reads.integrity_check()

    async def ensure_indexes(self, style: str, fields: Sequence[str], *, then: str | None = None) -> None:
        if await ensure_indexes(self._reads.rows, self._writer, self._keyed, style, fields, then):
            self._checkpoints.after_commit()

    # -- task writes: all through group commit but bulk loads ------------------------------
    async def write(self, style: str, task_id: str, steps: Sequence[Step], *, request_id: str,
                    expect: Expect = Expect.PRESENT, if_match: frozenset[int] | None = None,
                    unmodified_since: datetime | None = None, created: str | None = None) -> Task | None:
        task, _ = await self._commits.submit(QueuedWrite(style, task_id, steps, expect, request_id, if_match,
                                                         unmodified_since, created=created))
        return task

    async def create(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        return await self._store_doc(style, task_id, doc, actor, request_id, Expect.ABSENT)

    async def create_numbered(self, style: str, build: Callable[[int], Doc], *, actor: str,
                              request_id: str, max_id: int = 2**63 - 1) -> Task:
        write = QueuedWrite(style, None, [(actor, lambda _old: None)], Expect.ABSENT, request_id, None,
                            build=build, max_id=max_id)
        task, _ = await self._commits.submit(write)
        assert task is not None
        return task

    async def put(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        return await self._store_doc(style, task_id, doc, actor, request_id, Expect.ANY)

    async def _store_doc(self, style: str, task_id: str, doc: Doc, actor: str, request_id: str,
                         expect: Expect) -> Task:
        task = await self.write(style, task_id, [(actor, lambda _old: doc)], request_id=request_id, expect=expect)
        assert task is not None
        return task

    async def update(self, style: str, task_id: str, mutate: Mutate, *, actor: str,
                     request_id: str, if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> Task:
        task = await self.write(style, task_id, [(actor, mutate)], request_id=request_id, if_match=if_match,
                                unmodified_since=unmodified_since)
        assert task is not None
        return task

    async def delete(self, style: str, task_id: str, *, actor: str, request_id: str,
                     if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> None:
        await self.write(style, task_id, [(actor, lambda _old: None)], request_id=request_id, if_match=if_match,
                         unmodified_since=unmodified_since)

    async def bulk_create(self, style: str, tasks: Iterable[tuple[str, Doc]], *, actor: str,
                          request_id: str, chunk: int = 20_000) -> int:
        return await bulk_create(self._writer, self._keyed, style, tasks, actor=actor, request_id=request_id,
                                 chunk=chunk)

    # -- reads ----------------------------------------------------------------------------
    async def get(self, style: str, task_id: str) -> Task | None:
        return await self._reads.get(style, task_id)

    async def find(self, style: str, query: Query) -> tuple[list[Task], int | None]:
        return await self._reads.find(style, query)

    async def explain(self, style: str, query: Query) -> str:
        return await self._reads.explain(style, query)

    def export(self, style: str | None = None, *, chunk: int = 500) -> AsyncIterator[Task]:
        return self._reads.export(style, chunk=chunk)

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True,
                    after: int | None = None, before: int | None = None) -> list[Change]:
        return await self._reads.audit(style=style, task_id=task_id, limit=limit, newest_first=newest_first,
                                       after=after, before=before)

    def trails(self, *, chunk: int = 500) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
        return self._reads.trails(chunk=chunk)

    def read_snapshot(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._reads.read_snapshot()

    async def count_tasks(self, style: str | None = None) -> int:
        return await self._reads.count_tasks(style)

    async def count_by_style(self) -> dict[str, int]:
        return await self._reads.count_by_style()

    async def count_audited_tasks(self) -> int:
        return await self._reads.count_audited_tasks()

    # -- users, tokens, OAuth clients -------------------------------------------------------
    async def count_users(self) -> int:
        return await self._accounts.count_users()

    async def add_user(self, name: str, role: str, password_hash: str | None,
                       token: tuple[str, bool, int | None, str] | None = None, *,
                       associate_id: int | None = None) -> None:
        await self._account_write(self._accounts.add_user(name, role, password_hash, token, associate_id=associate_id))

    async def get_user(self, name: str) -> User | None:
        return await self._accounts.get_user(name)

    async def set_password(self, name: str, password_hash: str | None) -> bool:
        return await self._account_write(self._accounts.set_password(name, password_hash))

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        return await self._account_write(self._accounts.set_disabled(name, disabled))

    async def delete_user(self, name: str) -> bool:
        return await self._account_write(self._accounts.delete_user(name))

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return await self._accounts.list_tokens(user)

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None:
        await self._account_write(self._accounts.add_token(user, token_hash, read_only=read_only, expires=expires,
                                                           source=source, purge_before=purge_before))

    async def find_token(self, token_hash: str) -> TokenRow | None:
        return await self._accounts.find_token(token_hash)

    async def delete_token(self, token_hash: str) -> None:
        await self._account_write(self._accounts.delete_token(token_hash))

    async def add_oauth_client(self, client_id: str, secret_hash: str, user: str) -> None:
        await self._account_write(self._accounts.add_oauth_client(client_id, secret_hash, user))

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        return await self._accounts.get_oauth_client(client_id)

    async def list_oauth_clients(self) -> list[OAuthClient]:
        return await self._accounts.list_oauth_clients()

    async def delete_oauth_client(self, client_id: str) -> bool:
        return await self._account_write(self._accounts.delete_oauth_client(client_id))

    def forget_tokens(self) -> None:
        self._accounts.forget_tokens()

    # -- webhooks -----------------------------------------------------------------------------
    async def create_hook(self, style: str, hook_id: str | None, build: Callable[[str], Doc], *,
                          active: bool) -> Hook:
        return await self._account_write(self._hooks.create(style, hook_id, build, active=active))

    async def list_hooks(self, style: str | None = None) -> list[Hook]:
        return await self._hooks.all(style)

    async def get_hook(self, style: str, hook_id: str) -> Hook | None:
        return await self._hooks.get(style, hook_id)

    async def hook_by_num(self, num: int) -> Hook | None:
        return await self._hooks.by_num(num)

    async def replace_hook(self, style: str, hook_id: str, doc: Doc, *, active: bool) -> Hook | None:
        return await self._account_write(self._hooks.replace(style, hook_id, doc, active=active))

    async def delete_hook(self, style: str, hook_id: str) -> bool:
        return await self._account_write(self._hooks.delete(style, hook_id))

    async def advance_hook(self, num: int, *, expected_cursor: int, cursor: int, failures: int,
                           log: Sequence[Delivery], disable: Doc | None = None, keep_log: int = 10_000) -> bool:
        return await self._account_write(self._hooks.advance(num, expected_cursor=expected_cursor, cursor=cursor,
                                                             failures=failures, log=log, disable=disable,
                                                             keep_log=keep_log))

    async def delivery_log(self, *, hook: int | None = None, limit: int = 100) -> list[Delivery]:
        return await self._hooks.log(hook=hook, limit=limit)

    async def last_seq(self) -> int:
        return await self._hooks.last_seq()

    def lock_dispatcher(self) -> bool:
        if self._closed or self._dispatcher_lock is None:
            return False
        return self._dispatcher_lock.acquire()

    # -- for tests and diagnostics, not part of the contract ----------------------------------
    @property
    def path(self) -> Path:
        return self._health.path if self._health is not None else Path()

    async def limit_pages(self, pages: int | None) -> int:
        """Test hook: cap the database file at *pages* pages on the writer (SQLite's
        ``max_page_count``, not kept in the file), so that a write past it fails as on a
        full disk; None lifts the cap. The cap in force."""
        count = 0xFFFFFFFE if pages is None else int(pages)
        rows = await self._writer.statement(f"PRAGMA max_page_count = {count}")
        return int(rows[0][0])

    @property
    def read_ahead(self) -> ReadAhead:
        """The read-ahead (whether it finds the file :attr:`~ReadAhead.cold`, whether it
        still :attr:`~ReadAhead.running`)."""
        return self._read_ahead

    async def read_sql(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement on the reader: a look at storage behind the store's back."""
        return await self._reads.rows(statement, params)

    async def write_sql(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement on the writer's connection, on its own (autocommit) under the
        write lock, and return its rows: a change behind the store's back, whose token cache
        and keyed fields do not hear of it (:meth:`forget_tokens`)."""
        return await self._writer.statement(statement, params)

    def trace(self, callback: Callable[[str, str], None] | None) -> None:
        """Call ``callback(connection, statement)`` for every statement the writer
        (``"writer"``) and the read-ahead threads (``"read-ahead"``) run, on the thread that
        runs it; None stops."""
        self._writer.trace(None if callback is None else functools.partial(callback, "writer"))
        self._read_ahead.trace(None if callback is None else functools.partial(callback, "read-ahead"))
