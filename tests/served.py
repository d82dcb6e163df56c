"""An application served in process as ``taskgate serve`` serves it: through
:class:`gateway.connections.LimitedRunner`, whose handlers are not cancelled when their
client leaves (aiohttp's default). aiohttp's test server cancels them, so a rule about a
departed client is tested here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

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


async def assert_a_closed_stream_gives_its_seat_back(app: web.Application, port: int, path: str,
                                                     open_streams: Callable[[], int]) -> None:
    """Served on *port* as ``taskgate serve`` serves: alice's one seat for streams at *path*
    is taken (a second is 429), her stream is closed, and without any write to it
    *open_streams* comes to 0 and a new stream is served."""
    import aiohttp

    from gateway.auth import AUTHENTICATOR
    from gateway.context import STORE
    from tests.waiting import until_true

    await app[STORE].add_user("alice", "user", None)
    headers = {"Authorization": f"Bearer {await app[AUTHENTICATOR].create_token('alice')}"}
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as http:
        first = await http.get(url, headers=headers)
        assert first.status == 200
        await first.content.readline()
        refused = await http.get(url, headers=headers)
        assert refused.status == 429  # its one seat is taken
        refused.close()
        first.close()  # the tab is closed
        await until_true(lambda: open_streams() == 0)
        again = await http.get(url, headers=headers)
        assert again.status == 200
        again.close()
