"""Typed application keys and per-request facts shared by the middlewares and styles.

It must not do I/O or hold behaviour beyond :class:`Traffic`'s count of requests in
progress and its drain callbacks: the objects behind the keys are made in :mod:`gateway.app`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from gateway.auth import PRINCIPAL, Principal
from gateway.config import Config
from gateway.events.feed import Feed
from gateway.model import Store

__all__ = ["STORE", "CONFIG", "REQUEST_ID", "TRAFFIC", "FEED", "Traffic", "principal", "request_id"]

STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
REQUEST_ID = web.RequestKey("request_id", str)
#: the process's change feed (:mod:`gateway.events.feed`), made with the store
FEED = web.AppKey("events_feed", Feed)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def request_id(request: web.Request) -> str:
    return request.get(REQUEST_ID, "")


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
