"""Typed application keys and per-request facts shared by the middlewares and styles.

It must not do I/O or hold behaviour beyond :class:`Traffic`'s count of requests in
progress: the objects behind the keys are made in :mod:`gateway.app`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.auth import PRINCIPAL, Principal
from gateway.config import Config
from gateway.model import Store

__all__ = ["STORE", "CONFIG", "REQUEST_ID", "TRAFFIC", "Traffic", "principal", "request_id"]

STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
REQUEST_ID = web.RequestKey("request_id", str)


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

    __slots__ = ("active", "draining", "_idle")

    def __init__(self) -> None:
        self.active = 0  # requests between the request middleware's start and end
        self.draining = False  # from the shutdown signal on: /readyz is 503, answers close connections
        self._idle: asyncio.Event | None = None

    def finished(self) -> None:
        self.active -= 1
        if self._idle is not None and not self.active:
            self._idle.set()

    async def drain(self, timeout: float) -> int:
        """Wait up to *timeout* seconds for the requests in progress; how many are left."""
        self.draining = True
        if self.active:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                pass
        return self.active


TRAFFIC = web.AppKey("traffic", Traffic)
