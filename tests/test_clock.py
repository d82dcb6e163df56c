"""The one timestamp format, from a datetime and from the current time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.clock import iso_utc, now_iso, now_iso_micro


@pytest.mark.parametrize("now", [0.0, 1716, 1715974396.4709, 1715974396.9999, 4102444799.5])
def test_now_iso_formats_what_iso_utc_formats(now: float):
    moment = datetime.fromtimestamp(now, UTC)
    assert now_iso(now) == iso_utc(moment)
    assert now_iso_micro(now) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert now_iso(now + 1.0) == iso_utc(datetime.fromtimestamp(now + 1.0, UTC))  # the next second
