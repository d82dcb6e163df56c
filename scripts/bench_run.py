"""The benchmark behind scripts/bench: taskgate against a bare aiohttp ceiling, side by side.

For each task count N it seeds a template database once (N tasks per style, through the
store's bulk path, with their audit rows and indexes), then runs interleaved rounds:
the ceiling server (scripts/bench_ceiling.py) under every scenario, then taskgate on a
copy of the template at each ``synchronous`` setting under the same scenarios.
One server process runs at a time, on 127.0.0.1; wrk drives it with the Lua scripts in
scripts/. It prints medians per scenario and writes every measurement as JSON.

With ``--backend postgresql`` each round also runs taskgate on a throwaway PostgreSQL cluster
(scripts/bench_postgres.py), with one and with several instances against one database,
after taskgate on SQLite, and prints the two side by side.

With ``--peers`` each round also runs the servers taskgate's users would pick instead
(scripts/bench_peers/: a minimal aiohttp + aiosqlite handler, FastAPI + SQLModel, Datasette,
json-server) on the same PATCH workload, after taskgate, and prints them side by side.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_peers  # noqa: E402
import bench_postgres  # noqa: E402
from bench_peers import report as peers_report  # noqa: E402
from bench_server import Server, _clean_env  # noqa: E402

from gateway import speedups  # noqa: E402

SEED_VERSION = 3  # bump when the seeded content or its schema changes (templates are remade)
SO_ASSOCIATE = 627
USERS = {"sailpoint": "sp_worker", "superoffice": "so_worker", "webmethods": "wm_worker"}
PASSWORD = "bench-password"  # a throwaway user in a throwaway database


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    style: str  # whose credentials it sends
    extra: tuple[str, ...] = ()  # more arguments for the script, after N and the Authorization header


SCENARIOS = (
    Scenario("sailpoint_patch", "bench_sailpoint_patch.lua", "sailpoint"),
    Scenario("sailpoint_get", "bench_sailpoint_get.lua", "sailpoint"),
    Scenario("superoffice_put_json", "bench_superoffice_put_json.lua", "superoffice"),
    Scenario("superoffice_put_xml", "bench_superoffice_put_xml.lua", "superoffice"),
    Scenario("webmethods_put", "bench_webmethods_put.lua", "webmethods"),
    Scenario("sailpoint_list", "bench_sailpoint_list.lua", "sailpoint"),
)
QUICK_SCENARIOS = ("sailpoint_patch", "sailpoint_get", "superoffice_put_json", "webmethods_put")
STATUSES = (None, "SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR")


# -- seeding -------------------------------------------------------------------------------
def _sailpoint_docs(n: int, start: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    from gateway.apis import sailpoint
    _id, base = sailpoint.import_task({"id": "0" * 32, "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation",
                                       "launcher": USERS["sailpoint"]}, _iso(start))
    for i in range(1, n + 1):
        when = _iso(start + timedelta(seconds=i))
        status = STATUSES[i % len(STATUSES)]
        task_id = f"{i:032x}"
        yield task_id, {**base, "id": task_id, "type": "QUARTZ" if i % 2 else "QPOC", "created": when,
                        "modified": when, "completionStatus": status, "completed": when if status else None,
                        "uniqueName": f"Aggregation {i}"}


def _superoffice_docs(n: int, start: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    from gateway.apis import superoffice
    _id, base = superoffice.import_task({"Id": 1, "Name": "Export", "AssociateId": SO_ASSOCIATE,
                                         "State": "Started", "Description": "Exports sales"}, _iso(start))
    for i in _in_key_order(n):
        yield str(i), {**base, "Id": i, "Name": f"Export {i}", "Created": _iso(start + timedelta(seconds=i))}


def _webmethods_docs(n: int, start: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    from gateway.apis import webmethods
    _id, base = webmethods.import_task({"TaskInfo": {"taskID": "1",
                                                     "taskTypeID": "26629648-BF99-D8E1-BDC6-AD91EC9AE268",
                                                     "name": "Approve order", "priority": "medium",
                                                     "assignedToList": [USERS["webmethods"]],
                                                     "createdBy": "import"},
                                        "TaskData": {"Order": {"id": "1"}}}, _iso(start))
    info = base["TaskInfo"]
    for i in _in_key_order(n):
        when = _iso(start + timedelta(seconds=i))
        yield str(i), {"TaskInfo": {**info, "taskID": str(i), "name": f"Approve order {i}", "createdDate": when,
                                    "lastModifiedDate": when},
                       "TaskData": {"Order": {"id": str(i)}}}


def _in_key_order(n: int) -> list[int]:
    """1..n in the order of their ids as text ("1", "10", "100", …): the primary key's
    order, so rows are appended to its B-tree rather than inserted all over it."""
    return sorted(range(1, n + 1), key=str)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def _seed(path: Path, n: int) -> dict[str, str]:
    from gateway.apis import sailpoint, superoffice, webmethods
    from gateway.auth import hash_password, new_secret, secret_hash
    from gateway.store.sqlite import SQLiteStore

    store = await SQLiteStore.open(path, synchronous="OFF", cache_mib=1024)
    try:
        token = new_secret()
        await store.add_user("admin", "admin", None)
        await store.add_user(USERS["sailpoint"], "user", None, (secret_hash(token), False, None, "bench"))
        for style in ("superoffice", "webmethods"):
            await store.add_user(USERS[style], "user", hash_password(PASSWORD),
                                 associate_id=SO_ASSOCIATE if style == "superoffice" else None)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for style, docs in (("sailpoint", _sailpoint_docs), ("superoffice", _superoffice_docs),
                            ("webmethods", _webmethods_docs)):
            began = time.monotonic()
            await store.bulk_create(style, docs(n, start), actor="bench", request_id="bench-seed")
            print(f"  seeded {n} {style} tasks in {time.monotonic() - began:.1f} s", flush=True)
        began = time.monotonic()
        for module in (sailpoint, superoffice, webmethods):
            await module.prepare(store)  # the indexes serve starts with, built once on a full table
        print(f"  built the indexes in {time.monotonic() - began:.1f} s", flush=True)
    finally:
        await store.close()
    basic = lambda user: "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()  # noqa: E731
    return {"sailpoint": f"Bearer {token}", "superoffice": basic(USERS["superoffice"]),
            "webmethods": basic(USERS["webmethods"])}


def template(workdir: Path, n: int, reseed: bool) -> tuple[Path, dict[str, str]]:
    """The seeded database for *n* and the Authorization header of each style's client;
    made once and kept in *workdir* (``--reseed`` makes it again)."""
    db, meta = workdir / f"template-{n}.db", workdir / f"template-{n}.json"
    # no schema version here: taskgate migrates an older template's copy when it opens it
    stamp = {"seed_version": SEED_VERSION, "n": n}
    if not reseed and db.exists() and meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("stamp") == stamp:
            return db, saved["auth"]
    for stale in (db, meta, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    print(f"seeding {n} tasks per style into {db.name} ...", flush=True)
    began = time.monotonic()
    auth = speedups.run(_seed(db, n))
    print(f"  seeded in {time.monotonic() - began:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)", flush=True)
    meta.write_text(json.dumps({"stamp": stamp, "auth": auth}))
    return db, auth


def fresh_copy(template_db: Path, copy: Path) -> None:
    """A copy of the template that taskgate runs on: one per task count, shared by its rounds
    and synchronous settings (a million tasks per style is gigabytes; the few thousand
    changes a round makes do not change what an update costs)."""
    for stale in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
        stale.unlink(missing_ok=True)
    began = time.monotonic()
    shutil.copyfile(template_db, copy)
    # on disk before the servers run: else the kernel writes gigabytes back during the first
    # measurements, and every fsync the server makes waits behind them
    with open(copy, "rb+") as written:
        os.fsync(written.fileno())
    print(f"  copied the template in {time.monotonic() - began:.1f} s", flush=True)


# -- servers -------------------------------------------------------------------------------
def start_ceiling(workdir: Path) -> Server:
    return Server([sys.executable, str(ROOT / "scripts" / "bench_ceiling.py")], _clean_env(), workdir,
                  "ceiling", workdir / "ceiling.log")


def start_taskgate(workdir: Path, db: Path, synchronous: str, workers: int = 1,
                   settings: dict[str, str] | None = None) -> Server:
    """taskgate serve on *db*; *settings*: TASKGATE_* variables beyond the bench's own."""
    env = _clean_env() | (settings or {})
    env["TASKGATE_STORAGE_SYNCHRONOUS"] = synchronous
    env["TASKGATE_LOG_FILE"] = str(workdir / "taskgate-requests.log")  # logging stays on, as in production
    return Server([sys.executable, "-m", "gateway", "--db", str(db), "serve", "--host", "127.0.0.1", "--port", "0",
                   "--workers", str(workers)],
                  env | {"PYTHONPATH": str(ROOT)}, workdir, "taskgate", workdir / "taskgate.log")


