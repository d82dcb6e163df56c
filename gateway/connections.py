"""The connection limit of ``taskgate serve`` (``server.max_connections``).

aiohttp accepts every connection and keeps idle keep-alive ones until
``server.keepalive_timeout``, so enough idle clients use up the process's file
descriptors and lock everyone else out. :class:`LimitedRunner` is aiohttp's ``AppRunner``
whose sites get :class:`ConnectionLimit` as their protocol factory: while fewer than the
limit are open it hands out aiohttp's own request handler; beyond it, a connection is
answered ``503`` with ``Connection: close`` at once, without reading it, and closed (at
most a second later: see :class:`_Refused`).

This module owns the counting and the refusal; it must not know routes or styles (a
refused connection has sent no request yet, so there is no style's error shape to use).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from aiohttp import web

from gateway.audit import logger

__all__ = ["ConnectionLimit", "LimitedRunner", "REFUSAL"]

_BODY = b'{"error":"too many connections; try again later"}'
#: what a connection over the limit is sent before it is closed
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
           b"Connection: close\r\nContent-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)

#: refusals are logged at most this often (each with the count since the last line), so
#: that a flood of connections cannot fill the log
_LOG_EVERY_SECONDS = 10.0


class _Refused(asyncio.Protocol):
    """A connection over the limit: the 503 and our end closed (FIN) at once; what the
    client sends is discarded until it closes its end, for at most LINGER_SECONDS. Closing
    with its request still unread would send a reset, which loses the 503 on the way."""

    LINGER_SECONDS = 1.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is one in all but its class
        self.transport = transport
        transport.write(REFUSAL)
        transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(self.LINGER_SECONDS, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # never parsed

    def eof_received(self) -> bool:
        self.transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


class ConnectionLimit:
    """The protocol factory of every site: aiohttp's *server* while fewer than *limit*
    connections are open (0: no limit), a refusal beyond. aiohttp's server tracks its open
    connections from connection_made until connection_lost has finished the handler, which
    is the count that holds file descriptors."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.refused = 0
        self._unlogged = 0
        self._logged_at = -_LOG_EVERY_SECONDS

    @property
    def open(self) -> int:
        return len(self.server.connections)

    def __call__(self) -> asyncio.BaseProtocol:
        if self.limit and self.open >= self.limit:
            self._refuse()
            return _Refused()
        return self.server()

    def _refuse(self) -> None:
        self.refused += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_SECONDS:
            logger.warning("connections refused over server.max_connections", refused=self._unlogged,
                           max_connections=self.limit)
            self._logged_at, self._unlogged = now, 0

    def __getattr__(self, name: str) -> Any:  # what else a site or the runner asks of the server
        return getattr(self.server, name)


class LimitedRunner(web.AppRunner):
    """aiohttp's AppRunner whose sites accept at most *max_connections* at once."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.max_connections = max_connections
        self.limit: ConnectionLimit | None = None

    @property
    def server(self) -> web.Server | None:
        inner = super().server
        if inner is None:
            return None
        if self.limit is None or self.limit.server is not inner:
            self.limit = ConnectionLimit(inner, self.max_connections)
        # a site only calls it (loop.create_server) and the runner's cleanup uses its own
        # reference to aiohttp's server, so the wrapper stands in for it here
        return self.limit  # type: ignore[return-value]
