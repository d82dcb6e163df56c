"""The one step of a task write that every store backend shares: a write's preconditions
checked against the stored row, its steps run in order, each change diffed into an audit
:class:`~gateway.model.Change`. Pure: no SQL, no I/O, no clock of its own.

It was part of the SQLite store's batch (:mod:`gateway.store.sqlite.batch`, which still
applies a batch of writes through it); it lives here so that the PostgreSQL store runs the
very same rules (If-Match, If-Unmodified-Since, the life of a task, unchanged documents
writing nothing, the impersonator of a change) rather than a copy of them. It must not
decide how rows are read, locked or written: each backend's write path does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from gateway import errors
from gateway.clock import parse_iso
from gateway.model import Change, Doc, Expect, Step, Task
from gateway.patching import diff
from gateway.store.rows import stored_text

__all__ = ["PendingWrite", "Stored", "apply_write"]

#: a stored row as a write reads it: version, document, created, modified
Stored = tuple[int, Doc | None, str, str]


class PendingWrite(Protocol):
    """What :func:`apply_write` reads of a write waiting to be applied (a backend's own
    queued write, such as :class:`gateway.store.sqlite.batch.QueuedWrite`)."""

    style: str
    task_id: str | None
    steps: list[Step]
    expect: Expect
    request_id: str
    if_match: frozenset[int] | None
    unmodified_since: datetime | None
    created: str | None
    client: str
    impersonation: tuple[str, str] | None


def apply_write(w: PendingWrite, current: Stored | None, seq: int, at: str) -> tuple[Task | None, list[Change], str]:
    """The outcome of one write against the current row: the task after its last step,
    the change of each step that changed the document (numbered from *seq*), and the
    final document as stored text (also the task's :attr:`~gateway.model.Task.text`)."""
    version, old, created, modified = current if current else (0, None, "", "")
    task_id = w.task_id
    assert task_id is not None
    if w.expect is Expect.PRESENT and old is None:
        raise errors.NotFound(f"task {task_id!r} does not exist")
    if w.expect is Expect.ABSENT and old is not None:
        raise errors.Conflict(f"task {task_id!r} already exists")
    if w.if_match is not None and old is not None and version not in w.if_match:
        raise errors.PreconditionFailed(
            f"task {task_id!r} is at version {version}, not {', '.join(map(str, sorted(w.if_match)))}")
    if w.unmodified_since is not None and old is not None \
            and parse_iso(modified).replace(microsecond=0) > w.unmodified_since:
        raise errors.PreconditionFailed(f"task {task_id!r} was modified after {w.unmodified_since.isoformat()}")
    if w.created is not None and old is not None and created != w.created:
        raise errors.PreconditionFailed(f"task {task_id!r} was deleted and created again since it was read")
    made: list[Change] = []
    doc, text = old, ""
    acting = w.impersonation
    for actor, mutate in w.steps:
        new = mutate(doc)
        if new is doc:
            continue
        # refuse what cannot be stored before diffing it, so it fails alone
        new_text = stored_text(new) if new is not None else ""
        # an empty diff between two documents is JSON equality (same_json): one walk, not two
        patch, undo = diff(doc if doc is not None else {}, new if new is not None else {})
        if not patch and new is not None and doc is not None:
            continue
        action = "created" if doc is None else "deleted" if new is None else "updated"
        version += 1
        made.append(Change(seq=seq + len(made), at=at, style=w.style, task_id=task_id, version=version,
                           action=action, actor=actor, request_id=w.request_id, patch=patch, undo=undo,
                           client=w.client, impersonator=acting[1] if acting and acting[0] == actor else ""))
        doc, text = new, new_text  # the text stays that of the document returned
    if not made:
        return (Task(w.style, task_id, version, old, modified, created) if old is not None else None), made, ""
    return (Task(w.style, task_id, version, doc, at, created, text) if doc is not None else None), made, text
