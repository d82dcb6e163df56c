"""The minimal peer of scripts/bench --peers: a hand-written aiohttp + aiosqlite UPDATE handler.

``PATCH /tasks/{id}`` with a JSON object sets the columns it names (only those the table has)
with one ``UPDATE … RETURNING *`` and a commit, and answers the record as JSON, or 404.
No validation, audit, logging or authentication: what a PATCH costs on this stack with
nothing but the write. One aiosqlite connection, WAL and ``synchronous=FULL`` (taskgate's
durability); concurrent requests' commits share whatever the connection has done by then.
It runs on taskgate's event loop and JSON library (uvloop and orjson when installed), as
the ceiling does.

Usage: python scripts/bench_peers/minimal.py DB [--host 127.0.0.1] [--port 0]; prints
``minimal listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiosqlite  # noqa: E402
from aiohttp import web  # noqa: E402

from gateway.speedups import dumps_bytes, loads, run  # noqa: E402

DB = web.AppKey("db", aiosqlite.Connection)
COLUMNS = web.AppKey("columns", tuple)


def build_app(path: Path) -> web.Application:
    async def database(app: web.Application):  # type: ignore[no-untyped-def]
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        app[DB] = db
        app[COLUMNS] = tuple(row[1] for row in await db.execute_fetchall("PRAGMA table_info(task)"))
        yield
        await db.close()

    async def patch_task(request: web.Request) -> web.Response:
        try:
            task_id = int(request.match_info["id"])
            changes = loads(await request.read())
        except ValueError:
            raise web.HTTPBadRequest() from None
        if not isinstance(changes, dict):
            raise web.HTTPBadRequest()
        columns = request.app[COLUMNS]
        names = [name for name in changes if name in columns and name != "id"]
        if not names:
            raise web.HTTPBadRequest()
        db = request.app[DB]
        rows = await db.execute_fetchall(
            f"UPDATE task SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ? RETURNING *",
            [*(changes[n] for n in names), task_id])
        await db.commit()
        if not rows:
            raise web.HTTPNotFound()
        return web.Response(body=dumps_bytes(dict(zip(columns, rows[0], strict=True))),
                            content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.router.add_patch("/tasks/{id}", patch_task)
    return app


async def serve(path: Path, host: str, port: int) -> None:
    runner = web.AppRunner(build_app(path), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    for bound_host, bound_port, *_ in runner.addresses:
        print(f"minimal listening on http://{bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    run(serve(args.db, args.host, args.port))


if __name__ == "__main__":
    main()
