"""The PostgreSQL database's tables and their ordered migrations.

The tables are SQLite's (:mod:`gateway.store.sqlite.schema`), column for column, so that
``taskgate copy`` moves rows as they are and a statement a test or tool reads storage with
answers the same on both. Where PostgreSQL differs:

* a document is a ``json`` column, never ``jsonb``: ``json`` keeps the text taskgate wrote
  (member order, number spelling), so a task reads back byte for byte; ``jsonb`` would
  reorder members and change answers. The keyed fields (``keys``) are ``jsonb``: they
  are compared and indexed, never answered;
* ids, styles and names are ``text COLLATE "C"``: ordered by their bytes, as SQLite's
  ``BINARY``, whatever the database's own collation;
* ``audit_head`` holds the newest audit seq in one row. Every write locks it just before
  it commits, so audit seqs are handed out in commit order (a sequence would hand them out
  in the order transactions asked, and a reader following the trail could step past a
  row that commits later with a smaller seq);
* the database itself must hold text in UTF-8 with the C locale (:func:`check_database`):
  ``jsonb`` compares strings by the database's collation, which no column's ``COLLATE``
  reaches, and ``ILIKE`` folds case by its ctype;
* the schema version is the one row of ``taskgate_schema``; migrations run under an
  advisory lock, so that gateways starting together migrate once.

Owns :data:`MIGRATIONS` and :func:`migrate`. It runs SQL only on the connection it is given.
"""

from __future__ import annotations

import json

import asyncpg

from gateway.store.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version", "check_database"]

#: the advisory lock key migrations run under (any constant: it names taskgate's migrations)
_MIGRATION_LOCK = 0x7A5C6A7E

# Ordered migrations; index i brings version i to i + 1. Never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        style    text COLLATE "C" NOT NULL,
        id       text COLLATE "C" NOT NULL,
        version  bigint NOT NULL CHECK (version > 0),
        created  text NOT NULL,
        modified text NOT NULL,
        doc      json NOT NULL,
        keys     jsonb,
        owner    text COLLATE "C",
        size     bigint,
        PRIMARY KEY (style, id)
    );
    CREATE TABLE audit (
        seq          bigint PRIMARY KEY,
        at           text NOT NULL,
        style        text COLLATE "C" NOT NULL,
        task_id      text COLLATE "C" NOT NULL,
        version      bigint NOT NULL,
        action       text NOT NULL CHECK (action IN ('created', 'updated', 'deleted')),
        actor        text NOT NULL,
        request_id   text NOT NULL,
        patch        json NOT NULL,
        undo         json NOT NULL,
        client       text NOT NULL DEFAULT '',
        impersonator text NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_by_task ON audit (style, task_id, seq);
    CREATE TABLE audit_head (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        seq bigint NOT NULL
    );
    INSERT INTO audit_head (one, seq) VALUES (true, 0);
    CREATE TABLE counters (
        style text COLLATE "C" PRIMARY KEY,
        last  bigint NOT NULL
    );
    CREATE TABLE keyed (
        style  text COLLATE "C" PRIMARY KEY,
        fields json NOT NULL
    );
    CREATE TABLE owners (
        style text COLLATE "C" PRIMARY KEY,
        field text NOT NULL
    );
    CREATE TABLE usage (
        style text COLLATE "C" NOT NULL,
        owner text COLLATE "C" NOT NULL,
        tasks bigint NOT NULL,
        bytes bigint NOT NULL,
        PRIMARY KEY (style, owner)
    );
    CREATE TABLE users (
        name          text COLLATE "C" PRIMARY KEY,
        role          text NOT NULL CHECK (role IN ('admin', 'user')),
        password_hash text,
        created       text NOT NULL,
        associate_id  bigint,
        disabled      boolean NOT NULL DEFAULT false
    );
    CREATE TABLE tokens (
        hash      text COLLATE "C" PRIMARY KEY,
        "user"    text COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        read_only boolean NOT NULL DEFAULT false,
        expires   bigint,
        source    text NOT NULL,
        created   text NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens ("user");
    CREATE TABLE oauth_clients (
        client_id   text COLLATE "C" PRIMARY KEY,
        secret_hash text NOT NULL,
        "user"      text COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created     text NOT NULL
    );
    CREATE TABLE hooks (
        num      bigserial PRIMARY KEY,
        style    text COLLATE "C" NOT NULL,
        id       text COLLATE "C" NOT NULL,
        doc      json NOT NULL,
        active   boolean NOT NULL,
        cursor   bigint NOT NULL,
        failures integer NOT NULL DEFAULT 0,
        created  text NOT NULL,
        updated  text NOT NULL,
        UNIQUE (style, id)
    );
    CREATE TABLE hook_log (
        seq     bigserial PRIMARY KEY,
        hook    bigint NOT NULL,
        event   bigint NOT NULL,
        at      text NOT NULL,
        attempt integer NOT NULL,
        status  integer,
        outcome text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'disabled')),
        error   text NOT NULL DEFAULT '',
        ms      double precision NOT NULL
    );
    CREATE INDEX hook_log_by_hook ON hook_log (hook, seq);
    """,
    # 2: failed sign-ins per client key's hash, shared by every gateway (:mod:`.signins`)
    """
    CREATE TABLE signin_failures (
        key_hash   text COLLATE "C" PRIMARY KEY,
        window_end timestamptz NOT NULL,
        failures   integer NOT NULL CHECK (failures > 0)
    );
    CREATE INDEX signin_failures_by_end ON signin_failures (window_end);
    """,
    # 3: the trail of each deleted life stays counted against its owner until it is purged
    # (the SQLite schema's 8; gateway/store/owners.py)
    """
    CREATE TABLE graves (
        seq     bigint PRIMARY KEY,
        style   text COLLATE "C" NOT NULL,
        task_id text COLLATE "C" NOT NULL,
        at      text NOT NULL,
        owner   text COLLATE "C",
        bytes   bigint NOT NULL
    );
    CREATE INDEX graves_by_task ON graves (style, task_id, seq);
    INSERT INTO graves (seq, style, task_id, at, owner, bytes)
        SELECT seq, style, task_id, at, NULL, 0 FROM audit WHERE action = 'deleted';
    """,
    # 4: the trail of one style in sequence order (the SQLite schema's 9: a webhook's worker,
    # a one-style stream catching up), rather than a sort of every row of the style or a
    # scan of every later row of the others
    """
    CREATE INDEX audit_by_style ON audit (style, seq);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The database's schema version (0 for a database taskgate never used)."""
    if await conn.fetchval("SELECT to_regclass('taskgate_schema')") is None:
        return 0
    return int(await conn.fetchval("SELECT version FROM taskgate_schema"))