def peer_scenario(peer: bench_peers.Peer) -> Scenario:
    """The PATCH workload as *peer* takes it (scripts/bench_peers/patch.lua)."""
    return Scenario(f"peer_{peer.name}", "bench_peers/patch.lua", "peer", (peer.method, peer.path, peer.body))


def run_peer(peer: bench_peers.Peer, workdir: Path, data: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start *peer* on its copy of the records, check one request's answer, measure, stop."""
    port = bench_peers.free_port()
    argv, auth = bench_peers.command(peer, workdir, data, port)
    server = Server(argv, _clean_env() | bench_peers.environment(peer, data), workdir, peer.name,
                    workdir / f"peer-{peer.name}.log", port=port)
    try:
        bench_peers.check(peer, server.url, auth)
        results = measure(server, [peer_scenario(peer)], n, {"peer": auth}, args)
        return {"results": results, "peak_rss_mib": server.peak_rss_mib()}
    finally:
        server.stop()


def _setting(sync: str, workers: int) -> str:
    """The key of one taskgate setting in the results: FULL, or FULL/2w with two workers."""
    return sync if workers == 1 else f"{sync}/{workers}w"


# -- load ---------------------------------------------------------------------------------
def wrk(url: str, scenario: Scenario, n: int, auth: str, seconds: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", f"scripts/{scenario.script}", url, "--", str(n), auth, *scenario.extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # no other child ends meanwhile: this is wrk's
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = json.loads(line[6:])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["client_cpu_us_per_request"] = wrk_cpu * 1e6 / max(result["requests"], 1)
    return result


class Streams:
    """*count* GET /events clients (scripts/bench_streams.py) held open beside a measurement."""

    def __init__(self, url: str, auth: str, count: int, query: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_streams.py"), url, auth,
                                      str(count), query], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the stream clients did not start")

    def cpu_seconds(self) -> float:
        """User and system CPU time of the stream clients so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        line = next((ln for ln in out.splitlines() if ln.startswith("STREAMS ")), None)
        if line is None:
            raise RuntimeError(f"the stream clients failed: {out}")
        return json.loads(line[8:])


def measure(server: Server, scenarios: list[Scenario], n: int, auth: dict[str, str],
            args: argparse.Namespace, streams: int = 0) -> dict[str, dict[str, Any]]:
    out = {}
    for scenario in scenarios:
        clients = Streams(server.url, auth["sailpoint"], streams, args.stream_query) if streams else None
        try:
            wrk(server.url, scenario, n, auth[scenario.style], args.warmup, args)  # caches, connections, pages
            cpu = server.cpu_seconds()
            clients_cpu = clients.cpu_seconds() if clients is not None else 0.0
            result = wrk(server.url, scenario, n, auth[scenario.style], args.duration, args)
            result["server_cpu_us_per_request"] = (server.cpu_seconds() - cpu) * 1e6 / max(result["requests"], 1)
            if clients is not None:
                result["streams_cpu_us_per_request"] = \
                    (clients.cpu_seconds() - clients_cpu) * 1e6 / max(result["requests"], 1)
        finally:
            totals = clients.stop() if clients is not None else None
        if totals is not None:
            result["streams"] = totals
        out[scenario.name] = result
        bad = sum(result["errors"].values())
        print(f"    {scenario.name:22} {result['rps']:8.0f} req/s  p50 {result['latency_us']['p50'] / 1000:6.1f} ms"
              f"  p99 {result['latency_us']['p99'] / 1000:6.1f} ms"
              f"  server CPU {result['server_cpu_us_per_request']:5.0f} us/req"
              + (f"  ERRORS {result['errors']}" if bad else "")
              + (f"  stream clients' CPU {result['streams_cpu_us_per_request']:.0f} us/req  streams {result['streams']}"
                 if "streams" in result else ""),
              flush=True)
    return out


# -- report -------------------------------------------------------------------------------
def summarize(runs: list[dict[str, Any]], sizes: list[int], syncs: list[str],
              scenarios: list[Scenario]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        for sync in syncs:
            for sc in scenarios:
                ratios, rps, p50, p99, ceil, errs, cpu = [], [], [], [], [], 0, []
                rss, clients = [], []
                for run in runs:
                    if run["n"] != n:
                        continue
                    tg = run["taskgate"].get(sync, {}).get("results", {}).get(sc.name)
                    cl = run["ceiling"]["results"].get(sc.name)
                    if tg is None or cl is None:
                        continue
                    ratios.append(tg["rps"] / cl["rps"])
                    rps.append(tg["rps"])
                    ceil.append(cl["rps"])
                    p50.append(tg["latency_us"]["p50"] / 1000)
                    p99.append(tg["latency_us"]["p99"] / 1000)
                    cpu.append((tg["server_cpu_us_per_request"], cl["server_cpu_us_per_request"]))
                    errs += sum(tg["errors"].values()) + sum(cl["errors"].values())
                    rss.append(run["taskgate"][sync]["peak_rss_mib"])
                    if "streams_cpu_us_per_request" in tg:
                        clients.append(tg["streams_cpu_us_per_request"])
                if not ratios:
                    continue
                rows.append({"n": n, "synchronous": sync, "scenario": sc.name, "rounds": len(ratios),
                             "ratio": statistics.median(ratios), "taskgate_rps": statistics.median(rps),
                             "ceiling_rps": statistics.median(ceil), "p50_ms": statistics.median(p50),
                             "p99_ms": statistics.median(p99), "peak_rss_mib": max(rss), "errors": errs,
                             "cpu_us_per_request": statistics.median(c[0] for c in cpu),
                             "ceiling_cpu_us_per_request": statistics.median(c[1] for c in cpu),
                             **({"streams_cpu_us_per_request": statistics.median(clients)} if clients else {})})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\nmedians of the interleaved rounds (ratio = taskgate / ceiling in the same round)")
    print(f"{'N':>9} {'sync':6} {'scenario':22} {'ratio':>6} {'taskgate/s':>10} {'ceiling/s':>10} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8} {'CPU us/req':>11}")
    for r in rows:
        print(f"{r['n']:>9} {r['synchronous']:6} {r['scenario']:22} {r['ratio']:6.2f} {r['taskgate_rps']:10.0f} "
              f"{r['ceiling_rps']:10.0f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['peak_rss_mib']:8.0f} "
              f"{r['cpu_us_per_request']:5.0f}/{r['ceiling_cpu_us_per_request']:<5.0f}"
              + (f"  ({r['errors']} errors)" if r["errors"] else ""))
    patch = {(r["n"], r["synchronous"]): r["taskgate_rps"] for r in rows if r["scenario"] == "sailpoint_patch"}
    sizes = sorted({n for n, _s in patch})
    if len(sizes) > 1:
        for sync in sorted({s for _n, s in patch}):
            if (sizes[0], sync) in patch and (sizes[-1], sync) in patch:
                print(f"PATCH at {sizes[-1]} tasks / at {sizes[0]} tasks ({sync}): "
                      f"{patch[(sizes[-1], sync)] / patch[(sizes[0], sync)]:.2f}")


def print_streams_effect(rows: list[dict[str, Any]], streams: int) -> None:
    """Each scenario's p99 and throughput with the stream clients open, against without."""
    by = {(r["n"], r["synchronous"], r["scenario"]): r for r in rows}
    print(f"\nwith {streams} GET /events streams open / without (medians of the rounds)")
    for (n, label, scenario), r in by.items():
        sync, _, with_streams = label.partition("+")
        base = by.get((n, sync, scenario))
        if with_streams and base is not None:
            print(f"{n:>9} {sync:6} {scenario:22} p99 {r['p99_ms']:6.1f} / {base['p99_ms']:6.1f} ms = "
                  f"{r['p99_ms'] / base['p99_ms']:.2f}   req/s {r['taskgate_rps'] / base['taskgate_rps']:.2f}   "
                  f"server CPU {r['cpu_us_per_request']:.0f} / {base['cpu_us_per_request']:.0f} us/req   "
                  f"stream clients' CPU {r.get('streams_cpu_us_per_request', 0):.0f} us/req")


def print_scaling(runs: list[dict[str, Any]], sizes: list[int], syncs: list[str], workers: list[int],
                  scenarios: list[Scenario]) -> None:
    """Throughput and p99 per worker count, and the ratio to one worker measured in the same round."""
    if len(workers) < 2 or workers[0] != 1:
        return
    print("\nscaling with workers (medians; x1 = throughput / one worker's in the same round; "
          "ceiling = taskgate / ceiling;\nwrk us/req = the load generator's own CPU; "
          f"cores busy = req/s x (server + wrk) CPU, of the {os.cpu_count()} the machine has)")
    print(f"{'N':>9} {'sync':6} {'scenario':22} {'workers':>7} {'req/s':>8} {'p99 ms':>7} {'x1':>6} {'ceiling':>8} "
          f"{'CPU us/req':>10} {'wrk us/req':>10} {'cores busy':>10}")
    for n in sizes:
        for sync in syncs:
            for sc in scenarios:
                for w in workers:
                    rps, p99, x1, ceil, cpu, client, busy = [], [], [], [], [], [], []
                    for run in runs:
                        if run["n"] != n:
                            continue
                        one = run["taskgate"].get(_setting(sync, 1), {}).get("results", {}).get(sc.name)
                        this = run["taskgate"].get(_setting(sync, w), {}).get("results", {}).get(sc.name)
                        cl = run["ceiling"]["results"].get(sc.name)
                        if one is None or this is None or cl is None:
                            continue
                        rps.append(this["rps"])
                        p99.append(this["latency_us"]["p99"] / 1000)
                        x1.append(this["rps"] / one["rps"])
                        ceil.append(this["rps"] / cl["rps"])
                        cpu.append(this["server_cpu_us_per_request"])
                        client.append(this.get("client_cpu_us_per_request", 0.0))
                        busy.append(this["rps"] * (cpu[-1] + client[-1]) / 1e6)
                    if rps:
                        print(f"{n:>9} {sync:6} {sc.name:22} {w:>7} {statistics.median(rps):8.0f} "
                              f"{statistics.median(p99):7.1f} {statistics.median(x1):6.2f} "
                              f"{statistics.median(ceil):8.2f} {statistics.median(cpu):10.0f} "
                              f"{statistics.median(client):10.0f} {statistics.median(busy):10.2f}")


def print_plan(sizes: list[int], labels: list[str], args: argparse.Namespace, rounds: int, scenarios: list[str],
               peers: list[bench_peers.Peer]) -> None:
    """What a run with these arguments would do, in order, without doing any of it (--dry-run)."""
    print(f"{rounds} interleaved rounds of {args.duration:g} s per scenario (after {args.warmup:g} s of warm-up), "
          f"wrk -t{args.threads} -c{args.connections}, in {args.workdir.name}/")
    if args.backend == "postgresql":
        print("a throwaway PostgreSQL cluster, " + ", ".join(f"{name}={value}" for name, value in
                                                             bench_postgres.DURABLE_SETTINGS.items())
              + "; each N's template copied in with taskgate copy; one wrk per instance, the connections split")
    for n in sizes:
        print(f"N={n}, each round in this order:")
        print(f"  ceiling: {', '.join(scenarios)}")
        for label in labels:
            for workers in args.workers:
                print(f"  taskgate synchronous={label} workers={workers}: {', '.join(scenarios)}")
        if args.backend == "postgresql":
            print("\n".join(bench_postgres.plan(args.instances, scenarios)))
        for peer in peers:
            print(f"  peer {peer.name} ({peer.label}): {peer.method} {peer.path % 1}, body {peer.body % (42, 42)}")
    for line in bench_peers.install_plan(args.workdir, peers):
        print(f"would install {line}")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "speedups": speedups.describe(), "wrk": wrk_version[0] if wrk_version else "",
            "commit": commit.stdout.strip(), "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run under two minutes: N=2000, FULL only, four scenarios, short runs")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        help="task counts per style (default 10000,1000000)")
    parser.add_argument("--sync", type=lambda s: [x.upper() for x in s.split(",")],
                        help="synchronous settings (default FULL,NORMAL)")
    parser.add_argument("--scenarios", type=lambda s: s.split(","), help="scenario names (default: all)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=int, help="whole seconds measured per scenario (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="whole seconds of unmeasured load first (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench",
                        help="where templates, copies and logs go (default .bench/); must be a real disk")
    parser.add_argument("--out", type=Path, help="results file (default WORKDIR/results-<time>.json)")
    parser.add_argument("--reseed", action="store_true", help="make the seeded templates again")
    parser.add_argument("--streams", type=int, default=0, metavar="N",
                        help="also measure taskgate with N GET /events clients open during each scenario "
                             "(shown as SYNC+Nev beside the run without them)")
    parser.add_argument("--stream-query", default="task={task}", metavar="QUERY",
                        help="the reading streams' query (default task={task}: each follows one task of its "
                             "own, which the scenario changes now and then; task=none: heartbeats only, every "
                             "commit still reaching the feed; empty: every change the scenario makes); the "
                             "never-reading stream always asks for every change")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1],
                        help="taskgate worker counts to run, e.g. 1,2 (default 1): serve --workers N")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: also run taskgate on a throwaway PostgreSQL cluster (fsync and "
                             "synchronous_commit on) in each round, beside SQLite (default then: N=10000)")
    parser.add_argument("--instances", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                        help="with --backend postgresql: taskgate serve instance counts against the one "
                             "database, each instance on its own port (default 1,2)")
    parser.add_argument("--peers", nargs="?", const="all", metavar="NAMES",
                        help="also run, in each round after taskgate, the peers on the same PATCH workload: "
                             f"all, or some of {','.join(bench_peers.NAMES)}; installs them on first use into "
                             "WORKDIR/venv and WORKDIR/npm (default then: N=10000, FULL, sailpoint_patch)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what the run would start and install, and exit without running anything")
    args = parser.parse_args(argv)
    quick = args.quick
    try:
        peers = bench_peers.parse(args.peers) if args.peers is not None else []
    except ValueError as e:
        parser.error(str(e))
    pg = args.backend == "postgresql"
    sizes = args.sizes or ([2000] if quick else [10_000] if peers or pg else [10_000, 1_000_000])
    syncs = args.sync or (["FULL"] if quick or peers or pg else ["FULL", "NORMAL"])
    names = args.scenarios or (list(QUICK_SCENARIOS) if quick else ["sailpoint_patch"] if peers
                               else [s.name for s in SCENARIOS])
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if peers and "sailpoint_patch" not in names:
        parser.error("--peers compares taskgate's sailpoint_patch with them: keep it in --scenarios")
    scenarios = [s for s in SCENARIOS if s.name in names]
    rounds = args.rounds or 3
    args.duration = args.duration or (2 if quick else 5)
    # each synchronous setting, and with --streams the same again with the stream clients open
    labels = syncs + ([f"{sync}+{args.streams}ev" for sync in syncs] if args.streams else [])
    if args.dry_run:
        print_plan(sizes, labels, args, rounds, [s.name for s in scenarios], peers)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (scripts/bench does it when run as root)", file=sys.stderr)
        return 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    bench_peers.install(args.workdir, peers)
    info = machine()
    postgres = bench_postgres.Postgres() if pg else None
    if postgres is not None:
        info["postgresql"] = postgres.start()
        print(bench_postgres.settings_line(info["postgresql"]) + " (SQLite: synchronous as listed)", flush=True)
    try:
        return _run(args, info, quick, peers, sizes, syncs, scenarios, rounds, labels, argv, postgres)
    finally:
        if postgres is not None:
            postgres.stop()


