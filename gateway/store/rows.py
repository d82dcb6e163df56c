"""How tasks and audit rows are held as column values, and read back as model types.

Owns the stored form of a document (the compact JSON text :func:`gateway.limits.dumps`
writes, at most :data:`gateway.limits.MAX_DOCUMENT_BYTES`), of an audit row's patches,
and the column lists that read them. Every backend stores the same text (SQLite in a
``TEXT`` column, PostgreSQL in a ``json`` one, which keeps the text as given), so this
module is shared: it moved here from the SQLite store when the PostgreSQL one came. It
must not run statements: callers do, on the connection they hold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway import errors
from gateway.limits import MAX_DOCUMENT_BYTES, dumps
from gateway.model import Change, Doc
from gateway.speedups import dumps_bytes, loads

__all__ = ["AUDIT_COLUMNS", "load_doc", "stored_text", "change_from_row", "audit_row", "text_bytes", "is_counted",
           "check_id"]

#: the columns of an audit row, in the order :func:`change_from_row` reads them
AUDIT_COLUMNS = "seq, at, style, task_id, version, action, actor, request_id, patch, undo, client, impersonator"


def load_doc(text: str) -> Doc:
    """A stored document (JSON text that :func:`dumps` wrote) as Python values."""
    return loads(text.encode("utf-8"))


def stored_text(doc: Doc) -> str:
    """*doc* as the text the tasks table holds; BadRequest or PayloadTooLarge when it cannot
    be stored (raised inside the write, so that it fails alone, not its batch)."""
    try:
        text = dumps(doc)
        size = text_bytes(text)
    except (UnicodeEncodeError, ValueError, RecursionError) as exc:
        raise errors.BadRequest(f"the task cannot be stored: {type(exc).__name__}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise errors.PayloadTooLarge(f"the task would be {size} bytes; at most {MAX_DOCUMENT_BYTES} are kept")
    return text


def change_from_row(r: Sequence[Any]) -> Change:
    """A :class:`Change` from an audit row read as :data:`AUDIT_COLUMNS`."""
    return Change(seq=r[0], at=r[1], style=r[2], task_id=r[3], version=r[4], action=r[5], actor=r[6],
                  request_id=r[7], patch=json.loads(r[8]), undo=json.loads(r[9]), client=r[10], impersonator=r[11])


def audit_row(c: Change) -> tuple[tuple[Any, ...], int]:
    """The values of an audit row for *c*, in :data:`AUDIT_COLUMNS` order, and the bytes its
    patches take (what the row costs its task's owner). Patches hold only values of stored
    documents, which dumps() accepted: the fast path is exact."""
    patch, undo = dumps_bytes(c.patch), dumps_bytes(c.undo)
    return (c.seq, c.at, c.style, c.task_id, c.version, c.action, c.actor, c.request_id,
            patch.decode("utf-8"), undo.decode("utf-8"), c.client, c.impersonator), len(patch) + len(undo)


def text_bytes(text: str) -> int:
    """How many bytes *text* takes in the file (UTF-8)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def is_counted(task_id: str) -> bool:
    """Whether *task_id* is an integer id that the per-style counter must stay above."""
    return 0 < len(task_id) <= 18 and task_id.isascii() and task_id.isdigit()


def check_id(task_id: str | None) -> None:
    """BadRequest unless *task_id* is text every backend can bind (no lone surrogate, which
    only a file can carry: ``taskgate import``). Checked before a write is queued, so that
    it fails alone: in a batch, the driver's refusal of the id failed everyone's writes."""
    if task_id is None or task_id.isascii():
        return
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.BadRequest("the task id is not text that can be stored (it holds a lone surrogate)") from None
