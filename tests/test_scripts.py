"""The measuring scripts still run against the code they measure."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_bench_parts_prints_each_required_piece_of_a_patch_and_their_sum():
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_parts.py"), "--calls", "200", "--writes", "320"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"taskgate's required parts of one SailPoint PATCH \(loop=\w+ json=\w+\), µs of CPU:", lines[0])
    pieces = [re.fullmatch(r"(.+?)\s+(\d+\.\d) µs", line) for line in lines[1:6]]
    assert [m.group(1) for m in pieces if m] == [
        "parse the JSON Patch body", "apply it and validate the replaced members (marshmallow)",
        "the request's log line (structlog)", "the audit event's log line (structlog)",
        "the store's write, 32 a batch, synchronous=FULL"]
    total = re.fullmatch(r"sum\s+(\d+\.\d) µs CPU per PATCH, before HTTP, authentication and the answer", lines[6])
    assert total is not None and len(lines) == 7
    assert abs(float(total.group(1)) - sum(float(m.group(2)) for m in pieces)) < 0.5


def test_bench_peers_dry_run_says_what_each_round_starts_and_what_it_would_install(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_run.py"), "--peers", "minimal,datasette",
                           "--workers", "1,2", "--dry-run", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"3 interleaved rounds of 5 s per scenario (after 1 s of warm-up), wrk -t2 -c32, in {tmp_path.name}/\n"
        "N=10000, each round in this order:\n"
        "  ceiling: sailpoint_patch\n"
        "  taskgate synchronous=FULL workers=1: sailpoint_patch\n"
        "  taskgate synchronous=FULL workers=2: sailpoint_patch\n"
        "  peer minimal (aiohttp + aiosqlite, minimal UPDATE): PATCH /tasks/1,"
        ' body {"percent_complete":42,"progress":"step 42"}\n'
        "  peer datasette (Datasette 1.0a41 /-/update): POST /peer_datasette/task/1/-/update,"
        ' body {"update":{"percent_complete":42,"progress":"step 42"},"return":true}\n'
        "would install fastapi==0.165.0, sqlmodel==0.0.50, uvicorn[standard]==0.55.0, datasette==1.0a41"
        f" into {tmp_path.name}/venv (a virtual environment of their own)\n")
    assert list(tmp_path.iterdir()) == []  # nothing made, nothing installed


def test_bench_peers_refuses_an_unknown_peer_and_a_run_without_the_patch():
    for args, error in ((["--peers", "minimal,django"],
                         "unknown peers: django; known: minimal, fastapi, datasette, json-server, all"),
                        (["--peers", "--scenarios", "sailpoint_get"],
                         "--peers compares taskgate's sailpoint_patch with them: keep it in --scenarios")):
        done = subprocess.run([sys.executable, str(SCRIPTS / "bench_run.py"), *args, "--dry-run"],
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout, done.stderr.splitlines()[-1]) == (2, "", f"scripts/bench: error: {error}")


def test_bench_postgresql_dry_run_says_its_cluster_settings_and_each_instance_count_of_a_round(tmp_path):
    """--backend postgresql runs taskgate on a durable throwaway cluster beside SQLite, with
    one and two instances by default; the dry run starts no cluster and makes nothing."""
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_run.py"), "--backend", "postgresql",
                           "--scenarios", "sailpoint_patch,sailpoint_get", "--rounds", "2", "--dry-run",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"2 interleaved rounds of 5 s per scenario (after 1 s of warm-up), wrk -t2 -c32, in {tmp_path.name}/\n"
        "a throwaway PostgreSQL cluster, fsync=on, synchronous_commit=on, full_page_writes=on, "
        "max_connections=200, shared_buffers=128MB; each N's template copied in with taskgate copy; "
        "one wrk per instance, the connections split\n"
        "N=10000, each round in this order:\n"
        "  ceiling: sailpoint_patch, sailpoint_get\n"
        "  taskgate synchronous=FULL workers=1: sailpoint_patch, sailpoint_get\n"
        "  taskgate postgresql instances=1: sailpoint_patch, sailpoint_get\n"
        "  taskgate postgresql instances=2: sailpoint_patch, sailpoint_get\n")
    assert list(tmp_path.iterdir()) == []  # nothing seeded, no cluster started

    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_run.py"), "--backend", "postgresql", "--instances",
                           "1,2,3", "--sizes", "2000", "--scenarios", "sailpoint_patch", "--dry-run",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[3:] == [
        "  ceiling: sailpoint_patch", "  taskgate synchronous=FULL workers=1: sailpoint_patch",
        "  taskgate postgresql instances=1: sailpoint_patch", "  taskgate postgresql instances=2: sailpoint_patch",
        "  taskgate postgresql instances=3: sailpoint_patch"]


def test_the_minimal_peer_answers_a_patch_with_the_changed_record_and_stores_it(tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    import bench_peers

    db = tmp_path / "peers.db"
    bench_peers.seed_sqlite(db, 3)
    server = subprocess.Popen([sys.executable, str(SCRIPTS / "bench_peers" / "minimal.py"), str(db), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = re.fullmatch(r"minimal listening on (http://127\.0\.0\.1:\d+)\n", server.stdout.readline()).group(1)

        def patch(task_id: int, body: bytes) -> tuple[int, bytes]:
            request = urllib.request.Request(f"{url}/tasks/{task_id}", data=body, method="PATCH",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status, answer.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        status, body = patch(2, b'{"percent_complete": 42, "progress": "step 42"}')
        assert (status, json.loads(body)) == (200, {
            "id": 2, "type": "QPOC", "unique_name": "Aggregation 2", "description": "", "parent_name": None,
            "launcher": "sp_worker", "created": "2026-01-01T00:00:02.000Z", "modified": "2026-01-01T00:00:02.000Z",
            "launched": None, "completed": "2026-01-01T00:00:02.000Z", "completion_status": "WARNING",
            "progress": "step 42", "percent_complete": 42})
        assert patch(4, b'{"progress": "step 1"}')[0] == 404
        assert patch(1, b"[1, 2]")[0] == 400
    finally:
        server.terminate()
        server.communicate(timeout=30)
    with closing(sqlite3.connect(db)) as stored:
        rows = stored.execute("SELECT id, progress, percent_complete FROM task ORDER BY id").fetchall()
    assert rows == [(1, "step 0", 0), (2, "step 42", 42), (3, "step 0", 0)]


def test_the_peers_table_counts_a_round_a_peer_answered_nothing_in_as_zero_not_as_a_crash():
    """FastAPI + SQLModel answered no request at all in one 5 s round on this machine (every
    request waiting on SQLite's lock): that round is 0 req/s and an infinite ratio, its
    latency and CPU are left out, and the table says so."""
    sys.path.insert(0, str(SCRIPTS))
    from bench_peers import PEERS, report

    def result(rps: float, requests: int, cpu: float) -> dict:
        return {"rps": rps, "requests": requests, "server_cpu_us_per_request": cpu, "errors": {"timeout": 0},
                "latency_us": {"p50": 70_000, "p99": 600_000} if requests else {"p50": 0, "p99": 0}}
    taskgate = [result(4000, 20000, 240), result(4100, 20500, 245), result(3900, 19500, 250)]
    fastapi = [result(350, 1750, 3200), result(0, 0, 60000), result(400, 2000, 2800)]
    runs = [{"n": 10, "taskgate": {"FULL": {"results": {"sailpoint_patch": t}, "peak_rss_mib": 80}},
             "ceiling": {"results": {"sailpoint_patch": result(20000, 100000, 45)}, "peak_rss_mib": 30},
             "peers": {"fastapi": {"results": {"peer_fastapi": f}, "peak_rss_mib": 90}}}
            for t, f in zip(taskgate, fastapi, strict=True)]
    peer = next(p for p in PEERS if p.name == "fastapi")
    rows = {r["server"]: r for r in report.summarize(runs, 10, "FULL", [peer])}
    row = rows["fastapi"]
    assert (row["rps"], row["silent_rounds"], row["cpu_us_per_request"], row["p99_ms"]) == (350, 1, 3000, 600)
    assert row["taskgate_over_it"] == 4000 / 350  # the median of 11.43, inf and 10.25
    assert "(1 of 3 rounds answered nothing)" in report.markdown(list(rows.values()))
