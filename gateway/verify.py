"""Audit verification: replay one task's audit trail and compare it with the stored task.

Pure functions, no I/O: the store streams each task with its audit rows
(:meth:`gateway.store.Store.trails`), :func:`verify_trail` says what is wrong with one, and
``taskgate audit verify`` prints the findings. Nothing here knows a vendor's rules or
touches the database.

What the store records, and so what a sound trail looks like (oldest first):

* a ``created`` row at version 1 whose patch, applied to ``{}``, is the first document;
* ``updated`` rows, versions counting up by one, each patch applied to the previous
  document (a webMethods rollback is an ordinary ``updated`` row: its patch is the
  rollback's effect);
* optionally a ``deleted`` row (patch: the document → ``{}``); then no task is stored,
  unless a later ``created`` row starts the task's next life. That row is at version 1,
  or one past the delete when the delete and the new create committed in one batch.

The stored task must equal the replay of its trail: same version, same document (JSON
equality: ``1``, ``1.0`` and ``true`` differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.model import Change, Task
from gateway.patching import apply_json_patch, diff, same_json

__all__ = ["Finding", "verify_trail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What is wrong with one task; ``as_json()`` is one line of the report."""

    style: str
    task_id: str
    stored_version: int | None  # None: no task is stored
    replayed_version: int | None  # None: the trail ends in a delete (or cannot be replayed)
    audit_rows: int
    problems: tuple[str, ...]
    difference: tuple[dict[str, Any], ...] = ()  # RFC 6902 patch replay → stored, when both exist

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"style": self.style, "task_id": self.task_id,
                               "stored_version": self.stored_version, "replayed_version": self.replayed_version,
                               "audit_rows": self.audit_rows, "problems": list(self.problems)}
        if self.difference:
            out["difference"] = list(self.difference)
        return out


def verify_trail(style: str, task_id: str, stored: Task | None, trail: Sequence[Change]) -> Finding | None:
    """None when *stored* (the task as stored, None when absent) is exactly the replay of
    *trail* (its audit rows in ``seq`` order); otherwise a :class:`Finding`."""
    problems: list[str] = []
    doc: dict[str, Any] | None = None
    version = 0
    previous: Change | None = None
    broken = False
    for change in trail:
        expected = _expected_versions(change, previous, doc is not None)
        if change.version not in expected:
            problems.append(f"audit row seq {change.seq} ({change.action}) is at version {change.version}, "
                            f"expected {' or '.join(map(str, expected))}: the trail has a gap")
        if change.action == "created" and doc is not None:
            problems.append(f"audit row seq {change.seq} creates a task that exists")
        elif change.action != "created" and doc is None:
            problems.append(f"audit row seq {change.seq} ({change.action}) comes before any creation")
            broken = True
            break
        try:
            replayed = apply_json_patch({} if change.action == "created" else doc or {}, change.patch)
        except errors.TaskgateError as exc:
            problems.append(f"audit row seq {change.seq} does not apply: {exc.message}")
            broken = True
            break
        if change.action == "deleted":
            if replayed:
                problems.append(f"audit row seq {change.seq} deletes the task but leaves {sorted(replayed)}")
            doc = None
        else:
            doc = replayed
        version = change.version
        previous = change
    if broken:
        return Finding(style, task_id, stored.version if stored else None, None, len(trail), tuple(problems))
    if not trail:
        problems.append("the task has no audit trail")
    difference: tuple[dict[str, Any], ...] = ()
    if stored is None and doc is not None:
        problems.append(f"no task is stored, but its trail ends at version {version}, not in a delete")
    elif stored is not None and doc is None and trail:
        problems.append("the task is stored, but its trail ends in a delete")
    elif stored is not None and doc is not None:
        if stored.version != version:
            problems.append(f"stored version {stored.version} differs from the trail's {version}")
        if not same_json(stored.doc, doc):
            problems.append("the stored document differs from the replay of its trail")
            difference = tuple(diff(doc, stored.doc)[0])
    if not problems:
        return None
    return Finding(style, task_id, stored.version if stored else None, version if doc is not None else None,
                   len(trail), tuple(problems), difference)


def _expected_versions(change: Change, previous: Change | None, exists: bool) -> tuple[int, ...]:
    if previous is None:
        return (1,)
    if change.action == "created" and not exists:
        # a new life: version 1, or the delete's + 1 when both committed in one batch
        return (1, previous.version + 1)
    return (previous.version + 1,)
