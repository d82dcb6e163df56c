"""The failure tables the limiter counts in: the shared one, opened twice on one file as
two workers open it, adds their failures up, forgets ended windows, and stays bounded."""

from __future__ import annotations

from pathlib import Path

from gateway.auth.failure_table import PROBE, MemoryFailures, SharedFailures
from gateway.auth.limiter import FailureLimiter


def test_two_openings_of_one_file_add_their_failures_up(tmp_path: Path) -> None:
    one, two = SharedFailures(tmp_path / "signin", 100), SharedFailures(tmp_path / "signin", 100)
    try:
        one.add("10.0.0.1", 1000.0, 60)
        two.add("10.0.0.1", 1001.0, 60)
        one.add("10.0.0.2", 1002.0, 60)
        assert two.window("10.0.0.1", 1010.0) == (1060.0, 2)
        assert one.window("10.0.0.2", 1010.0) == (1062.0, 1)
        assert one.window("10.0.0.3", 1010.0) == (0.0, 0)
        assert two.window("10.0.0.1", 1060.0) == (0.0, 0)  # the window ended: forgotten
        assert one.window("10.0.0.1", 1000.0) == (0.0, 0)
        assert len(one) == 1
    finally:
        one.close()
        two.close()


def test_limiters_on_one_shared_file_lock_an_address_together(tmp_path: Path) -> None:
    now = [0.0]
    tables = [SharedFailures(tmp_path / "signin", 10) for _ in range(2)]
    limiters = [FailureLimiter(3, 60, 10, clock=lambda: now[0], table=t) for t in tables]
    try:
        limiters[0].failed("192.0.2.7")
        limiters[1].failed("192.0.2.7")
        assert limiters[0].retry_after("192.0.2.7") is None
        limiters[1].failed("192.0.2.7")
        assert limiters[0].retry_after("192.0.2.7") == 60 and limiters[1].retry_after("192.0.2.7") == 60
        now[0] = 60.0
        assert limiters[0].retry_after("192.0.2.7") is None
    finally:
        for t in tables:
            t.close()


def test_the_shared_table_stays_its_size_whatever_the_number_of_addresses(tmp_path: Path) -> None:
    table = SharedFailures(tmp_path / "signin", 8)
    try:
        size = (tmp_path / "signin").stat().st_size
        for i in range(5000):
            table.add(f"198.51.{i // 256}.{i % 256}", float(i), 1e9)
        assert (tmp_path / "signin").stat().st_size == size
        assert len(table) == table.slots >= PROBE
        assert table.window("198.51.19.135", 5000.0) == (1e9 + 4999, 1)  # the latest is kept
    finally:
        table.close()


def test_the_memory_table_forgets_the_least_recently_failed_key() -> None:
    table = MemoryFailures(2)
    for key in ("a", "b", "a", "c"):
        table.add(key, 0.0, 60)
    assert (table.window("a", 1.0), table.window("b", 1.0), table.window("c", 1.0)) == \
        ((60.0, 2), (0.0, 0), (60.0, 1))
