"""Helpers of the store's tests: reading a file behind the store's back, a mutation, a poll."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path


def rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """The rows of *sql* on a connection of its own to the file at *path*."""
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def bump(field: str):
    """A mutation adding one to *field*."""
    def mutate(old):
        return {**old, field: old[field] + 1}
    return mutate


async def until(condition: Callable[[], bool]) -> None:
    """Return once *condition* holds, or after about five seconds (the caller asserts it)."""
    for _ in range(500):  # the read-ahead threads read soon after the loop's turn, not before the answer
        if condition():
            return
        await asyncio.sleep(0.01)
