"""``taskgate events tail``: the change feed followed in a terminal, one line per event.

It reads the audit trail of the database directly, as the other commands do, rather than
the HTTP stream: it needs no server, no token and no network, sees every change whichever
process made it (the trail is the feed's one source), and is what an operator on the
machine runs. It reads the rows after the last one printed every ``events.poll_seconds``
(:func:`follow`), so it holds no more than one page in memory however long it runs.

This module owns the following and the line's format; it must not hold SQL (it reads
through the store contract) nor parse arguments (:mod:`gateway.cli` does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TextIO

from gateway.events.feed import READ_PAGE, event_json
from gateway.limits import dumps
from gateway.model import Change, Store

__all__ = ["follow", "line", "tail", "SUMMARY_CHARS"]

#: the longest summary of a patch a line shows (the whole event is in --json)
SUMMARY_CHARS = 160


async def follow(store: Store, since: int | None, *, poll_seconds: float,
                 page: int = READ_PAGE) -> AsyncIterator[Change]:
    """The audit rows after *since* (None: after the newest), in order, then each new one
    as it commits, found every *poll_seconds*."""
    if since is None:
        newest = await store.audit(limit=1)
        since = newest[0].seq if newest else 0
    cursor = since
    while True:
        rows = await store.audit(after=cursor, newest_first=False, limit=page)
        for c in rows:
            cursor = c.seq
            yield c
        if len(rows) < page:
            await asyncio.sleep(poll_seconds)


def _value(value: Any) -> str:
    return dumps(value)


def summary(patch: list[dict[str, Any]]) -> str:
    """The patch in short: ``/path=value`` for what it sets, ``-/path`` for what it removes."""
    parts = [f"-{op['path']}" if op.get("op") == "remove" else f"{op.get('path')}={_value(op.get('value'))}"
             for op in patch]
    text = " ".join(parts)
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1] + "…"


def line(c: Change) -> str:
    """One event as one line: id, time, style, task, version, action, actor, the patch in short."""
    return f"{c.seq} {c.at} {c.style} {c.task_id} v{c.version} {c.action} {c.actor} {summary(c.patch)}".rstrip()


async def tail(store: Store, out: TextIO, *, since: int | None, poll_seconds: float, styles: frozenset[str],
               task_id: str | None, as_json: bool) -> None:
    """Print each event (of *styles*, empty: all; of *task_id*) as it commits, until interrupted."""
    async for c in follow(store, since, poll_seconds=poll_seconds):
        if (styles and c.style not in styles) or (task_id is not None and c.task_id != task_id):
            continue
        out.write((dumps(event_json(c)) if as_json else line(c)) + "\n")
        out.flush()
