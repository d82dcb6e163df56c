"""Undoing one change: the inverse of one audit row, refused when a later change conflicts.

Every audit row holds its change's inverse (``Change.undo``, an RFC 6902 patch new → old).
Undoing a change applies that inverse to the task as it is now, as a new change. That is
right only while nothing later touched what the change touched: :func:`check_undo` looks
at the changes after it (the task's trail after that row, oldest first) and refuses with
a Conflict naming the first later change whose paths overlap (the same member, one inside
the other) or that deleted or created the task again. :func:`undo_mutation` is the store
mutation; it also tests, inside the write, that every member still holds the value the
change left, so a change that slipped in between the read and the write is refused too
(callers add ``if_match`` on the version they read, which says so more plainly).

This differs from webMethods' rollback (:func:`gateway.apis.webmethods_rules.state_before`),
which restores the whole document as it was before an entry and so reverts every later
change with it. Pure functions: no I/O, no HTTP, no vendor rules.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from gateway import errors
from gateway.model import Change, Doc, Mutate
from gateway.patching import apply_json_patch

__all__ = ["UNDO_MARK", "paths_overlap", "check_undo", "undo_mutation"]

#: appended to the request id of an undo's audit row, with the undone row's sequence number
UNDO_MARK = "#undo:"


def paths_overlap(a: str, b: str) -> bool:
    """Whether JSON pointers *a* and *b* name the same member or one lies inside the other."""
    return a == b or b.startswith(a + "/") or a.startswith(b + "/") or a == "" or b == ""


def _paths(change: Change, stamps: Collection[str]) -> list[str]:
    return [op["path"] for op in change.patch if op["path"] not in stamps]


def check_undo(target: Change, later: Sequence[Change], stamps: Collection[str] = ()) -> None:
    """Conflict unless *target* (an ``updated`` row) can be undone with the rows committed
    after it (*later*, the same task's, oldest first). *stamps*: the members the style
    stamps on every change (when, by whom, a counter), which every change touches and an
    undo stamps anew rather than restores."""
    if target.action != "updated":
        what = "creation" if target.action == "created" else "deletion"
        raise errors.Conflict(f"change {target.seq} is the task's {what}, which cannot be undone")
    mine = _paths(target, stamps)
    if not mine:
        raise errors.Conflict(f"change {target.seq} only stamped the task; there is nothing to undo")
    for change in later:
        if change.action != "updated":
            raise errors.Conflict(f"change {target.seq} cannot be undone: the task was {change.action} again "
                                  f"later (change {change.seq} by {change.actor} at {change.at})")
        for path in _paths(change, stamps):
            hit = next((p for p in mine if paths_overlap(p, path)), None)
            if hit is not None:
                raise errors.Conflict(
                    f"change {target.seq} cannot be undone: change {change.seq} by {change.actor} at "
                    f"{change.at} changed {path or 'the whole document'} later; undo that one first")


def _still_as_left(target: Change, stamps: Collection[str]) -> list[dict[str, Any]]:
    """``test`` operations: each member the change set still holds the value it set."""
    return [{"op": "test", "path": op["path"], "value": op["value"]}
            for op in target.patch if op["op"] in ("add", "replace") and op["path"] not in stamps]


def undo_mutation(target: Change, stamps: Collection[str] = (),
                  restamp: Callable[[Doc], Doc] = lambda doc: doc) -> Mutate:
    """The mutation undoing *target*: its inverse (but for *stamps*) applied to the stored
    document, after testing that the document still holds what *target* left (Conflict
    otherwise), then *restamp* (the style's bookkeeping of a change, on the new document)."""
    operations = [*_still_as_left(target, stamps), *(op for op in target.undo if op["path"] not in stamps)]

    def mutate(old: Doc | None) -> Doc:
        if old is None:
            raise errors.NotFound(f"task {target.task_id} no longer exists")
        try:
            return restamp(apply_json_patch(old, operations))
        except errors.Conflict:
            raise errors.Conflict(f"change {target.seq} cannot be undone: the task has changed since; "
                                  "reload the page") from None
    return mutate
