"""Dates as Integration Server writes and reads them, for the webMethods style.

Stored dates are taskgate's canonical ``YYYY-MM-DDTHH:MM:SS.sssZ`` (UTC), so SQL can
compare and sort them as text. This module turns them into what an IS client expects:
``Date.toString()`` (``EEE MMM dd HH:mm:ss zzz yyyy``) by default, or what
``jsonDateEncoding`` asks for (``long``, ``ISO8601`` or a ``SimpleDateFormat`` pattern),
always in UTC. It also reads the three forms clients send (ISO 8601, epoch milliseconds,
``Date.toString()``).

Pure functions only: no I/O, no HTTP, nothing from the styles' modules (it sits under
``schemas/`` because the schemas read dates with it, and schemas import nothing from the
HTTP layer). Errors are ``ValueError`` with a readable message; callers turn them into
the style's 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from gateway.clock import iso_utc, parse_iso

__all__ = ["DEFAULT_PATTERN", "DateEncoder", "date_encoder", "parse_wm_date", "format_pattern"]

#: ``java.util.Date.toString()``, what IS emits unless told otherwise
DEFAULT_PATTERN = "EEE MMM dd HH:mm:ss zzz yyyy"
#: IS's ``ISO8601`` encoding (``SimpleDateFormat`` letters)
ISO8601_PATTERN = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
MAX_PATTERN_LENGTH = 100

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
#: zone abbreviations Java prints that have one unambiguous fixed offset, in hours
_ZONES = {"UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 1, "CET": 1, "CEST": 2, "EET": 2,
          "EEST": 3, "BST": 1, "MSK": 3, "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AEST": 10, "AEDT": 11,
          "NZST": 12, "NZDT": 13, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
          "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10}
_TO_STRING = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) "
    r"(\d\d):(\d\d):(\d\d) ([A-Za-z]{1,5}|GMT[+-]\d\d:\d\d) (\d{4})")
_EPOCH_MS = re.compile(r"-?\d{1,15}")
_DATE_ONLY = re.compile(r"\d{4}-\d\d-\d\d")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- reading -----------------------------------------------------------------------------
def parse_wm_date(value: Any) -> str:
    """The canonical stored form of a date a client sent; ValueError when it is none of
    ISO 8601, epoch milliseconds (number or digits) or ``EEE MMM dd HH:mm:ss zzz yyyy``."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a date")
    if isinstance(value, int):
        return iso_utc(_from_epoch_ms(value))
    if not isinstance(value, str):
        raise ValueError("a date must be a string or epoch milliseconds")
    text = value.strip()
    if _EPOCH_MS.fullmatch(text):
        return iso_utc(_from_epoch_ms(int(text)))
    match = _TO_STRING.fullmatch(text)
    if match:
        return iso_utc(_from_to_string(match))
    if _DATE_ONLY.fullmatch(text):
        return iso_utc(datetime.fromisoformat(text).replace(tzinfo=UTC))
    try:
        return iso_utc(parse_iso(text))
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a date; use ISO 8601 (2024-05-17T19:33:16.470Z), epoch "
                         f"milliseconds, or {DEFAULT_PATTERN} (Fri May 17 19:33:16 UTC 2024)") from None


def _from_epoch_ms(ms: int) -> datetime:
    try:
        moment = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError(f"{ms} milliseconds is outside the years 1-9999") from None
    if not 1 <= moment.year <= 9999:
        raise ValueError(f"{ms} milliseconds is outside the years 1-9999")
    return moment


def _from_to_string(match: re.Match[str]) -> datetime:
    _day, month, day, hh, mm, ss, zone, year = match.groups()
    if zone.startswith("GMT") and len(zone) > 3:
        sign = 1 if zone[3] == "+" else -1
        offset = sign * timedelta(hours=int(zone[4:6]), minutes=int(zone[7:9]))
    elif zone.upper() in _ZONES:
        offset = timedelta(hours=_ZONES[zone.upper()])
    else:
        raise ValueError(f"unknown or ambiguous time zone {zone!r}; use UTC, GMT+hh:mm or an ISO 8601 offset")
    month_no = [m[:3] for m in _MONTHS].index(month) + 1
    try:
        local = datetime(int(year), month_no, int(day), int(hh), int(mm), int(ss), tzinfo=timezone(offset))
        return local.astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"{match.group(0)!r} is not a date: {exc}") from None
    except OverflowError:  # in range locally, not in UTC (e.g. 23:00 EST on 31 Dec 9999)
        raise ValueError(f"{match.group(0)!r} is outside the years 1-9999 in UTC") from None


