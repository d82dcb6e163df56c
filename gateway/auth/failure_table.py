"""Failed sign-ins per client key, kept where the limiter counts them: in this process's
memory (:class:`MemoryFailures`), in a file every worker of ``serve --workers`` maps
(:class:`SharedFailures`), so that failures on any worker add up, or, on PostgreSQL, in the
database every gateway shares (:class:`DatabaseFailures`).

Both keep, per key, a window's end (``time.monotonic()``, one clock for every process of
a machine) and the failures in it, forget a window that ended, and remember a bounded
number of keys. The shared table is a fixed array of slots in a memory-mapped file,
found by a 128-bit hash of the key with a short linear probe; each change holds an
``flock`` on the file for the few microseconds of its read and write, so that two
workers' failures never overwrite each other. When every slot of a probe is taken, the
one whose window ends first is forgotten (the memory table forgets the least recently
failed key).

The limiter asks synchronously, so the database table is this process's memory kept current:
a failure counts here at once, and in the database in the background (an upsert), whose
answer (the key's failures from every gateway) is merged in; other gateways' failures arrive
with their notifications. Windows are named by their end on the database's clock, so a
stale answer never overwrites a newer window; the time a window has left is the database's,
counted from when it was heard. While the database is unreachable the count is this
process's. This module decides nothing: the limits are :mod:`.limiter`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["DatabaseFailures", "FailureTable", "MemoryFailures", "SharedFailures", "SigninCounts", "PROBE"]

#: slots a key may land in, from the one its hash names
PROBE = 16
_SLOT = struct.Struct("<16sdI4x")  # key hash, window end, failures


class FailureTable(Protocol):
    def window(self, key: str, now: float) -> tuple[float, int]:
        """(end, failures) of *key*'s current window, or (0, 0); an ended window is forgotten."""
        ...

    def add(self, key: str, now: float, window: float) -> None:
        """One more failure of *key*: a new window from *now* when its last one ended."""
        ...

    def __len__(self) -> int:
        ...


class MemoryFailures:
    """The table of one process: a dict in order of last failure."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._failures: dict[str, tuple[float, int]] = {}

    def window(self, key: str, now: float) -> tuple[float, int]:
        entry = self._failures.get(key)
        if entry is not None and now >= entry[0]:
            del self._failures[key]
            entry = None
        return entry or (0.0, 0)

    def add(self, key: str, now: float, window: float) -> None:
        end, count = self._failures.pop(key, (0.0, 0))
        if now >= end:
            end, count = now + window, 0
        self._failures[key] = (end, count + 1)  # re-inserted: the dict stays in order of last failure
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def __len__(self) -> int:
        return len(self._failures)

    def clear(self) -> None:
        self._failures.clear()


class SharedFailures:
    """The table of every worker: slots in the file at *path* (made at the first open,
    sized for *max_keys*; every worker opens it with the same setting)."""

    def __init__(self, path: str | Path, max_keys: int) -> None:
        self.slots = 1 << max(PROBE, 2 * max_keys - 1).bit_length()
        size = self.slots * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size != size:
                    os.ftruncate(self._fd, size)  # zeros: every slot empty
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(self._fd, size)
        except BaseException:
            os.close(self._fd)
            raise

    def _slots(self, key: str) -> tuple[bytes, list[int]]:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        first = int.from_bytes(digest[:8], "little") & (self.slots - 1)
        return digest, [((first + i) & (self.slots - 1)) * _SLOT.size for i in range(PROBE)]

    def _find(self, digest: bytes, offsets: list[int]) -> tuple[int | None, float, int]:
        for offset in offsets:
            found, end, count = _SLOT.unpack_from(self._map, offset)
            if found == digest:
                return offset, end, count
        return None, 0.0, 0

    def window(self, key: str, now: float) -> tuple[float, int]:
        digest, offsets = self._slots(key)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            offset, end, count = self._find(digest, offsets)
            if offset is None:
                return 0.0, 0
            if now >= end:
                _SLOT.pack_into(self._map, offset, bytes(16), 0.0, 0)
                return 0.0, 0
            return end, count
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def add(self, key: str, now: float, window: float) -> None:
        digest, offsets = self._slots(key)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            offset, end, count = self._find(digest, offsets)
            if offset is None:
                # a free slot (never used, or its window ended), else the one that ends first
                ends = [(_SLOT.unpack_from(self._map, o)[1], o) for o in offsets]
                free = [o for e, o in ends if e <= now]
                offset = free[0] if free else min(ends)[1]
                end = 0.0
            if now >= end:
                end, count = now + window, 0
            _SLOT.pack_into(self._map, offset, digest, end, count + 1)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __len__(self) -> int:
        """Keys whose slot is taken (their windows may have ended)."""
        return sum(1 for o in range(0, len(self._map), _SLOT.size) if self._map[o:o + 16] != bytes(16))

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


#: one window as the database has it: key hash, failures, seconds left, its end (its name)
Window = tuple[str, int, float, int]


class SigninCounts(Protocol):
    """The store's shared failures (PostgreSQL's ``signins``)."""

    async def failed(self, key_hash: str, window_seconds: float) -> Window: ...

    def subscribe(self, heard: Callable[[str, int, float, int], None], limit: int) -> None: ...


class DatabaseFailures:
    """The table of every gateway on one database: this process's memory of the windows,
    kept current by the answers to its own counts and by other gateways' notifications."""

    def __init__(self, counts: SigninCounts, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self._counts = counts
        self._clock = clock
        # key hash -> (end on this process's clock, failures, the window's name or None while only counted here)
        self._windows: dict[str, tuple[float, int, int | None]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        counts.subscribe(self._heard, max_keys)

    @staticmethod
    def _hash(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def window(self, key: str, now: float) -> tuple[float, int]:
        found = self._windows.get(self._hash(key))
        if found is None:
            return 0.0, 0
        if now >= found[0]:
            del self._windows[self._hash(key)]
            return 0.0, 0
        return found[0], found[1]

    def add(self, key: str, now: float, window: float) -> None:
        digest = self._hash(key)
        end, count, name = self._windows.pop(digest, (0.0, 0, None))
        if now >= end:
            end, count, name = now + window, 0, None
        self._keep(digest, (end, count + 1, name))
        task = asyncio.get_running_loop().create_task(self._count(digest, window))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _count(self, digest: str, window: float) -> None:
        with contextlib.suppress(Exception):  # the database is away: this process's count stands
            self._heard(*await self._counts.failed(digest, window))

    def _heard(self, digest: str, failures: int, left: float, name: int) -> None:
        """The window *name* of *digest* as the database has it (a count here, or elsewhere)."""
        now = self._clock()
        found = self._windows.get(digest)
        if found is not None and now < found[0] and found[2] is not None and found[2] > name:
            return  # an older window's news
        if found is not None and now < found[0] and found[2] in (None, name):
            failures = max(failures, found[1])  # counts here whose answers are still on their way
        if left > 0:
            self._windows.pop(digest, None)
            self._keep(digest, (now + left, failures, name))

    def _keep(self, digest: str, entry: tuple[float, int, int | None]) -> None:
        self._windows[digest] = entry  # in order of last change; the oldest is forgotten first
        while len(self._windows) > self.max_keys:
            del self._windows[next(iter(self._windows))]

    def __len__(self) -> int:
        return len(self._windows)

    async def close(self) -> None:
        """Let the counts under way finish (the store closes after)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=5)
