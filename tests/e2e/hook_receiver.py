"""A webhook receiver for the end-to-end tests: a tiny aiohttp app on a free loopback port
that records every delivery it is sent as one JSON line (path, headers, body) in a file.

Run as ``python -m tests.e2e.hook_receiver FILE``; it prints ``listening on
http://127.0.0.1:PORT`` once it listens. Every POST is answered 200 after it is written
(and flushed) to FILE, except: ``POST /control`` with ``{"delay_ms": n, "fail": [paths]}``
sets a delay before each answer and the paths answered 500 (for retries and disabling);
those deliveries are recorded too, with their status.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiohttp import web

__all__ = ["main"]


def _app(path: str) -> web.Application:
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the app's life)
    control: dict[str, Any] = {"delay_ms": 0, "fail": []}

    async def set_control(request: web.Request) -> web.Response:
        control.update(await request.json())
        return web.json_response(control)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if request.path in control["fail"] else 200
        if control["delay_ms"]:
            await asyncio.sleep(control["delay_ms"] / 1000)
        out.write(json.dumps({"path": request.path, "status": status, "headers": dict(request.headers),
                              "body": body.decode("utf-8")}) + "\n")
        out.flush()
        return web.Response(status=status, text="ok" if status == 200 else "failing")

    app = web.Application()
    app.router.add_post("/control", set_control)
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    async def serve() -> None:
        runner = web.AppRunner(_app(sys.argv[1]), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
