"""Time in one format: UTC, millisecond precision, ``YYYY-MM-DDTHH:MM:SS.sssZ``.

Every timestamp taskgate writes (documents, audit rows, tokens) comes from here, so the
format the vendors' clients parse is decided once.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utc_now", "iso_utc", "now_iso", "parse_iso"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """*moment* as ``2024-05-17T19:33:16.470Z``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso_utc(utc_now())


def parse_iso(text: str) -> datetime:
    """Parse RFC 3339 / ISO 8601 (``Z``, offsets, space separator, any fraction).

    Raises ValueError. A value without an offset is taken as UTC.
    """
    if not isinstance(text, str) or not 16 <= len(text) <= 40 or text[10] not in "Tt ":
        raise ValueError("not a date-time")  # a date without a time is not RFC 3339
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
