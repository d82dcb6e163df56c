"""Who owns a document, what each write changes of what its owners hold, and whether it
keeps its owner within a quota: the pure rules every store backend applies in its write
path (pure: no SQL, no I/O).

What an owner holds in a style is its live tasks (their documents and the audit rows of
their present lives) and the trails of the lives of its tasks that were deleted (each a
*grave*: the audit rows from the life's creation to its delete, whose undo keeps the whole
document it removed). A delete gives back the task, not its trail: the rows stay in the
file, so they stay counted until ``taskgate audit purge`` drops them. Before, a delete gave
everything back, and one user's create-and-delete cycles grew the file without bound while
his counted usage stayed at zero.

They were part of the SQLite store's :mod:`gateway.store.sqlite.owned` (which keeps the
``usage`` table of that backend and still uses them); they live here so that the
PostgreSQL store counts owners and refuses quota overruns by the very same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway import errors
from gateway.model import Change, Doc, Quota

__all__ = ["owner_of", "deleted_owner", "check_quota", "Usage", "Held", "Accounted", "account", "charge", "PURGE_LIVES"]

#: the deleted lives one transaction of a purge drops (writers wait for no more than that)
PURGE_LIVES = 200

#: (style, owner) → [tasks, bytes]
Usage = dict[tuple[str, str], list[int]]
#: a stored row's owner, size (its document's bytes and its present life's audit rows')
#: and its document's bytes, as a write reads it
Held = tuple[str | None, int, int]


def owner_of(field: str | None, doc: Doc | None) -> str | None:
    """The owner of *doc* under its style's owner *field*: a text value, or an integer's
    digits (a SuperOffice associate id); None when the style names no owner field or the
    document holds no such value."""
    if field is None or doc is None:
        return None
    return _owner(doc, field[2:].split("."))


def deleted_owner(field: str | None, undo: list[dict[str, Any]]) -> str | None:
    """The owner of the document a delete removed, from the delete's *undo* (one ``add`` of
    each top-level member: what :func:`gateway.patching.diff` makes from nothing)."""
    if field is None:
        return None
    first, *rest = field[2:].split(".")
    for op in undo:
        if op.get("op") == "add" and op.get("path") == "/" + first:
            return _owner(op.get("value"), rest)
    return None


def _owner(value: Any, parts: Sequence[str]) -> str | None:
    """The owner found by following the members *parts* from *value*."""
    for part in parts:
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


@dataclass
class Accounted:
    """What one write comes to for the quotas: its task's owner and size after it (None, 0
    when it ends deleted), what each owner's holdings change by, and the graves it leaves
    (each delete's sequence number, its owner and its life's bytes; None and 0 when the
    document named no owner). A write that ends in a delete is never refused by a quota
    (:meth:`held_against`): its row holds the document it removes, one operation per
    top-level member, so an owner may end up to about twice the quota."""

    owner: str | None
    size: int
    delta: Usage = field(default_factory=dict)
    graves: list[tuple[int, str | None, int]] = field(default_factory=list)
    ends_deleted: bool = False

    def held_against(self, key: tuple[str, str]) -> tuple[int, int]:
        """The tasks and bytes the write adds to *key*'s holdings, as its quota judges them."""
        tasks, size = self.delta.get(key, (0, 0))
        return tasks, min(size, 0) if self.ends_deleted else size


def account(style: str, owner_field: str | None, old: Held | None, made: Sequence[Change],
            audit_bytes: Sequence[int], doc: Doc | None, doc_bytes: int) -> Accounted:
    """What the write that made *made* (whose audit rows take *audit_bytes*) changes of its
    owners' holdings, *old* being the row it read and *doc* (of *doc_bytes* bytes) what it
    leaves (None: deleted). Every backend counts by this one rule."""
    out = Accounted(None, 0, ends_deleted=doc is None)
    trail = 0  # the audit bytes of the life in progress
    if old is not None:
        if old[0] is not None:
            charge(out.delta, (style, old[0]), -1, -old[1])
        trail = max(old[1] - old[2], 0)
    for change, n in zip(made, audit_bytes, strict=True):
        trail += n
        if change.action == "deleted":
            owner = deleted_owner(owner_field, change.undo)
            if owner is not None:
                charge(out.delta, (style, owner), 0, trail)
            out.graves.append((change.seq, owner, trail if owner is not None else 0))
            trail = 0
    if doc is not None:
        out.owner, out.size = owner_of(owner_field, doc), doc_bytes + trail
        if out.owner is not None:
            charge(out.delta, (style, out.owner), 1, out.size)
    return out


def charge(usage: Usage, key: tuple[str, str], tasks: int, size: int) -> None:
    """Add *tasks* and *size* to what *key* holds in *usage*."""
    held = usage.setdefault(key, [0, 0])
    held[0] += tasks
    held[1] += size


def check_quota(quota: Quota, style: str, held: list[int], tasks: int, size: int) -> None:
    """PayloadTooLarge when a write adding *tasks* tasks and *size* bytes to what *quota*'s
    owner holds (*held*: tasks, bytes before it) takes either past its limit. A write that
    adds nothing (or frees space) passes whatever is held, so an owner over the limit can
    still shrink or delete."""
    if tasks > 0 and held[0] + tasks > quota.tasks:
        raise errors.PayloadTooLarge(
            f"{quota.owner} holds {held[0]} {style} tasks: the quota is {quota.tasks} tasks per user "
            f"({quota.names[0]}); delete some, or ask an administrator")
    if size > 0 and held[1] + size > quota.bytes:
        raise errors.PayloadTooLarge(
            f"{quota.owner}'s {style} tasks would take {held[1] + size} bytes with their audit trail: "
            f"the quota is {quota.bytes} bytes per user ({quota.names[1]} = {quota.bytes // 2**20}); "
            "make the task smaller, or ask an administrator (deleted tasks' audit rows count until they are purged)")
