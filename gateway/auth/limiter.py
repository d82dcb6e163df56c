"""The sign-in limiter: secret checks admitted per client key, and in all at once.

Owns :class:`FailureLimiter`, :func:`client_address` (``request.remote``, so a
trusted-proxy rewrite of it composes) and :func:`client_key`, the key the limiter counts
an address under: an IPv4 address is its own key, an IPv4-mapped IPv6 address counts as
its IPv4 address, and any other IPv6 address counts as its /64 (one customer's
allocation; rotating through it buys nothing).

Every password or client-secret check (Basic, ``POST /login``, ``POST /oauth/token``)
runs inside :meth:`FailureLimiter.admit`, at the moment of the check (after the body is
read): a key whose failures in its window plus its checks under way reach
``auth.max_failures`` is refused (429, reason ``locked``), and at most
``auth.max_concurrent_checks`` checks run at once in the process; one beyond waits up to
:data:`BUSY_WAIT_SECONDS` for a slot and is then refused (429, reason ``busy``). A check
that raises Unauthorized counts as a failure before its slot is given back, so no
later check can slip in between.

Must not count unknown tokens: a 256-bit random token cannot be guessed, and counting
them would let one client with a stale token lock out everyone behind its address. The
failures are kept in a :mod:`.failure_table`: this process's memory, or with ``serve
--workers`` a table all workers share, so that a key's failures on every worker add up.
Checks under way and the ``auth.max_concurrent_checks`` ceiling are per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway import errors
from gateway.auth.failure_table import FailureTable, MemoryFailures
from gateway.config import AuthConfig

__all__ = ["FailureLimiter", "client_address", "client_key", "BUSY_WAIT_SECONDS", "REFUSAL_REASONS"]

#: how long a check waits for one of the ``auth.max_concurrent_checks`` slots before 429
BUSY_WAIT_SECONDS = 1.0
#: why a sign-in was refused: its key's limit (failures plus checks under way), or the ceiling
REFUSAL_REASONS = ("locked", "busy")


def client_address(request: web.Request) -> str:
    """The address *request* comes from (behind a trusted proxy, the forwarded client)."""
    return request.remote or ""


@functools.lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """The key the limiter counts *address* under: IPv4 as is, IPv4-mapped IPv6 as its
    IPv4 address, other IPv6 as its /64; anything else (a unix socket's "") as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class FailureLimiter:
    """Failed credential checks per client key, counted in fixed windows that start at a
    key's first failure, plus the checks under way. In memory, one process; at most
    *max_clients* keys are remembered (the one that failed least recently is forgotten
    first), so a flood from many addresses costs bounded memory. *max_failures* 0 turns
    the per-key limit off; *max_concurrent* (0: no ceiling) bounds the checks running at
    once, whatever their key."""

    def __init__(self, max_failures: int, window_seconds: float, max_clients: int,
                 clock: Callable[[], float] = time.monotonic, *,
                 max_concurrent: int = AuthConfig.max_concurrent_checks,
                 busy_wait: float = BUSY_WAIT_SECONDS, table: FailureTable | None = None) -> None:
        self.max_failures, self.window, self.max_clients = max_failures, window_seconds, max_clients
        self.max_concurrent, self.busy_wait = max_concurrent, busy_wait
        self._clock = clock
        self._failures = table if table is not None else MemoryFailures(max_clients)
        self._running: dict[str, int] = {}  # key -> checks admitted and not ended (entries live while > 0)
        self._slots: asyncio.Semaphore | None = None  # made on first use, in the running loop
        #: checks running now (holding a slot) and waiting for one: read by /metrics
        self.in_flight = 0
        self.waiting = 0
        #: secret checks admitted, and sign-ins refused by reason, since start: read by /metrics
        self.checks = 0
        self.refused = dict.fromkeys(REFUSAL_REASONS, 0)

    def __len__(self) -> int:
        return len(self._failures)

    def _window(self, key: str) -> tuple[float, int]:
        """(end, failures) of *key*'s current window; (0, 0) when it has none, and an
        ended window is forgotten."""
        return self._failures.window(key, self._clock())

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until *address* may try again, or None when it may now."""
        end, count = self._window(client_key(address))
        if not self.max_failures or count < self.max_failures:
            return None
        return max(1, math.ceil(end - self._clock()))

    def check(self, address: str) -> None:
        """TooManyRequests (with Retry-After) when *address* is over its limit: the cheap
        refusal before a request's credentials are even read. Not enough on its own:
        :meth:`admit` decides at the moment of the check."""
        wait = self.retry_after(address)
        if wait is not None:
            self.refused["locked"] += 1
            raise errors.TooManyRequests(f"too many failed sign-ins from this address; try again in {wait} s",
                                         headers={"Retry-After": str(wait)})

    @contextlib.asynccontextmanager
    async def admit(self, address: str) -> AsyncIterator[None]:
        """One secret check by *address* while it runs. Refused (429) when the key's
        failures plus its checks still under way would reach the limit (failures are known
        only once the check answers, so a burst of concurrent guesses would otherwise all
        pass :meth:`check` before the first of them counted), or when no check slot frees
        within :attr:`busy_wait`. An Unauthorized raised inside counts as a failure."""
        key = client_key(address)
        if self.max_failures:
            self.check(address)
            if self._window(key)[1] + self._running.get(key, 0) >= self.max_failures:
                self.refused["locked"] += 1
                raise errors.TooManyRequests("too many sign-ins under way from this address; try again in 1 s",
                                             headers={"Retry-After": "1"})
        # reserved before any await: a check waiting for a slot already counts for its key
        self._running[key] = self._running.get(key, 0) + 1
        try:
            async with self._slot():
                self.checks += 1
                try:
                    yield
                except errors.Unauthorized:
                    self.failed(address)  # while the check still counts as under way
                    raise
        finally:
            left = self._running.pop(key) - 1
            if left:
                self._running[key] = left

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if not self.max_concurrent:
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        slots = self._slots
        if slots.locked():
            self.waiting += 1
            try:
                async with asyncio.timeout(self.busy_wait):
                    await slots.acquire()
            except TimeoutError:
                self.refused["busy"] += 1
                raise errors.TooManyRequests("too many sign-ins under way; try again in 1 s",
                                             headers={"Retry-After": "1"}) from None
            finally:
                self.waiting -= 1
        else:
            await slots.acquire()  # free: returns at once
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            slots.release()

    def failed(self, address: str) -> None:
        """Count one failed check by *address*."""
        if not self.max_failures:
            return
        self._failures.add(client_key(address), self._clock(), self.window)
