"""Loading many new tasks fast, outside the group-commit queue.

Owns :func:`bulk_create`: chunks of new tasks, each task with the ``created`` audit row a
create writes, one transaction a chunk, the id counters raised as creates raise them.
Documents are stored as given (callers pass documents their style made), and no commit
listener hears of these changes. It must not update or delete a task: an id that exists
is a Conflict, and the chunks committed before it stay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from gateway import errors
from gateway.clock import now_iso
from gateway.limits import MAX_DOCUMENT_BYTES, dumps
from gateway.model import Doc
from gateway.patching import diff
from gateway.speedups import dumps_bytes
from gateway.store.rows import is_counted
from gateway.store.sqlite.keyed import KeyedFields, keys_text, read_keyed
from gateway.store.sqlite.owned import Usage, add_usage, owner_of
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["bulk_create"]


async def bulk_create(writer: WriteConnection, keyed: KeyedFields, style: str, tasks: Iterable[tuple[str, Doc]], *,
                      actor: str, request_id: str, chunk: int = 20_000) -> int:
    """Insert *tasks* ``(id, document)`` of *style*, *chunk* per transaction; how many."""
    total = 0
    rows: list[tuple[str, Doc]] = []
    for item in tasks:
        rows.append(item)
        if len(rows) >= chunk:
            total += await _load_chunk(writer, keyed, style, rows, actor, request_id)
            rows = []
    if rows:
        total += await _load_chunk(writer, keyed, style, rows, actor, request_id)
    return total


async def _load_chunk(writer: WriteConnection, keyed: KeyedFields, style: str, rows: list[tuple[str, Doc]],
                      actor: str, request_id: str) -> int:
    at = now_iso()

    def begin(conn: sqlite3.Connection) -> tuple[tuple[dict[str, tuple[str, ...]], int, dict[str, str]], int]:
        writer.begin_on_thread(conn)
        found = read_keyed(conn)  # another process may have keyed other fields
        (seq,), = conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchall()
        return found, seq

    async with writer.lock:
        try:
            found, seq = await writer.off_loop(begin)
            keyed.replace(found)
            fields = keyed.of(style)
            owner_field = keyed.owners.get(style)
            task_rows: list[tuple[Any, ...]] = []
            audit_rows: list[tuple[Any, ...]] = []
            usage: Usage = {}
            top = 0
            for task_id, doc in rows:
                text = dumps(doc)
                size = len(text.encode("utf-8"))
                if size > MAX_DOCUMENT_BYTES:
                    raise errors.PayloadTooLarge(f"task {task_id!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
                patch, undo = diff({}, doc)
                seq += 1
                # values of a document dumps() accepted: the fast path is exact
                patch_bytes, undo_bytes = dumps_bytes(patch), dumps_bytes(undo)
                audit_rows.append((seq, at, style, task_id, 1, "created", actor, request_id,
                                   patch_bytes.decode("utf-8"), undo_bytes.decode("utf-8")))
                owner = owner_of(owner_field, doc)
                size += len(patch_bytes) + len(undo_bytes)  # a task's size counts its audit rows
                task_rows.append((style, task_id, 1, at, at, text, keys_text(fields, doc), owner, size))
                if owner is not None:
                    held = usage.setdefault((style, owner), [0, 0])
                    held[0] += 1
                    held[1] += size
                if is_counted(task_id):
                    top = max(top, int(task_id))

            def load(conn: sqlite3.Connection) -> None:
                conn.executemany("INSERT INTO tasks (style, id, version, created, modified, doc, keys, owner, size) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", task_rows)
                add_usage(conn, usage)
                conn.executemany("INSERT INTO audit (seq, at, style, task_id, version, action, actor, request_id, "
                                 "patch, undo) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", audit_rows)
                if top:
                    conn.execute("INSERT INTO counters (style, last) VALUES (?, ?) "
                                 "ON CONFLICT (style) DO UPDATE SET last = max(last, excluded.last)", (style, top))
                conn.execute("COMMIT")
                writer.file_lock.release()
                # A chunk fills the WAL with thousands of pages: copy them now, as SQLite would.
                # Its row is read so that the statement is finished before the next batch.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            await writer.off_loop(load)
        except sqlite3.IntegrityError as exc:
            await writer.rollback()
            raise errors.Conflict(f"cannot load the tasks: {exc}") from None
        except BaseException:
            await writer.rollback()
            raise
    return len(rows)