async def check_database(conn: asyncpg.Connection) -> None:
    """StoreError unless the database holds text as taskgate's answers need: in UTF-8 (in
    another encoding a character it lacks is an error: an emoji in a LATIN1 database failed
    the write with a 500), with the C locale of the libc provider (another orders keyed
    fields and folds case otherwise than SQLite: ICU's en-US sorts 'a' before 'B', and even
    C.UTF-8 folds 'É' with 'é'). Read from ``pg_database`` as JSON: PostgreSQL 15 added the
    provider's column, 17 the builtin provider's locale."""
    row = json.loads(await conn.fetchval(
        "SELECT to_jsonb(d) FROM pg_database AS d WHERE datname = current_database()"))
    encoding = await conn.fetchval("SELECT pg_encoding_to_char($1::int)", row["encoding"])
    provider = {"c": "libc", "i": "icu", "b": "builtin"}.get(row.get("datlocprovider") or "c", "?")
    locale = row.get("daticulocale") or row.get("datlocale") if provider != "libc" else None
    locale = locale or (row["datcollate"] if row["datcollate"] == row["datctype"]
                        else f"{row['datcollate']}, ctype {row['datctype']}")
    if encoding != "UTF8" or locale not in ("C", "POSIX") or provider not in ("libc", "builtin"):
        raise StoreError(f"the database holds text in {encoding} with the {locale} locale ({provider}); taskgate "
                         "needs UTF8 and the C locale, by which text orders and folds case as on SQLite: make it "
                         "with CREATE DATABASE name TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")


async def migrate(conn: asyncpg.Connection) -> None:
    """Bring the database to :data:`SCHEMA_VERSION`, one transaction per migration, under
    an advisory lock. StoreError for a newer schema, or for a database with tables of its
    own and no schema version (not taskgate's)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        version = await schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(f"database schema {version} is newer than this taskgate ({SCHEMA_VERSION})")
        if version == 0:
            if await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"):
                raise StoreError("not a taskgate database (tables present but no schema version)")
            await conn.execute("CREATE TABLE taskgate_schema (version integer NOT NULL)")
            await conn.execute("INSERT INTO taskgate_schema (version) VALUES (0)")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            if await schema_version(conn) >= target:
                continue  # another gateway migrated meanwhile
            await conn.execute(MIGRATIONS[target - 1])
            await conn.execute("UPDATE taskgate_schema SET version = $1", target)