def _run(args: argparse.Namespace, info: dict[str, Any], quick: bool, peers: list[bench_peers.Peer],
         sizes: list[int], syncs: list[str], scenarios: list[Scenario], rounds: int, labels: list[str],
         argv: list[str] | None, postgres: bench_postgres.Postgres | None) -> int:
    if peers:
        info["peers"] = bench_peers.versions(args.workdir, peers)
        print("peers: " + "; ".join(info["peers"].values()))
    print(f"taskgate benchmark: {info['cpu']} x{info['cores']}, Python {info['python']}, {info['speedups']}, "
          f"wrk -t{args.threads} -c{args.connections}, {rounds} rounds of {args.duration:g} s per scenario, "
          f"load average {info['load_average'][0]:.2f} (the machine's other work shows here)")
    began = time.monotonic()
    runs: list[dict[str, Any]] = []
    copy = args.workdir / "run.db"
    copies: dict[str, Path] = {}
    for n in sizes:
        db, auth = template(args.workdir, n, args.reseed)
        pg_url = postgres.database(n, db, args.workdir) if postgres is not None else ""
        for rnd in range(1, rounds + 1):
            run: dict[str, Any] = {"n": n, "round": rnd, "taskgate": {}}
            print(f"N={n} round {rnd}/{rounds}: ceiling", flush=True)
            server = start_ceiling(args.workdir)
            try:
                results = measure(server, scenarios, n, auth, args)
                run["ceiling"] = {"results": results, "peak_rss_mib": server.peak_rss_mib()}
            finally:
                server.stop()
            for label in labels:
                sync, _, with_streams = label.partition("+")
                streams = args.streams if with_streams else 0
                for workers in args.workers:
                    key = _setting(label, workers)
                    print(f"N={n} round {rnd}/{rounds}: taskgate synchronous={sync} workers={workers}"
                          + (f" with {streams} streams ({args.stream_query or 'every event'})" if streams else ""),
                          flush=True)
                    if rnd == 1 and label == labels[0] and workers == args.workers[0]:
                        fresh_copy(db, copy)
                    # the streams are one client's: a capacity test, not the limit per user under test
                    server = start_taskgate(args.workdir, copy, sync, workers,
                                            settings={"TASKGATE_EVENTS_MAX_STREAMS_PER_USER": "0"})
                    try:
                        results = measure(server, scenarios, n, auth, args, streams)
                        run["taskgate"][key] = {"results": results, "peak_rss_mib": server.peak_rss_mib()}
                    finally:
                        server.stop()
                    print(f"    peak RSS {run['taskgate'][key]['peak_rss_mib']:.0f} MiB", flush=True)
            for count in args.instances if postgres is not None else []:
                print(f"N={n} round {rnd}/{rounds}: taskgate postgresql instances={count}", flush=True)
                assert postgres is not None
                servers = bench_postgres.start_instances(args.workdir, pg_url, count)
                try:
                    results = bench_postgres.measure(servers, postgres, scenarios, n, auth, args)
                    rss = sum(server.peak_rss_mib() for server in servers)
                    run["taskgate"][bench_postgres.key(count)] = {"results": results, "peak_rss_mib": rss}
                finally:
                    for server in servers:
                        server.stop()
            if peers:
                if rnd == 1:
                    copies = bench_peers.fresh_copies(args.workdir, n, peers)
                run["peers"] = {}
                for peer in peers:
                    print(f"N={n} round {rnd}/{rounds}: peer {peer.name} ({peer.label})", flush=True)
                    run["peers"][peer.name] = run_peer(peer, args.workdir, copies[peer.name], n, args)
                    print(f"    peak RSS {run['peers'][peer.name]['peak_rss_mib']:.0f} MiB", flush=True)
            runs.append(run)
    settings = [_setting(label, w) for label in labels for w in args.workers]
    pg_settings = [bench_postgres.key(count) for count in args.instances] if postgres is not None else []
    rows = summarize(runs, sizes, settings + pg_settings, scenarios)
    print_table(rows)
    print_scaling(runs, sizes, syncs, args.workers, scenarios)
    if postgres is not None:
        beside = [(f"SQLite {sync}" + (f" {w} workers" if w > 1 else ""), _setting(sync, w))
                  for sync in syncs for w in args.workers]
        beside += [(f"PostgreSQL {c} instance" + ("s" if c > 1 else ""), bench_postgres.key(c))
                   for c in args.instances]
        bench_postgres.print_beside(runs, sizes, beside, scenarios)
        print(bench_postgres.settings_line(info["postgresql"]))
    if args.streams:
        print_streams_effect(rows, args.streams)
    peer_rows = {f"{n} {setting}": peers_report.summarize(runs, n, setting, peers)
                 for n in sizes for setting in settings} if peers else {}
    for key, table in peer_rows.items():
        peers_report.print_table(table, int(key.split()[0]))
    out = args.out or args.workdir / f"results-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"machine": info, "command": " ".join(["scripts/bench", *(argv or sys.argv[1:])]),
                               "settings": {"sizes": sizes, "synchronous": syncs, "streams": args.streams,
                                            "stream_query": args.stream_query, "rounds": rounds,
                                            "workers": args.workers, "backend": args.backend,
                                            "instances": args.instances if postgres is not None else [],
                                            "duration_s": args.duration, "warmup_s": args.warmup,
                                            "threads": args.threads, "connections": args.connections},
                               "summary": rows, "peers": peer_rows, "runs": runs}, indent=1))
    print(f"\nresults written to {out} ({time.monotonic() - began:.0f} s in all; "
          f"load average {os.getloadavg()[0]:.2f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
