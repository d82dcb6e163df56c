"""Loading many new tasks fast into PostgreSQL, outside the one-write-a-transaction path.

As :mod:`gateway.store.sqlite.bulk`: chunks of new tasks, each task with the ``created``
audit row a create writes, one transaction a chunk (``audit_head`` locked, so the chunk's
seqs follow every commit before it), the id counter raised as creates raise it, documents
stored as given, and no commit listener told. An id that exists is a Conflict; the chunks
committed before it stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from gateway import errors
from gateway.clock import now_iso
from gateway.limits import MAX_DOCUMENT_BYTES, dumps
from gateway.model import Doc
from gateway.patching import diff
from gateway.speedups import dumps_bytes
from gateway.store.owners import owner_of
from gateway.store.postgres import sql
from gateway.store.postgres.connection import Database
from gateway.store.postgres.owned import Usage, add_usage
from gateway.store.rows import is_counted

__all__ = ["bulk_create"]


async def bulk_create(db: Database, keyed: dict[str, tuple[str, ...]], owners: dict[str, str], style: str,
                      tasks: Iterable[tuple[str, Doc]], *, actor: str, request_id: str, chunk: int = 20_000) -> int:
    """Insert *tasks* ``(id, document)`` of *style*, *chunk* per transaction; how many."""
    total = 0
    rows: list[tuple[str, Doc]] = []
    for item in tasks:
        rows.append(item)
        if len(rows) >= chunk:
            total += await _load_chunk(db, keyed.get(style, ()), owners.get(style), style, rows, actor, request_id)
            rows = []
    if rows:
        total += await _load_chunk(db, keyed.get(style, ()), owners.get(style), style, rows, actor, request_id)
    return total


async def _load_chunk(db: Database, fields: tuple[str, ...], owner_field: str | None, style: str,
                      rows: list[tuple[str, Doc]], actor: str, request_id: str) -> int:
    at = now_iso()
    task_rows: list[tuple[Any, ...]] = []
    audit_rows: list[tuple[Any, ...]] = []
    usage: Usage = {}
    top = 0
    for n, (task_id, doc) in enumerate(rows):
        text = dumps(doc)
        size = len(text.encode("utf-8"))
        if size > MAX_DOCUMENT_BYTES:
            raise errors.PayloadTooLarge(f"task {task_id!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
        if sql.holds_nul(text) or not sql.storable(task_id):
            raise errors.BadRequest(f"task {task_id!r}: {sql.NUL_REFUSED}")
        patch, undo = diff({}, doc)
        patch_bytes, undo_bytes = dumps_bytes(patch), dumps_bytes(undo)
        audit_rows.append((n, at, style, task_id, 1, "created", actor, request_id,
                           patch_bytes.decode("utf-8"), undo_bytes.decode("utf-8")))
        size += len(patch_bytes) + len(undo_bytes)  # a task's size counts its audit rows
        owner = owner_of(owner_field, doc)
        if owner is not None:
            held = usage.setdefault((style, owner), [0, 0])
            held[0] += 1
            held[1] += size
        task_rows.append((style, task_id, 1, at, at, text, sql.keys_value(fields, doc), owner, size))
        if is_counted(task_id):
            top = max(top, int(task_id))
    try:
        async with db.transaction() as conn:
            head = int(await conn.fetchval("UPDATE audit_head SET seq = seq + $1 RETURNING seq", len(rows)))
            first = head - len(rows) + 1
            await conn.executemany("INSERT INTO tasks (style, id, version, created, modified, doc, keys, owner, size) "
                                   "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)", task_rows)
            await add_usage(conn, usage)
            await conn.executemany("INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, "
                                   "patch, undo) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                                   [(first + r[0], *r[1:]) for r in audit_rows])
            if top:
                await conn.execute("INSERT INTO counters (style, last) VALUES ($1, $2) ON CONFLICT (style) "
                                   "DO UPDATE SET last = greatest(counters.last, excluded.last)", style, top)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise errors.Conflict(f"cannot load the tasks: {exc}") from None
    return len(rows)
