"""What each owner holds on PostgreSQL: the ``usage`` table behind the per-user quotas.

As on SQLite (:mod:`gateway.store.sqlite.owned`): every task keeps its owner (the value of
its style's owner field, which the ``owners`` table names for every gateway) and its size,
the bytes of its document and of the audit rows of its changes; ``usage`` sums them per
style and owner, in the same transaction as each write, by the shared rules of
:mod:`gateway.store.owners`. A write held to a quota locks its owner's ``usage`` row
(``FOR UPDATE``), so two gateways cannot both let one owner past a limit.

Owns the owner computed in SQL (:func:`owner_sql`, the twin of :func:`owner_of`), the
reading, locking and adding of ``usage`` rows, and the recount of a style.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from gateway.store.errors import StoreError
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database

__all__ = ["Usage", "owner_sql", "read_owners", "held", "add_usage", "ensure_owner"]

#: (style, owner) → [tasks, bytes]
Usage = dict[tuple[str, str], list[int]]

#: the advisory lock key recounts run under
_RECOUNT_LOCK = 0x7A5C6A80


def _path(field: str) -> str:
    return "'{" + ",".join(sql.key_label(field).split(".")) + "}'"


def owner_sql(field: str) -> str:
    """SQL computing :func:`gateway.store.owners.owner_of` from ``doc``: a string's text, or
    an integer's digits."""
    value = f"(doc::jsonb #> {_path(field)})"
    return (f"CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' "
            f"WHEN jsonb_typeof({value}) = 'number' AND ({value} #>> '{{}}') ~ '^-?[0-9]+$' "
            f"THEN {value} #>> '{{}}' END")


async def read_owners(conn: asyncpg.Connection) -> dict[str, str]:
    """The field naming each style's owner."""
    return {style: field for style, field in await conn.fetch("SELECT style, field FROM owners")}


async def held(conn: asyncpg.Connection, style: str, owner: str) -> list[int]:
    """What *owner* holds now, its row locked until the caller's transaction ends (made
    first when missing, so that a new owner's first writes serialize too)."""
    await conn.execute("INSERT INTO usage (style, owner, tasks, bytes) VALUES ($1, $2, 0, 0) "
                       "ON CONFLICT (style, owner) DO NOTHING", style, owner)
    row = await conn.fetchrow("SELECT tasks, bytes FROM usage WHERE style = $1 AND owner = $2 FOR UPDATE",
                              style, owner)
    return [int(row[0]), int(row[1])] if row is not None else [0, 0]


async def add_usage(conn: asyncpg.Connection, deltas: Mapping[tuple[str, str], list[int]]) -> None:
    """Add each ``[tasks, bytes]`` of *deltas* to its owner's row, inside the caller's transaction."""
    changed = [(style, owner, t, b) for (style, owner), (t, b) in sorted(deltas.items()) if t or b]
    if changed:
        await conn.executemany("INSERT INTO usage (style, owner, tasks, bytes) VALUES ($1, $2, $3, $4) "
                               "ON CONFLICT (style, owner) DO UPDATE SET tasks = usage.tasks + excluded.tasks, "
                               "bytes = usage.bytes + excluded.bytes", changed)


async def ensure_owner(db: Database, owners: dict[str, str], style: str, field: str) -> None:
    """Make *field* the owner field of *style*; naming another field than the ``owners``
    table holds sets every task's owner and size of the style and recounts its usage, in
    one transaction (under an advisory lock, so gateways starting together recount once)."""
    sql.check_style(style)
    sql.column(field)  # refuses what is not a plain member path
    try:
        async with db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _RECOUNT_LOCK)
            if await conn.fetchval("SELECT field FROM owners WHERE style = $1", style) != field:
                await conn.execute(
                    f"UPDATE tasks AS t SET owner = {owner_sql(field)}, size = coalesce(size, "
                    "octet_length(doc::text) + coalesce((SELECT sum(octet_length(a.patch::text) "
                    "+ octet_length(a.undo::text)) FROM audit AS a WHERE a.style = t.style AND a.task_id = t.id), 0)) "
                    "WHERE style = $1", style)
                await conn.execute("DELETE FROM usage WHERE style = $1", style)
                await conn.execute("INSERT INTO usage (style, owner, tasks, bytes) SELECT style, owner, count(*), "
                                   "sum(size) FROM tasks WHERE style = $1 AND owner IS NOT NULL GROUP BY style, owner",
                                   style)
                await conn.execute("INSERT INTO owners (style, field) VALUES ($1, $2) ON CONFLICT (style) "
                                   "DO UPDATE SET field = excluded.field", style, field)
    except asyncpg.PostgresError as exc:
        raise StoreError(f"cannot count the {style} tasks' owners: {exc}") from exc
    owners[style] = field
