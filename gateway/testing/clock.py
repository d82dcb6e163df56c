"""A test namespace's clock: the system's time, or frozen, set or advanced by a test.

A :class:`NamespaceClock` is a :class:`~gateway.clock.Clock`, so it goes wherever rules
take one: the namespace's store stamps writes with it (``created``, ``modified``, audit
``at``), the styles' handlers read it for the documents' own dates, token expiry checks it
(:meth:`NamespaceClock.token_time`), and webMethods' expiry and schedule rules run on it.
Running, it is the system's time plus an offset; frozen, it stands still until set or
advanced. It does no I/O and knows nothing of HTTP or of namespaces.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.clock import Clock, iso_utc, utc_now

__all__ = ["NamespaceClock", "MAX_MINTED"]

#: tokens a clock remembers the minting of (the oldest forgotten first: such a token then
#: expires by this clock as one minted elsewhere does, never later than by the system's)
MAX_MINTED = 10_000


class NamespaceClock(Clock):
    """The system's time shifted by an offset, or frozen at one moment."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._frozen: datetime | None = None
        # token hash -> how far this clock stood from the system's when the token was minted
        self._minted: dict[str, float] = {}

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else utc_now() + self._offset

    def now_iso(self) -> str:
        return iso_utc(self.now())

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self) -> None:
        """Stand still at the present moment (of this clock)."""
        self._frozen = self.now()

    def unfreeze(self) -> None:
        """Run on from where it stands."""
        if self._frozen is not None:
            self._offset = self._frozen - utc_now()
            self._frozen = None

    def set(self, moment: datetime) -> None:
        """Jump to *moment* (an aware datetime; earlier than now is allowed)."""
        if moment.tzinfo is None:
            raise ValueError("the clock needs a time with an offset")
        if self._frozen is not None:
            self._frozen = moment
        else:
            self._offset = moment - utc_now()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only advances; set it to go back")
        step = timedelta(seconds=seconds)
        if self._frozen is not None:
            self._frozen += step
        else:
            self._offset += step

    def reset(self) -> None:
        """The system's time again, running."""
        self._offset, self._frozen = timedelta(0), None
        self._minted.clear()

    def _skew(self) -> float:
        return (self.now() - utc_now()).total_seconds()

    def minted(self, token_hash: str) -> None:
        """A token was just minted by this clock: its expiry, stored in the system's time
        (the server's own purge of expired tokens reads it), is counted on this clock."""
        if len(self._minted) >= MAX_MINTED:
            del self._minted[next(iter(self._minted))]
        self._minted[token_hash] = self._skew()

    def token_time(self, token_hash: str) -> float:
        """The unix time to compare the token's stored expiry with, for a request on this
        clock: the system's time moved by as much as this clock moved against it since the
        token was minted here (for any other token: since the system's time)."""
        return self.now().timestamp() - self._minted.get(token_hash, 0.0)

    def describe(self) -> dict[str, Any]:
        return {"now": self.now_iso(), "frozen": self.frozen}
