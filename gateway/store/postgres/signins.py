"""Failed sign-ins shared by every gateway on one PostgreSQL database.

One row per client key's hash (the limiter hashes the key; no address is stored): the end of
its window, on the database's clock, and the failures in it. :meth:`Signins.failed` counts
one more in one statement (an upsert that starts a new window when the last one ended),
answers the row's count, the seconds its window has left (so that no gateway's clock is
compared with another's) and the window's end in microseconds (which names the window), and
sends the three to every gateway with ``NOTIFY taskgate_signins`` at its commit. A gateway
hears them on its listening session (:mod:`.notify`) and hands them to whoever subscribed
(:meth:`Signins.subscribe`), which also reads every window still open, as does each return
of a lost listening session. Rows whose window ended are deleted now and then. It must not
decide what a limit is: that is the limiter's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from gateway.store.postgres.connection import Database

__all__ = ["CHANNEL", "PURGE_EVERY", "Signins"]

#: the channel of counted failures: payload ``<key hash> <failures> <seconds left> <window>``
CHANNEL = "taskgate_signins"
#: ended windows are deleted every this many failures counted through one store
PURGE_EVERY = 1000

_FAILED = f"""
WITH counted AS (
    INSERT INTO signin_failures AS f (key_hash, window_end, failures)
    VALUES ($1, clock_timestamp() + make_interval(secs => $2), 1)
    ON CONFLICT (key_hash) DO UPDATE SET
        window_end = CASE WHEN f.window_end <= clock_timestamp() THEN EXCLUDED.window_end ELSE f.window_end END,
        failures = CASE WHEN f.window_end <= clock_timestamp() THEN 1 ELSE f.failures + 1 END
    RETURNING f.key_hash, f.failures, extract(epoch FROM f.window_end - clock_timestamp())::float8 AS left_s,
              (extract(epoch FROM f.window_end) * 1000000)::bigint AS window_us
)
SELECT failures, left_s, window_us,
       pg_notify('{CHANNEL}', key_hash || ' ' || failures || ' ' || left_s || ' ' || window_us) FROM counted
"""
_OPEN = """
SELECT key_hash, failures, extract(epoch FROM window_end - clock_timestamp())::float8,
       (extract(epoch FROM window_end) * 1000000)::bigint FROM signin_failures
WHERE window_end > clock_timestamp() ORDER BY window_end DESC LIMIT $1
"""

#: one window: a key's hash, its failures, the seconds it has left, its end (microseconds, its name)
Window = tuple[str, int, float, int]
#: what a subscriber is handed: one window
Heard = Callable[[str, int, float, int], None]


class Signins:
    """The shared failures on *db*."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._subscribers: list[tuple[Heard, int]] = []
        self._counted = 0
        self._reading: asyncio.Task[None] | None = None

    async def failed(self, key_hash: str, window_seconds: float) -> Window:
        """One more failure of *key_hash*, and its window as it now is."""
        (failures, left, window, _), = await self._db.fetch(_FAILED, key_hash, float(window_seconds))
        self._counted += 1
        if self._counted % PURGE_EVERY == 0:
            await self._db.fetch("DELETE FROM signin_failures WHERE window_end < clock_timestamp()")
        return key_hash, int(failures), float(left), int(window)

    async def open_windows(self, limit: int) -> list[Window]:
        """The *limit* windows still open that end last."""
        return [(k, int(n), float(s), int(w)) for k, n, s, w in await self._db.fetch(_OPEN, limit)]

    def subscribe(self, heard: Heard, limit: int) -> None:
        """Hand *heard* the *limit* windows still open that end last (read in the background),
        then every failure any gateway counts, and the open windows again each time the
        listening session is back after a loss."""
        self._subscribers.append((heard, limit))
        self.heard(None)

    def heard(self, payload: str | None) -> None:
        """A notification on :data:`CHANNEL`; None when the listening session is back."""
        if payload is None:
            if self._subscribers and (self._reading is None or self._reading.done()):
                self._reading = asyncio.get_running_loop().create_task(self._read_again())
            return
        try:
            key_hash, failures, left, window = payload.split(" ")
            found = (key_hash, int(failures), float(left), int(window))
        except ValueError:
            return  # not ours
        for subscriber, _limit in self._subscribers:
            subscriber(*found)

    async def _read_again(self) -> None:
        with contextlib.suppress(Exception):  # the database went away again: the next return reads
            for subscriber, limit in self._subscribers:
                for found in await self.open_windows(limit):
                    subscriber(*found)

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(BaseException):
                await self._reading
