"""Typed application keys and per-request facts shared by the middlewares and styles.

It must not do I/O or hold behaviour beyond :class:`Traffic`'s count of requests in
progress and its drain callbacks: the objects behind the keys are made in :mod:`gateway.app`.

Handlers ask :func:`store_of` and :func:`clock_of` for the store and clock of a request
rather than the application's: a request in a test namespace (:mod:`gateway.testing`)
carries its own (:data:`SCOPE`), so that every style works unchanged in one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from gateway.auth import PRINCIPAL, Principal
from gateway.clock import Clock
from gateway.config import Config
from gateway.events.feed import Feed
from gateway.model import Store

__all__ = ["STORE", "CONFIG", "REQUEST_ID", "TRAFFIC", "FEED", "SCOPE", "Scope", "Traffic", "principal",
           "request_id", "store_of", "clock_of", "client_left"]

STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
REQUEST_ID = web.RequestKey("request_id", str)
#: the process's change feed (:mod:`gateway.events.feed`), made with the store
FEED = web.AppKey("events_feed", Feed)
_SYSTEM_CLOCK = Clock()


class Scope(Protocol):
    """Where a request's tasks live when it is not the application's store: a test namespace."""

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...


SCOPE = web.RequestKey("scope", Scope)


def store_of(request: web.Request) -> Store:
    """The store of the request's tasks: its namespace's, else the application's. Accounts
    (users, tokens, OAuth clients) are always the application store's."""
    scope = request.get(SCOPE)
    return scope.store if scope is not None else request.app[STORE]


def clock_of(request: web.Request, default: Clock = _SYSTEM_CLOCK) -> Clock:
    """The clock of the request: its namespace's, else *default* (the system's)."""
    scope = request.get(SCOPE)
    return scope.clock if scope is not None else default


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def request_id(request: web.Request) -> str:
    return request.get(REQUEST_ID, "")


def client_left(request: web.Request) -> bool:
    """Whether the client of *request* has gone: ``taskgate serve`` does not cancel a
    handler whose client left, so a handler that waits (a list for its turn, an idle
    stream) looks now and then, and lets go of what it holds."""
    transport = request.transport
    return transport is None or transport.is_closing()


class Traffic:
    """The requests in progress, so that a graceful shutdown can wait for them.

    aiohttp's own shutdown first marks every connection closing, and a closing
    connection drops the bytes that still arrive: a request whose body is under way
    would be lost. ``taskgate serve`` therefore stops listening, waits here for the
    requests in progress (answering each with ``Connection: close``), and only then
    lets aiohttp close the connections."""

    __slots__ = ("active", "draining", "_idle", "_on_drain")

    def __init__(self) -> None:
        self.active = 0  # requests between the request middleware's start and end
        self.draining = False  # from the shutdown signal on: /readyz is 503, answers close connections
        self._idle: asyncio.Event | None = None
        self._on_drain: list[Callable[[], None]] = []

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call *callback* when the drain begins: requests that would otherwise last (the
        event streams) end themselves then, instead of holding the drain for its timeout."""
        self._on_drain.append(callback)

    def begin_drain(self) -> None:
        """From here on /readyz is 503 and answers close their connections; the
        :meth:`on_drain` callbacks run once."""
        if self.draining:
            return
        self.draining = True
        for callback in self._on_drain:
            callback()

    def finished(self) -> None:
        self.active -= 1
        if self._idle is not None and not self.active:
            self._idle.set()

    async def drain(self, timeout: float) -> int:
        """Wait up to *timeout* seconds for the requests in progress; how many are left."""
        self.begin_drain()
        if self.active:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                pass
        return self.active


TRAFFIC = web.AppKey("traffic", Traffic)
