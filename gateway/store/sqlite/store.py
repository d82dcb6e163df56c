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
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

from gateway import errors
from gateway.clock import now_iso
from gateway.model import (
    Change,
    Chunk,
    Delivery,
    Doc,
    Expect,
    Hook,
    OAuthClient,
    Step,
    Task,
    TokenInfo,
    TokenRow,
    User,
)
from gateway.query import Query
from gateway.store.errors import StoreError
from gateway.store.shortcuts import WriteShortcuts
from gateway.store.sqlite import schema, snapshots, sql
from gateway.store.sqlite.accounts import Accounts
from gateway.store.sqlite.batch import QueuedWrite
from gateway.store.sqlite.bulk import bulk_create
from gateway.store.sqlite.group_commit import GroupCommit
from gateway.store.sqlite.health import RETRY_AFTER_SECONDS, Health, is_damage, is_disk_trouble, unavailable
from gateway.store.sqlite.hooks import Hooks
from gateway.store.sqlite.keyed import KeyedFields, ensure_indexes, read_keyed
from gateway.store.sqlite.owned import ensure_owner, purge_deleted
from gateway.store.sqlite.read_ahead import ReadAhead
from gateway.store.sqlite.reads import Budget, Lookup, TaskReads
from gateway.store.sqlite.wal import Checkpoints
from gateway.store.sqlite.write_connection import WriteConnection, WriteLock, is_busy

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


def _read_only(path: Path) -> str | None:
    """Why an existing database can only be read, or None: a read-only file system, or no
    write permission on the file or its folder (where SQLite makes its -wal and -shm files)."""
    try:
        flags = os.statvfs(path.parent).f_flag
    except OSError:
        flags = 0
    if flags & os.ST_RDONLY:
        return "the database is on a read-only file system"
    if not os.access(path, os.W_OK):
        return "the database file is read-only (its permissions)"
    if not os.access(path.parent, os.W_OK):
        return "the database's folder is read-only (its permissions)"
    return None


