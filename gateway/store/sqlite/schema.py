"""The database's tables, their ordered migrations, and how every connection is set up.

Owns ``PRAGMA user_version`` (the schema version), the migrations that bring an older
file up to :data:`SCHEMA_VERSION`, and the PRAGMAs each connection of a store starts
with (WAL, ``synchronous``, ``busy_timeout``, ``foreign_keys``, the page cache, and no
automatic checkpoint: :mod:`.wal` runs them). It only runs SQL on the connection it is
given, in the caller's thread; it must not open connections or decide which thread
blocks (the store runs :func:`migrate` on the writer's thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from gateway.store.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "JOURNAL_MODE", "pragmas", "check_journal_mode", "configure",
           "migrate"]

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
    # 4: the indexed fields of a document are kept apart in keys (see gateway/store/sqlite/keyed.py);
    # keyed says which fields each style's keys hold
    """
    ALTER TABLE tasks ADD COLUMN keys TEXT CHECK (keys IS NULL OR json_valid(keys));
    CREATE TABLE keyed (
        style  TEXT PRIMARY KEY,
        fields TEXT NOT NULL CHECK (json_valid(fields))
    );
    """,
    # 5: a disabled user keeps its tasks and audit trail but cannot sign in by any means
    """
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
    """,
    # 6: what each owner holds, for the per-user quotas (see gateway/store/sqlite/owned.py): each task
    # keeps its owner (the value of its style's owner field) and size, the bytes of its document and
    # of its audit rows; owners says which field names a style's owner; usage sums, per style and
    # owner, the tasks and their sizes. Rows keep owner and size NULL until their style names its
    # owner field. An audit row says who really made a change an admin made as another user.
    """
    ALTER TABLE tasks ADD COLUMN owner TEXT;
    ALTER TABLE tasks ADD COLUMN size INTEGER;
    CREATE TABLE owners (
        style TEXT PRIMARY KEY,
        field TEXT NOT NULL
    );
    CREATE TABLE usage (
        style TEXT NOT NULL,
        owner TEXT NOT NULL,
        tasks INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (style, owner)
    ) WITHOUT ROWID;
    ALTER TABLE audit ADD COLUMN impersonator TEXT NOT NULL DEFAULT '';
    """,
    # 7: webhooks: subscriptions in their style's shape, each with its cursor into the audit
    # trail (the outbox), and a bounded log of delivery attempts
    """
    CREATE TABLE hooks (
        num      INTEGER PRIMARY KEY AUTOINCREMENT,
        style    TEXT NOT NULL,
        id       TEXT NOT NULL,
        doc      TEXT NOT NULL CHECK (json_valid(doc)),
        active   INTEGER NOT NULL CHECK (active IN (0, 1)),
        cursor   INTEGER NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        created  TEXT NOT NULL,
        updated  TEXT NOT NULL,
        UNIQUE (style, id)
    );
    CREATE TABLE hook_log (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        hook    INTEGER NOT NULL,
        event   INTEGER NOT NULL,
        at      TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        status  INTEGER,
        outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'disabled')),
        error   TEXT NOT NULL DEFAULT '',
        ms      REAL NOT NULL
    );
    CREATE INDEX hook_log_by_hook ON hook_log (hook, seq);
    """,
    # 8: the trail of each deleted life of a task stays counted against the owner it had
    # (gateway/store/owners.py) until `taskgate audit purge` drops its audit rows: a grave per
    # delete names the owner (NULL: nobody) and the bytes to give back then. Lives deleted
    # before this migration get graves counted for nobody, as they were
    """
    CREATE TABLE graves (
        seq     INTEGER PRIMARY KEY,
        style   TEXT NOT NULL,
        task_id TEXT NOT NULL,
        at      TEXT NOT NULL,
        owner   TEXT,
        bytes   INTEGER NOT NULL
    );
    CREATE INDEX graves_by_task ON graves (style, task_id, seq);
    INSERT INTO graves (seq, style, task_id, at, owner, bytes)
        SELECT seq, style, task_id, at, NULL, 0 FROM audit WHERE action = 'deleted';
    """,
    # 9: the trail of one style in sequence order (a webhook's worker, a one-style stream
    # catching up): without it SQLite either sorted every row of the style (audit_by_task)
    # or scanned every later row of the others (the sequence key)
    """
    CREATE INDEX audit_by_style ON audit (style, seq);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: the PRAGMA of :func:`pragmas` that answers a row: the journal mode SQLite switched to
JOURNAL_MODE = "PRAGMA journal_mode = WAL"


def pragmas(synchronous: str, busy_timeout_ms: int, cache_mib: int, *, read_only: bool = False) -> list[str]:
    """The PRAGMAs a store's reading and writing connections start with, in order.
    *cache_mib* 0 keeps SQLite's own page cache size. A *read_only* file (opened immutable,
    see :mod:`.store`) keeps the journal mode it has: SQLite reports it as ``delete``."""
    out = [f"PRAGMA busy_timeout = {int(busy_timeout_ms)}"]
    if cache_mib > 0:
        out.append(f"PRAGMA cache_size = {-1024 * int(cache_mib)}")
    if read_only:
        return [*out, "PRAGMA query_only = ON"]
    return [*out, JOURNAL_MODE, f"PRAGMA synchronous = {synchronous.upper()}", "PRAGMA foreign_keys = ON",
            "PRAGMA wal_autocheckpoint = 0"]  # checkpoints run beside the writer (gateway/store/sqlite/wal.py)


def check_journal_mode(rows: Iterable[Any]) -> None:
    """StoreError unless the answer to :data:`JOURNAL_MODE` says the file is in WAL mode."""
    mode = list(rows)[0][0]
    if mode != "wal":
        raise StoreError(f"could not switch the database to WAL (got {mode})")


def configure(conn: sqlite3.Connection, synchronous: str, busy_timeout_ms: int, cache_mib: int, *,
              read_only: bool = False) -> None:
    """Run :func:`pragmas` on *conn* (it may wait for another process's lock: call it off the loop)."""
    for pragma in pragmas(synchronous, busy_timeout_ms, cache_mib, read_only=read_only):
        rows = conn.execute(pragma).fetchall()
        if pragma == JOURNAL_MODE:
            check_journal_mode(rows)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, one transaction per migration. StoreError
    for a newer schema, or for a file with tables but no schema version (not taskgate's)."""
    (version,), = conn.execute("PRAGMA user_version").fetchall()
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema {version} is newer than this taskgate ({SCHEMA_VERSION})")
    if version == 0 and conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        raise StoreError("not a taskgate database (tables present but no schema version)")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back by itself (disk full, I/O error)
                conn.execute("ROLLBACK")
            raise
