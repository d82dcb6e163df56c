"""What one gateway hears of the others on PostgreSQL: LISTEN/NOTIFY, one session a store.

Every account change a store commits (a user added, disabled, deleted or re-passworded, a
token added or revoked, an OAuth client changed) sends ``NOTIFY taskgate_accounts`` in its
transaction, which PostgreSQL delivers to every listening session when it commits. Each
store listens on a connection of its own and empties its token cache when one arrives, so a
token revoked through one gateway is refused by every other as soon as the notification
lands (milliseconds), not after :data:`.accounts.TOKEN_CACHE_SECONDS`. The same session
listens to the failed sign-ins every gateway counts (:mod:`.signins`), and to every batch of
task writes any gateway commits (:data:`CHANGES`, sent by :mod:`.writes` with the sending
store's name, so that a store passes on only the others'): the event feed and the webhook
workers read the trail at once instead of at their next poll.

The listening session can be lost (the database restarted, a network cut): the listener
notices (asyncpg's termination callback, and a look every :data:`CHECK_SECONDS` besides),
connects and listens again with a growing pause between tries (:data:`BACKOFF_SECONDS`), and
tells every channel's handler (with None) once it listens again, since whatever was sent
while it was away is lost: the token cache is emptied, the open sign-in windows read. While
it is away the cache's age is the bound that holds. It must not decide what is cached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg

__all__ = ["BACKOFF_SECONDS", "CHANGES", "CHANNEL", "CHECK_SECONDS", "Listener", "NOTIFY_SQL"]

#: the channel of account changes
CHANNEL = "taskgate_accounts"
#: the channel of committed task writes (the payload: the committing store's name)
CHANGES = "taskgate_changes"
#: what a transaction that changes accounts runs, with the changing store's name (delivered
#: at its commit, once per transaction; the store that made the change already forgot)
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', $1)"
#: the pause after the first failed try to listen again, and the longest pause between tries
BACKOFF_SECONDS = (0.05, 2.0)
#: how often the session is looked at when no termination was reported
CHECK_SECONDS = 1.0


#: what a channel's notifications are handed to: the payload, or None after a lost session
Handler = Callable[[str | None], None]


class Listener:
    """A session of its own that hands every notification of each channel of *handlers* to
    that channel's handler, and None to every handler each time it listens again after
    losing its session."""

    def __init__(self, url: str, conn: asyncpg.Connection, handlers: dict[str, Handler]) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = conn
        self._handlers = handlers
        self._lost = asyncio.Event()
        self._closed = False
        #: how many sessions have listened, the first included (tests and diagnostics)
        self.sessions = 1
        conn.add_termination_listener(self._on_terminated)
        self._watch = asyncio.get_running_loop().create_task(self._keep_listening())

    @classmethod
    async def start(cls, url: str, handlers: dict[str, Handler]) -> Listener:
        """Listen on a new session; raises what connecting raises (the store cannot open)."""
        return cls(url, await cls._listen(url, handlers), handlers)

    @staticmethod
    async def _listen(url: str, handlers: dict[str, Handler]) -> asyncpg.Connection:
        conn = await asyncpg.connect(url)
        try:
            for channel, handler in handlers.items():
                await conn.add_listener(channel, _deliver(handler))
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        return conn

    def _on_terminated(self, *_args: Any) -> None:
        self._lost.set()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def _keep_listening(self) -> None:
        while not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lost.wait(), CHECK_SECONDS)
            if self._closed or self.listening:
                self._lost.clear()
                continue
            self._conn = None
            pause, longest = BACKOFF_SECONDS
            while not self._closed:
                try:
                    conn = await self._listen(self._url, self._handlers)
                except Exception:  # refused, starting up, shutting down, timed out: try again later
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, longest)
                    continue
                if self._closed:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    return
                self._lost.clear()
                conn.add_termination_listener(self._on_terminated)
                self._conn = conn
                self.sessions += 1
                for handler in self._handlers.values():  # what was sent while no session listened is lost
                    handler(None)
                break

    async def close(self) -> None:
        self._closed = True
        self._lost.set()
        self._watch.cancel()
        with contextlib.suppress(BaseException):
            await self._watch
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()


def _deliver(handler: Handler) -> Callable[[asyncpg.Connection, int, str, str], None]:
    """asyncpg's listener callback (connection, pid, channel, payload) for *handler*."""
    def deliver(_conn: asyncpg.Connection, _pid: int, _channel: str, payload: str) -> None:
        handler(payload)
    return deliver
