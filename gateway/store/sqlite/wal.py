"""Checkpoints beside the writer, and when the writer makes the WAL start over.

A checkpoint copies committed pages from the WAL into the database file. SQLite's
automatic checkpoint runs inside a commit, and when writes dirty pages all over a large
file it makes every few commits wait for thousands of scattered page writes; so it is off
(``wal_autocheckpoint = 0``) and checkpoints run here instead, on a connection of their
own in a worker thread. One starts after a commit when none is running and the last began
:data:`CHECKPOINT_SECONDS` ago.

Under a steady load a checkpoint never catches up completely, and the WAL is only
rewound from its start once a checkpoint has copied all of it. So once the WAL holds
:data:`WAL_RESTART_FRAMES` frames, passes run back to back until little is left
(:data:`REWIND_FRAMES`), and the writer then checkpoints that little itself before its
next transaction, which rewinds the WAL (:func:`after_pass` decides).

Owns the checkpointer's connection and the background pass; it must not touch the
writer's connection (the writer runs the rewinding checkpoint itself, see
:meth:`gateway.store.sqlite.write_connection.WriteConnection.begin`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from gateway.store.sqlite.log import report

__all__ = ["CHECKPOINT_SECONDS", "WAL_RESTART_FRAMES", "REWIND_FRAMES", "CheckpointStep", "after_pass",
           "Checkpoints"]

#: least time between the starts of two background checkpoints
CHECKPOINT_SECONDS = 1.0
#: WAL frames (pages) after which the writer makes the WAL start over (about 16 MiB)
WAL_RESTART_FRAMES = 4000
#: at most about this many frames are left for the writer to copy when it rewinds the WAL
REWIND_FRAMES = 200


class CheckpointStep(Enum):
    """What follows a background checkpoint pass."""

    DONE = "done"  # the WAL is short: nothing more until the next commit
    AGAIN = "again"  # another pass, copying what was committed while this one ran
    REWIND = "rewind"  # stop; the writer copies the few frames left and its next transaction rewinds the WAL


def after_pass(frames: int, work: int, small_before: bool) -> tuple[CheckpointStep, bool]:
    """What follows a pass that left the WAL at *frames* frames after copying *work* of
    them, and whether this pass was small (for the next call, as *small_before*).

    DONE while the WAL is shorter than WAL_RESTART_FRAMES; else AGAIN until two passes in
    a row found at most REWIND_FRAMES to copy, then REWIND. The writer's wait is then
    short, not a whole checkpoint (a pass syncs the database file only when it copied
    everything, so the first small pass may still sync all the passes before it). A WAL
    that reached four times WAL_RESTART_FRAMES without catching up is rewound all the same."""
    small = work <= REWIND_FRAMES
    if frames < WAL_RESTART_FRAMES:
        return CheckpointStep.DONE, small
    if (small and small_before) or frames >= 4 * WAL_RESTART_FRAMES:
        return CheckpointStep.REWIND, small
    return CheckpointStep.AGAIN, small


def checkpoint_pass(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: copies what no reader still needs, never waits for a lock.
    (busy, frames in the WAL, frames copied)."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return busy, frames, copied


class Checkpoints:
    """The background passes, and the flag that tells the writer to rewind the WAL."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn  # used by one worker thread at a time (_run)
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._rewind = False  # the writer checkpoints before its next transaction

    @classmethod
    def connect(cls, path: str | Path, synchronous: str, *, uri: bool = False) -> Checkpoints:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, uri=uri)
        try:
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")  # how it syncs the database file
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    def after_commit(self) -> None:
        """Start a background checkpoint unless one runs or began lately."""
        if (self._task is None or self._task.done()) and time.monotonic() - self._started >= CHECKPOINT_SECONDS:
            self._started = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="store-checkpoint")

    async def take_rewind(self) -> bool:
        """Whether the writer must rewind the WAL before its next transaction; when it must,
        the pass that asked has finished (one checkpoint at a time: the writer's would find
        it busy)."""
        rewind, self._rewind = self._rewind, False
        if rewind and self._task is not None:
            await self._task
        return rewind

    async def _run(self) -> None:
        copied, small_before = 0, False
        try:
            while True:
                _busy, frames, now_copied = await asyncio.to_thread(checkpoint_pass, self._conn)
                step, small_before = after_pass(frames, frames - copied, small_before)
                if step is CheckpointStep.DONE:
                    return
                if step is CheckpointStep.REWIND:
                    break
                copied = now_copied
        except Exception:  # the WAL only grows meanwhile; the writer's rewind still bounds it
            report("store.checkpoint_failed")
        self._rewind = True

    async def finish(self) -> None:
        """Wait for the pass that runs, if any."""
        if self._task is not None:
            await self._task

    def trace(self, callback: Callable[[str], None] | None) -> None:
        self._conn.set_trace_callback(callback)

    def close(self) -> None:
        self._conn.close()
