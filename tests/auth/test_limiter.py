"""gateway.auth.limiter: failed sign-ins counted per address, without HTTP.

The windows and the bounded memory are tested in tests/test_auth.py; here, the checks
under way, the ceiling on checks at once, and the key the limiter counts by.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway import errors
from gateway.auth.limiter import FailureLimiter, client_address, client_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_checks_under_way_count_towards_the_limit_until_they_end():
    limiter = FailureLimiter(3, 60, 10, clock=FakeClock())
    limiter.failed("a")
    async with limiter.admit("a"), limiter.admit("a"):
        with pytest.raises(errors.TooManyRequests) as raised:
            async with limiter.admit("a"):
                pass
        assert (raised.value.message, raised.value.headers) == (
            "too many sign-ins under way from this address; try again in 1 s", {"Retry-After": "1"})
        async with limiter.admit("b"):  # another address is not affected
            pass
    async with limiter.admit("a"), limiter.admit("a"):  # both ended: room for two again
        pass
    assert (limiter.checks, limiter.refused, limiter.in_flight) == (5, {"locked": 1, "busy": 0}, 0)


async def test_a_failed_check_counts_before_its_slot_is_given_back():
    limiter = FailureLimiter(2, 60, 10, clock=FakeClock())
    for _ in range(2):
        with pytest.raises(errors.Unauthorized):
            async with limiter.admit("a"):
                raise errors.Unauthorized("wrong")
    assert limiter.retry_after("a") == 60
    with pytest.raises(errors.TooManyRequests) as raised:
        async with limiter.admit("a"):
            pass
    assert raised.value.message == "too many failed sign-ins from this address; try again in 60 s"


async def test_a_check_that_raises_still_ends():
    limiter = FailureLimiter(1, 60, 10, clock=FakeClock())
    for _ in range(3):
        with pytest.raises(RuntimeError):
            async with limiter.admit("a"):
                raise RuntimeError("scrypt failed")
    async with limiter.admit("a"):
        pass
    assert limiter.retry_after("a") is None and limiter.in_flight == 0


async def test_with_the_limit_off_nothing_is_refused_or_remembered():
    limiter = FailureLimiter(0, 60, 10, clock=FakeClock())
    async with limiter.admit("a"), limiter.admit("a"):
        limiter.failed("a")
    limiter.check("a")
    assert limiter.retry_after("a") is None and len(limiter) == 0


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4-mapped: the IPv4 address it is
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::1", "::/64"),
    ("", ""),  # a unix socket peer
    ("not an address", "not an address"),
])
def test_the_key_is_the_ipv4_address_or_the_ipv6_slash_64(address, key):
    assert client_key(address) == key


def test_one_slash_64_is_one_key_for_the_limit():
    limiter = FailureLimiter(3, 60, 10, clock=FakeClock())
    for host in range(1, 4):
        limiter.failed(f"2001:db8:1:2::{host:x}")
    assert limiter.retry_after("2001:db8:1:2:ffff:ffff:ffff:ffff") == 60 and len(limiter) == 1
    assert limiter.retry_after("2001:db8:1:3::1") is None
    for _ in range(3):
        limiter.failed("::ffff:198.51.100.1")
    assert limiter.retry_after("198.51.100.1") == 60


async def test_the_ceiling_lets_a_check_wait_for_a_slot_then_refuses_it():
    """max_concurrent checks run at once, whatever their address; one more waits for a slot
    (busy_wait) and gets 429 busy when none frees."""
    limiter = FailureLimiter(10, 60, 10, clock=FakeClock(), max_concurrent=2, busy_wait=0.05)
    release = asyncio.Event()
    entered: list[str] = []

    async def check(address: str) -> str:
        async with limiter.admit(address):
            entered.append(address)
            await release.wait()
        return address

    first = [asyncio.create_task(check(a)) for a in ("10.0.0.1", "10.0.0.2")]
    await asyncio.sleep(0)
    assert (entered, limiter.in_flight) == (["10.0.0.1", "10.0.0.2"], 2)
    with pytest.raises(errors.TooManyRequests) as raised:
        await check("10.0.0.3")  # no slot frees within busy_wait
    assert (raised.value.message, raised.value.headers) == (
        "too many sign-ins under way; try again in 1 s", {"Retry-After": "1"})
    # one that waits gets the slot as soon as a check ends
    limiter.busy_wait = 10
    waiter = asyncio.create_task(check("10.0.0.4"))
    await asyncio.sleep(0)
    assert (limiter.in_flight, limiter.waiting) == (2, 1)
    release.set()
    assert await asyncio.gather(*first, waiter) == ["10.0.0.1", "10.0.0.2", "10.0.0.4"]
    assert (limiter.checks, limiter.refused, limiter.in_flight, limiter.waiting) == (
        3, {"locked": 0, "busy": 1}, 0, 0)
    # a check waiting for a slot already counts for its address
    limiter = FailureLimiter(2, 60, 10, clock=FakeClock(), max_concurrent=1, busy_wait=10)
    release.clear()
    holder = asyncio.create_task(check("10.0.0.9"))
    queued = asyncio.create_task(check("10.0.0.9"))
    await asyncio.sleep(0)
    with pytest.raises(errors.TooManyRequests, match="under way from this address"):
        await check("10.0.0.9")
    release.set()
    await asyncio.gather(holder, queued)


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
