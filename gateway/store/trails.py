"""Each task's trail: the tasks and the audit rows, both read in (style, id) order, merged.

Pure: every backend reads its two tables in order and hands them here, so that the walk
``audit verify`` and ``taskgate copy`` see is the same whichever backend holds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from gateway.model import Change, Task

__all__ = ["merge_trails"]


async def merge_trails(tasks: AsyncIterable[Task], changes: AsyncIterable[Change]
                       ) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
    """(style, id, the stored task or None, its audit rows) for every key either holds, in
    key order; memory is one task's trail."""
    task_rows, change_rows = aiter(tasks), aiter(changes)
    task = await anext(task_rows, None)
    row = await anext(change_rows, None)
    while task is not None or row is not None:
        keys = [k for k in ((task.style, task.id) if task else None,
                            (row.style, row.task_id) if row else None) if k is not None]
        key = min(keys)
        stored = None
        if task is not None and (task.style, task.id) == key:
            stored, task = task, await anext(task_rows, None)
        trail: list[Change] = []
        while row is not None and (row.style, row.task_id) == key:
            trail.append(row)
            row = await anext(change_rows, None)
        yield key[0], key[1], stored, trail
