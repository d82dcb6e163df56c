"""A test namespace's clock: the system's time, or frozen, set or advanced by a test.

A :class:`NamespaceClock` is a :class:`~gateway.clock.Clock`, so it goes wherever rules
take one: the namespace's store stamps writes with it (``created``, ``modified``, audit
``at``), the styles' handlers read it for the documents' own dates, token expiry checks it,
and webMethods' expiry and schedule rules run on it. Running, it is the system's time plus
an offset; frozen, it stands still until set or advanced. It does no I/O and knows nothing
of HTTP or of namespaces.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.clock import Clock, iso_utc, utc_now

__all__ = ["NamespaceClock"]


class NamespaceClock(Clock):
    """The system's time shifted by an offset, or frozen at one moment."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._frozen: datetime | None = None

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

    def describe(self) -> dict[str, Any]:
        return {"now": self.now_iso(), "frozen": self.frozen}
