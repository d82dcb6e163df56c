"""gateway.auth.limiter: failed sign-ins counted per address, without HTTP.

The windows and the bounded memory are tested in tests/test_auth.py; here, the checks
under way and the key the limiter counts by.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway import errors
from gateway.auth.limiter import FailureLimiter, client_address


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_checks_under_way_count_towards_the_limit_until_they_end():
    limiter = FailureLimiter(3, 60, 10, clock=FakeClock())
    limiter.failed("a")
    with limiter.running("a"), limiter.running("a"):
        with pytest.raises(errors.TooManyRequests) as raised, limiter.running("a"):
            pass
        assert (raised.value.message, raised.value.headers) == (
            "too many sign-ins under way from this address; try again in 1 s", {"Retry-After": "1"})
        with limiter.running("b"):  # another address is not affected
            pass
    with limiter.running("a"), limiter.running("a"):  # both ended: room for two again
        pass


def test_a_check_that_raises_still_ends():
    limiter = FailureLimiter(1, 60, 10, clock=FakeClock())
    for _ in range(3):
        with pytest.raises(RuntimeError), limiter.running("a"):
            raise RuntimeError("scrypt failed")
    with limiter.running("a"):
        pass


def test_with_the_limit_off_nothing_is_refused_or_remembered():
    limiter = FailureLimiter(0, 60, 10, clock=FakeClock())
    with limiter.running("a"), limiter.running("a"):
        limiter.failed("a")
    limiter.check("a")
    assert limiter.retry_after("a") is None and len(limiter) == 0


def test_check_names_the_wait_in_its_message_and_header():
    clock = FakeClock()
    limiter = FailureLimiter(1, 60, 10, clock=clock)
    limiter.failed("a")
    clock.now += 20.2
    with pytest.raises(errors.TooManyRequests) as raised:
        limiter.check("a")
    assert (raised.value.status, raised.value.message, raised.value.headers) == (
        429, "too many failed sign-ins from this address; try again in 40 s", {"Retry-After": "40"})


def test_the_limiter_counts_by_the_request_s_remote_address():
    class Transport:
        def __init__(self, peer: tuple[str, int] | None) -> None:
            self.peer = peer

        def get_extra_info(self, name: str, default: object = None) -> object:
            return self.peer if name == "peername" else default

    assert client_address(make_mocked_request("GET", "/", transport=Transport(("192.0.2.7", 4711)))) == "192.0.2.7"
    assert client_address(make_mocked_request("GET", "/", transport=Transport(None))) == ""
