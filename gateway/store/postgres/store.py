"""The PostgreSQL store: the contract of :mod:`gateway.store` on one PostgreSQL database,
shared by any number of gateways on any number of hosts.

:class:`PostgreSQLStore` opens the pool (:mod:`.connection`), migrates the schema
(:mod:`.schema`), and answers the contract by delegating: task writes to :mod:`.writes`
(group commit: one transaction a batch, each write in a savepoint), reads to :mod:`.reads`, accounts to
:mod:`.accounts`, webhooks to :mod:`.hooks`, leases to :mod:`.leases`, keyed fields and
their indexes to :mod:`.keyed`, owners and usage to :mod:`.owned`.

It knows nothing of HTTP or of any vendor's rules, and holds no SQL beyond opening.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

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
from gateway.store.errors import RowRefused, StoreError
from gateway.store.owners import PURGE_LIVES
from gateway.store.postgres import keyed, notify, owned, schema, signins, sql
from gateway.store.postgres.accounts import Accounts
from gateway.store.postgres.bulk import bulk_create
from gateway.store.postgres.connection import Database, placeholders
from gateway.store.postgres.hooks import Hooks
from gateway.store.postgres.leases import Leases
from gateway.store.postgres.notify import Listener
from gateway.store.postgres.reads import TaskReads
from gateway.store.postgres.signins import Signins
from gateway.store.postgres.writes import MAX_BATCH, Write, Writes
from gateway.store.shortcuts import WriteShortcuts

__all__ = ["PostgreSQLStore"]


class PostgreSQLStore(WriteShortcuts):
    """Open with :meth:`open`, close with :meth:`close`; one instance per process."""

    #: the schema version this backend's migrations bring a database to (``/readyz`` compares)
    SCHEMA_VERSION = schema.SCHEMA_VERSION

    def __init__(self, db: Database, keyed_fields: dict[str, tuple[str, ...]], owners: dict[str, str], *,
                 now: Callable[[], str] = now_iso, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._keyed = keyed_fields
        self._owners = owners
        self._reads = TaskReads(db, keyed_fields)
        self._name = secrets.token_hex(8)  # what this store's commit notifications carry
        self._writes = Writes(db, keyed_fields, owners, now=now, max_batch=max_batch, sender=self._name)
        self._others: list[Callable[[], None]] = []
        self._accounts = Accounts(db)
        self._hooks = Hooks(db)
        self._leases = Leases(db.url)
        self._signins = Signins(db)
        self._listener: Listener | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, *, min_connections: int = 1, max_connections: int = 10,
                   allow_new: bool | None = None, now: Callable[[], str] = now_iso,
                   max_batch: int = MAX_BATCH) -> PostgreSQLStore:
        """Connect to the database at *url* (``postgresql://…``), creating or migrating its
        tables. The database itself must exist (its owner makes it); *allow_new* False
        refuses one without taskgate's tables (a database that had them and lost them is
        trouble, not a first start). StoreError when it cannot be reached, or is not
        taskgate's. *max_batch*: most writes committed together (group commit; at most
        :data:`.writes.MAX_BATCH`)."""
        db = await Database.connect(url, min_size=min_connections, max_size=max_connections)
        try:
            async with db.pool.acquire() as conn:
                await schema.check_database(conn)
                if allow_new is False and await schema.schema_version(conn) == 0:
                    raise StoreError("the database has no taskgate tables; create them deliberately (taskgate "
                                     "init, or serve --allow-new), or restore it from a backup")
                await schema.migrate(conn)
                found = await keyed.read_keyed(conn)
                owners = await owned.read_owners(conn)
        except BaseException:
            await db.close()
            raise
        store = cls(db, found, owners, now=now, max_batch=max_batch)
        try:
            store._listener = await Listener.start(url, {notify.CHANNEL: store._accounts.heard,
                                                          signins.CHANNEL: store._signins.heard,
                                                          notify.CHANGES: store._committed_elsewhere})
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        """Finish the writes already submitted, then let every lease and connection go.
        Closing twice is allowed."""
        if self._closed:
            return
        self._closed = True
        await self._writes.close()
        await self._leases.close()
        if self._listener is not None:
            await self._listener.close()
        await self._signins.close()
        await self._db.close()

    @property
    def url(self) -> str:
        return self._db.url

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        self._writes.on_commit(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self._writes.on_batch(listener)

    def on_other_commit(self, listener: Callable[[], None]) -> None:
        self._others.append(listener)

    def _committed_elsewhere(self, sender: str | None) -> None:
        """A batch another gateway committed (None: the listening session was lost, and
        what was sent meanwhile with it): the followers of the trail read it now."""
        if sender == self._name:
            return
        for listener in self._others:
            try:
                listener()
            except Exception:
                structlog.get_logger("taskgate.store").warning("store.listener_failed", exc_info=True)

    async def probe_write(self) -> None:
        await self._writes.probe()

    async def schema_version(self) -> int:
        async with self._db.pool.acquire() as conn:
            return await schema.schema_version(conn)

    def hold(self, name: str) -> bool:
        """The lease *name*, as an advisory lock on a session of its own (:mod:`.leases`)."""
        return False if self._closed else self._leases.hold(name)

    @property
    def signins(self) -> Signins:
        """Failed sign-ins shared by every gateway on the database (:mod:`.signins`)."""
        return self._signins

    def lock_dispatcher(self) -> bool:
        return self.hold("webhook-dispatcher")

    # -- task writes ----------------------------------------------------------------------
    async def write(self, style: str, task_id: str, steps: Sequence[Step], *, request_id: str,
                    expect: Expect = Expect.PRESENT, if_match: frozenset[int] | None = None,
                    unmodified_since: datetime | None = None, created: str | None = None) -> Task | None:
        return await self._writes.submit(Write(style, task_id, steps, expect, request_id, if_match,
                                                      unmodified_since, created))

    async def create_numbered(self, style: str, build: Callable[[int], Doc], *, actor: str,
                              request_id: str, max_id: int = 2**63 - 1) -> Task:
        task = await self._writes.submit(Write(style, None, [(actor, lambda _old: None)], Expect.ABSENT,
                                                      request_id, build=build, max_id=max_id))
        assert task is not None
        return task

    async def bulk_create(self, style: str, tasks: Iterable[tuple[str, Doc]], *, actor: str,
                          request_id: str, chunk: int = 20_000) -> int:
        self._writes.check_open()
        return await bulk_create(self._db, self._keyed, self._owners, style, tasks, actor=actor, request_id=request_id,
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

    def export(self, style: str | None = None, *, chunk: int = 500) -> AsyncIterator[Task]:
        return self._reads.export(style, chunk=chunk)

    def trails(self, *, chunk: int = 500) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
        return self._reads.trails(chunk=chunk)

    def read_snapshot(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._db.read_snapshot()

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True,
                    after: int | None = None, before: int | None = None,
                    action: str | None = None, max_bytes: int | None = None) -> list[Change]:
        return await self._reads.audit(style=style, task_id=task_id, limit=limit, newest_first=newest_first,
                                       after=after, before=before, action=action, max_bytes=max_bytes)

    async def count_tasks(self, style: str | None = None) -> int:
        return await self._reads.count_tasks(style)

    async def count_by_style(self) -> dict[str, int]:
        return await self._reads.count_by_style()

    async def count_audited_tasks(self) -> int:
        return await self._reads.count_audited_tasks()

    async def ensure_indexes(self, style: str, fields: Sequence[str], *, then: str | None = None) -> None:
        await keyed.ensure_indexes(self._db, self._keyed, style, fields, then)

    async def ensure_owner(self, style: str, field: str) -> None:
        await owned.ensure_owner(self._db, self._owners, style, field)

    async def purge_deleted(self, before: str) -> tuple[int, int]:
        lives = rows = 0
        while True:  # a few hundred lives per transaction
            async with self._db.transaction() as conn:
                done = await owned.purge_deleted(conn, before, PURGE_LIVES)
            if not done[0]:
                return lives, rows
            lives, rows = lives + done[0], rows + done[1]

    async def usage(self, style: str, owner: str) -> tuple[int, int]:
        found = await self._db.fetch("SELECT tasks, bytes FROM usage WHERE style = $1 AND owner = $2", style, owner)
        return (int(found[0][0]), int(found[0][1])) if found else (0, 0)

    async def explain(self, style: str, query: Query) -> str:
        return await self._reads.explain(style, query)

    # -- users, tokens, OAuth clients -------------------------------------------------------
    async def count_users(self) -> int:
        return await self._accounts.count_users()

    async def add_user(self, name: str, role: str, password_hash: str | None,
                       token: tuple[str, bool, int | None, str] | None = None, *,
                       associate_id: int | None = None) -> None:
        await self._accounts.add_user(name, role, password_hash, token, associate_id=associate_id)

    async def get_user(self, name: str) -> User | None:
        return await self._accounts.get_user(name)

    async def set_password(self, name: str, password_hash: str | None) -> bool:
        return await self._accounts.set_password(name, password_hash)

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        return await self._accounts.set_disabled(name, disabled)

    async def delete_user(self, name: str) -> bool:
        return await self._accounts.delete_user(name)

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return await self._accounts.list_tokens(user)

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None:
        await self._accounts.add_token(user, token_hash, read_only=read_only, expires=expires, source=source,
                                       purge_before=purge_before)

    async def find_token(self, token_hash: str) -> TokenRow | None:
        return await self._accounts.find_token(token_hash)

    async def delete_token(self, token_hash: str) -> None:
        await self._accounts.delete_token(token_hash)

    async def add_oauth_client(self, client_id: str, secret_hash: str, user: str) -> None:
        await self._accounts.add_oauth_client(client_id, secret_hash, user)

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        return await self._accounts.get_oauth_client(client_id)

    async def list_oauth_clients(self) -> list[OAuthClient]:
        return await self._accounts.list_oauth_clients()

    async def delete_oauth_client(self, client_id: str) -> bool:
        return await self._accounts.delete_oauth_client(client_id)

    def forget_tokens(self) -> None:
        self._accounts.forget_tokens()

    # -- webhooks -------------------------------------------------------------------------
    async def create_hook(self, style: str, hook_id: str | None, build: Callable[[str], Doc], *,
                          active: bool) -> Hook:
        return await self._hooks.create(style, hook_id, build, active=active)

    async def list_hooks(self, style: str | None = None) -> list[Hook]:
        return await self._hooks.all(style)

    async def get_hook(self, style: str, hook_id: str) -> Hook | None:
        return await self._hooks.get(style, hook_id)

    async def hook_by_num(self, num: int) -> Hook | None:
        return await self._hooks.by_num(num)

    async def replace_hook(self, style: str, hook_id: str, doc: Doc, *, active: bool) -> Hook | None:
        return await self._hooks.replace(style, hook_id, doc, active=active)

    async def delete_hook(self, style: str, hook_id: str) -> bool:
        return await self._hooks.delete(style, hook_id)

    async def advance_hook(self, num: int, *, expected_cursor: int, cursor: int, failures: int,
                           log: Sequence[Delivery], disable: Doc | None = None, keep_log: int = 10_000) -> bool:
        return await self._hooks.advance(num, expected_cursor=expected_cursor, cursor=cursor, failures=failures,
                                         log=log, disable=disable, keep_log=keep_log)

    async def delivery_log(self, *, hook: int | None = None, limit: int = 100) -> list[Delivery]:
        return await self._hooks.log(hook=hook, limit=limit)

    async def last_seq(self) -> int:
        found = await self._db.fetch("SELECT seq FROM audit_head")
        return int(found[0][0])

    # -- for taskgate copy, tests and diagnostics, not part of the contract -------------------
    async def copy_rows(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]],
                        keyed: Mapping[str, Sequence[str]] | None = None) -> None:
        """Append *rows* to *table* with ``COPY``, in one transaction (``taskgate copy``).
        RowRefused naming the row when one holds what PostgreSQL cannot keep (a SQLite file
        can): U+0000 in a text column (COPY fails on it), or in a task document, which the
        copy took and every gateway then failed to start on (its keys are ``jsonb``); or a
        task whose value of a field *keyed* (by style) is longer than a write may store
        (:data:`~gateway.store.postgres.sql.MAX_KEYED_BYTES`): copied, every write of the
        task was refused, and past the B-tree's limit no gateway could start on the copy."""
        names = list(columns)
        doc = names.index("doc") if table == "tasks" else None
        style = names.index("style") if doc is not None else None
        for row in rows:
            named = ", ".join(map(repr, row[:2]))
            if any(isinstance(v, str) and not sql.storable(v) for v in row) or \
                    (doc is not None and sql.holds_nul(row[doc])):
                raise RowRefused(f"a row of {table} ({named}) holds U+0000 (NUL), which "
                                 "PostgreSQL cannot keep; change it in the source, then copy with --replace")
            fields = keyed.get(row[style]) if keyed and style is not None else None
            # no value is longer than the compact document it is spelled in: most need no parse
            if fields and doc is not None and len(row[doc].encode()) > sql.MAX_KEYED_BYTES:
                try:
                    sql.keys_value(tuple(fields), json.loads(row[doc]))
                except errors.BadRequest as exc:
                    raise RowRefused(f"a row of {table} ({named}): {exc.message}; change it in the source, then "
                                     "copy with --replace") from None
        async with self._db.transaction() as conn:
            await conn.copy_records_to_table(table, records=rows, columns=list(columns))

    async def run_statements(self, statements: list[str]) -> None:
        """Run *statements* in one transaction (``taskgate copy``: emptying, sequences)."""
        async with self._db.transaction() as conn:
            for statement in statements:
                await conn.execute(statement)

    async def read_sql(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement (``?`` placeholders, as for SQLite), as tuples."""
        return await self._db.fetch_plain(statement, params)

    async def write_sql(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement on its own (autocommit), behind the store's back; its rows."""
        async with self._db.pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(placeholders(statement), *params)]