def _read_only_target(path: Path, reason: str) -> str:
    """The URI that opens a read-only database: immutable, since SQLite cannot make the
    -shm file a WAL database needs there; StoreError when its WAL holds changes (an
    immutable open would not see them)."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(f"{reason}, and its write-ahead log ({wal.name}) holds changes not yet copied into it, "
                         "which cannot be read without writing: make it writable for one start (taskgate then "
                         "copies them in), or copy the files somewhere writable")
    return path.resolve().as_uri() + "?mode=ro&immutable=1"


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        fn()
    return run


class SQLiteStore(WriteShortcuts):
    """Open with :meth:`open`, close with :meth:`close`; one instance per process."""

    def __init__(self, writer: WriteConnection, reader: aiosqlite.Connection, point: sqlite3.Connection,
                 checkpoints: Checkpoints, read_ahead: ReadAhead, keyed: KeyedFields, *, max_batch: int,
                 health: Health | None = None, now: Callable[[], str] = now_iso, path: str | Path = "",
                 budget: Budget | None = None) -> None:
        self._writer = writer
        self._reader = reader
        self._point = point
        self._checkpoints = checkpoints
        self._read_ahead = read_ahead
        self._keyed = keyed
        self._health = health
        self._reads = TaskReads(reader, Lookup(point, reader, health), keyed, health, budget)
        self._commits = GroupCommit(writer, checkpoints, read_ahead, keyed, max_batch=max_batch, health=health,
                                    now=now)
        self._accounts = Accounts(writer, self._reads.lookup, self._reads.rows, checkpoints.after_commit)
        self._path = path
        self._leases: dict[str, WriteLock] = {}
        self._hooks = Hooks(writer, self._reads.rows, checkpoints.after_commit)
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, *, synchronous: str = "FULL",
                   busy_timeout_ms: int = 5000, max_batch: int = 256, cache_mib: int = 16,
                   allow_new: bool | None = None, max_db_mib: int = 0,
                   now: Callable[[], str] = now_iso) -> SQLiteStore:
        """Open (creating or migrating) the database at *path*. *cache_mib* sets each
        connection's page cache (SQLite's default is 2 MiB, which a million tasks' index
        pages thrash; 0 keeps it): bulk loads and index builds over millions of rows sort
        in memory with a large one. StoreError when the file cannot be used: damaged
        (``PRAGMA quick_check``), or not a database.

        *allow_new* says whether a new database may be made: True makes one from a missing
        or zero-length file; False refuses both (a database that existed before and is
        gone or emptied is trouble, not a first start); None, the default while the
        command line does not pass it, makes a missing file new as before but refuses a
        zero-length one (SQLite never leaves an empty file behind a database it made).

        *max_db_mib* (0: none) caps the file's size on the writer (SQLite's
        ``max_page_count``): a write past it fails as on a full disk. A file taskgate
        cannot write (a read-only file system, or its permissions) is opened read-only and
        immutable: reads are answered, writes refused (503). *now* gives the time task writes are stamped with (a test
        namespace's clock)."""
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
        # a file taskgate cannot write is opened for reading: reads are answered, writes are 503s
        read_only = _read_only(Path(path)) if size else None
        target = _read_only_target(Path(path), read_only) if read_only else str(path)
        uri = read_only is not None
        writer: WriteConnection | None = None
        reader: aiosqlite.Connection | None = None
        point: sqlite3.Connection | None = None
        checkpoints: Checkpoints | None = None
        read_ahead: ReadAhead | None = None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # The writer opens first, and it is the file's first use: a file that cannot be
            # opened fails here, before aiosqlite starts a thread that would outlive the failure.
            writer = WriteConnection.connect(target, busy_timeout_ms, uri=uri)
            health = Health(path)  # the file just opened: its identity, for later checks
            await writer.off_loop(lambda conn: schema.configure(conn, synchronous, busy_timeout_ms, cache_mib,
                                                                read_only=uri))
            await writer.off_loop(_quick_check)  # before a migration writes into a damaged file
            if read_only:
                (version,), = await writer.statement("PRAGMA user_version")
                if version != schema.SCHEMA_VERSION:
                    raise StoreError(f"{read_only}, and it is at schema {version}, not {schema.SCHEMA_VERSION}: "
                                     "make it writable for one start so that taskgate can migrate it")
                health.read_only = f"{read_only}: reads are answered, writes refused"
                _warn("store.read_only", reason=read_only, path=str(path))
            else:
                await writer.off_loop(schema.migrate)
            if max_db_mib > 0:
                (page_size,), = await writer.statement("PRAGMA page_size")
                await writer.statement(f"PRAGMA max_page_count = {-(-int(max_db_mib) * 2**20 // int(page_size))}")
            keyed = KeyedFields(*await writer.off_loop(read_keyed))
            reader = await aiosqlite.connect(target, isolation_level=None, uri=uri)
            for pragma in [*schema.pragmas(synchronous, busy_timeout_ms, cache_mib, read_only=uri),
                           "PRAGMA query_only = ON"]:
                rows = await reader.execute_fetchall(pragma)
                if pragma == schema.JOURNAL_MODE:
                    schema.check_journal_mode(rows)
            await reader.create_function(sql.LIKE_FUNCTION, 3, sql.like, deterministic=True)
            budget = Budget()
            await budget.install(reader)
            point = sqlite3.connect(target, isolation_level=None, uri=uri)
            for pragma in ("busy_timeout = 0", "query_only = ON", f"cache_size = {-1024 * int(cache_mib)}"):
                point.execute(f"PRAGMA {pragma}")
            point.create_function(sql.LIKE_FUNCTION, 3, sql.like, deterministic=True)
            checkpoints = Checkpoints.connect(target, synchronous, uri=uri)
            read_ahead = ReadAhead(target, uri=uri)
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
        return cls(writer, reader, point, checkpoints, read_ahead, keyed, max_batch=max_batch, health=health,
                   now=now, path=path, budget=budget)

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
            for lease in self._leases.values():
                stack.callback(lease.close)
            stack.push_async_callback(self._quietly, "reader", self._reader.close)
            for name, plain in (("point reader", self._point), ("checkpointer", self._checkpoints),
                                ("read-ahead", self._read_ahead)):
                stack.push_async_callback(self._quietly, name, _async(plain.close))
            await self._quietly("queued writes", self._commits.close)
            await self._quietly("background checkpoint", self._checkpoints.finish)
            if self._health is not None and self._health.read_only:
                return  # nothing was written, and the file cannot take a checkpoint
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
            raise unavailable(f"the store refuses writes: {refusal}", self._health.summary())

    async def _account_write(self, change: Awaitable[R]) -> R:
        """An account change, refused like a task write once closed, when another
        connection holds the write lock past the busy timeout (503), or when the file is
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
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                # another connection held the write lock past the busy timeout: nothing is
                # stored and a later try may pass (not a fault of the file: readiness stays)
                _warn("store.busy", batch=1, retry_after=RETRY_AFTER_SECONDS)
                raise unavailable("the store could not commit the change") from None
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

    def on_other_commit(self, listener: Callable[[], None]) -> None:
        """Never called: other processes' commits to the file are found by polling."""

    async def probe_write(self) -> None:
        """What readiness asks: unavailable (503) with the reason when the file is gone or
        damaged, or the last commit failed; then a write through the write path."""
        if self._health is not None and (problem := self._health.problem()) is not None:
            raise unavailable(problem, self._health.summary())
        await self._commits.submit(QueuedWrite("", "", [("probe", lambda old: old)], Expect.ANY, "", None))

    async def schema_version(self) -> int:
        return await self._reads.schema_version()

    def hold(self, name: str) -> bool:
        """The lease *name*: an ``flock`` on ``<database>-<name>.lock``, let go by the kernel
        when the process ends however it ends. None is held beside a database on a
        read-only file system (no lock file can be made there, and nothing could write)."""
        lease = self._leases.get(name)
        if lease is None:
            if self._closed or not re.fullmatch(r"[a-z0-9-]{1,64}", name):
                return False
            try:
                lease = WriteLock(f"{self._path}-{name}.lock")
            except OSError:
                return False
            self._leases[name] = lease
        return lease.held or lease.try_acquire()

    async def integrity_check(self) -> str:
        return await self._reads.integrity_check()

    async def ensure_indexes(self, style: str, fields: Sequence[str], *, then: str | None = None) -> None:
        if await ensure_indexes(self._reads.rows, self._writer, self._keyed, style, fields, then):
            self._checkpoints.after_commit()

    async def ensure_owner(self, style: str, field: str) -> None:
        stored = await self._reads.rows("SELECT field FROM owners WHERE style = ?", (style,))
        if await ensure_owner(self._writer, self._keyed.owners, style, field, stored[0][0] if stored else None):
            self._checkpoints.after_commit()

    async def purge_deleted(self, before: str) -> tuple[int, int]:
        def step(conn: sqlite3.Connection) -> tuple[int, int]:
            (owed,), = conn.execute("SELECT min(cursor) FROM hooks WHERE active = 1").fetchall()
            return purge_deleted(conn, before, owed)
        lives = rows = 0
        while True:  # one transaction per few hundred lives, refused like an account write
            done = await self._account_write(self._writer.transaction(step))
            if not done[0]:
                return lives, rows
            lives, rows = lives + done[0], rows + done[1]
            self._checkpoints.after_commit()

    async def usage(self, style: str, owner: str) -> tuple[int, int]:
        rows = await self._reads.rows("SELECT tasks, bytes FROM usage WHERE style = ? AND owner = ?", (style, owner))
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    # -- task writes: all through group commit but bulk loads ------------------------------
    async def write(self, style: str, task_id: str, steps: Sequence[Step], *, request_id: str,
                    expect: Expect = Expect.PRESENT, if_match: frozenset[int] | None = None,
                    unmodified_since: datetime | None = None, created: str | None = None) -> Task | None:
        task, _ = await self._commits.submit(QueuedWrite(style, task_id, steps, expect, request_id, if_match,
                                                         unmodified_since, created=created))
        return task

    async def create_numbered(self, style: str, build: Callable[[int], Doc], *, actor: str,
                              request_id: str, max_id: int = 2**63 - 1) -> Task:
        write = QueuedWrite(style, None, [(actor, lambda _old: None)], Expect.ABSENT, request_id, None,
                            build=build, max_id=max_id)
        task, _ = await self._commits.submit(write)
        assert task is not None
        return task

    async def bulk_create(self, style: str, tasks: Iterable[tuple[str, Doc]], *, actor: str,
                          request_id: str, chunk: int = 20_000) -> int:
        return await bulk_create(self._writer, self._keyed, style, tasks, actor=actor, request_id=request_id,
                                 chunk=chunk)

    # -- reads ----------------------------------------------------------------------------
    async def get(self, style: str, task_id: str) -> Task | None:
        return await self._reads.get(style, task_id)

    async def get_text(self, style: str, task_id: str) -> tuple[int, str] | None:
        return await self._reads.get_text(style, task_id)

    async def find(self, style: str, query: Query) -> tuple[list[Task], int | None]:
        return await self._reads.find(style, query)

    async def find_ids(self, style: str, query: Query) -> tuple[list[str], int | None]:
        return await self._reads.find_ids(style, query)

    def read_chunks(self, style: str, ids: Sequence[str], *, chunk_bytes: int = 1_048_576) -> AsyncIterator[Chunk]:
        return self._reads.read_chunks(style, ids, chunk_bytes=chunk_bytes)

    async def explain(self, style: str, query: Query) -> str:
        return await self._reads.explain(style, query)

    def export(self, style: str | None = None, *, chunk: int = 500) -> AsyncIterator[Task]:
        return self._reads.export(style, chunk=chunk)

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True,
                    after: int | None = None, before: int | None = None,
                    action: str | None = None, max_bytes: int | None = None) -> list[Change]:
        return await self._reads.audit(style=style, task_id=task_id, limit=limit, newest_first=newest_first,
                                       after=after, before=before, action=action, max_bytes=max_bytes)

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
        return self.hold("webhook-dispatcher")  # one lease, as the webMethods sweeper's

    # -- for tests and diagnostics, not part of the contract ----------------------------------
    async def snapshot(self) -> snapshots.Snapshot:
        """Every table as it is now, in memory (test namespaces' checkpoints)."""
        self._check_open()
        return await snapshots.take(self._writer)

    async def restore(self, snapshot: snapshots.Snapshot) -> None:
        """Every table as it was at *snapshot* (test namespaces' restore and reset). The
        store's caches hold nothing of tasks, and its keyed fields are those of the start."""
        self._check_open()
        await snapshots.restore(self._writer, snapshot)
        self._checkpoints.after_commit()

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
