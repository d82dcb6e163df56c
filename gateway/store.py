"""The SQLite store: the only module that imports aiosqlite or contains SQL.

It owns these connections to one database file in WAL mode, besides the checkpoint's and
the read-ahead threads' (both described further down):

* the **writer**, used by exactly one coroutine at a time (``_write_lock``). Task changes
  go through one queue drained by one writer task: it takes every queued mutation, runs
  them in order inside one ``BEGIN IMMEDIATE … COMMIT`` (group commit), and only after the
  commit answers each caller. A mutation that raises is left out alone; the others
  commit. Each change writes the new document, bumps ``version`` and appends an audit
  row holding the RFC 6902 patch old→new and its inverse, in the same transaction. A
  batch's reads and writes run on the event loop's thread (the pages they need are in
  memory, or read ahead by :class:`_Warmer`); its COMMIT, the WAL write and the sync,
  runs in aiosqlite's thread.
* the **reader**, for lists, searches and exports; WAL lets it run beside the writer.
  :meth:`Store.read_snapshot` holds one read transaction across many reads (export,
  :meth:`Store.trails` for ``audit verify``).
* the **point reader**, a plain :mod:`sqlite3` connection used on the event loop's own
  thread for lookups by primary key (a task by id, a token, a user, an OAuth client).
  Such a lookup takes microseconds, less than the hand-over to aiosqlite's thread and
  back, and in WAL mode a reader does not wait for the writer. Its busy timeout is zero:
  in the rare moments SQLite makes even a reader wait (a checkpoint truncating the WAL,
  another process recovering it) the lookup is retried on the reader instead of holding
  up the loop.

Checkpoints (copying committed pages from the WAL into the database file) run beside the
writer, on a connection of their own in a worker thread, not inside a commit: with a
million tasks a write dirties pages all over the file, and SQLite's automatic checkpoint
made every few commits wait for thousands of scattered page writes (a third of the
throughput). A checkpoint starts after a commit when none is running and the last began
:data:`CHECKPOINT_SECONDS` ago. Under a steady load it can never catch up completely,
and the WAL is only rewound from its start once a checkpoint has copied all of it; so
when the WAL holds :data:`WAL_RESTART_FRAMES` frames, checkpoints run back to back until
little is left (:data:`REWIND_FRAMES`), and the writer checkpoints that little itself
before its next transaction, which rewinds the WAL.

**Reads ahead of the writer.** A write reads its task's row, and appends to the task's
entries in the audit index, inside the writer's transaction. When those pages are not in
memory (a large file, or one the kernel has not read lately), each is a disk read, one
after another, while the event loop and every queued write wait: at a million tasks per
style, about 110 µs each and two per update, measured on the benchmark machine. So each
queued write's key also goes to :class:`_Warmer`, whose threads read the same pages on
connections of their own, several keys at once, while the writer is busy with the batch
before. The writer then finds them in the operating system's cache. While the read-ahead
itself finds every page there, it reads only a sample.

**Indexed fields.** List filters and sorts run on indexes over a few fields of each
style's documents. Built on ``json_extract(doc, …)``, every index of the style would
change with every write (SQLite updates an index whenever a column it reads is set, even
to an equal value), and at a million tasks each is one more scattered page for the
checkpoint to write. So those fields are also kept in the ``keys`` column (a JSON object,
field path → value, as json_extract reads it from the document), the indexes are built on
``keys``, and a write sets ``keys`` only when it changes them: a progress update leaves
every index alone. The ``keyed`` table says which fields each style keys; every writer
reads it (again whenever another connection committed), so all processes write the same
keys. Rows written around the store (not through it) would have stale keys.

:func:`backup` copies a database file with SQLite's online backup API on connections of
its own, without opening a :class:`Store` (no migration, no checkpoint of a live file).

It knows nothing of HTTP or of any vendor's rules: callers pass pure functions
``mutate(old_doc) -> new_doc`` and vendor-neutral :mod:`gateway.query` filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import queue
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from gateway import errors
from gateway.clock import now_iso, parse_iso
from gateway.config import Config
from gateway.limits import MAX_DOCUMENT_BYTES, dumps
from gateway.model import CLIENT, Change, Doc, Expect, Mutate, OAuthClient, Step, Task, TokenRow, User
from gateway.patching import diff
from gateway.query import And, Compare, Expr, Not, Or, Query, Sort
from gateway.speedups import dumps_bytes, loads

__all__ = ["Store", "open_store", "Task", "Change", "User", "TokenRow", "OAuthClient", "BackupInfo", "backup",
           "Mutate", "MIGRATIONS", "SCHEMA_VERSION", "StoreError", "CLIENT", "TOKEN_CACHE_SECONDS"]

_log = structlog.get_logger("taskgate.store")

try:
    import resource
    _RUSAGE_THREAD: int | None = resource.RUSAGE_THREAD  # Linux
except (ImportError, AttributeError):
    _RUSAGE_THREAD = None

def _report(event: str, **fields: Any) -> None:
    """Log the exception being handled; a failing log sink must never stop the writer."""
    try:
        _log.exception(event, **fields)
    except Exception:
        pass


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a taskgate file, …)."""


