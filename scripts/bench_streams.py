"""Stream clients for scripts/bench --streams: N GET /events streams held open beside a measurement.

Run by scripts/bench_run.py beside a taskgate server while a scenario is measured, in a
process of its own: ``bench_streams.py URL AUTHORIZATION N QUERY``. N - 1 streams read
whatever the server sends (with QUERY ``task=none``, heartbeats only; with an empty QUERY,
every change the scenario makes), in large reads, counting events by their ``id:`` lines,
so that the clients cost the shared machine little; the last one sends its request and
never reads (a small receive buffer), as the issue's acceptance has it. On SIGTERM it
closes them and prints one line, ``STREAMS {"opened": …, "events": …, "bytes": …,
"ended": …, "stalled": {"bytes": …, "end": …, "closed": …}}``, the never-reading client's
part read after the run: ``end`` is the ``event: end`` frame's data it was sent
(``{"reason": "behind", "last_id": …}`` once the feed passed it) if that reached it, and
``closed`` is ``reset`` (the server aborted it), ``eof`` or ``open``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

import aiohttp

_EVENT = b"\nid: "  # every event frame starts a line with its id


def _stalled(url: str, auth: str, query: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.sendall(f"GET /events?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {auth}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    return sock


def _drain(sock: socket.socket) -> dict[str, Any]:
    """What the never-reading client was sent, read now: its size and the end frame's data."""
    sock.settimeout(2.0)
    raw = bytearray()
    closed = "open"
    try:
        while chunk := sock.recv(1 << 20):
            raw += chunk
        closed = "eof"
    except ConnectionResetError:  # aborted by the server
        closed = "reset"
    except TimeoutError:  # still open: nothing more within the timeout
        pass
    sock.close()
    end = None
    at = raw.rfind(b"event: end\ndata: ")
    if at >= 0:
        line = raw[at + 17:].split(b"\n", 1)[0]
        try:
            end = json.loads(line)
        except ValueError:
            end = None
    return {"bytes": len(raw), "end": end, "closed": closed}


async def main(url: str, auth: str, count: int, query: str) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    totals: dict[str, Any] = {"opened": 0, "events": 0, "bytes": 0, "ended": 0}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.get(f"{url}/events?{query}", headers={"Authorization": auth}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET /events: {resp.status} {await resp.text()}")
            totals["opened"] += 1
            tail = b""
            async for chunk in resp.content.iter_any():
                totals["bytes"] += len(chunk)
                seen = tail + chunk
                totals["events"] += seen.count(_EVENT)
                tail = seen[-(len(_EVENT) - 1):]  # too short to hold a whole marker: none is counted twice
        totals["ended"] += 1

    stalled = _stalled(url, auth, query) if count > 0 else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.ensure_future(one(session)) for _ in range(count - 1)]
        while totals["opened"] < count - 1 and not any(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        for t in tasks:
            if t.done() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        print("READY", flush=True)
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if stalled is not None:
        totals["opened"] += 1
        totals["stalled"] = _drain(stalled)
    print("STREAMS " + json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])))
