"""scripts/bench --backend postgresql: taskgate on PostgreSQL beside SQLite in the same rounds,
with one and with several ``taskgate serve`` instances against one database.

The cluster is a throwaway one, started the way the tests start theirs (tests/pg_cluster.py:
``initdb`` into a fresh folder under the system's temporary folder, a unix socket, run as
``nobody`` when the bench runs as root), but durable as a real deployment is:
``fsync``, ``synchronous_commit`` and ``full_page_writes`` on (``DURABLE_SETTINGS``), since
the SQLite side runs ``synchronous=FULL``. Each task count's database is the seeded SQLite
template copied in with ``taskgate copy``, once per run, and shared by its rounds.

Several instances are several ``taskgate serve`` processes, each on its own port; one wrk
process drives each (the connections and threads split between them) and their requests
are added up. The p99 shown is the larger of the wrk processes'. CPU time is counted for
the serve processes and, apart, for the PostgreSQL server (the postmaster and every backend).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_server import Server, _clean_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pg_cluster import DURABLE_SETTINGS, Cluster  # noqa: E402

__all__ = ["Postgres", "start_instances", "measure", "print_beside", "plan", "key", "settings_line", "SHOWN",
           "DURABLE_SETTINGS"]

#: the server settings the bench reads back from the running cluster and prints
SHOWN = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers",
         "max_connections")


def key(instances: int) -> str:
    """The key of one PostgreSQL setting in the results: PG/1i, PG/2i."""
    return f"PG/{instances}i"


class Postgres:
    """The bench's cluster: :meth:`start`, :meth:`database` per task count, :meth:`stop`."""

    def __init__(self) -> None:
        self.cluster = Cluster(settings=DURABLE_SETTINGS)

    def start(self) -> dict[str, str]:
        """Start the cluster; the settings it runs with, as the server reports them."""
        self.cluster.start()
        return {name: self.cluster.sql(f"SHOW {name}").strip() for name in SHOWN}

    def database(self, n: int, template_db: Path, workdir: Path) -> str:
        """A database holding *template_db*'s rows (``taskgate copy``); its URL."""
        name = f"bench_{n}"
        self.cluster.sql(f"CREATE DATABASE {name}")
        url = self.cluster.dsn(name)
        began = time.monotonic()
        with open(workdir / "taskgate-copy.log", "w") as log:
            done = subprocess.run([sys.executable, "-m", "gateway", "copy", str(template_db), url],
                                  env=_clean_env() | {"PYTHONPATH": str(ROOT)}, cwd=workdir, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"taskgate copy into PostgreSQL failed; see {workdir / 'taskgate-copy.log'}")
        self.cluster.sql("VACUUM ANALYZE", name)  # as autovacuum would soon after a bulk load
        self.cluster.sql("CHECKPOINT")  # the copy's pages on disk before any measurement
        print(f"  copied the template into PostgreSQL in {time.monotonic() - began:.1f} s", flush=True)
        return url

    def cpu_seconds(self) -> float:
        """User and system CPU time of the PostgreSQL server so far: the postmaster, its
        backends and helpers alive now, and those that have exited (the postmaster's
        reaped children)."""
        pid = self.cluster.server_pid()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = sum(int(f) for f in fields[11:15])
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile: counted in the postmaster's reaped time
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.cluster.stop()


def start_instances(workdir: Path, url: str, count: int) -> list[Server]:
    """*count* ``taskgate serve`` processes against *url*, each on a port of its own."""
    servers: list[Server] = []
    try:
        for i in range(1, count + 1):
            env = _clean_env() | {"PYTHONPATH": str(ROOT),
                                  "TASKGATE_LOG_FILE": str(workdir / f"taskgate-pg{i}-requests.log")}
            servers.append(Server([sys.executable, "-m", "gateway", "--db", url, "serve", "--host", "127.0.0.1",
                                   "--port", "0"], env, workdir, "taskgate", workdir / f"taskgate-pg{i}.log"))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def _wrk_many(urls: list[str], script: str, extra: list[str], seconds: int,
              args: argparse.Namespace) -> dict[str, Any]:
    """One wrk process per URL at once, the threads and connections split between them;
    their requests added up, the larger of their latencies."""
    threads, connections = max(1, args.threads // len(urls)), max(1, args.connections // len(urls))
    procs = [subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                               "-s", f"scripts/{script}", url, "--", *extra],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for url in urls]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err or out}")
        results.append(json.loads(line[6:]))
    errors = {name: sum(r["errors"][name] for r in results) for name in results[0]["errors"]}
    return {"requests": sum(r["requests"] for r in results),
            "rps": sum(r["requests"] / (r["duration_us"] / 1e6) for r in results),
            "duration_us": max(r["duration_us"] for r in results), "errors": errors,
            "latency_us": {p: max(r["latency_us"][p] for r in results) for p in ("p50", "p90", "p99", "max")},
            "per_instance_rps": [r["requests"] / (r["duration_us"] / 1e6) for r in results]}


