"""Keyed fields: the few fields of each style's documents that lists filter and sort on,
kept apart in the ``keys`` column so that their indexes change only when they do.

SQLite updates an index whenever a column it reads is set, even to an equal value; built
on ``json_extract(doc, …)`` every index of a style would change with every write. So the
indexes are built on ``keys`` (a JSON object, field path → value, as ``json_extract``
reads it from the document), and a write sets ``keys`` only when it changes them: a
progress update leaves every index alone. The ``keyed`` table says which fields each
style keys; every writer reads it again whenever another connection committed, so all
processes write the same keys. Rows written around the store (not through it) keep stale
keys.

Owns that table, this process's copy of it (:class:`KeyedFields`), the keys column's
value computed in Python (:func:`keys_text`, the twin of :func:`.sql.keys_sql`), and
:func:`ensure_indexes`. It must not decide how a transaction is run: the writer's
connection does (:mod:`.write_connection`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.limits import dumps
from gateway.model import Doc
from gateway.store.errors import StoreError
from gateway.store.sqlite import sql
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["KeyedFields", "keys_text", "read_keyed", "ensure_indexes"]

#: a style → the fields its keys column holds
Keyed = dict[str, tuple[str, ...]]


def keys_text(keyed: tuple[str, ...], doc: Doc) -> str | None:
    """The keys column of *doc* for a style keying *keyed*: each field as json_extract
    reads it from the document (an absent member, or a path through a non-object, is null).
    The same text :func:`dumps` would write, so values read back compare equal."""
    if not keyed:
        return None
    out: dict[str, Any] = {}
    for field in keyed:
        label, parts = sql.key_parts(field)
        value: Any = doc
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        out[label] = value
    return dumps(out)


def read_keyed(conn: sqlite3.Connection) -> tuple[Keyed, int, dict[str, str]]:
    """Which fields each style keeps in its keys column, the connection's
    ``PRAGMA data_version`` it was read at, and the field that names each style's owner
    (the ``owners`` table, which :mod:`.owned` keeps and every writer follows alike)."""
    (version,), = conn.execute("PRAGMA data_version").fetchall()
    keyed = {style: tuple(json.loads(fields)) for style, fields in conn.execute("SELECT style, fields FROM keyed")}
    return keyed, version, dict(conn.execute("SELECT style, field FROM owners").fetchall())


class KeyedFields:
    """This process's copy of the ``keyed`` and ``owners`` tables, as the writer's
    connection last read them."""

    __slots__ = ("by_style", "data_version", "owners")

    def __init__(self, by_style: Keyed | None = None, data_version: int = -1,
                 owners: dict[str, str] | None = None) -> None:
        self.by_style: Keyed = by_style or {}
        self.data_version = data_version  # the writer's PRAGMA data_version when by_style was read
        self.owners: dict[str, str] = owners or {}  # a style → the field naming its tasks' owner

    def of(self, style: str) -> tuple[str, ...]:
        return self.by_style.get(style, ())

    def replace(self, found: tuple[Keyed, int, dict[str, str]]) -> None:
        """Take what :func:`read_keyed` found (on the event loop's thread: readers use the copy)."""
        self.by_style, self.data_version, self.owners = found

    def changed_since(self, conn: sqlite3.Connection) -> tuple[Keyed, int, dict[str, str]] | None:
        """Inside a transaction on the writer's connection: the tables again when another
        connection committed since they were read, else None."""
        (now,), = conn.execute("PRAGMA data_version").fetchall()
        return read_keyed(conn) if now != self.data_version else None


async def ensure_indexes(rows: Callable[[str, Sequence[Any]], Awaitable[list[Any]]], writer: WriteConnection,
                         keyed_fields: KeyedFields, style: str, fields: Sequence[str],
                         then: str | None = None) -> bool:
    """Indexes serving filters and sorts on each of *fields* of *style*'s documents (what
    :meth:`gateway.store.Store.ensure_indexes` promises); whether it wrote anything.

    The fields (and *then*) become the style's keyed fields. Keying other fields than
    before recomputes every row's keys of the style, in one transaction. Each index holds
    only *style*'s rows; with *then*, each is ordered by that field next. An index an
    earlier taskgate made (on the document, or over every style's rows) is replaced.
    *rows* reads on the store's reader."""
    sql.check_style(style)
    keyed = tuple(dict.fromkeys(f for f in (*fields, then) if f is not None and f != "id"))
    for field in keyed:
        sql.column(field)  # refuses what is not a plain member path

    async def existing_sql(name: str) -> str | None:
        # SQLite's names are case-insensitive: superoffice's $.Created and sailpoint's $.created
        # would otherwise drop each other's index at every start
        found = await rows("SELECT sql FROM sqlite_master WHERE name = ? COLLATE NOCASE", (name,))
        return found[0][0] if found else None

    wanted: list[tuple[str, str]] = []
    for field in fields:
        if field == "id":
            continue
        name = sql.index_name(field)
        # look first: a restart must not wait for the write lock that another process may hold
        existing = await existing_sql(name)
        if existing and " WHERE style = '" in existing and not existing.endswith(f" WHERE style = '{style}'"):
            name = sql.index_name(field, style)  # another style indexes a field of the same name
            existing = await existing_sql(name)
        statement = sql.index_sql(name, style, field, keyed, then)
        if existing != statement:
            wanted.append((name, statement))
    stored = await rows("SELECT fields FROM keyed WHERE style = ?", (style,))
    rekey = not stored or tuple(json.loads(stored[0][0])) != keyed
    if not wanted and not rekey:
        keyed_fields.by_style[style] = keyed
        return False

    def build(conn: sqlite3.Connection) -> None:
        if rekey:  # rewrites every task of the style: only when the keyed fields change
            conn.execute(f"UPDATE tasks SET keys = {sql.keys_sql(keyed)} WHERE style = ?", (style,))
            conn.execute("INSERT INTO keyed (style, fields) VALUES (?, ?) "
                         "ON CONFLICT (style) DO UPDATE SET fields = excluded.fields", (style, json.dumps(keyed)))
        for name, statement in wanted:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
            conn.execute(statement)
    try:
        await writer.transaction(build)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot index the {style} tasks: {exc}") from exc
    keyed_fields.by_style[style] = keyed
    return True
