"""Leases across gateways on PostgreSQL: session advisory locks, one connection each.

:meth:`Leases.hold` is asked again and again by the work that must run once per service
(the webMethods sweeper, the webhook dispatcher): the first ask starts taking the lock in
the background and answers False; a later ask answers True once the lock is held. Each
lease holds its own connection (never a pooled one), so the lock lives exactly as long
as that session: when the gateway dies, however it dies, the server ends the session and
another gateway's next ask takes the lease over. It must not decide what the lease is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re

import asyncpg

__all__ = ["Leases", "lease_key"]


def lease_key(name: str) -> int:
    """The advisory lock key of lease *name*: a stable 63-bit number from its name."""
    return int.from_bytes(hashlib.sha256(f"taskgate-lease:{name}".encode()).digest()[:8], "big") >> 1


class Leases:
    """The leases this store holds or is taking, on the database at *url*."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._held: dict[str, asyncpg.Connection] = {}
        self._taking: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def hold(self, name: str) -> bool:
        if self._closed or not re.fullmatch(r"[a-z0-9-]{1,64}", name):
            return False
        conn = self._held.get(name)
        if conn is not None:
            if not conn.is_closed():
                return True
            del self._held[name]  # the session ended (the database restarted): take it again
        if name not in self._taking:
            try:
                self._taking[name] = asyncio.get_running_loop().create_task(self._take(name))
            except RuntimeError:  # no loop: nobody could use the lease anyway
                return False
        return False

    async def _take(self, name: str) -> None:
        try:
            conn = await asyncpg.connect(self._url)
        except Exception:
            self._taking.pop(name, None)
            return
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", lease_key(name))
        except Exception:
            got = False
        if got and not self._closed:
            self._held[name] = conn
        else:
            with contextlib.suppress(Exception):
                await conn.close()
        self._taking.pop(name, None)

    async def close(self) -> None:
        """Let every lease go (the sessions end, and with them the locks)."""
        self._closed = True
        taking = list(self._taking.values())
        if taking:  # a connection cancelled halfway may leave its socket open: let each finish (it lets go)
            _done, late = await asyncio.wait(taking, timeout=5)
            for task in late:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        for conn in self._held.values():
            with contextlib.suppress(Exception):
                await conn.close()
        self._held.clear()
