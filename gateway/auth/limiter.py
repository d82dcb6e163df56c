"""The sign-in failure limiter: failed password and client-secret checks per client address.

Owns :class:`FailureLimiter` and :func:`client_address`, the key it counts by
(``request.remote``, so a trusted-proxy rewrite of it composes). Basic, ``POST /login``
and ``POST /oauth/token`` report their failures here; an address over
``auth.max_failures`` in a window gets 429 with ``Retry-After`` until the window ends.

Must not count unknown tokens: a 256-bit random token cannot be guessed, and counting
them would let one client with a stale token lock out everyone behind its address. It
does no I/O and keeps its counts in this process's memory.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

from aiohttp import web

from gateway import errors

__all__ = ["FailureLimiter", "client_address"]


def client_address(request: web.Request) -> str:
    """The address the limiter counts *request*'s failures under."""
    return request.remote or ""


class FailureLimiter:
    """Failed credential checks per client address, counted in fixed windows that start at
    an address's first failure. In memory, one process; at most *max_clients* addresses are
    remembered (the one that failed least recently is forgotten first), so a flood from
    many addresses costs bounded memory. *max_failures* 0 turns the limit off."""

    def __init__(self, max_failures: int, window_seconds: float, max_clients: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window, self.max_clients = max_failures, window_seconds, max_clients
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window end, failures), oldest first
        self._running: dict[str, int] = {}  # address -> password checks under way (entries live while > 0)

    def __len__(self) -> int:
        return len(self._failures)

    def _window(self, address: str) -> tuple[float, int]:
        """(end, failures) of *address*'s current window; (0, 0) when it has none, and an
        ended window is forgotten."""
        entry = self._failures.get(address)
        if entry is not None and self._clock() >= entry[0]:
            del self._failures[address]
            entry = None
        return entry or (0.0, 0)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until *address* may try again, or None when it may now."""
        end, count = self._window(address)
        if not self.max_failures or count < self.max_failures:
            return None
        return max(1, math.ceil(end - self._clock()))

    def check(self, address: str) -> None:
        """TooManyRequests (with Retry-After) when *address* is over its limit."""
        wait = self.retry_after(address)
        if wait is not None:
            raise errors.TooManyRequests(f"too many failed sign-ins from this address; try again in {wait} s",
                                         headers={"Retry-After": str(wait)})

    @contextlib.contextmanager
    def running(self, address: str) -> Iterator[None]:
        """One password check by *address* while it runs. Refused (429) when the address's
        failures plus its checks still under way would reach the limit: failures are known
        only once scrypt answers, so a burst of concurrent guesses would otherwise all pass
        :meth:`check` before the first of them counted."""
        if not self.max_failures:
            yield
            return
        _end, failures = self._window(address)
        if failures + self._running.get(address, 0) >= self.max_failures:
            raise errors.TooManyRequests("too many sign-ins under way from this address; try again in 1 s",
                                         headers={"Retry-After": "1"})
        self._running[address] = self._running.get(address, 0) + 1
        try:
            yield
        finally:
            left = self._running.pop(address) - 1
            if left:
                self._running[address] = left

    def failed(self, address: str) -> None:
        """Count one failed check by *address*."""
        if not self.max_failures:
            return
        now = self._clock()
        end, count = self._failures.pop(address, (0.0, 0))
        if now >= end:
            end, count = now + self.window, 0
        self._failures[address] = (end, count + 1)  # re-inserted: the dict stays in order of last failure
        while len(self._failures) > self.max_clients:
            del self._failures[next(iter(self._failures))]