# -- writing -----------------------------------------------------------------------------
DateEncoder = Callable[[str], Any]


def date_encoder(encoding: str | None) -> DateEncoder:
    """The function that turns a stored date into what ``jsonDateEncoding`` asks for.

    ``None``/empty → ``Date.toString()``; ``long`` → epoch milliseconds (a JSON number);
    ``ISO8601`` → ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``; anything else is a ``SimpleDateFormat``
    pattern. ValueError when the pattern uses letters this implementation does not know.
    """
    if not encoding:
        return lambda stored: format_pattern(_stored(stored), DEFAULT_PATTERN)
    if encoding.lower() == "long":
        return lambda stored: (_stored(stored) - _EPOCH) // timedelta(milliseconds=1)
    pattern = ISO8601_PATTERN if encoding.lower() == "iso8601" else encoding
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"jsonDateEncoding is longer than {MAX_PATTERN_LENGTH} characters")
    format_pattern(_EPOCH, pattern)  # refuse a bad pattern before any output is made
    return lambda stored: format_pattern(_stored(stored), pattern)


def _stored(text: str) -> datetime:
    return parse_iso(text)


def _tokens(pattern: str) -> list[tuple[str, int] | str]:
    """``SimpleDateFormat`` tokens: (letter, count) for fields, plain strings for literals."""
    out: list[tuple[str, int] | str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            if pattern[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            end = pattern.find("'", i + 1)
            while end != -1 and pattern[end + 1:end + 2] == "'":  # '' inside quotes is one quote
                end = pattern.find("'", end + 2)
            if end == -1:
                raise ValueError(f"jsonDateEncoding {pattern!r} has an unterminated quote")
            out.append(pattern[i + 1:end].replace("''", "'"))
            i = end + 1
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            if ch not in _FIELDS:
                raise ValueError(f"jsonDateEncoding {pattern!r}: pattern letter {ch!r} is not supported; "
                                 f"use long, ISO8601, or the letters {''.join(sorted(_FIELDS))}")
            out.append((ch, j - i))
            i = j
        else:
            out.append(ch)
            i += 1
    return out


def _num(value: int, count: int) -> str:
    return str(value).zfill(count)


def _year(m: datetime, n: int) -> str:
    return _num(m.year % 100, 2) if n == 2 else _num(m.year, n)


def _month(m: datetime, n: int) -> str:
    return _MONTHS[m.month - 1] if n >= 4 else _MONTHS[m.month - 1][:3] if n == 3 else _num(m.month, n)


def _hour12(m: datetime, n: int, *, zero_based: bool) -> str:
    h = m.hour % 12
    return _num(h if zero_based or h else 12, n)


_FIELDS: dict[str, Callable[[datetime, int], str]] = {
    "G": lambda m, n: "AD",
    "y": _year,
    "Y": _year,
    "M": _month,
    "L": _month,
    "d": lambda m, n: _num(m.day, n),
    "D": lambda m, n: _num(m.timetuple().tm_yday, n),
    "E": lambda m, n: _DAYS[m.weekday()] if n >= 4 else _DAYS[m.weekday()][:3],
    "u": lambda m, n: _num(m.isoweekday(), n),
    "a": lambda m, n: "AM" if m.hour < 12 else "PM",
    "H": lambda m, n: _num(m.hour, n),
    "k": lambda m, n: _num(m.hour or 24, n),
    "K": lambda m, n: _hour12(m, n, zero_based=True),
    "h": lambda m, n: _hour12(m, n, zero_based=False),
    "m": lambda m, n: _num(m.minute, n),
    "s": lambda m, n: _num(m.second, n),
    "S": lambda m, n: _num(m.microsecond // 1000, n),
    "z": lambda m, n: "Coordinated Universal Time" if n >= 4 else "UTC",
    "Z": lambda m, n: "+0000",
    "X": lambda m, n: "Z",
}


def format_pattern(moment: datetime, pattern: str) -> str:
    """*moment* in UTC, written with a ``SimpleDateFormat`` *pattern*."""
    moment = moment.astimezone(UTC)
    return "".join(t if isinstance(t, str) else _FIELDS[t[0]](moment, t[1]) for t in _tokens(pattern))
