"""gateway/balance.py: the workers' shared counts, and a site that leaves a waiting
connection to a worker holding fewer. Two sites in one process stand for two workers:
each its own aiohttp runner on a copy of one listening socket, their counts in one file."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from aiohttp import web

from gateway.balance import GONE, BalancedSite, Shares


def test_a_slot_is_gone_until_its_worker_publishes_and_again_once_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "connections"
    Shares.make(path, 3)
    first, second = Shares(path, 0), Shares(path, 1)
    try:
        assert first.fewest_of_others() == GONE  # nobody serves yet: nobody is left anything
        second.publish(3)
        assert first.fewest_of_others() == 3
        Shares.gone(path, 1)  # the supervisor saw worker 1 exit
        assert first.fewest_of_others() == GONE
        assert second.fewest_of_others() == GONE  # worker 0 has not published either
        first.publish(0)
        assert second.fewest_of_others() == 0
    finally:
        first.close()
        second.close()


class _Holding(BalancedSite):
    """A site whose worker holds *held* connections, whatever its runner has."""

    __slots__ = ("held",)

    def _held(self) -> int:
        return self.held


async def _site(listener: socket.socket, shares: Shares, held: int, name: str) -> tuple[web.AppRunner, _Holding]:
    async def who(request: web.Request) -> web.Response:
        return web.Response(text=name)
    app = web.Application()
    app.router.add_get("/", who)
    runner = web.AppRunner(app)
    await runner.setup()
    site = _Holding(runner, socket.socket(fileno=os.dup(listener.fileno())), shares)
    site.held = held
    await site.start()
    return runner, site


async def _served_by(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    return answer.rpartition(b"\r\n\r\n")[2].decode()


async def test_each_waiting_connection_goes_to_the_worker_holding_fewer(tmp_path: Path) -> None:
    """The busier worker leaves every new connection to the other, also one that comes
    long after the last it left (a review found the second went to the busier one: the
    time it began to leave the first was still kept)."""
    path = tmp_path / "connections"
    Shares.make(path, 2)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    shares = [Shares(path, 0), Shares(path, 1)]
    runners: list[web.AppRunner] = []
    try:
        for index, (held, name) in enumerate(((3, "busy"), (0, "idle"))):
            runner, _site_ = await _site(listener, shares[index], held, name)
            runners.append(runner)
        first = await _served_by(port)
        await asyncio.sleep(0.1)  # far past one deferral (10 ms): the next connection is a new one
        second = await _served_by(port)
        assert (first, second) == ("idle", "idle")
    finally:
        for runner in runners:
            await runner.cleanup()
        for share in shares:
            share.close()
        listener.close()
