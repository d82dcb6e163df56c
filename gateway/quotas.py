"""What one ordinary user may cost everyone: the storage quota and the write rate.

Each style calls :func:`charge` once per request, just before it hands a task write to
the store, with the owner the caller is in that style (its rules say who owns a task).
For an admin it does nothing: admins are the operators (they create and import tasks for
everyone) and are limited by neither. For an ordinary user it takes one write from the
user's token bucket (:class:`WriteRate`; empty: 429 with Retry-After), then sets
:data:`gateway.model.QUOTA` so that the store, which alone can count atomically, refuses
the write with 413 when it would take the owner past ``quota.tasks_per_user`` tasks or
``quota.mib_per_user`` MiB in the style.

The buckets are per process, as the sign-in limiter's counts are: several processes on
one file each allow the rate. This module must not count storage: the store does, in the
write's own transaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.config import QuotaConfig
from gateway.context import principal
from gateway.model import QUOTA, Quota
from gateway.openapi import responses

__all__ = ["WriteRate", "WRITE_RATE", "charge", "document_limits"]


class WriteRate:
    """A token bucket per user: *burst* writes at once, refilled at *per_second*."""

    __slots__ = ("per_second", "burst", "_buckets", "_clock", "_max_users")

    def __init__(self, per_second: float, burst: int, *, max_users: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst = per_second, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # user → (tokens, when counted)
        self._clock = clock
        self._max_users = max_users

    def take(self, user: str) -> float:
        """Take one write for *user*: 0 when admitted, else the seconds until one is due."""
        now = self._clock()
        tokens, then = self._buckets.get(user, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        if tokens < 1:
            self._buckets[user] = (tokens, now)
            return (1 - tokens) / self.per_second
        if len(self._buckets) >= self._max_users and user not in self._buckets:
            self._forget_full(now)
        self._buckets[user] = (tokens - 1, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a new one would not)."""
        for user, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.per_second >= self.burst:
                del self._buckets[user]


WRITE_RATE = web.AppKey("write_rate", WriteRate)


def charge(request: web.Request, config: QuotaConfig, owner: str | None) -> None:
    """Before a task write of an ordinary user: one write from its bucket (TooManyRequests
    with Retry-After when empty), and the quota of *owner* (the caller as its style's owner
    field names it; None: the caller can own nothing in the style) for the store to hold
    the write to. Admins pass unlimited."""
    who = principal(request)
    if who.is_admin:
        return
    wait = request.app[WRITE_RATE].take(who.name)
    if wait:
        seconds = max(1, math.ceil(wait))
        raise errors.TooManyRequests(
            f"{who.name} is writing faster than {config.writes_per_second:g} writes per second "
            f"(quota.writes_per_second); retry in {seconds} s", headers={"Retry-After": str(seconds)})
    if owner is not None:
        QUOTA.set(Quota(owner, config.tasks_per_user, config.mib_per_user * 2**20))


def document_limits(op: dict[str, Any], errors: Mapping[int, Any], *, grows: bool = True) -> None:
    """Say in an operation's OpenAPI responses that it is held to the write rate (429 with
    Retry-After) and, when it can make a task larger (*grows*), to the quota (413), in the
    error body *errors* gives. A delete only gives bytes back."""
    found = responses({}, errors, (413, 429) if grows else (429,))
    if grows:
        found["413"]["description"] = ("Payload Too Large: the body is over server.max_body_bytes, or the write would "
                                       "take its owner past quota.tasks_per_user tasks or quota.mib_per_user MiB in "
                                       "the style (ordinary users only); nothing was stored")
    found["429"]["description"] = ("Too Many Requests: too many failed sign-ins from the address, or the user "
                                   "writes faster than quota.writes_per_second (ordinary users only); nothing was "
                                   "stored")
    found["429"]["headers"] = {"Retry-After": {"description": "seconds to wait before trying again",
                                               "schema": {"type": "integer"}}}
    op["responses"].update(found)
