"""What a read rule judges an event by: the document of the task the event changed.

That is the task as it is now (or, once deleted, the document its delete removed), with
one exception. A task id can be deleted and created again, by another owner: the events
before the delete belong to the task that was, and a caller is judged for them by the
document that delete removed, not by the task that holds the id now. An event belongs to
the life that the task's first ``deleted`` change at or after it ended; with none after
it, to the task as it is now.

:class:`Judging` keeps, for the feed's subscribers to share, the documents of recently
changed tasks (each until the task's next event), as what its style's read rule reads of
them (a webMethods task's access members, not its TaskData: 20 of one user's 1 MiB tasks
took the server of one stream to 640 MiB), and, per task, a span of sequence numbers and
the delete that ends it (or none), so that a stream catching up through a
task's history asks the trail once per life, not once per event. A span that no delete
ended yet is forgotten when a delete of its task is published; one that a delete ended
never changes. Reads go through the store contract; no SQL here.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from gateway.events.access import judged
from gateway.events.published import Event, deleted_document
from gateway.model import Change, Doc, Store

__all__ = ["Judging", "Life"]

#: tasks whose document, and whose last known life, are kept
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


def _keep(cache: collections.OrderedDict, key: tuple[str, str], value: object) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _KEPT:
        cache.popitem(last=False)


class Judging:
    """The documents the feed's read rules judge events by, shared by its subscribers."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._documents: collections.OrderedDict[tuple[str, str], asyncio.Future[Doc | None]] = \
            collections.OrderedDict()
        self._lives: collections.OrderedDict[tuple[str, str], Life] = collections.OrderedDict()
        self._deletes = 0  # deletes heard: a life read while one was heard may be out of date

    async def document_of(self, ev: Event) -> Doc | None:
        """The document a read rule judges *ev* by (see the module's docstring), or rather
        the part of it that the rule reads (:func:`~gateway.events.access.judged`)."""
        life = await self._life(ev.style, ev.task_id, ev.seq)
        if life.ended is None:
            return await self._current(ev.style, ev.task_id)
        return life.removed

    async def _current(self, style: str, task_id: str) -> Doc | None:
        """The task's document as stored now, or the one its delete removed; None when
        neither is known. Shared by every subscriber until the task's next event."""
        key = (style, task_id)
        pending = self._documents.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            _keep(self._documents, key, pending)
            try:
                pending.set_result(await self._load(style, task_id))
            except BaseException as exc:
                if self._documents.get(key) is pending:
                    del self._documents[key]
                pending.set_exception(exc)
                pending.exception()  # retrieved here: the waiters below see it raised
                raise
        return await asyncio.shield(pending)

    async def _load(self, style: str, task_id: str) -> Doc | None:
        task = await self._store.get(style, task_id)
        if task is not None:
            return judged(style, task.doc)
        last = await self._store.audit(style=style, task_id=task_id, limit=1)
        return judged(style, deleted_document(last[0])) if last else None

    async def _life(self, style: str, task_id: str, seq: int) -> Life:
        """The life event *seq* of the task belongs to."""
        key = (style, task_id)
        life = self._lives.get(key)
        if life is not None and life.holds(seq):
            self._lives.move_to_end(key)
            return life
        heard = self._deletes
        end = await self._store.audit(style=style, task_id=task_id, after=seq - 1, action="deleted",
                                      newest_first=False, limit=1)
        life = Life(seq, end[0].seq, judged(style, deleted_document(end[0]))) if end else Life(seq, None, None)
        if life.ended is not None or heard == self._deletes:
            _keep(self._lives, key, life)
        return life

    def published(self, c: Change) -> None:
        """*c* was published: the task's document kept is an older version's; a delete
        leaves the document it removed, and ends the life that had no end."""
        key = (c.style, c.task_id)
        self._documents.pop(key, None)
        gone = judged(c.style, deleted_document(c))
        if gone is None:
            return
        done = asyncio.get_running_loop().create_future()
        done.set_result(gone)
        _keep(self._documents, key, done)
        self._deletes += 1
        life = self._lives.get(key)
        if life is not None and life.ended is None:
            del self._lives[key]

    def forget(self) -> None:
        """The feed stopped hearing changes (nobody subscribed) or its trail was replaced."""
        self._deletes += 1
        self._documents.clear()
        self._lives.clear()
