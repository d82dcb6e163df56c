"""Waiting in tests for what another task, thread or process does: polled, with a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until_true(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    """Return once *predicate* holds; AssertionError after *seconds* (generous by default,
    for a busy machine: a bound on a hang, not a timing)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.01)
