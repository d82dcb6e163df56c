"""An application served in process as ``taskgate serve`` serves it: through
:class:`gateway.connections.LimitedRunner`, whose handlers are not cancelled when their
client leaves (aiohttp's default). aiohttp's test server cancels them, so a rule about a
departed client is tested here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.connections import LimitedRunner


@contextlib.asynccontextmanager
async def served(app: web.Application, port: int, max_connections: int = 100) -> AsyncIterator[LimitedRunner]:
    runner = LimitedRunner(app, max_connections=max_connections, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield runner
    finally:
        await runner.cleanup()
