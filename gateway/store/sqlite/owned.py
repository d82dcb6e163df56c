"""What each owner holds: the ``usage`` table behind the per-user quotas.

Every task keeps its owner (the value of its style's owner field, which the style names
once with :meth:`gateway.store.Store.ensure_owner` and the ``owners`` table keeps for
every process) and its size: the bytes of its document and of the audit rows of its
changes. ``usage`` sums, per style and owner, the tasks and their sizes. A deleted task
gives its size back to its owner, though its audit rows stay in the file (the trail is
kept for good; the write rate bounds how fast it grows). The write path keeps ``usage``
in the same transaction as the rows (:mod:`.group_commit`, :mod:`.bulk`), so a quota is
checked against exact counts; rows written around the store are not counted until the
style's owner field is named again differently, which recounts it.

Owns the owner of a document (:func:`owner_of`, the twin of :func:`owner_sql`), the
quota check of one write (:func:`check_quota`, pure), and the statements that read, add
to and recount ``usage``. It must not decide who owns a task: each style's rules do, by
the field they name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from gateway.store.errors import StoreError
from gateway.store.owners import check_quota, owner_of
from gateway.store.sqlite import sql
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["Usage", "owner_of", "owner_sql", "check_quota", "read_usage", "add_usage", "ensure_owner"]

#: (style, owner) → [tasks, bytes]
Usage = dict[tuple[str, str], list[int]]


def owner_sql(field: str) -> str:
    """SQL computing :func:`owner_of` from ``doc``."""
    return (f"CASE json_type(doc, '{field}') WHEN 'text' THEN json_extract(doc, '{field}') "
            f"WHEN 'integer' THEN CAST(json_extract(doc, '{field}') AS TEXT) END")


def read_usage(conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]) -> Usage:
    """What each of *keys* holds now, inside the caller's transaction (0, 0 when nothing)."""
    out: Usage = {}
    for style, owner in keys:
        rows = conn.execute("SELECT tasks, bytes FROM usage WHERE style = ? AND owner = ?", (style, owner)).fetchall()
        out[(style, owner)] = list(rows[0]) if rows else [0, 0]
    return out


def add_usage(conn: sqlite3.Connection, deltas: Mapping[tuple[str, str], list[int]]) -> None:
    """Add each ``[tasks, bytes]`` of *deltas* to its owner's row, inside the caller's transaction."""
    changed = [(style, owner, t, b) for (style, owner), (t, b) in deltas.items() if t or b]
    if changed:
        conn.executemany("INSERT INTO usage (style, owner, tasks, bytes) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (style, owner) DO UPDATE SET tasks = tasks + excluded.tasks, "
                         "bytes = bytes + excluded.bytes", changed)


async def ensure_owner(writer: WriteConnection, owners: dict[str, str], style: str, field: str,
                       stored: str | None) -> bool:
    """Make *field* the owner field of *style* (what :meth:`gateway.store.Store.ensure_owner`
    promises); whether it wrote anything. Naming another field than *stored* (the one the
    ``owners`` table holds) sets every task's owner and size of the style and recounts its
    usage, in one transaction: once per database, or when a style's rule changes."""
    sql.check_style(style)
    sql.column(field)  # refuses what is not a plain member path
    if stored == field:
        owners[style] = field
        return False

    def recount(conn: sqlite3.Connection) -> None:
        # a recount gives a task every audit row of its id (of earlier lives too)
        conn.execute(f"UPDATE tasks AS t SET owner = {owner_sql(field)}, size = coalesce(size, "
                     "length(CAST(doc AS BLOB)) + coalesce((SELECT sum(length(CAST(a.patch AS BLOB)) "
                     "+ length(CAST(a.undo AS BLOB))) FROM audit AS a WHERE a.style = t.style "
                     "AND a.task_id = t.id), 0)) WHERE style = ?", (style,))
        conn.execute("DELETE FROM usage WHERE style = ?", (style,))
        conn.execute("INSERT INTO usage (style, owner, tasks, bytes) SELECT style, owner, count(*), sum(size) "
                     "FROM tasks WHERE style = ? AND owner IS NOT NULL GROUP BY owner", (style,))
        conn.execute("INSERT INTO owners (style, field) VALUES (?, ?) "
                     "ON CONFLICT (style) DO UPDATE SET field = excluded.field", (style, field))
    try:
        await writer.transaction(recount)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot count the {style} tasks' owners: {exc}") from exc
    owners[style] = field
    return True
