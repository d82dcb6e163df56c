"""The sign-in limiter on the real app: no way around it by waiting for the body, by
rotating addresses in one IPv6 /64, or by sending guesses at once; the ceiling on checks
at once; and the lock-outs in ``/metrics``.

Counts are asserted, never timings: where a test must know that every request is under
way, it waits for the server's own count of requests in progress.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password, secret_hash
from gateway.auth import authenticator as authenticator_module
from gateway.context import STORE, TRAFFIC

LIMIT = 10
TOKEN_FORM = "grant_type=client_credentials&client_id=cid&client_secret="
UNDER_WAY = "too many sign-ins under way from this address; try again in 1 s"
LOCKED = "too many failed sign-ins from this address; try again in 60 s"
SP_429 = {"message": " Rate Limit Exceeded "}
SP_401 = {"error": "invalid_client", "error_description": "unknown client or wrong secret"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _app(aiohttp_client, config, **server: Any):
    config = config.replace("auth", max_failures=LIMIT, failure_window_seconds=60)
    if server:
        config = config.replace("server", **server)
    client = await aiohttp_client(create_app(config))
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    await store.add_user("alice", "user", hash_password("alice-password"))
    await store.add_oauth_client("cid", secret_hash("csecret"), "alice")
    auth.limiter._clock = FakeClock()
    return client


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _signin_metrics(client) -> dict[str, float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    found = _samples(await resp.text())
    return {"locked": found[("taskgate_signin_refused_total", (("reason", "locked"),))],
            "busy": found[("taskgate_signin_refused_total", (("reason", "busy"),))],
            "checks": found[("taskgate_signin_checks_total", ())],
            "running": found[("taskgate_signin_checks_in_flight", (("state", "running"),))],
            "waiting": found[("taskgate_signin_checks_in_flight", (("state", "waiting"),))]}


async def test_delayed_token_bodies_from_one_address_get_no_more_checks_than_the_limit(aiohttp_client, config,
                                                                                        monkeypatch):
    """500 requests pass the early look at the limit together, then send their bodies at
    once: the secret is checked only when the limiter admits it, after the body."""
    client = await _app(aiohttp_client, config)
    store, limiter = client.app[STORE], client.app[AUTHENTICATOR].limiter
    checked: list[str] = []
    lookup = store.get_oauth_client

    async def counting(client_id: str):
        checked.append(client_id)
        return await lookup(client_id)

    monkeypatch.setattr(store, "get_oauth_client", counting)
    gate = asyncio.Event()

    async def delayed(secret: str) -> AsyncIterator[bytes]:
        yield TOKEN_FORM.encode()  # the headers and a first part: the request reaches the handler
        await gate.wait()
        yield secret.encode()

    n = 500
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def post(i: int) -> tuple[int, Any, str | None]:
            async with session.post(client.make_url("/oauth/token"), data=delayed(f"guess{i}"),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
                return resp.status, await resp.json(), resp.headers.get("Retry-After")

        posts = [asyncio.create_task(post(i)) for i in range(n)]
        traffic = client.app[TRAFFIC]
        async with asyncio.timeout(60):  # a bound on a hang, not a timing under test
            while traffic.active < n:  # every request is in the handler, waiting for its body
                await asyncio.sleep(0.01)
        assert checked == [] and limiter.checks == 0
        gate.set()
        answers = await asyncio.gather(*posts)
    assert len(checked) == LIMIT and limiter.checks == LIMIT  # at most limit + ceiling: exactly the limit
    assert sorted(a[0] for a in answers) == [401] * LIMIT + [429] * (n - LIMIT)
    for status, body, retry_after in answers:
        if status == 401:
            assert (body, retry_after) == (SP_401, None)
        else:  # refused while the first checks ran, or once they had all failed
            assert (body, retry_after) in [({"error": "slow_down", "error_description": UNDER_WAY}, "1"),
                                           ({"error": "slow_down", "error_description": LOCKED}, "60")]
    assert limiter.refused == {"locked": n - LIMIT, "busy": 0}
    # the right secret is refused too until the window ends
    resp = await client.post("/oauth/token", data=TOKEN_FORM + "csecret",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (resp.status, await resp.json(), resp.headers["Retry-After"]) == (
        429, {"error": "slow_down", "error_description": LOCKED}, "60")
    assert len(checked) == LIMIT


async def test_rotating_over_one_ipv6_slash_64_is_limited_like_one_address(aiohttp_client, config):
    """Behind a trusted proxy, 100 clients of one /64 share one limit; another /64 and an
    IPv4 client are their own keys, and an IPv4-mapped address is its IPv4 address."""
    client = await _app(aiohttp_client, config, trusted_proxies="127.0.0.1")
    limiter = client.app[AUTHENTICATOR].limiter
    statuses: list[int] = []
    for host in range(1, 101):
        resp = await client.get("/task-status/v1", headers={
            **_basic("alice", f"guess{host}"), "X-Forwarded-For": f"2001:db8:a:b:{host:x}::{host:x}"})
        statuses.append(resp.status)
        body = await resp.json()
        if resp.status == 429:
            assert (body, resp.headers["Retry-After"]) == (SP_429, "60")
    assert statuses == [401] * LIMIT + [429] * (100 - LIMIT)
    assert limiter.checks == LIMIT and len(limiter) == 1
    # the right password from the same /64 waits for the window too
    resp = await client.get("/task-status/v1", headers={**_basic("alice", "alice-password"),
                                                         "X-Forwarded-For": "2001:db8:a:b:ffff::1"})
    assert (resp.status, await resp.json()) == (429, SP_429)
    # another /64 is another key
    resp = await client.get("/task-status/v1", headers={**_basic("alice", "alice-password"),
                                                         "X-Forwarded-For": "2001:db8:a:c::1"})
    assert resp.status == 200
    # IPv4 and IPv4-mapped IPv6 are one key
    for _ in range(LIMIT):
        resp = await client.get("/task-status/v1", headers={**_basic("alice", "guess"),
                                                             "X-Forwarded-For": "198.51.100.7"})
        assert resp.status == 401
    resp = await client.get("/task-status/v1", headers={**_basic("alice", "alice-password"),
                                                         "X-Forwarded-For": "[::ffff:198.51.100.7]"})
    assert (resp.status, await resp.json()) == (429, SP_429)


@pytest.mark.parametrize("ceiling", [2, 4, 0])
async def test_concurrent_basic_and_login_guesses_never_exceed_the_limit(aiohttp_client, config, monkeypatch,
                                                                         ceiling):
    """60 different wrong passwords at once over Basic and /login from one address: exactly
    the limit is checked, whatever the ceiling on checks at once (0: none)."""
    client = await _app(aiohttp_client, config)
    limiter = client.app[AUTHENTICATOR].limiter
    limiter.max_concurrent = ceiling
    # the checks queued behind the ceiling wait their turn: this test counts them, so their wait
    # for a slot must outlast a busy machine's hashing (the refusal after the wait has its own test)
    limiter.busy_wait = 60.0
    checked: list[str] = []
    verify = authenticator_module.verify_password
    monkeypatch.setattr(authenticator_module, "verify_password",
                        lambda password, stored: checked.append(password) or verify(password, stored))
    basic = [client.get("/task-status/v1", headers=_basic("alice", f"basic{i}")) for i in range(40)]
    login = [client.post("/login", data={"user": "alice", "password": f"login{i}"}) for i in range(20)]
    answers = await asyncio.gather(*basic, *login)
    statuses = sorted(resp.status for resp in answers)
    assert statuses == [401] * LIMIT + [429] * (60 - LIMIT), statuses
    assert len(checked) == LIMIT and limiter.checks == LIMIT
    assert limiter.refused["locked"] == 60 - LIMIT and limiter.refused["busy"] == 0
    assert (limiter.in_flight, limiter.waiting) == (0, 0)


async def test_the_ceiling_bounds_checks_at_once_across_addresses(aiohttp_client, config, monkeypatch):
    """24 clients, each its own address, send a wrong password at once: no more than the
    ceiling's checks run at the same time, and none is lost: each is checked or refused busy."""
    client = await _app(aiohttp_client, config, trusted_proxies="127.0.0.1")
    limiter = client.app[AUTHENTICATOR].limiter
    limiter.max_concurrent = 2
    lock = threading.Lock()
    running, most = 0, 0
    verify = authenticator_module.verify_password

    def measured(password: str, stored: str | None) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return verify(password, stored)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(authenticator_module, "verify_password", measured)
    answers = await asyncio.gather(*(
        client.get("/task-status/v1", headers={**_basic("alice", f"guess{i}"), "X-Forwarded-For": f"192.0.2.{i}"})
        for i in range(1, 25)))
    statuses = [resp.status for resp in answers]
    assert most == 2
    assert statuses.count(401) == limiter.checks and statuses.count(429) == limiter.refused["busy"]
    assert limiter.checks + limiter.refused["busy"] == 24 and limiter.refused["locked"] == 0
    for resp in answers:
        if resp.status == 429:
            assert (resp.headers["Retry-After"], await resp.json()) == ("1", SP_429)


