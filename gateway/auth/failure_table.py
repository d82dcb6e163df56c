"""Failed sign-ins per client key, kept where the limiter counts them: in this process's
memory (:class:`MemoryFailures`), or in a file every worker of ``serve --workers`` maps
(:class:`SharedFailures`), so that failures on any worker add up.

Both keep, per key, a window's end (``time.monotonic()``, one clock for every process of
a machine) and the failures in it, forget a window that ended, and remember a bounded
number of keys. The shared table is a fixed array of slots in a memory-mapped file,
found by a 128-bit hash of the key with a short linear probe; each change holds an
``flock`` on the file for the few microseconds of its read and write, so that two
workers' failures never overwrite each other. When every slot of a probe is taken, the
one whose window ends first is forgotten (the memory table forgets the least recently
failed key). This module decides nothing: the limits are :mod:`.limiter`'s.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from pathlib import Path
from typing import Protocol

__all__ = ["FailureTable", "MemoryFailures", "SharedFailures", "PROBE"]

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
