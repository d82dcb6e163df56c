"""Hostile clients of the dashboard's live stream (gateway/ui/live.py), on the production app
over real sockets: a page that never reads what it is sent is closed by the hub once its
queue is full, and its connection must then end too, so that it neither holds a request
(and the graceful stop) open nor escapes ``ui.max_live_streams``."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from gateway.app import create_app
from gateway.auth import hash_password
from gateway.config import Config
from gateway.context import STORE, TRAFFIC
from gateway.ui import pages
from gateway.ui.live import HUB, MAX_KEYS
from tests.ui.test_pages import sign_in

NAME = "n" * 20_000  # each row event is over 20 kB: the socket's buffers fill in a few rounds


async def test_a_page_that_never_reads_is_cut_off(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(create_app(config))
    store, hub, traffic = client.app[STORE], client.app[HUB], client.app[TRAFFIC]
    await store.add_user("alice", "user", hash_password("alice-password"))
    await sign_in(client, "alice", "alice-password")
    ids = [f"h{i:03}" for i in range(MAX_KEYS)]
    await store.bulk_create("sailpoint", [(i, {"id": i, "type": "QUARTZ", "uniqueName": NAME, "launcher": "root",
                                               "created": "2026-01-01T00:00:00Z", "completionStatus": None,
                                               "percentComplete": 0}) for i in ids], actor="root", request_id="r")
    cookie = "; ".join(f"{c.key}={c.value}" for c in client.session.cookie_jar)
    keys = ",".join(pages.live_key("sailpoint", i) for i in ids)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, and nothing read
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (client.host, client.port))
    await loop.sock_sendall(sock, f"GET /ui/live?keys={keys} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
                            .encode())
    try:
        for _ in range(200):
            if hub.streams == 1:
                break
            await asyncio.sleep(0.01)
        assert (hub.streams, traffic.active) == (1, 1)
        rounds = 0
        while hub.streams and rounds < 40:  # every task changes once a round: 100 events a round
            rounds += 1
            for i in ids:
                await store.update("sailpoint", i, lambda d, r=rounds: {**d, "percentComplete": r % 100}, actor="root",
                                   request_id=f"u{rounds}")
            await asyncio.sleep(0.15)
        assert hub.streams == 0, "the hub never closed the page"
        for _ in range(300):  # its request ends within the grace, though the client still reads nothing
            if traffic.active == 0:
                break
            await asyncio.sleep(0.01)
        assert traffic.active == 0, "the stream's request still waits on a client that does not read"
    finally:
        sock.close()
