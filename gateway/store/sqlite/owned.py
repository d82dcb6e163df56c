"""What each owner holds: the ``usage`` table behind the per-user quotas, and the graves.

Every task keeps its owner (the value of its style's owner field, which the style names
once with :meth:`gateway.store.Store.ensure_owner` and the ``owners`` table keeps for
every process) and its size: the bytes of its document and of the audit rows of its
present life. A deleted life leaves a grave (``graves``: the delete's sequence number,
the owner, the bytes of the life's audit rows), still counted against its owner until
:func:`purge_deleted` drops its rows (the rule is :func:`gateway.store.owners.account`).
``usage`` sums, per style and owner, the tasks and their sizes and the graves. The write
path keeps ``usage`` and ``graves`` in the same transaction as the rows
(:mod:`.group_commit`, :mod:`.bulk`), so a quota is checked against exact counts; rows
written around the store are not counted until the style's owner field is named again
differently, which recounts it.

Owns the SQL twin of :func:`owner_of` (:func:`owner_sql`), the statements that read, add
to and recount ``usage``, and the purge of deleted lives. It must not decide who owns a
task: each style's rules do, by the field they name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from gateway.store.errors import StoreError
from gateway.store.owners import PURGE_LIVES, Usage, check_quota, owner_of
from gateway.store.sqlite import sql
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["Usage", "owner_of", "owner_sql", "check_quota", "read_usage", "add_usage", "ensure_owner",
           "purge_deleted"]



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
        # a recount gives a task the audit rows of its present life (after its last grave);
        # the graves keep the owners they were counted for
        conn.execute(f"UPDATE tasks AS t SET owner = {owner_sql(field)}, size = coalesce(size, "
                     "length(CAST(doc AS BLOB)) + coalesce((SELECT sum(length(CAST(a.patch AS BLOB)) "
                     "+ length(CAST(a.undo AS BLOB))) FROM audit AS a WHERE a.style = t.style "
                     "AND a.task_id = t.id AND a.seq > coalesce((SELECT max(g.seq) FROM graves AS g "
                     "WHERE g.style = t.style AND g.task_id = t.id), 0)), 0)) WHERE style = ?", (style,))
        conn.execute("DELETE FROM usage WHERE style = ?", (style,))
        conn.execute("INSERT INTO usage (style, owner, tasks, bytes) SELECT ?, owner, sum(n), sum(b) FROM "
                     "(SELECT owner, 1 AS n, size AS b FROM tasks WHERE style = ? AND owner IS NOT NULL "
                     "UNION ALL SELECT owner, 0, bytes FROM graves WHERE style = ? AND owner IS NOT NULL) "
                     "GROUP BY owner", (style, style, style))
        conn.execute("INSERT INTO owners (style, field) VALUES (?, ?) "
                     "ON CONFLICT (style) DO UPDATE SET field = excluded.field", (style, field))
    try:
        await writer.transaction(recount)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot count the {style} tasks' owners: {exc}") from exc
    owners[style] = field
    return True


def purge_deleted(conn: sqlite3.Connection, before: str, up_to: int | None) -> tuple[int, int]:
    """Inside the caller's transaction: drop the audit rows of up to :data:`PURGE_LIVES`
    lives deleted before *before* (an audit time) and at or below sequence number *up_to*
    (None: any), the oldest first, with their graves, and give their bytes back to their
    owners; how many lives and audit rows went (none: nothing is left to purge). A live
    task keeps its present life, and the trail its newest row: changes are numbered after
    it, so a purge that took it would hand its number out again (to a change every hook
    and stream past it would miss)."""
    # the trail's newest row stays whatever it is: the next change is numbered after it
    (newest,), = conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchall()
    graves = conn.execute("SELECT seq, style, task_id, owner, bytes FROM graves WHERE at < ? AND seq <= ? "
                          "AND seq < ? ORDER BY seq LIMIT ?", (before, 2**63 - 1 if up_to is None else up_to,
                                                               newest, PURGE_LIVES)).fetchall()
    lives = rows = 0
    back: Usage = {}
    for seq, style, task_id, _, _ in graves:
        rows += conn.execute("DELETE FROM audit WHERE style = ? AND task_id = ? AND seq <= ?",
                             (style, task_id, seq)).rowcount
        # the id's earlier lives go with it, their graves too (whenever they were deleted)
        for owner, size in conn.execute("DELETE FROM graves WHERE style = ? AND task_id = ? AND seq <= ? "
                                        "RETURNING owner, bytes", (style, task_id, seq)).fetchall():
            lives += 1
            if owner is not None and size:
                back.setdefault((style, owner), [0, 0])[1] -= size
    add_usage(conn, back)
    return lives, rows