# Ordered migrations; index i brings user_version i to i + 1. Never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        style    TEXT NOT NULL,
        id       TEXT NOT NULL,
        version  INTEGER NOT NULL CHECK (version > 0),
        created  TEXT NOT NULL,
        modified TEXT NOT NULL,
        doc      TEXT NOT NULL CHECK (json_valid(doc)),
        PRIMARY KEY (style, id)
    );
    CREATE TABLE audit (
        seq        INTEGER PRIMARY KEY,
        at         TEXT NOT NULL,
        style      TEXT NOT NULL,
        task_id    TEXT NOT NULL,
        version    INTEGER NOT NULL,
        action     TEXT NOT NULL CHECK (action IN ('created', 'updated', 'deleted')),
        actor      TEXT NOT NULL,
        request_id TEXT NOT NULL,
        patch      TEXT NOT NULL CHECK (json_valid(patch)),
        undo       TEXT NOT NULL CHECK (json_valid(undo))
    );
    CREATE INDEX audit_by_task ON audit (style, task_id, seq);
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        password_hash TEXT,
        created       TEXT NOT NULL
    );
    CREATE TABLE tokens (
        hash      TEXT PRIMARY KEY,
        user      TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        read_only INTEGER NOT NULL DEFAULT 0,
        expires   INTEGER,
        source    TEXT NOT NULL,
        created   TEXT NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens (user);
    CREATE TABLE oauth_clients (
        client_id   TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        user        TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created     TEXT NOT NULL
    );
    """,
    # 2: users may be a SuperOffice associate; integer ids are handed out from a counter
    # per style that never goes back, seeded from every integer id ever created.
    """
    ALTER TABLE users ADD COLUMN associate_id INTEGER;
    CREATE TABLE counters (
        style TEXT PRIMARY KEY,
        last  INTEGER NOT NULL
    );
    INSERT INTO counters (style, last)
        SELECT style, max(CAST(task_id AS INTEGER)) FROM audit
        WHERE action = 'created' AND task_id <> '' AND length(task_id) <= 18
          AND task_id NOT GLOB '*[^0-9]*'
        GROUP BY style;
    """,
    # 3: audit rows say where the change came from (the client's address behind any proxy)
    """
    ALTER TABLE audit ADD COLUMN client TEXT NOT NULL DEFAULT '';
    """,
    # 4: the indexed fields of a document are kept apart in keys (see "Indexed fields" in the
    # module's docstring); keyed says which fields each style's keys hold
    """
    ALTER TABLE tasks ADD COLUMN keys TEXT CHECK (keys IS NULL OR json_valid(keys));
    CREATE TABLE keyed (
        style  TEXT PRIMARY KEY,
        fields TEXT NOT NULL CHECK (json_valid(fields))
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: least time between the starts of two background checkpoints
CHECKPOINT_SECONDS = 1.0
#: WAL frames (pages) after which the writer makes the WAL start over (about 16 MiB)
WAL_RESTART_FRAMES = 4000
#: at most about this many frames are left for the writer to copy when it rewinds the WAL
REWIND_FRAMES = 200
#: threads (each with a connection) reading ahead of the writer, and keys each reads at once
WARM_THREADS = 4
WARM_CHUNK = 8
#: while the read-ahead finds every page in memory, only one queued write in this many is
#: read ahead: enough to notice when that changes (see :class:`_Warmer`)
WARM_SAMPLE = 16
#: the longest a batch waits for the read-ahead of its tasks before reading them itself
WARM_WAIT = 0.05
#: how long a token row found by :meth:`Store.find_token` is reused without asking SQLite
#: again: the longest another process's change to users or tokens can go unseen
TOKEN_CACHE_SECONDS = 1.0
TOKEN_CACHE_SIZE = 4096

# JSON paths are spliced into SQL (an expression index only serves a query that spells
# the same expression), so only plain member paths are allowed.
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,4}$")
_SQL_OPS = {"eq": "=", "ne": "IS NOT", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _column(field: str, keyed: tuple[str, ...] = ()) -> str:
    """SQL for *field* of a document; from the keys column when *keyed* (the style's keyed
    fields) holds it, so that the expression is the one its index is built on."""
    if field == "id":
        return "id"
    if not _JSON_PATH.match(field):
        raise ValueError(f"not a filterable field: {field!r}")
    if field in keyed:
        return f"json_extract(keys, '$.\"{_key_parts(field)[0]}\"')"
    return f"json_extract(doc, '{field}')"


@functools.lru_cache(maxsize=64)
def _key_parts(field: str) -> tuple[str, tuple[str, ...]]:
    """The label of *field* in the keys column, and the members its path walks."""
    return field[2:], tuple(field[2:].split("."))


def _keys_text(keyed: tuple[str, ...], doc: Doc) -> str | None:
    """The keys column of *doc* for a style keying *keyed*: each field as json_extract
    reads it from the document (an absent member, or a path through a non-object, is null).
    The same text :func:`dumps` would write, so values read back compare equal."""
    if not keyed:
        return None
    out: dict[str, Any] = {}
    for field in keyed:
        label, parts = _key_parts(field)
        value: Any = doc
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        out[label] = value
    return dumps(out)


def _keys_sql(keyed: tuple[str, ...]) -> str:
    """SQL computing the keys column from ``doc``, as :func:`_keys_text` does (``->`` keeps
    each value's JSON text, so numbers keep every digit)."""
    return "json_object(" + ", ".join(f"'{_key_parts(field)[0]}', doc -> '{field}'" for field in keyed) + ")"


def _sort_key(sort: Sort, keyed: tuple[str, ...] = ()) -> str:
    col = _column(sort.field, keyed)
    if not sort.rank:
        return col
    if not all(re.fullmatch(r"[A-Za-z0-9_]{1,64}", value) for value in sort.rank):
        raise ValueError(f"not a sortable enum: {sort.rank!r}")  # spliced into SQL: names only
    cases = " ".join(f"WHEN '{value}' THEN {i}" for i, value in enumerate(sort.rank))
    return f"CASE {col} {cases} ELSE {len(sort.rank)} END"


def _where(style: str, query: Query, keyed: tuple[str, ...]) -> tuple[str, list[Any]]:
    params: list[Any] = [style]
    where = "style = ?"
    if query.where is not None:
        where += " AND " + compile_where(query.where, params, keyed)
    return where, params


def _page_sql(where: str, params: list[Any], query: Query, keyed: tuple[str, ...]) -> tuple[str, list[Any]]:
    order = ", ".join(f"{_sort_key(s, keyed)} {'DESC' if s.descending else 'ASC'}" for s in query.order)
    order = f"{order}, id" if order else "id"
    limit = -1 if query.limit is None else query.limit
    return (f"SELECT id, version, doc, modified FROM tasks WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, query.offset])


def compile_where(expr: Expr, params: list[Any], keyed: tuple[str, ...] = ()) -> str:
    """SQL for a :mod:`gateway.query` expression; values are appended to *params*.
    *keyed*: the fields the style keeps in its keys column."""
    if isinstance(expr, Compare):
        col = _column(expr.field, keyed)
        if expr.op == "isnull":
            return f"{col} IS NULL"
        if expr.op == "in":
            params.extend(expr.values)
            return f"{col} IN ({', '.join('?' * len(expr.values))})"
        if expr.op == "has":
            if col == "id" or not expr.values:
                raise ValueError(f"'has' needs a JSON array field and a value: {expr!r}")
            params.extend(expr.values)
            # json_each over a null or absent member yields no matching row: not contained
            return (f"EXISTS (SELECT 1 FROM json_each(tasks.doc, '{expr.field}') AS e "
                    f"WHERE e.type = 'text' AND e.value IN ({', '.join('?' * len(expr.values))}))")
        if expr.op in ("sw", "co"):
            literal = str(expr.values[0]).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(("%" if expr.op == "co" else "") + literal + "%")
            return f"{col} LIKE ? ESCAPE '\\'"
        params.append(expr.values[0])
        return f"{col} {_SQL_OPS[expr.op]} ?"
    if isinstance(expr, (And, Or)):
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(compile_where(item, params, keyed) for item in expr.items) + ")"
    if isinstance(expr, Not):
        # SQL's NOT of NULL is NULL (row dropped); "not (status eq X)" must keep null statuses.
        return f"(({compile_where(expr.item, params, keyed)}) IS NOT 1)"
    raise TypeError(f"unknown query node {expr!r}")


def _after_pass(frames: int, work: int, small_before: bool) -> tuple[str, bool]:
    """What follows a checkpoint pass that left the WAL at *frames* frames after copying
    *work* of them: ``"done"`` while the WAL is shorter than WAL_RESTART_FRAMES; else
    ``"again"`` (one more pass, copying what was committed while this one ran) until two
    passes in a row found at most REWIND_FRAMES to copy, then ``"rewind"``: the writer
    copies the few frames left itself and its next transaction rewinds the WAL. Its wait
    is then milliseconds, not a whole checkpoint (a pass syncs the database file only when
    it copied everything, so the first small pass may still sync all the passes before
    it). A WAL that reached four times WAL_RESTART_FRAMES without catching up is rewound
    all the same. Also whether this pass was small, for the next call."""
    small = work <= REWIND_FRAMES
    if frames < WAL_RESTART_FRAMES:
        return "done", small
    if (small and small_before) or frames >= 4 * WAL_RESTART_FRAMES:
        return "rewind", small
    return "again", small


def _keys_table(keys: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    """``WITH k (style, id) AS (VALUES …)`` for *keys*, and its parameters. Joined to tasks
    on the primary key it is one index search a key; SQLite plans ``(style, id) IN (VALUES
    …)`` as a scan of every task instead (measured: 55 ms a batch at 30 000 tasks)."""
    return ("WITH k (style, id) AS (VALUES " + ", ".join("(?, ?)" for _ in keys) + ") ",
            [part for key in keys for part in key])


def _load_doc(text: str) -> Doc:
    """A stored document (JSON text that :func:`dumps` wrote) as Python values."""
    return loads(text.encode("utf-8"))


def _stored_text(doc: Doc) -> str:
    """*doc* as the text the tasks table holds; BadRequest or PayloadTooLarge when it cannot
    be stored (raised inside the write, so that it fails alone, not its batch)."""
    try:
        text = dumps(doc)
        size = len(text.encode("utf-8"))
    except (UnicodeEncodeError, ValueError, RecursionError) as exc:
        raise errors.BadRequest(f"the task cannot be stored: {type(exc).__name__}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise errors.PayloadTooLarge(f"the task would be {size} bytes; at most {MAX_DOCUMENT_BYTES} are kept")
    return text


def _is_counted(task_id: str) -> bool:
    """Whether *task_id* is an integer id that the per-style counter must stay above."""
    return 0 < len(task_id) <= 18 and task_id.isascii() and task_id.isdigit()


#: a task's final row in a batch: version, created, document (None: deleted), its stored
#: text, its keys column
_Touched = tuple[int, str, "Doc | None", str, "str | None"]


class _Write:
    """One queued write: its preconditions, then its steps in order, each its own audited change."""

    __slots__ = ("style", "task_id", "steps", "expect", "request_id", "if_match",
                 "unmodified_since", "build", "max_id", "future", "client", "warmed")

    def __init__(self, style: str, task_id: str | None, steps: Sequence[Step], expect: Expect,
                 request_id: str, if_match: frozenset[int] | None,
                 unmodified_since: datetime | None = None,
                 build: Callable[[int], Doc] | None = None, max_id: int = 0) -> None:
        self.style, self.task_id, self.steps, self.expect = style, task_id, list(steps), expect
        self.request_id, self.if_match = request_id, if_match
        self.unmodified_since, self.build, self.max_id = unmodified_since, build, max_id
        self.client = CLIENT.get()
        self.warmed = True  # False while a read-ahead thread has yet to read its task
        self.future: asyncio.Future[tuple[Task | None, list[Change]]] = \
            asyncio.get_running_loop().create_future()


class _Warmer:
    """Reads, on threads and connections of its own, what queued writes will read inside
    their transaction: each task's row and the end of its audit trail. The writer then
    finds those pages in the operating system's cache instead of waiting on the disk, one
    page after another, while it holds the write lock and the event loop's thread (see
    "Reads ahead of the writer" in the module's docstring). Only a hint: a failed or late
    read costs nothing but the wait it would have saved.

    A batch waits (:meth:`settled`, at most :data:`WARM_WAIT`) until its writes have been
    read ahead: at a million tasks per style it otherwise started before them and read
    about one page per write from the disk on the loop's thread (counted in
    ``/proc/<pid>/task/<tid>/io``); waiting, 0.14, and 7 % more PATCH throughput.

    The keys of one turn of the event loop go to the threads together, in chunks of
    :data:`WARM_CHUNK`, so that a burst is read in parallel and a thread wakes once a chunk.

    When the file is in memory (a small database, or a hot one) the read-ahead saves
    nothing and costs the GIL: about a tenth of the PATCH throughput at 10 000 tasks per
    style. So each thread asks the kernel whether its last chunk read anything from the
    device (``getrusage(RUSAGE_THREAD).ru_inblock``: exact, and blind to how long the
    thread waited for the GIL, which a timing is not). While none did, only one write in
    :data:`WARM_SAMPLE` is read ahead; the first chunk that reads from the device turns
    the read-ahead back on for every write.
    """

    def __init__(self, path: str, threads: int = WARM_THREADS) -> None:
        self._chunks: queue.SimpleQueue[list[_Write] | None] = queue.SimpleQueue()
        self._pending: list[_Write] = []
        self.cold = True  # whether the last chunk read from the device; set by the threads
        self._waiter: asyncio.Future[None] | None = None  # the writer's, while it waits (settled)
        self._skipped = 0
        self._conns: list[sqlite3.Connection] = []
        try:
            for _ in range(threads):
                self._conns.append(conn := sqlite3.connect(path, isolation_level=None, check_same_thread=False))
                conn.execute("PRAGMA query_only = ON")
                conn.execute("PRAGMA cache_size = -1024")  # it reads each page once; the OS cache is what it fills
        except BaseException:
            for conn in self._conns:
                conn.close()
            raise
        self._threads = [threading.Thread(target=self._run, args=(conn,), name="store-warmer", daemon=True)
                         for conn in self._conns]
        for thread in self._threads:
            thread.start()

    def warm(self, write: _Write) -> None:
        """Read the pages of the write's task soon (on the event loop: the keys go out at the
        end of its turn), unless the file is in memory and this write is not one of the
        sample."""
        if not self.cold:
            self._skipped += 1
            if self._skipped < WARM_SAMPLE:
                return
            self._skipped = 0
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        write.warmed = False
        self._pending.append(write)

    def _flush(self) -> None:
        writes, self._pending = self._pending, []
        for start in range(0, len(writes), WARM_CHUNK):
            self._chunks.put(writes[start:start + WARM_CHUNK])

    async def settled(self, writes: Sequence[_Write]) -> None:
        """Once every one of *writes* that went to the threads has been read ahead, or
        after :data:`WARM_WAIT` seconds. Meanwhile the loop serves other requests instead
        of waiting for the same disk reads inside the batch's statements. While the reads
        ahead find the file in memory, there is nothing to wait for."""
        if not self.cold:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WARM_WAIT
        try:
            while any(not w.warmed for w in writes):
                self._waiter = waiter = loop.create_future()
                if all(w.warmed for w in writes) or loop.time() >= deadline:  # a thread was quicker
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        for _ in self._threads:
            self._chunks.put(None)
        for thread in self._threads:
            thread.join()
        for conn in self._conns:
            conn.close()

    def _run(self, conn: sqlite3.Connection) -> None:
        while (writes := self._chunks.get()) is not None:
            before = _blocks_read()
            with contextlib.suppress(sqlite3.Error):
                self.read(conn, [(w.style, w.task_id) for w in writes])
            self.cold = before is None or _blocks_read() != before
            for w in writes:
                w.warmed = True
            if (waiter := self._waiter) is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    @staticmethod
    def read(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]], explain: bool = False) -> list[Any]:
        """For each key: the task's version and its last audit seq (None when absent), read
        through the pages the writer's transaction will read and write (with *explain*,
        SQLite's plan instead). One row for the whole chunk: each step of a statement
        lets go of the GIL and then waits, behind the busy event loop, to take it back."""
        table, params = _keys_table(keys)
        select = ("SELECT json_group_array(json_array("
                  "(SELECT version FROM tasks AS t WHERE t.style = k.style AND t.id = k.id), "
                  "(SELECT seq FROM audit AS a WHERE a.style = k.style AND a.task_id = k.id "
                  "ORDER BY seq DESC LIMIT 1))) FROM k")
        if explain:
            return conn.execute("EXPLAIN QUERY PLAN " + table + select, params).fetchall()
        (found,), = conn.execute(table + select, params).fetchall()
        return [tuple(pair) for pair in json.loads(found)]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _blocks_read() -> int | None:
    """Blocks the calling thread has read from a device rather than from the page cache
    (None where the system does not count them per thread)."""
    if _RUSAGE_THREAD is None:
        return None
    return resource.getrusage(_RUSAGE_THREAD).ru_inblock


@dataclass(frozen=True, slots=True)
class BackupInfo:
    pages: int
    schema_version: int
    tasks: int


def _backup(source: Path, dest: Path, busy_timeout_ms: int) -> BackupInfo:
    if not source.is_file():
        raise StoreError("there is no database file to back up")
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    # mode=rw: never create the source; a missing file is an error, not an empty backup
    src = sqlite3.connect(f"file:{urllib.parse.quote(str(source))}?mode=rw", uri=True)
    try:
        src.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = src.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise StoreError("not a taskgate database (no schema version)")
        partial.unlink(missing_ok=True)
        dst = sqlite3.connect(str(partial))
        try:
            # One step (pages=-1): SQLite copies every page inside one read transaction, so
            # the copy is one snapshot. The database is in WAL mode, so the server's writer
            # goes on meanwhile (only a checkpoint waits for the snapshot). Copying in small
            # steps would release the snapshot between steps, and SQLite restarts a backup
            # whenever another connection writes in between: under steady writes it would
            # never finish.
            src.backup(dst, pages=-1)
            # the copy stands alone: rollback-journal mode, no -wal file beside it
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy fails its integrity check: {check}")
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            copied_version = dst.execute("PRAGMA user_version").fetchone()[0]
            tasks = dst.execute("SELECT count(*) FROM tasks").fetchone()[0]
        finally:
            dst.close()
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, dest)
        directory = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return BackupInfo(pages, copied_version, tasks)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back it up: {exc}") from exc
    finally:
        src.close()
        partial.unlink(missing_ok=True)


async def backup(source: str | Path, dest: str | Path, *, busy_timeout_ms: int = 5000) -> BackupInfo:
    """Copy the database *source* to *dest* with SQLite's online backup API, consistent
    while a server writes to *source*; *dest* appears whole (written beside it, synced,
    then renamed) or not at all. StoreError when *source* is missing or not taskgate's."""
    return await asyncio.to_thread(_backup, Path(source), Path(dest), busy_timeout_ms)


async def open_store(config: Config) -> Store:
    """The store *config* describes: the one way the server and the command line open it."""
    return await Store.open(config.db_path, synchronous=config.storage.synchronous,
                            busy_timeout_ms=config.storage.busy_timeout_ms, max_batch=config.storage.max_batch)


class Store:
    """Open with :meth:`open`, close with :meth:`close`; one instance per process."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection,
                 point: sqlite3.Connection, checkpointer: sqlite3.Connection, warmer: _Warmer, *,
                 max_batch: int, busy_timeout_ms: int) -> None:
        self._writer = writer
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._warmer = warmer
        self._reader = reader
        self._point = point
        self._checkpointer = checkpointer  # used by one worker thread at a time (_checkpoint)
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._checkpoint_started = 0.0
        self._rewind_wal = False  # the writer checkpoints before its next transaction
        self._max_batch = max_batch
        self._write_lock = asyncio.Lock()
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._listeners: list[Callable[[Sequence[Change]], None]] = []
        self._batch_listeners: list[Callable[[int, float], None]] = []
        self._writer_task = asyncio.get_running_loop().create_task(self._drain(), name="store-writer")
        self._closed = False
        self._tokens: dict[str, tuple[float, TokenRow]] = {}
        self._tokens_generation = 0
        self._keyed: dict[str, tuple[str, ...]] = {}  # style → the fields its keys column holds
        self._data_version = -1  # the writer's PRAGMA data_version when _keyed was read

    # -- lifecycle ------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, *, synchronous: str = "FULL",
                   busy_timeout_ms: int = 5000, max_batch: int = 256, cache_mib: int = 16) -> Store:
        """*cache_mib* sets each connection's page cache (SQLite's default is 2 MiB, which
        a million tasks' index pages thrash; 0 keeps it): bulk loads and index builds over
        millions of rows sort in memory with a large one."""
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous: {synchronous!r}")
        opened: list[aiosqlite.Connection] = []
        point: sqlite3.Connection | None = None
        checkpointer: sqlite3.Connection | None = None
        warmer: _Warmer | None = None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Open once synchronously first: when aiosqlite's own connect fails, its worker
            # thread outlives the failure and may report to an event loop that is gone.
            sqlite3.connect(str(path)).close()
            opened.append(writer := await aiosqlite.connect(str(path), isolation_level=None, check_same_thread=False))
            await cls._configure(writer, synchronous, busy_timeout_ms, cache_mib)
            await cls._migrate(writer)
            keyed = await writer._execute(cls._read_keyed, writer._conn)
            opened.append(reader := await aiosqlite.connect(str(path), isolation_level=None))
            await cls._configure(reader, synchronous, busy_timeout_ms, cache_mib)
            await reader.execute("PRAGMA query_only = ON")
            point = sqlite3.connect(str(path), isolation_level=None)
            for pragma in ("busy_timeout = 0", "query_only = ON", f"cache_size = {-1024 * int(cache_mib)}"):
                point.execute(f"PRAGMA {pragma}")
            checkpointer = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            checkpointer.execute(f"PRAGMA synchronous = {synchronous.upper()}")  # how it syncs the database file
            warmer = _Warmer(str(path))
        except BaseException as exc:
            for conn in opened:
                await conn.close()
            for plain in (point, checkpointer, warmer):
                if plain is not None:
                    plain.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise StoreError(f"cannot open it: {exc}") from exc
            raise
        store = cls(writer, reader, point, checkpointer, warmer, max_batch=max_batch, busy_timeout_ms=busy_timeout_ms)
        store._keyed, store._data_version = keyed
        return store

    @staticmethod
    def _read_keyed(conn: sqlite3.Connection) -> tuple[dict[str, tuple[str, ...]], int]:
        """Which fields each style keeps in its keys column, and the data_version it was read at."""
        (version,), = conn.execute("PRAGMA data_version").fetchall()
        return {style: tuple(json.loads(fields)) for style, fields in conn.execute("SELECT style, fields FROM keyed")}, \
            version

    @staticmethod
    async def _configure(conn: aiosqlite.Connection, synchronous: str, busy_timeout_ms: int,
                         cache_mib: int) -> None:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if cache_mib > 0:
            await conn.execute(f"PRAGMA cache_size = {-1024 * int(cache_mib)}")
        mode = (await conn.execute_fetchall("PRAGMA journal_mode = WAL"))[0][0]
        if mode != "wal":
            raise StoreError(f"could not switch the database to WAL (got {mode})")
        await conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run beside the writer

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        version = (await conn.execute_fetchall("PRAGMA user_version"))[0][0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"database schema {version} is newer than this taskgate ({SCHEMA_VERSION})")
        if version == 0:
            tables = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
            if tables:
                raise StoreError("not a taskgate database (tables present but no schema version)")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {target}")
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        """Finish every queued write, then checkpoint and close both connections."""
        if self._closed:
            return
        self._closed = True
        await self._queue.put(None)
        await self._writer_task
        if self._checkpoint_task is not None:
            await self._checkpoint_task
        async with self._write_lock:
            try:
                await self._writer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._warmer.close()
                self._checkpointer.close()
                self._point.close()
                await self._reader.close()
                await self._writer.close()

    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Call *listener* with the changes of every commit, after the commit."""
        self._listeners.append(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        """Call *listener(writes, seconds)* after every committed batch of task writes."""
        self._batch_listeners.append(listener)

    async def probe_write(self) -> None:
        """A write through the task write path that changes nothing: it proves the writer
        runs and can take the database's write lock (BEGIN IMMEDIATE … COMMIT)."""
        await self._enqueue(_Write("", "", [("probe", lambda old: old)], Expect.ANY, "", None))

    async def count_by_style(self) -> dict[str, int]:
        rows = await self._reader.execute_fetchall("SELECT style, count(*) FROM tasks GROUP BY style")
        return {style: n for style, n in rows}

    async def schema_version(self) -> int:
        return (await self._reader.execute_fetchall("PRAGMA user_version"))[0][0]

    async def integrity_check(self) -> str:
        return (await self._reader.execute_fetchall("PRAGMA integrity_check"))[0][0]

    async def ensure_indexes(self, style: str, fields: Sequence[str], *, then: str | None = None) -> None:
        """Indexes serving filters and sorts on each of *fields* of *style*'s documents.

        The fields (and *then*) become the style's keyed fields: writes keep them in the
        keys column, and the indexes are built on it. A write that leaves them as they were
        then updates no index (see the module's docstring). Keying other fields than before
        recomputes every row's keys of the style, in one transaction.

        Each index holds only *style*'s rows (``WHERE style = '…'``): a write updates the
        indexes of its own style alone. With *then*, each index is ordered by that field
        next, so ``field = x ORDER BY then`` reads one page of the answer instead of sorting
        every match. An index an earlier taskgate made (on the document, or over every
        style's rows) is replaced."""
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", style):
            raise ValueError(f"not an indexable style: {style!r}")  # spliced into SQL: names only
        keyed = tuple(dict.fromkeys(f for f in (*fields, then) if f is not None and f != "id"))
        for field in keyed:
            _column(field)  # refuses what is not a plain member path
        wanted: list[tuple[str, str]] = []
        for field in fields:
            if field == "id":
                continue
            col = _column(field, keyed)
            after = f"{_column(then, keyed)}, " if then is not None and then != field else ""
            field_name = re.sub(r"\W", "_", field.lstrip("$."))
            name = "tasks_by_" + field_name
            # look first: a restart must not wait for the write lock that another process may hold
            existing = await self._index_sql(name)
            if existing and " WHERE style = '" in existing and not existing.endswith(f" WHERE style = '{style}'"):
                name = f"tasks_by_{style}_{field_name}"  # another style indexes a field of the same name
                existing = await self._index_sql(name)
            sql = f"CREATE INDEX {name} ON tasks (style, {col}, {after}id) WHERE style = '{style}'"
            if existing != sql:
                wanted.append((name, sql))
        stored = await self._reader.execute_fetchall("SELECT fields FROM keyed WHERE style = ?", (style,))
        rekey = not stored or tuple(json.loads(stored[0][0])) != keyed
        if not wanted and not rekey:
            self._keyed[style] = keyed
            return
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                if rekey:  # rewrites every task of the style: only when the keyed fields change
                    await self._writer.execute(f"UPDATE tasks SET keys = {_keys_sql(keyed)} WHERE style = ?", (style,))
                    await self._writer.execute(
                        "INSERT INTO keyed (style, fields) VALUES (?, ?) "
                        "ON CONFLICT (style) DO UPDATE SET fields = excluded.fields", (style, json.dumps(keyed)))
                for name, sql in wanted:
                    await self._writer.execute(f"DROP INDEX IF EXISTS {name}")
                    await self._writer.execute(sql)
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot index the {style} tasks: {exc}") from exc
                raise
            self._keyed[style] = keyed
        self._maybe_checkpoint()

    async def _index_sql(self, name: str) -> str | None:
        rows = await self._reader.execute_fetchall("SELECT sql FROM sqlite_master WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    # -- the one write path for tasks -----------------------------------------------------
    async def create(self, style: str, task_id: str, doc: Doc, *, actor: str,
                     request_id: str) -> Task:
        """Insert a new task; Conflict if the id is taken."""
        task = await self.write(style, task_id, [(actor, lambda _old: doc)], request_id=request_id,
                                expect=Expect.ABSENT)
        assert task is not None
        return task

    async def create_numbered(self, style: str, build: Callable[[int], Doc], *, actor: str,
                              request_id: str, max_id: int = 2**63 - 1) -> Task:
        """Insert a new task under the next integer id of *style*; ``build(id)`` makes its
        document. Ids are allocated inside the write transaction, in order with the other
        writes of the batch, and never reused; past *max_id* the create is a Conflict."""
        write = _Write(style, None, [(actor, lambda _old: None)], Expect.ABSENT, request_id, None,
                       build=build, max_id=max_id)
        task, _ = await self._enqueue(write)
        assert task is not None
        return task

    async def put(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        """Create the task or replace its document (used by import)."""
        task = await self.write(style, task_id, [(actor, lambda _old: doc)], request_id=request_id,
                                expect=Expect.ANY)
        assert task is not None
        return task

    async def update(self, style: str, task_id: str, mutate: Mutate, *, actor: str,
                     request_id: str, if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> Task:
        """Apply ``mutate(old_doc) -> new_doc`` atomically; NotFound, PreconditionFailed,
        or whatever domain error *mutate* raises. An unchanged document writes nothing.
        *if_match* (versions) and *unmodified_since* (HTTP's whole seconds) are checked
        against the stored task inside the transaction."""
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
        """Insert many new tasks, each with the ``created`` audit row :meth:`create` would
        write, *chunk* tasks per transaction; returns how many. For loading large sets fast
        (the benchmark seeds a million tasks with it): documents are stored as given, so
        callers pass documents their style made. An id that exists → Conflict; the chunks
        committed before it stay. Integer ids raise the style's id counter, as creates do.
        No commit listener hears these changes (a million log events help nobody)."""
        total = 0
        rows: list[tuple[str, Doc]] = []
        for item in tasks:
            rows.append(item)
            if len(rows) >= chunk:
                total += await self._bulk_chunk(style, rows, actor, request_id)
                rows = []
        if rows:
            total += await self._bulk_chunk(style, rows, actor, request_id)
        return total

    async def _bulk_chunk(self, style: str, rows: list[tuple[str, Doc]], actor: str, request_id: str) -> int:
        at = now_iso()
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._keyed, self._data_version = await self._in_writer(self._read_keyed)
                keyed = self._keyed.get(style, ())
                (seq,), = await self._writer.execute_fetchall("SELECT coalesce(max(seq), 0) FROM audit")
                task_rows, audit_rows, top = [], [], 0
                for task_id, doc in rows:
                    text = dumps(doc)
                    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
                        raise errors.PayloadTooLarge(f"task {task_id!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
                    patch, undo = diff({}, doc)
                    seq += 1
                    task_rows.append((style, task_id, 1, at, at, text, _keys_text(keyed, doc)))
                    # values of a document dumps() accepted: the fast path is exact
                    audit_rows.append((seq, at, style, task_id, 1, "created", actor, request_id,
                                       dumps_bytes(patch).decode("utf-8"), dumps_bytes(undo).decode("utf-8")))
                    if _is_counted(task_id):
                        top = max(top, int(task_id))
                await self._writer.executemany(
                    "INSERT INTO tasks (style, id, version, created, modified, doc, keys) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    task_rows)
                await self._writer.executemany(
                    "INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, patch, undo) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", audit_rows)
                if top:
                    await self._writer.execute(
                        "INSERT INTO counters (style, last) VALUES (?, ?) "
                        "ON CONFLICT (style) DO UPDATE SET last = max(last, excluded.last)", (style, top))
                await self._writer.execute("COMMIT")
                # a chunk fills the WAL with thousands of pages: copy them now, as SQLite would.
                # Its row is read: aiosqlite's thread keeps the last cursor it returned, and a
                # statement left before its end makes the next batch's COMMIT fail.
                await self._writer.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.IntegrityError as exc:
                await self._rollback()
                raise errors.Conflict(f"cannot load the tasks: {exc}") from None
            except BaseException:
                await self._rollback()
                raise
        return len(rows)

    async def write(self, style: str, task_id: str, steps: Sequence[Step], *, request_id: str,
                    expect: Expect = Expect.PRESENT, if_match: frozenset[int] | None = None,
                    unmodified_since: datetime | None = None) -> Task | None:
        """Run *steps* ``(actor, mutate)`` in order on the task, in one transaction: each
        step's mutation gets the document the step before left, and each step that changes
        it is its own audit row (and version). *expect*, *if_match* and *unmodified_since*
        are checked against the stored task before the first step. When any step raises,
        nothing of the write is stored. Returns the task after the last step (None when
        deleted or absent)."""
        task, _ = await self._enqueue(_Write(style, task_id, steps, expect, request_id, if_match,
                                             unmodified_since))
        return task

    async def _enqueue(self, write: _Write) -> tuple[Task | None, list[Change]]:
        if self._closed:
            raise errors.InternalError("the store is closed")
        if write.task_id:
            self._warmer.warm(write)
        self._queue.put_nowait(write)
        return await write.future

    async def _drain(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            live = [w for w in batch if not w.future.cancelled()]
            if live:
                try:
                    started = time.perf_counter()
                    await self._commit_batch(live)
                    self._batch_done(len(live), time.perf_counter() - started)
                except Exception:  # the database failed: nobody's change is stored
                    _report("store.commit_failed", batch=len(live))
                    for w in live:
                        if not w.future.done():
                            w.future.set_exception(errors.InternalError("the store could not commit the change"))
            if stop:
                return

    async def _commit_batch(self, batch: list[_Write]) -> None:
        await self._warmer.settled(batch)
        async with self._write_lock:
            # The batch's statements run here, on the loop's thread, and only the COMMIT (the
            # WAL write and its sync) goes to the writer's thread. Run there, every statement
            # released the GIL and then waited for the busy loop to give it back: reading 16
            # rows took 2.3-3 ms under the PATCH benchmark against 0.2-0.4 ms alone, and the
            # batch after waited for all of it. BEGIN IMMEDIATE goes to that thread only
            # when it must wait (another process writes) or checkpoint first (rewind).
            keys = list(dict.fromkeys((w.style, w.task_id) for w in batch if w.task_id is not None))
            rewind, self._rewind_wal = self._rewind_wal, False
            if rewind and self._checkpoint_task is not None:
                await self._checkpoint_task  # one checkpoint at a time: the writer's would find it busy
            conn = self._writer._conn
            if rewind or not self._begin_now(conn):
                await self._in_writer(self._begin_sync, rewind)
            try:
                current, stored_keys, seq, counters, keyed = self._read_batch(
                    conn, keys, self._needs_counters(batch), self._data_version)
                if keyed is not None:  # another process committed: it may have keyed other fields
                    self._keyed, self._data_version = keyed
                results, changes, touched, at = self._apply_batch(batch, current, seq, counters)
                self._write_rows(conn, touched, stored_keys, changes, at, counters)
                await self._in_writer(self._commit_sync)
            except BaseException:
                await self._rollback()
                raise
        self._maybe_checkpoint()
        for w, outcome in results:
            if w.future.done():
                continue
            if isinstance(outcome, BaseException):
                w.future.set_exception(outcome)
            else:
                w.future.set_result(outcome)
        if changes:
            for listener in self._listeners:
                try:
                    listener(changes)
                except Exception:  # the commit stands; one listener's failure must not hide it from others
                    _report("store.listener_failed", listener=repr(listener))

    def _maybe_checkpoint(self) -> None:
        """After a commit: start a background checkpoint unless one runs or began lately."""
        if (self._checkpoint_task is None or self._checkpoint_task.done()) \
                and time.monotonic() - self._checkpoint_started >= CHECKPOINT_SECONDS:
            self._checkpoint_started = time.monotonic()
            self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoint(), name="store-checkpoint")

    async def _checkpoint(self) -> None:
        """PASSIVE passes on the checkpointer's connection, as :func:`_after_pass` says."""
        copied, small_before = 0, False
        try:
            while True:
                _busy, frames, now_copied = await asyncio.to_thread(self._checkpoint_sync, self._checkpointer)
                step, small_before = _after_pass(frames, frames - copied, small_before)
                if step == "done":
                    return
                if step == "rewind":
                    break
                copied = now_copied
        except Exception:  # the WAL only grows meanwhile; the writer's rewind still bounds it
            _report("store.checkpoint_failed")
        self._rewind_wal = True

    @staticmethod
    def _checkpoint_sync(conn: sqlite3.Connection) -> tuple[int, int, int]:
        """PASSIVE: copies what no reader still needs, never waits for a lock.
        (busy, frames in the WAL, frames copied)."""
        return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _batch_done(self, size: int, seconds: float) -> None:
        for listener in self._batch_listeners:
            try:
                listener(size, seconds)
            except Exception:
                _report("store.listener_failed", listener=repr(listener))

    async def _in_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(sqlite3_connection, *args)`` in the writer connection's own thread, as one
        queued call. aiosqlite has no public API for this; ``_execute`` is how its own
        methods run, and the store's tests cover every use."""
        return await self._writer._execute(fn, self._writer._conn, *args)

    @staticmethod
    def _begin_sync(conn: sqlite3.Connection, rewind: bool) -> None:
        """In the writer thread: BEGIN IMMEDIATE. With *rewind*, first copy what the WAL still
        holds into the database, so this transaction starts it over."""
        if rewind:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.execute("BEGIN IMMEDIATE")

    def _begin_now(self, conn: sqlite3.Connection) -> bool:
        """BEGIN IMMEDIATE on the loop's thread if no other connection holds the write lock
        (then it takes microseconds); False if one does, without waiting."""
        conn.execute("PRAGMA busy_timeout = 0").fetchall()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}").fetchall()
        return True

    @staticmethod
    def _commit_sync(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    @classmethod
    def _read_batch(cls, conn: sqlite3.Connection, keys: list[tuple[str, str]], needs_counters: bool,
                    data_version: int):
        """Inside the batch's transaction: the rows the batch touches with their
        stored keys columns, the last audit sequence number, (when needed) the id counters,
        and the keyed fields when another connection committed since *data_version*."""
        (now,), = conn.execute("PRAGMA data_version").fetchall()
        keyed = cls._read_keyed(conn) if now != data_version else None
        counters = dict(conn.execute("SELECT style, last FROM counters").fetchall()) if needs_counters else None
        current, stored_keys = cls._load_for_write(conn, keys)
        (seq,), = conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchall()
        return current, stored_keys, seq, counters, keyed

    def _apply_batch(self, batch: list[_Write], current: dict[tuple[str, str], tuple[int, Doc | None, str, str]],
                     seq: int, counters: dict[str, int] | None):
        """Each write in order against the rows as the earlier writes of the batch left
        them; a write whose mutation raises is left out alone."""
        results: list[tuple[_Write, Any]] = []
        changes: list[Change] = []
        at = now_iso()
        touched: dict[tuple[str, str], _Touched] = {}
        keyed = self._keyed
        for w in batch:
            try:
                if w.task_id is None:
                    assert counters is not None
                    self._number(w, counters)
                key = (w.style, w.task_id)
                task, made, text = self._apply(w, current.get(key), seq + 1, at)
            except errors.TaskgateError as exc:
                results.append((w, exc))
                continue
            except Exception:  # a bug in a mutate function must not sink the batch
                _report("store.mutation_failed", style=w.style, task_id=w.task_id)
                results.append((w, errors.InternalError("An internal fault occurred.")))
                continue
            if made:
                seq += len(made)
                changes.extend(made)
                last = made[-1]
                # a task deleted and created again in one batch is as new as one created now
                recreated = any(c.action == "created" for c in made)
                created = current[key][2] if key in current and not recreated else at
                current[key] = ((task.version, task.doc, created, at) if task
                                else (last.version, None, created, at))
                touched[key] = (last.version, created, task.doc, text, _keys_text(keyed.get(w.style, ()), task.doc)) \
                    if task else (last.version, created, None, text, None)
                if counters is not None and recreated and _is_counted(w.task_id):
                    counters[w.style] = max(counters.get(w.style, 0), int(w.task_id))
            results.append((w, (task, made)))
        return results, changes, touched, at

    async def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (disk full, I/O error).
        if self._writer.in_transaction:
            await self._writer.execute("ROLLBACK")

    @staticmethod
    def _needs_counters(batch: list[_Write]) -> bool:
        """Whether the batch creates a task with an integer id (only then are the id
        counters read and written)."""
        return any(w.task_id is None or (w.expect is not Expect.PRESENT and _is_counted(w.task_id)) for w in batch)

    @staticmethod
    def _number(w: _Write, counters: dict[str, int]) -> None:
        """Give a numbered create the next id: above every integer id created so far,
        this batch's earlier writes included, so no such task can exist."""
        number = counters.get(w.style, 0) + 1
        if number > w.max_id:
            raise errors.Conflict(f"no integer id is left for {w.style} tasks (the last is {w.max_id})")
        counters[w.style] = number
        w.task_id = str(number)
        build = w.build
        assert build is not None
        w.steps = [(w.steps[0][0], lambda _old: build(number))]

    @staticmethod
    def _load_for_write(conn: sqlite3.Connection, keys: list[tuple[str, str]]) \
            -> tuple[dict[tuple[str, str], tuple[int, Doc | None, str, str]], dict[tuple[str, str], str | None]]:
        """The stored rows of *keys* (version, document, created, modified), and their keys columns."""
        found: dict[tuple[str, str], tuple[int, Doc | None, str, str]] = {}
        stored_keys: dict[tuple[str, str], str | None] = {}
        for start in range(0, len(keys), 400):  # stay far below SQLite's variable limit
            table, params = _keys_table(keys[start:start + 400])
            rows = conn.execute(
                table + "SELECT t.style, t.id, t.version, t.doc, t.created, t.modified, t.keys "
                "FROM k JOIN tasks AS t ON t.style = k.style AND t.id = k.id", params).fetchall()
            for style, task_id, version, doc, created, modified, keyed in rows:
                found[(style, task_id)] = (version, _load_doc(doc), created, modified)
                stored_keys[(style, task_id)] = keyed
        return found, stored_keys

    @staticmethod
    def _apply(w: _Write, current: tuple[int, Doc | None, str, str] | None, seq: int,
               at: str) -> tuple[Task | None, list[Change], str]:
        """The outcome of one write against the current row: the task after its last step,
        the change of each step that changed the document (numbered from *seq*), and the
        final document as stored text."""
        version, old, modified = (current[0], current[1], current[3]) if current else (0, None, "")
        task_id = w.task_id
        assert task_id is not None
        if w.expect is Expect.PRESENT and old is None:
            raise errors.NotFound(f"task {task_id!r} does not exist")
        if w.expect is Expect.ABSENT and old is not None:
            raise errors.Conflict(f"task {task_id!r} already exists")
        if w.if_match is not None and old is not None and version not in w.if_match:
            raise errors.PreconditionFailed(
                f"task {task_id!r} is at version {version}, not {', '.join(map(str, sorted(w.if_match)))}")
        if w.unmodified_since is not None and old is not None \
                and parse_iso(modified).replace(microsecond=0) > w.unmodified_since:
            raise errors.PreconditionFailed(f"task {task_id!r} was modified after {w.unmodified_since.isoformat()}")
        made: list[Change] = []
        doc, text = old, ""
        for actor, mutate in w.steps:
            new = mutate(doc)
            if new is doc:
                continue
            if new is not None:  # refuse what cannot be stored before diffing it, so it fails alone
                text = _stored_text(new)
            # an empty diff between two documents is JSON equality (same_json): one walk, not two
            patch, undo = diff(doc if doc is not None else {}, new if new is not None else {})
            if not patch and new is not None and doc is not None:
                continue
            action = "created" if doc is None else "deleted" if new is None else "updated"
            version += 1
            made.append(Change(seq=seq + len(made), at=at, style=w.style, task_id=task_id, version=version,
                               action=action, actor=actor, request_id=w.request_id, patch=patch, undo=undo,
                               client=w.client))
            doc = new
        if not made:
            return (Task(w.style, task_id, version, old, modified) if old is not None else None), made, ""
        return (Task(w.style, task_id, version, doc, at) if doc is not None else None), made, text

    @staticmethod
    def _write_rows(conn: sqlite3.Connection, touched: dict[tuple[str, str], _Touched],
                    stored_keys: dict[tuple[str, str], str | None], changes: list[Change], at: str,
                    counters: dict[str, int] | None) -> None:
        """Inside the batch's transaction: each touched task's final row, the audit rows and
        the id counters. A row whose keys column stays as stored is written without it, so
        SQLite leaves the style's indexes alone (see the module's docstring)."""
        deletes, updates, upserts = [], [], []
        for key, (v, created, doc, text, keys) in touched.items():
            if doc is None:
                deletes.append(key)
            elif key in stored_keys and stored_keys[key] == keys:
                updates.append((v, at, text, *key))
            else:
                upserts.append((*key, v, created, at, text, keys))
        if deletes:
            conn.executemany("DELETE FROM tasks WHERE style = ? AND id = ?", deletes)
        if updates:
            conn.executemany("UPDATE tasks SET version = ?, modified = ?, doc = ? WHERE style = ? AND id = ?", updates)
        if upserts:
            conn.executemany(
                "INSERT INTO tasks (style, id, version, created, modified, doc, keys) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (style, id) DO UPDATE SET version = excluded.version, "
                "modified = excluded.modified, doc = excluded.doc, keys = excluded.keys", upserts)
        if changes:
            # patches hold only values of stored documents, which dumps() accepted: the fast path is exact
            conn.executemany(
                "INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, patch, undo, client) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.seq, c.at, c.style, c.task_id, c.version, c.action, c.actor, c.request_id,
                  dumps_bytes(c.patch).decode("utf-8"), dumps_bytes(c.undo).decode("utf-8"), c.client) for c in changes])
        if counters:
            conn.executemany(
                "INSERT INTO counters (style, last) VALUES (?, ?) "
                "ON CONFLICT (style) DO UPDATE SET last = max(last, excluded.last)", counters.items())

    # -- reads ----------------------------------------------------------------------------
    async def _lookup(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of a lookup by primary key: on the loop's thread (see the module's
        docstring), or on the reader when SQLite would make the lookup wait."""
        try:
            return self._point.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        return list(await self._reader.execute_fetchall(sql, params))

    async def get(self, style: str, task_id: str) -> Task | None:
        rows = await self._lookup(
            "SELECT version, doc, modified FROM tasks WHERE style = ? AND id = ?", (style, task_id))
        if not rows:
            return None
        version, doc, modified = rows[0]
        return Task(style, task_id, version, _load_doc(doc), modified)

    async def find(self, style: str, query: Query) -> tuple[list[Task], int | None]:
        """Tasks of *style* matching *query*, and the total ignoring limit/offset when
        ``query.count`` is set."""
        keyed = self._keyed.get(style, ())
        where, params = _where(style, query, keyed)
        sql, page = _page_sql(where, params, query, keyed)
        rows = await self._reader.execute_fetchall(sql, page)
        total = None
        if query.count:
            (total,), = await self._reader.execute_fetchall(f"SELECT count(*) FROM tasks WHERE {where}", params)
        return [Task(style, i, v, _load_doc(d), m) for i, v, d, m in rows], total

    async def explain(self, style: str, query: Query) -> str:
        """SQLite's plan for the page :meth:`find` reads for *query* (tests use it to prove
        that filters and sorts use an index)."""
        keyed = self._keyed.get(style, ())
        sql, page = _page_sql(*_where(style, query, keyed), query, keyed)
        rows = await self._reader.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", page)
        return "\n".join(row[-1] for row in rows)

    async def export(self, style: str | None = None, *, chunk: int = 500) -> AsyncIterator[Task]:
        """Every task, ordered by style and id, read in chunks (constant memory)."""
        after = ("", "")
        while True:
            params: list[Any] = [after[0], after[0], after[1]]
            sql = "SELECT style, id, version, doc FROM tasks WHERE (style > ? OR (style = ? AND id > ?))"
            if style is not None:
                sql += " AND style = ?"
                params.append(style)
            rows = await self._reader.execute_fetchall(sql + " ORDER BY style, id LIMIT ?", [*params, chunk])
            for s, i, v, d in rows:
                yield Task(s, i, v, json.loads(d))
            if len(rows) < chunk:
                return
            after = (rows[-1][0], rows[-1][1])

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True) -> list[Change]:
        where, params = [], []
        if style is not None:
            where.append("style = ?")
            params.append(style)
        if task_id is not None:
            where.append("task_id = ?")
            params.append(task_id)
        sql = ("SELECT seq, at, style, task_id, version, action, actor, request_id, patch, undo, client FROM audit"
               + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?")
        rows = await self._reader.execute_fetchall(sql, [*params, -1 if limit is None else limit])
        return [Change(seq=r[0], at=r[1], style=r[2], task_id=r[3], version=r[4], action=r[5], actor=r[6],
                       request_id=r[7], patch=json.loads(r[8]), undo=json.loads(r[9]), client=r[10]) for r in rows]

    async def count_tasks(self, style: str | None = None) -> int:
        if style is None:
            (n,), = await self._reader.execute_fetchall("SELECT count(*) FROM tasks")
        else:
            (n,), = await self._reader.execute_fetchall("SELECT count(*) FROM tasks WHERE style = ?", (style,))
        return n

    async def count_audited_tasks(self) -> int:
        """How many tasks have an audit trail (deleted ones too): what :meth:`trails` walks,
        unless tasks were stored behind the store's back."""
        (n,), = await self._reader.execute_fetchall(
            "SELECT count(*) FROM (SELECT DISTINCT style, task_id FROM audit)")  # walks audit_by_task
        return n

    async def trails(self, *, chunk: int = 500) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
        """``(style, id, stored task or None, its audit rows oldest first)`` for every task
        that is stored or has audit rows (deleted tasks too), ordered by style and id.

        Both tables are read in keyset-paginated chunks and merged, inside one read
        transaction, so the whole walk sees one snapshot while writers go on; memory is a
        chunk of each plus one task's trail. Meant for one-shot tools (``audit verify``):
        the reader connection is held in that transaction until the walk ends."""
        async with self.read_snapshot():
            tasks = aiter(self.export(chunk=chunk))
            rows = aiter(self._audit_by_task(chunk))
            task = await anext(tasks, None)
            row = await anext(rows, None)
            while task is not None or row is not None:
                keys = [k for k in ((task.style, task.id) if task else None,
                                    (row.style, row.task_id) if row else None) if k is not None]
                key = min(keys)
                stored = None
                if task is not None and (task.style, task.id) == key:
                    stored, task = task, await anext(tasks, None)
                trail: list[Change] = []
                while row is not None and (row.style, row.task_id) == key:
                    trail.append(row)
                    row = await anext(rows, None)
                yield key[0], key[1], stored, trail

    @contextlib.asynccontextmanager
    async def read_snapshot(self) -> AsyncIterator[None]:
        """Hold one read transaction: every read inside sees the database as it was when the
        first one ran, whatever other connections commit meanwhile (WAL keeps that snapshot;
        writers are not blocked, only a checkpoint waits). For one-shot tools (export, audit
        verify): the server's reads would all see the same stale snapshot."""
        if self._reader.in_transaction:  # nested: the outer snapshot holds
            yield
            return
        await self._reader.execute("BEGIN")
        try:
            yield
        finally:
            await self._reader.execute("COMMIT")

    async def _audit_by_task(self, chunk: int) -> AsyncIterator[Change]:
        after: tuple[str, str, int] = ("", "", 0)
        while True:
            rows = await self._reader.execute_fetchall(
                "SELECT seq, at, style, task_id, version, action, actor, request_id, patch, undo, client FROM audit "
                "WHERE (style, task_id, seq) > (?, ?, ?) ORDER BY style, task_id, seq LIMIT ?", (*after, chunk))
            for r in rows:
                yield Change(seq=r[0], at=r[1], style=r[2], task_id=r[3], version=r[4], action=r[5], actor=r[6],
                             request_id=r[7], patch=json.loads(r[8]), undo=json.loads(r[9]), client=r[10])
            if len(rows) < chunk:
                return
            after = (rows[-1][2], rows[-1][3], rows[-1][0])

    # -- users, tokens, OAuth clients -------------------------------------------------------
    async def _admin_write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        self.forget_tokens()
        try:
            await self._admin_transaction(statements)
        finally:
            self.forget_tokens()  # also drops what a read during the transaction saw

    def forget_tokens(self) -> None:
        """Drop the token rows :meth:`find_token` remembers (needed only after changing
        users or tokens behind the store's back, as a test may)."""
        self._tokens.clear()
        self._tokens_generation += 1

    async def _admin_transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    await self._writer.execute(sql, params)
                await self._writer.execute("COMMIT")
                self._maybe_checkpoint()
            except sqlite3.IntegrityError as exc:
                await self._rollback()
                raise errors.Conflict(str(exc)) from None
            except BaseException:
                await self._rollback()
                raise

    async def count_users(self) -> int:
        (n,), = await self._reader.execute_fetchall("SELECT count(*) FROM users")
        return n

    async def add_user(self, name: str, role: str, password_hash: str | None,
                       token: tuple[str, bool, int | None, str] | None = None, *,
                       associate_id: int | None = None) -> None:
        """Add a user, and optionally its first token ``(hash, read_only, expires, source)``."""
        statements: list[tuple[str, Sequence[Any]]] = [(
            "INSERT INTO users (name, role, password_hash, created, associate_id) VALUES (?, ?, ?, ?, ?)",
            (name, role, password_hash, now_iso(), associate_id))]
        if token is not None:
            statements.append(self._token_insert(name, *token))
        await self._admin_write(statements)

    async def get_user(self, name: str) -> User | None:
        rows = await self._lookup(
            "SELECT name, role, password_hash, associate_id FROM users WHERE name = ?", (name,))
        return User(*rows[0]) if rows else None

    @staticmethod
    def _token_insert(user: str, token_hash: str, read_only: bool, expires: int | None,
                      source: str) -> tuple[str, Sequence[Any]]:
        return ("INSERT INTO tokens (hash, user, read_only, expires, source, created) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, user, int(read_only), expires, source, now_iso()))

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None:
        """Store a token hash; with *purge_before*, also drop tokens expired before then."""
        statements = [self._token_insert(user, token_hash, read_only, expires, source)]
        if purge_before is not None:
            statements.append(("DELETE FROM tokens WHERE expires IS NOT NULL AND expires < ?", (purge_before,)))
        await self._admin_write(statements)

    async def find_token(self, token_hash: str) -> TokenRow | None:
        """The token with this hash and its user. Found rows are remembered for at most
        :data:`TOKEN_CACHE_SECONDS`: every request looks its token up, and this saves a
        query on most. Any change to users or tokens made through this store empties the
        cache at once; one made by another process shows within that bound. Callers
        check ``expires`` themselves, so expiry is exact."""
        cached = self._tokens.get(token_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        generation = self._tokens_generation
        found = await self._find_token(token_hash)
        if found is not None and generation == self._tokens_generation:  # no change raced the read
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            self._tokens[token_hash] = (time.monotonic() + TOKEN_CACHE_SECONDS, found)
        return found

    async def _find_token(self, token_hash: str) -> TokenRow | None:
        rows = await self._lookup(
            "SELECT t.read_only, t.expires, u.name, u.role, u.password_hash, u.associate_id FROM tokens t "
            "JOIN users u ON u.name = t.user WHERE t.hash = ?", (token_hash,))
        if not rows:
            return None
        read_only, expires, *user = rows[0]
        return TokenRow(User(*user), bool(read_only), expires)

    async def delete_token(self, token_hash: str) -> None:
        await self._admin_write([("DELETE FROM tokens WHERE hash = ?", (token_hash,))])

    async def add_oauth_client(self, client_id: str, secret_hash: str, user: str) -> None:
        await self._admin_write([(
            "INSERT INTO oauth_clients (client_id, secret_hash, user, created) VALUES (?, ?, ?, ?)",
            (client_id, secret_hash, user, now_iso()))])

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        rows = await self._lookup(
            "SELECT client_id, secret_hash, user FROM oauth_clients WHERE client_id = ?", (client_id,))
        return OAuthClient(*rows[0]) if rows else None
