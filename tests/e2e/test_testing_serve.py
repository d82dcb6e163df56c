"""``taskgate serve --testing`` and ``--seed DIR`` as a real process: the warning it logs, the
fixtures it loads and reports, a bad seed stopping it, and production serving nothing of it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import Server, http

pytestmark = pytest.mark.e2e


def _serve(workdir: Path, *flags: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    env["TASKGATE_LOG_FILE"] = str(workdir / "server.log")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--db", str(workdir / "t.db"), "serve", "--host",
                             "127.0.0.1", "--port", "0", "--allow-new", *flags], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("taskgate listening on"):
            break
    return proc, lines


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=20)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return code


def test_serve_testing_seeds_a_folder_reports_it_and_logs_a_warning(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "sailpoint").mkdir(parents=True)
    (seed / "webmethods").mkdir()
    (seed / "sailpoint" / "a.json").write_text(json.dumps([
        {"id": "s1", "type": "QUARTZ", "uniqueName": "one"}, {"id": "s2", "type": "QPOC", "uniqueName": "two"}]))
    (seed / "webmethods" / "w.json").write_text(json.dumps(
        {"TaskInfo": {"taskID": "w1", "taskTypeID": "T", "status": "active"}, "TaskData": {}}))
    proc, lines = _serve(tmp_path, "--testing", "--seed", str(seed))
    try:
        assert f"Seeded 2 sailpoint, 1 webmethods from {seed}" in lines
        token = next(line.strip() for line in lines if line.startswith("  tg_"))
        base = re.match(r"taskgate listening on (\S+)", lines[-1]).group(1)  # type: ignore[union-attr]
        reply = http("GET", f"{base}/v2025/task-status/s2", f"Bearer {token}")
        assert (reply.status, reply.json["uniqueName"]) == (200, "two")
        assert http("GET", f"{base}/_taskgate/namespaces", f"Bearer {token}").json == {
            "namespaces": [], "max_namespaces": 32}
    finally:
        assert _stop(proc) == 0
    events = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    warning, = [e for e in events if e.get("level") == "warning" and "testing is on" in e["event"]]
    assert warning["max_namespaces"] == 32
    seeded, = [e for e in events if e["event"] == "seeded"]
    assert (seeded["folder"], seeded["sailpoint"], seeded["webmethods"]) == (str(seed), 2, 1)


def test_a_bad_seed_stops_serve_with_a_message_naming_the_document(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "sailpoint").mkdir(parents=True)
    (seed / "sailpoint" / "bad.json").write_text(json.dumps([{"id": "x", "type": "NOPE", "uniqueName": "u"}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    done = subprocess.run([sys.executable, "-m", "gateway", "--db", str(tmp_path / "t.db"), "serve", "--port", "0",
                           "--allow-new", "--seed", str(seed)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--seed: seed sailpoint[0]: " in done.stderr


def test_a_production_serve_answers_404_to_the_testing_api(tmp_path: Path) -> None:
    server = Server(tmp_path).start()
    try:
        for path in ("/_taskgate/namespaces", "/_ns/a/task-status/v1"):
            reply = http("GET", server.base_url + path, f"Bearer {server.admin_token}")
            assert (reply.status, reply.json) == (404, {"error": f"no resource at {path}"})
        assert not [e for e in server.events() if "testing is on" in str(e.get("event"))]
    finally:
        assert server.stop() == 0
    assert not (tmp_path / "taskgate.db.namespaces").exists()
