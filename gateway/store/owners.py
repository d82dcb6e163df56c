"""Who owns a document, and whether a write keeps its owner within a quota: the pure rules
every store backend applies in its write path (pure: no SQL, no I/O).

They were part of the SQLite store's :mod:`gateway.store.sqlite.owned` (which keeps the
``usage`` table of that backend and still uses them); they live here so that the
PostgreSQL store counts owners and refuses quota overruns by the very same rules.
"""

from __future__ import annotations

from typing import Any

from gateway import errors
from gateway.model import Doc, Quota

__all__ = ["owner_of", "check_quota"]


def owner_of(field: str | None, doc: Doc | None) -> str | None:
    """The owner of *doc* under its style's owner *field*: a text value, or an integer's
    digits (a SuperOffice associate id); None when the style names no owner field or the
    document holds no such value."""
    if field is None or doc is None:
        return None
    value: Any = doc
    for part in field[2:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


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
            "make the task smaller, delete some, or ask an administrator")
