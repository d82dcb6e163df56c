#!/usr/bin/env python3
"""The dashboard's list against a real database: server time of its first page.

Seeds (once, as scripts/bench does, kept in .bench/) a template with N tasks per style
through the store's bulk path, starts ``taskgate serve`` on a copy, signs in through the
dashboard's own form as a plain user who may see every task, and loads each list page
below ROUNDS times. The server time is the ``ms`` of taskgate's own request log line for
each request (handler and store, no network); the median, 95th percentile and maximum of
each page are printed, with the client's view beside them.

    .venv/bin/python scripts/bench_dashboard.py              # 33,334 tasks per style: 100,002
    .venv/bin/python scripts/bench_dashboard.py --per-style 1000 --rounds 5

With ``--live N`` it measures instead what N open dashboards cost the API: scripts/bench's
``sailpoint_patch`` scenario (wrk) in interleaved rounds with no page open and with N
pages open, each the list's first page with its ``GET /ui/live`` stream (the 50 tasks it
shows, of which the scenario patches its share), read by clients in a thread of this
process; it prints PATCH p99 and throughput of each, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import re
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_run  # noqa: E402

#: the pages measured: the default first page, and the first page of each kind of filter
PAGES = {"all styles, newest first": "/ui/",
         "one style": "/ui/?style=sailpoint",
         "status": "/ui/?status=ERROR",
         "owner": "/ui/?owner=wm_worker",
         "sorted by name": "/ui/?sort=name&order=asc",
         "text (a scan)": "/ui/?q=Export+4242",
         "page 20, all styles": "/ui/?page=20",
         "page 600, one style": "/ui/?style=superoffice&page=600"}


def _hold_streams(url: str, auth: str, count: int, ready: threading.Event, stop: threading.Event,
                  totals: dict[str, int]) -> None:
    """*count* /ui/live streams, each read to the end, until *stop* is set."""
    import aiohttp

    async def run() -> None:
        async def one(session: aiohttp.ClientSession) -> None:
            async with session.get(f"{url}/ui/", headers={"Authorization": auth}) as page:  # the list's first page
                keys = re.search(r'sse-connect="\./live\?keys=([^"]*)"', await page.text()).group(1)  # type: ignore
            async with session.get(f"{url}/ui/live?keys={keys}", headers={"Authorization": auth}) as resp:
                assert resp.status == 200, resp.status
                totals["opened"] += 1
                async for line in resp.content:
                    if line.startswith(b"id: "):
                        totals["events"] += 1
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            tasks = [asyncio.ensure_future(one(session)) for _ in range(count)]
            while totals["opened"] < count:
                await asyncio.sleep(0.05)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    asyncio.run(run())


def live_cost(args: argparse.Namespace) -> int:
    template, auth = bench_run.template(args.workdir, args.per_style, reseed=False)
    db = args.workdir / f"dashboard-live-{args.per_style}.db"
    bench_run.fresh_copy(template, db)
    scenario = next(s for s in bench_run.SCENARIOS if s.name == "sailpoint_patch")
    wrk_args = argparse.Namespace(threads=2, connections=32)
    # the N pages are one user's: the per-user share would refuse all but 10 of them
    server = bench_run.start_taskgate(args.workdir, db, "FULL", settings={"TASKGATE_UI_MAX_LIVE_STREAMS_PER_USER": "0"})
    results: dict[str, list[dict]] = {"none": [], "live": []}
    try:
        for _round in range(args.rounds):
            for mode in ("none", "live"):
                stop, ready, totals = threading.Event(), threading.Event(), {"opened": 0, "events": 0}
                holder = None
                if mode == "live":
                    holder = threading.Thread(target=_hold_streams, args=(server.url, auth["sailpoint"], args.live,
                                                                          ready, stop, totals))
                    holder.start()
                    assert ready.wait(30), "the streams did not open"
                bench_run.wrk(server.url, scenario, args.per_style, auth["sailpoint"], 1, wrk_args)  # warm-up
                result = bench_run.wrk(server.url, scenario, args.per_style, auth["sailpoint"], args.duration,
                                       wrk_args)
                stop.set()
                if holder is not None:
                    holder.join()
                    result["events"] = totals["events"]
                results[mode].append(result)
                print(f"  {mode:4} p99 {result['latency_us']['p99'] / 1000:6.1f} ms  {result['rps']:7.0f} req/s"
                      + (f"  {totals['events']} events to {args.live} pages" if holder else ""), flush=True)
    finally:
        server.stop()
    p99 = {m: statistics.median(r["latency_us"]["p99"] for r in rs) / 1000 for m, rs in results.items()}
    rps = {m: statistics.median(r["rps"] for r in rs) for m, rs in results.items()}
    print(f"sailpoint_patch, {args.per_style:,} tasks per style, FULL, {args.rounds} rounds of {args.duration} s, "
          f"32 connections: PATCH p99 {p99['none']:.1f} ms without pages, {p99['live']:.1f} ms with {args.live} "
          f"(x{p99['live'] / p99['none']:.2f}); {rps['none']:.0f} vs {rps['live']:.0f} req/s "
          f"(x{rps['live'] / rps['none']:.2f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-style", type=int, default=33_334, help="tasks per style (default 33,334: 100,002)")
    parser.add_argument("--rounds", type=int, default=20, help="loads of each page (default 20)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--live", type=int, default=0, metavar="N",
                        help="measure PATCH with N dashboards open instead (see above)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per --live measurement (default 5)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(exist_ok=True)
    if args.live:
        return live_cost(args)
    template, _auth = bench_run.template(args.workdir, args.per_style, reseed=False)
    db = args.workdir / f"dashboard-{args.per_style}.db"
    bench_run.fresh_copy(template, db)
    log = args.workdir / "taskgate-requests.log"
    log.unlink(missing_ok=True)
    server = bench_run.start_taskgate(args.workdir, db, "NORMAL")
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = urllib.parse.urlencode({"user": bench_run.USERS["webmethods"], "password": bench_run.PASSWORD})
        with opener.open(server.url + "/ui/login", data=form.encode(), timeout=30) as resp:
            assert resp.status == 200 and resp.url.endswith("/ui/"), (resp.status, resp.url)
        client: dict[str, list[float]] = {name: [] for name in PAGES}
        for _round in range(args.rounds):
            for name, path in PAGES.items():
                began = time.perf_counter()
                with opener.open(server.url + path, timeout=30) as resp:
                    body = resp.read()
                client[name].append((time.perf_counter() - began) * 1000)
                assert resp.status == 200 and b"<table" in body, (path, resp.status)
    finally:
        server.stop()
    # the log line has the path without its query: the list's lines are matched to the pages in order
    server_ms: dict[str, list[float]] = {path: [] for path in PAGES.values()}
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    pages = [e for e in requests if e.get("event") == "request" and e.get("path") == "/ui/"][1:]  # after sign-in
    ordered = list(PAGES.values())
    for i, event in enumerate(pages):
        server_ms[ordered[i % len(ordered)]].append(float(event["ms"]))
    total = 3 * args.per_style
    print(f"the dashboard's list over {total:,} tasks ({args.per_style:,} per style), {args.rounds} loads each;")
    print("server ms from taskgate's request log (median / p95 / max), client ms (median)")
    for name, path in PAGES.items():
        values = sorted(server_ms[path])
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"  {name:26} {statistics.median(values):7.1f} {p95:7.1f} {values[-1]:7.1f}"
              f"   client {statistics.median(client[name]):7.1f}   {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