async def test_metrics_show_the_lock_outs(aiohttp_client, config):
    client = await _app(aiohttp_client, config)
    assert await _signin_metrics(client) == {"locked": 0, "busy": 0, "checks": 0, "running": 0, "waiting": 0}
    for i in range(LIMIT + 5):
        await client.get("/task-status/v1", headers=_basic("alice", f"guess{i}"))
    for _ in range(3):
        await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "cid",
                                                "client_secret": "csecret"})
    client.app[AUTHENTICATOR].limiter.refused["busy"] += 1  # the ceiling's refusals are counted in the limiter test
    assert await _signin_metrics(client) == {"locked": 8, "busy": 1, "checks": LIMIT, "running": 0, "waiting": 0}


async def test_the_counts_outlast_the_windows_they_came_from(aiohttp_client, config):
    """A counter never goes back: once the lock-out's window has ended and been forgotten
    (the limiter holds no address at all), the refusals and checks are still counted."""
    client = await _app(aiohttp_client, config)
    limiter = client.app[AUTHENTICATOR].limiter
    for i in range(LIMIT + 3):
        await client.get("/task-status/v1", headers=_basic("alice", f"guess{i}"))
    limiter._clock.now += 61  # the window has ended
    resp = await client.get("/task-status/v1", headers=_basic("alice", "alice-password"))
    assert resp.status == 200 and len(limiter) == 0  # its end was noticed, and the address forgotten
    assert await _signin_metrics(client) == {"locked": 3, "busy": 0, "checks": LIMIT + 1, "running": 0, "waiting": 0}


async def test_the_ceiling_is_the_configured_one(aiohttp_client, config):
    client = await aiohttp_client(create_app(config.replace("auth", max_concurrent_checks=2)))
    assert client.app[AUTHENTICATOR].limiter.max_concurrent == 2
