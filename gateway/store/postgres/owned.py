"""What each owner holds on PostgreSQL: the ``usage`` table behind the per-user quotas.

As on SQLite (:mod:`gateway.store.sqlite.owned`): every task keeps its owner (the value of
its style's owner field, which the ``owners`` table names for every gateway) and its size,
the bytes of its document and of the audit rows of its present life; each deleted life
leaves a grave in ``graves``, counted until it is purged; ``usage`` sums them per style and
owner, in the same transaction as each write, by the shared rules of
:mod:`gateway.store.owners`. A write held to a quota locks its owner's ``usage`` row
(``FOR UPDATE``), so two gateways cannot both let one owner past a limit.

Owns the owner computed in SQL (:func:`owner_sql`, the twin of :func:`owner_of`), the
reading, locking and adding of ``usage`` rows, the recount of a style, and the purge of
deleted lives.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from gateway.store.errors import StoreError
from gateway.store.owners import Usage
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database

__all__ = ["Usage", "owner_sql", "read_owners", "held", "add_usage", "ensure_owner", "purge_deleted"]


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
                # a task gets the audit rows of its present life; graves keep their owners
                await conn.execute(
                    f"UPDATE tasks AS t SET owner = {owner_sql(field)}, size = coalesce(size, "
                    "octet_length(doc::text) + coalesce((SELECT sum(octet_length(a.patch::text) "
                    "+ octet_length(a.undo::text)) FROM audit AS a WHERE a.style = t.style AND a.task_id = t.id "
                    "AND a.seq > coalesce((SELECT max(g.seq) FROM graves AS g WHERE g.style = t.style "
                    "AND g.task_id = t.id), 0)), 0)) WHERE style = $1", style)
                await conn.execute("DELETE FROM usage WHERE style = $1", style)
                await conn.execute("INSERT INTO usage (style, owner, tasks, bytes) SELECT $1, owner, sum(n), sum(b) "
                                   "FROM (SELECT owner, 1 AS n, size AS b FROM tasks WHERE style = $1 AND owner IS "
                                   "NOT NULL UNION ALL SELECT owner, 0, bytes FROM graves WHERE style = $1 AND owner "
                                   "IS NOT NULL) AS held GROUP BY owner", style)
                await conn.execute("INSERT INTO owners (style, field) VALUES ($1, $2) ON CONFLICT (style) "
                                   "DO UPDATE SET field = excluded.field", style, field)
    except asyncpg.PostgresError as exc:
        raise StoreError(f"cannot count the {style} tasks' owners: {exc}") from exc
    owners[style] = field


async def purge_deleted(conn: asyncpg.Connection, before: str, lives: int) -> tuple[int, int]:
    """Inside the caller's transaction: what :func:`gateway.store.sqlite.owned.purge_deleted`
    does, on PostgreSQL (up to *lives* graves, the oldest first, none past the cursor of an
    active webhook)."""
    # the newest audit row stays, as on SQLite: a copy of the database into SQLite numbers
    # the next change after it (audit_head keeps the number here, not in a copy)
    graves = await conn.fetch("SELECT seq, style, task_id FROM graves WHERE at < $1 AND seq <= coalesce("
                              "(SELECT min(cursor) FROM hooks WHERE active), 9223372036854775807) "
                              "AND seq < (SELECT coalesce(max(seq), 0) FROM audit) ORDER BY seq LIMIT $2",
                              before, lives)
    gone = rows = 0
    back: Usage = {}
    for seq, style, task_id in graves:
        done = await conn.execute("DELETE FROM audit WHERE style = $1 AND task_id = $2 AND seq <= $3",
                                  style, task_id, seq)
        rows += int(done.split()[-1])
        for owner, size in await conn.fetch("DELETE FROM graves WHERE style = $1 AND task_id = $2 AND seq <= $3 "
                                            "RETURNING owner, bytes", style, task_id, seq):
            gone += 1
            if owner is not None and size:
                back.setdefault((style, owner), [0, 0])[1] -= int(size)
    await add_usage(conn, back)
    return gone, rows