def measure(servers: list[Server], pg: Postgres, scenarios: list[Any], n: int, auth: dict[str, str],
            args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each scenario against all of *servers* at once: warm-up, then the measured run."""
    urls = [server.url for server in servers]
    out = {}
    for scenario in scenarios:
        extra = [str(n), auth[scenario.style], *scenario.extra]
        _wrk_many(urls, scenario.script, extra, args.warmup, args)
        cpu, db_cpu = sum(s.cpu_seconds() for s in servers), pg.cpu_seconds()
        result = _wrk_many(urls, scenario.script, extra, args.duration, args)
        requests = max(result["requests"], 1)
        result["server_cpu_us_per_request"] = (sum(s.cpu_seconds() for s in servers) - cpu) * 1e6 / requests
        result["db_cpu_us_per_request"] = (pg.cpu_seconds() - db_cpu) * 1e6 / requests
        out[scenario.name] = result
        bad = sum(result["errors"].values())
        print(f"    {scenario.name:22} {result['rps']:8.0f} req/s  p50 {result['latency_us']['p50'] / 1000:6.1f} ms"
              f"  p99 {result['latency_us']['p99'] / 1000:6.1f} ms"
              f"  server CPU {result['server_cpu_us_per_request']:5.0f} us/req"
              f"  PostgreSQL CPU {result['db_cpu_us_per_request']:5.0f} us/req"
              + (f"  per instance {', '.join(f'{r:.0f}' for r in result['per_instance_rps'])}" if len(urls) > 1
                 else "")
              + (f"  ERRORS {result['errors']}" if bad else ""), flush=True)
    return out


def plan(instances: list[int], scenarios: list[str]) -> list[str]:
    """The --dry-run lines of the PostgreSQL part of one round."""
    return [f"  taskgate postgresql instances={count}: {', '.join(scenarios)}" for count in instances]


def settings_line(shown: dict[str, str]) -> str:
    return "PostgreSQL " + ", ".join(f"{name}={value}" for name, value in shown.items())


def print_beside(runs: list[dict[str, Any]], sizes: list[int], settings: list[tuple[str, str]],
                 scenarios: list[Any]) -> None:
    """Each scenario on each backend and instance count: medians of the rounds; x1 is the
    throughput over the same backend's first setting's in the same round."""
    print("\nPostgreSQL beside SQLite (medians of the rounds; x1 = req/s / the same backend's single "
          "process in the same round; CPU us/req: taskgate's processes / the PostgreSQL server's)")
    print(f"{'N':>9} {'scenario':22} {'setting':24} {'req/s':>8} {'p99 ms':>7} {'x1':>5} {'CPU us/req':>13}")
    for n in sizes:
        for sc in scenarios:
            for label, setting in settings:
                first = next(s for lb, s in settings if lb.split()[0] == label.split()[0])
                rps, p99, x1, cpu, db = [], [], [], [], []
                for run in runs:
                    this = run["taskgate"].get(setting, {}).get("results", {}).get(sc.name)
                    one = run["taskgate"].get(first, {}).get("results", {}).get(sc.name)
                    if run["n"] != n or this is None or one is None:
                        continue
                    rps.append(this["rps"])
                    p99.append(this["latency_us"]["p99"] / 1000)
                    x1.append(this["rps"] / one["rps"])
                    cpu.append(this["server_cpu_us_per_request"])
                    db.append(this.get("db_cpu_us_per_request"))
                if not rps:
                    continue
                db_text = f"{statistics.median(db):.0f}" if None not in db else "-"
                print(f"{n:>9} {sc.name:22} {label:24} {statistics.median(rps):8.0f} {statistics.median(p99):7.1f} "
                      f"{statistics.median(x1):5.2f} {statistics.median(cpu):7.0f}/{db_text:<5}")
