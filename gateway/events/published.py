"""What the change feed publishes and what a subscriber asks for: an event as JSON and as
its Server-Sent Events frame (:func:`event_json`, :func:`frame`, :class:`Event`), the end
of a subscription (:class:`Ended`), and a subscriber's :class:`Selection` with the
:data:`Key` subscribers share. Pure: no I/O (:mod:`gateway.events.feed` follows the trail).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway import errors
from gateway.model import Change, Doc
from gateway.patching import apply_json_patch
from gateway.speedups import dumps_bytes

__all__ = ["Event", "Ended", "Selection", "Key", "Push", "Check", "event_json", "frame", "deleted_document"]


def event_json(c: Change) -> dict[str, Any]:
    """The event of the committed change *c*, as JSON values (what ``data:`` of a stream
    event and a line of ``taskgate events tail --json`` hold)."""
    return {"id": c.seq, "at": c.at, "style": c.style, "task_id": c.task_id, "version": c.version,
            "action": c.action, "actor": c.actor, "request_id": c.request_id, "patch": c.patch}


def frame(c: Change) -> bytes:
    """*c* as one Server-Sent Events frame: its id, and its event as one ``data:`` line
    (compact JSON escapes line breaks, so one line always suffices)."""
    return b"id: %d\ndata: %s\n\n" % (c.seq, dumps_bytes(event_json(c)))


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 4 times as much, once per event
class Event:
    """One published change: what subscribers filter on, and its encoded frame (never changed)."""

    seq: int
    style: str
    task_id: str
    action: str
    frame: bytes

    @classmethod
    def of(cls, c: Change) -> Event:
        return cls(c.seq, c.style, c.task_id, c.action, frame(c))


def deleted_document(c: Change) -> Doc | None:
    """The document a ``deleted`` change removed: its undo, applied to nothing, puts it back."""
    if c.action != "deleted":
        return None
    try:
        return apply_json_patch({}, c.undo)
    except errors.TaskgateError:  # not a trail taskgate wrote: no document to judge by
        return None


class Ended(Exception):
    """The subscription is over: *reason* (``behind``, ``shutdown``) and the id of the last
    event it took (:attr:`Subscription.cursor`), from which its client resumes."""

    def __init__(self, reason: str, last_id: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.last_id = last_id


#: a read rule for one style: whether the subscriber may read the task whose document this is
Check = Callable[[Doc | None], bool]


@dataclass(frozen=True, slots=True)
class Selection:
    """What a subscriber asked for and may see. *styles* and *actions* (empty: all) and
    *task_id* (None: all) filter; *access* maps each style to None (every task of the style
    is readable) or to the read rule to apply to the task's document; a style missing from
    it is not readable at all."""

    styles: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    task_id: str | None = None
    access: Mapping[str, Check | None] = field(default_factory=dict)

    def wants(self, ev: Event) -> bool:
        return ((not self.styles or ev.style in self.styles) and (not self.actions or ev.action in self.actions)
                and (self.task_id is None or ev.task_id == self.task_id) and ev.style in self.access)

    def key(self) -> Key:
        """What decides which events this subscriber gets, as a value subscribers share:
        the styles it wants and may read whole, those it wants that are readable by a rule
        on the task's document, its actions (empty: all) and its task id (None: all)."""
        wanted = [s for s in self.access if not self.styles or s in self.styles]
        return (frozenset(s for s in wanted if self.access[s] is None),
                frozenset(s for s in wanted if self.access[s] is not None), self.actions, self.task_id)


#: :meth:`Selection.key`: (styles wanted and readable whole, styles wanted and readable by a
#: rule on the document, actions or empty for all, task id or None)
Key = tuple[frozenset[str], frozenset[str], frozenset[str], str | None]
#: writes a chunk of frames to a subscriber's connection at once, without waiting; False when
#: its connection is closing or holds too much unsent already (the stream's own write then waits)
Push = Callable[[bytes], bool]
