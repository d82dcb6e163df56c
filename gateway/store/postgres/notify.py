"""Cache invalidation across gateways on PostgreSQL: LISTEN/NOTIFY on one channel.

Every account change a store commits (a user added, disabled, deleted or re-passworded, a
token added or revoked, an OAuth client changed) sends ``NOTIFY taskgate_accounts`` in its
transaction, which PostgreSQL delivers to every listening session when it commits. Each
store listens on a connection of its own and empties its token cache when one arrives, so
a token revoked through one gateway is refused by every other as soon as the notification
lands (milliseconds), not after :data:`.accounts.TOKEN_CACHE_SECONDS`. That bound still
holds when notifications stop (the listening session lost with a database restart, until
the store is reopened): the cache's age is the fallback. It must not decide what is cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg

__all__ = ["CHANNEL", "Listener", "NOTIFY_SQL"]

#: the channel of account changes
CHANNEL = "taskgate_accounts"
#: what a transaction that changes accounts runs (delivered at its commit, once per transaction)
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', '')"


class Listener:
    """A session of its own that calls *heard* on every notification of :data:`CHANNEL`."""

    def __init__(self, conn: asyncpg.Connection, heard: Callable[[], None]) -> None:
        self._conn = conn
        self._heard = heard

    @classmethod
    async def start(cls, url: str, heard: Callable[[], None]) -> Listener:
        conn = await asyncpg.connect(url)
        listener = cls(conn, heard)
        await conn.add_listener(CHANNEL, listener._on_notify)
        return listener

    def _on_notify(self, *_args: Any) -> None:
        self._heard()

    @property
    def listening(self) -> bool:
        return not self._conn.is_closed()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._conn.remove_listener(CHANNEL, self._on_notify)
        with contextlib.suppress(Exception):
            await self._conn.close()
