"""Time in one format: UTC, millisecond precision, ``YYYY-MM-DDTHH:MM:SS.sssZ``.

Every timestamp taskgate writes (documents, audit rows, tokens) comes from here, so the
format the vendors' clients parse is decided once. Rules that depend on the time (a
scheduled task starting, an overdue one expiring) ask a :class:`Clock` object instead
of the module functions, so that tests can hold time still and move it by hand
(:class:`ManualClock`) rather than sleep. This module keeps no clock of its own: whoever
needs one is handed it (e.g. in the application's state).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["utc_now", "iso_utc", "now_iso", "now_iso_micro", "parse_iso", "Clock", "ManualClock"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """*moment* as ``2024-05-17T19:33:16.470Z``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    # not strftime("%Y"): it does not pad years before 1000, which parse_iso then refuses
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _stamp(now: float | None, scale: int, width: int) -> str:
    if now is None:
        now = time.time()
    second = int(now // 1)
    if second != _second[0]:  # the date and time of day are formatted once per second
        _second[:] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int((now - second) * scale):0{width}d}Z"


def now_iso(now: float | None = None) -> str:
    """The time (*now* seconds since the epoch, else the current time) in the one format."""
    return _stamp(now, 1000, 3)


def now_iso_micro(now: float | None = None) -> str:
    """As :func:`now_iso`, to the microsecond (log lines)."""
    return _stamp(now, 1_000_000, 6)


def parse_iso(text: str) -> datetime:
    """Parse RFC 3339 / ISO 8601 (``Z``, offsets, space separator, any fraction).

    Raises ValueError. A value without an offset is taken as UTC.
    """
    if not isinstance(text, str) or not 16 <= len(text) <= 40 or text[10] not in "Tt ":
        raise ValueError("not a date-time")  # a date without a time is not RFC 3339
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Clock:
    """The system's UTC time; the base of every clock that rules are given."""

    def now(self) -> datetime:
        return utc_now()

    def now_iso(self) -> str:
        return now_iso()


class ManualClock(Clock):
    """A clock that stands still until told to move: time rules become testable without sleeping."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def now_iso(self) -> str:
        return iso_utc(self._now)

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("a ManualClock needs an aware datetime")
        self._now = moment.astimezone(UTC)

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` (e.g. ``advance(hours=2)``); returns the new time."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError("a ManualClock only moves forward")
        self._now += step
        return self._now
