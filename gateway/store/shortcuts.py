"""The store contract's one-task shortcuts, written once for every backend.

``create``, ``put``, ``update`` and ``delete`` are each one :meth:`write` with one step and
the right expectation; a backend implements ``write`` and inherits these, so that the
backends cannot come to disagree on what a shortcut means.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.model import Doc, Expect, Mutate, Step, Task


class WriteShortcuts:
    """Mixin of a store: the shortcuts over its ``write``."""

    async def write(self, style: str, task_id: str, steps: Sequence[Step], *, request_id: str,
                    expect: Expect = Expect.PRESENT, if_match: frozenset[int] | None = None,
                    unmodified_since: datetime | None = None, created: str | None = None) -> Task | None:
        raise NotImplementedError  # each backend's own

    async def create(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        return await self._store_doc(style, task_id, doc, actor, request_id, Expect.ABSENT)

    async def put(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        return await self._store_doc(style, task_id, doc, actor, request_id, Expect.ANY)

    async def _store_doc(self, style: str, task_id: str, doc: Doc, actor: str, request_id: str,
                         expect: Expect) -> Task:
        task = await self.write(style, task_id, [(actor, lambda _old: doc)], request_id=request_id, expect=expect)
        assert task is not None
        return task

    async def update(self, style: str, task_id: str, mutate: Mutate, *, actor: str,
                     request_id: str, if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> Task:
        task = await self.write(style, task_id, [(actor, mutate)], request_id=request_id, if_match=if_match,
                                unmodified_since=unmodified_since)
        assert task is not None
        return task

    async def delete(self, style: str, task_id: str, *, actor: str, request_id: str,
                     if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> None:
        await self.write(style, task_id, [(actor, lambda _old: None)], request_id=request_id, if_match=if_match,
                         unmodified_since=unmodified_since)
