"""Stream clients for scripts/bench --streams: N GET /events streams held open, read to the end.

Run by scripts/bench_run.py beside a taskgate server while a scenario is measured, in a
process of its own: ``bench_streams.py URL AUTHORIZATION N QUERY``. Each stream reads
whatever the server sends (with QUERY ``task=none``, heartbeats only; with an empty QUERY,
every change the scenario makes). On SIGTERM it closes them and prints one line,
``STREAMS {"opened": …, "events": …, "bytes": …, "ended": …}``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp


async def main(url: str, auth: str, count: int, query: str) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    totals = {"opened": 0, "events": 0, "bytes": 0, "ended": 0}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.get(f"{url}/events?{query}", headers={"Authorization": auth}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET /events: {resp.status} {await resp.text()}")
            totals["opened"] += 1
            async for line in resp.content:
                totals["bytes"] += len(line)
                if line.startswith(b"id: "):
                    totals["events"] += 1
        totals["ended"] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.ensure_future(one(session)) for _ in range(count)]
        while totals["opened"] < count and not any(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        for t in tasks:
            if t.done() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        print("READY", flush=True)
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print("STREAMS " + json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])))
