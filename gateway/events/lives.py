"""Which life of a task id an event belongs to, for the read rules that judge a document.

A task id can be deleted and created again, by another owner: the events before the
delete belong to the task that was, and a caller is judged for them by the document that
delete removed, not by the task that holds the id now. An event belongs to the life that
the task's first ``deleted`` change at or after it ended; with none after it, to the task
as it is now.

:class:`Lives` remembers, per task, a span of sequence numbers and the delete that ends
it (or none), so that a stream catching up through a task's history asks the trail once
per life, not once per event. A span that no delete ended yet is forgotten when a delete
of its task is published (:meth:`Lives.deleted`); one that a delete ended never changes.
Reads go through the store contract; no SQL here.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from gateway.events.published import deleted_document
from gateway.model import Doc, Store

__all__ = ["Lives", "Life"]

#: tasks whose last known life is kept
_KEPT = 256


@dataclass(frozen=True, slots=True)
class Life:
    """Events *first* … *ended* (None: to this day) of one task id belong to one task; *removed*
    is the document the delete at *ended* removed (None when it is still the task of now)."""

    first: int
    ended: int | None
    removed: Doc | None

    def holds(self, seq: int) -> bool:
        return self.first <= seq and (self.ended is None or seq <= self.ended)


class Lives:
    """The lives of task ids as the trail tells them, for the feed's read rules."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: collections.OrderedDict[tuple[str, str], Life] = collections.OrderedDict()
        self._deletes = 0  # deletes heard: a life read while one was heard may be out of date

    async def of(self, style: str, task_id: str, seq: int) -> Life:
        """The life event *seq* of the task belongs to."""
        key = (style, task_id)
        life = self._known.get(key)
        if life is not None and life.holds(seq):
            self._known.move_to_end(key)
            return life
        heard = self._deletes
        end = await self._store.audit(style=style, task_id=task_id, after=seq - 1, action="deleted",
                                      newest_first=False, limit=1)
        life = Life(seq, end[0].seq, deleted_document(end[0])) if end else Life(seq, None, None)
        if life.ended is not None or heard == self._deletes:
            self._known[key] = life
            self._known.move_to_end(key)
            while len(self._known) > _KEPT:
                self._known.popitem(last=False)
        return life

    def deleted(self, style: str, task_id: str) -> None:
        """A delete of the task was published: the life that had no end now has one."""
        self._deletes += 1
        key = (style, task_id)
        life = self._known.get(key)
        if life is not None and life.ended is None:
            del self._known[key]

    def forget(self) -> None:
        """The feed stopped hearing deletes (nobody subscribed) or its trail was replaced."""
        self._deletes += 1
        self._known.clear()
