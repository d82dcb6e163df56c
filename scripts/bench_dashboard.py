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
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import statistics
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-style", type=int, default=33_334, help="tasks per style (default 33,334: 100,002)")
    parser.add_argument("--rounds", type=int, default=20, help="loads of each page (default 20)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    args = parser.parse_args(argv)
    args.workdir.mkdir(exist_ok=True)
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
