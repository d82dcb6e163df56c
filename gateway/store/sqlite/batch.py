"""One batch of queued task writes, applied in order to the rows it read: no SQL, no I/O.

Owns :class:`QueuedWrite` (a write's preconditions and steps, waiting for its batch) and
:func:`apply_steps`: each write checked against the row as the batch's earlier writes
left it and run by :func:`gateway.store.write_step.apply_write` (the step every backend
shares), each change numbered and diffed into an audit :class:`~gateway.model.Change`.
A write whose mutation raises is left out alone. It must not read or write the database:
:mod:`.group_commit` reads the rows before and writes the outcome after, inside the batch's transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway import errors
from gateway.model import CLIENT, IMPERSONATION, QUOTA, Change, Doc, Expect, Step, Task
from gateway.store.owners import Held, Usage, account, charge, check_quota
from gateway.store.rows import audit_row, is_counted, text_bytes
from gateway.store.sqlite.keyed import KeyedFields, keys_text
from gateway.store.sqlite.log import report
from gateway.store.write_step import Stored, apply_write

__all__ = ["QueuedWrite", "Stored", "Touched", "Held", "Applied", "apply_steps", "apply_write", "needs_counters"]

#: a task's final row in a batch: version, created, document (None: deleted), its stored
#: text, its keys column, its owner, its size in bytes
Touched = tuple[int, str, Doc | None, str, str | None, str | None, int]


class QueuedWrite:
    """One queued write: its preconditions, then its steps in order, each its own audited change."""

    __slots__ = ("style", "task_id", "steps", "expect", "request_id", "if_match",
                 "unmodified_since", "created", "build", "max_id", "future", "client", "warmed", "quota",
                 "impersonation")

    def __init__(self, style: str, task_id: str | None, steps: Sequence[Step], expect: Expect,
                 request_id: str, if_match: frozenset[int] | None,
                 unmodified_since: datetime | None = None,
                 build: Callable[[int], Doc] | None = None, max_id: int = 0, created: str | None = None) -> None:
        self.style, self.task_id, self.steps, self.expect = style, task_id, list(steps), expect
        self.request_id, self.if_match, self.created = request_id, if_match, created
        self.unmodified_since, self.build, self.max_id = unmodified_since, build, max_id
        self.client = CLIENT.get()
        self.quota = QUOTA.get()
        self.impersonation = IMPERSONATION.get()
        self.warmed = True  # False while a read-ahead thread has yet to read its task
        self.future: asyncio.Future[tuple[Task | None, list[Change]]] = \
            asyncio.get_running_loop().create_future()


@dataclass
class Applied:
    """What a batch comes to: each write's outcome (its task and changes, or the error it
    raised), every change in order with its audit row, each touched task's final row, what
    each owner's holdings changed by, the graves of the lives it deleted (style, id, the
    delete's sequence number and time, owner, bytes), and the batch's time."""

    at: str
    results: list[tuple[QueuedWrite, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    audit_rows: list[tuple[Any, ...]] = field(default_factory=list)
    touched: dict[tuple[str, str], Touched] = field(default_factory=dict)
    usage: Usage = field(default_factory=dict)
    graves: list[tuple[str, str, int, str, str | None, int]] = field(default_factory=list)




def needs_counters(batch: Sequence[QueuedWrite]) -> bool:
    """Whether the batch creates a task with an integer id (only then are the id
    counters read and written)."""
    return any(w.task_id is None or (w.expect is not Expect.PRESENT and is_counted(w.task_id)) for w in batch)


def _number(w: QueuedWrite, counters: dict[str, int]) -> str:
    """Give a numbered create the next id: above every integer id created so far,
    this batch's earlier writes included, so no such task can exist."""
    number = counters.get(w.style, 0) + 1
    if number > w.max_id:
        raise errors.Conflict(f"no integer id is left for {w.style} tasks (the last is {w.max_id})")
    counters[w.style] = number
    w.task_id = str(number)
    build = w.build
    assert build is not None
    w.steps = [(w.steps[0][0], lambda _old: build(number))]
    return w.task_id


def apply_steps(out: Applied, batch: Sequence[QueuedWrite], current: dict[tuple[str, str], Stored], seq: int,
                counters: dict[str, int] | None, keyed: KeyedFields,
                held_rows: dict[tuple[str, str], Held] | None = None,
                held: Usage | None = None) -> Iterator[None]:
    """Each write in order, into *out*, against the rows as the earlier writes of the batch
    left them (*current* is updated); a write whose mutation raises, or that would take its
    owner past its quota, is left out alone. *seq*: the last audit sequence number;
    *counters*: the id counters, when the batch needs them; *held_rows*: each stored row's
    owner and size; *held*: what the owners of the batch's quotas hold (both updated). The
    rows are stamped with ``out.at``. It pauses after each write, so that whoever drives
    it can let the event loop run between two writes (each may patch a megabyte document)."""
    at = out.at
    rows = held_rows if held_rows is not None else {}
    usage = held if held is not None else {}
    owners = keyed.owners
    for w in batch:
        try:
            if w.task_id is None:
                assert counters is not None
                task_id = _number(w, counters)
            else:
                task_id = w.task_id
            key = (w.style, task_id)
            task, made, text = apply_write(w, current.get(key), seq + 1, at)
            if made:
                audit = [audit_row(c) for c in made]
                doc_bytes = text_bytes(text) if task is not None else 0
                counted = account(w.style, owners.get(w.style), rows.get(key), made, [n for _, n in audit],
                                  task.doc if task is not None else None, doc_bytes)
                quota = w.quota
                if quota is not None and (w.style, quota.owner) in counted.delta:
                    check_quota(quota, w.style, usage.get((w.style, quota.owner), [0, 0]),
                                *counted.held_against((w.style, quota.owner)))
        except errors.TaskgateError as exc:
            exc.__traceback__ = None  # its frames hold the mutation's copy of the document until the batch ends
            out.results.append((w, exc))
            yield
            continue
        except Exception:  # a bug in a mutate function must not sink the batch
            report("store.mutation_failed", style=w.style, task_id=w.task_id)
            out.results.append((w, errors.InternalError("An internal fault occurred.")))
            yield
            continue
        if made:
            seq += len(made)
            out.changes.extend(made)
            out.audit_rows.extend(row for row, _ in audit)
            for owner_key, (tasks, size) in counted.delta.items():
                charge(out.usage, owner_key, tasks, size)
                if owner_key in usage:
                    charge(usage, owner_key, tasks, size)
            out.graves.extend((w.style, task_id, seq_, at, owner, size) for seq_, owner, size in counted.graves)
            if task is None:
                rows.pop(key, None)
            else:
                rows[key] = (counted.owner, counted.size, doc_bytes)
            last = made[-1]
            # a task deleted and created again in one batch is as new as one created now
            recreated = any(c.action == "created" for c in made)
            created = current[key][2] if key in current and not recreated else at
            if task is not None and task.created != created:
                task = Task(task.style, task.id, task.version, task.doc, task.modified, created, task.text)
            current[key] = ((task.version, task.doc, created, at) if task
                            else (last.version, None, created, at))
            out.touched[key] = (last.version, created, task.doc, text, keys_text(keyed.of(w.style), task.doc),
                                counted.owner, counted.size) if task else (last.version, created, None, text, None,
                                                                           None, 0)
            if counters is not None and recreated and is_counted(task_id):
                counters[w.style] = max(counters.get(w.style, 0), int(task_id))
        out.results.append((w, (task, made)))
        yield
