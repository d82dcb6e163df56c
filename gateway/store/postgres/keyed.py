"""Keyed fields on PostgreSQL: the few fields of each style's documents that lists filter
and sort on, copied into the ``keys`` column (``jsonb``) with an index each.

As on SQLite (:mod:`gateway.store.sqlite.keyed`): the ``keyed`` table says which fields
each style keys; every write computes the keys of the document it stores
(:func:`.sql.keys_value`), and an index is built on each field's expression over the keys
column, one style's rows each. PostgreSQL updates a row's indexes only when an indexed
value changes (a heap-only update otherwise), so a progress update leaves every index
alone. Each gateway reads the table at open and when it keys a style itself; gateways of
one release key the same fields at start, so they write the same keys.

Owns the ``keyed`` table, the rekeying of a style's rows, and the ``CREATE INDEX`` of each
field; index builds run under an advisory lock, so that gateways starting together build
each index once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from gateway.store.errors import StoreError
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database

__all__ = ["read_keyed", "ensure_indexes", "keys_sql"]

#: the advisory lock key index builds run under
_INDEX_LOCK = 0x7A5C6A7F


async def read_keyed(conn: asyncpg.Connection) -> dict[str, tuple[str, ...]]:
    """Which fields each style keeps in its keys column."""
    return {style: tuple(json.loads(fields)) for style, fields in await conn.fetch("SELECT style, fields FROM keyed")}


def keys_sql(keyed: tuple[str, ...]) -> str:
    """SQL computing the keys column from ``doc``, as :func:`.sql.keys_value` does in Python."""
    return "jsonb_build_object(" + ", ".join(
        f"'{sql.key_label(f)}', doc::jsonb #> '{{{','.join(sql.key_label(f).split('.'))}}}'" for f in keyed) + ")"


async def ensure_indexes(db: Database, keyed_fields: dict[str, tuple[str, ...]], style: str, fields: Sequence[str],
                         then: str | None = None) -> None:
    """Indexes serving filters and sorts on each of *fields* of *style*'s documents (what
    :meth:`gateway.model.Store.ensure_indexes` promises). The fields (and *then*) become
    the style's keyed fields; keying other fields than before recomputes every row's keys
    of the style, in the same transaction as the indexes."""
    sql.check_style(style)
    keyed = tuple(dict.fromkeys(f for f in (*fields, then) if f is not None and f != "id"))
    for field in keyed:
        sql.column(field)  # refuses what is not a plain member path
    try:
        async with db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _INDEX_LOCK)
            stored = await conn.fetchval("SELECT fields FROM keyed WHERE style = $1", style)
            if stored is None or tuple(json.loads(stored)) != keyed:
                await conn.execute(f"UPDATE tasks SET keys = {keys_sql(keyed)} WHERE style = $1", style)
                await conn.execute("INSERT INTO keyed (style, fields) VALUES ($1, $2) ON CONFLICT (style) "
                                   "DO UPDATE SET fields = excluded.fields", style, json.dumps(keyed))
                for field in fields:  # indexes over the old keys read nothing now
                    if field != "id":
                        await conn.execute(f"DROP INDEX IF EXISTS {sql.index_name(style, field)}")
            for field in fields:
                if field != "id":
                    await conn.execute(sql.index_sql(style, field, keyed, then))
    except asyncpg.PostgresError as exc:
        raise StoreError(f"cannot index the {style} tasks: {exc}") from exc
    keyed_fields[style] = keyed
