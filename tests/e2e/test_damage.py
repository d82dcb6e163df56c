"""Damage on a real ``taskgate serve``: the database file deleted while serving (writes
503, /readyz 503, the acknowledged writes still in the file that was copied away first,
a clean stop), and a damaged or zero-length file at start (exit 2 with a clear message,
no traceback)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.e2e.server import Server, http

WM_MESSAGE = "the store refuses writes: the database file was deleted while taskgate had it open"


def test_a_database_file_deleted_while_serving_refuses_writes_and_turns_unready(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        auth = f"Bearer {server.admin_token}"
        acknowledged = []
        for n in range(5):
            reply = http("POST", f"{server.base_url}/rest/pub/opentask", auth, {"taskTypeID": "T",
                                                                               "TaskData": {"n": n}})
            assert reply.status == 200, reply.raw
            acknowledged.append(reply.json["taskID"])
        # what an operator's backup would hold: the file with its WAL, copied before the delete
        kept = tmp_path / "kept"
        kept.mkdir()
        for suffix in ("", "-wal"):
            if Path(f"{server.db}{suffix}").exists():
                shutil.copy(f"{server.db}{suffix}", kept / f"taskgate.db{suffix}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{server.db}{suffix}").unlink(missing_ok=True)
        write = http("PUT", f"{server.base_url}/rest/pub/opentask/1", auth, {"TaskData": {"n": 9}})
        assert write.status == 503, write.raw
        assert write.headers["Retry-After"] == "1"
        body = write.json
        error_type = "com.wm.app.b2b.server.ServiceException"
        assert body == {"$errorDump": "",
                        "$errorInfo": {"$error": WM_MESSAGE, "$localizedError": WM_MESSAGE, "$errorType": error_type,
                                       "$user": "admin", "$time": body["$errorInfo"]["$time"], "$details": "",
                                       "$errorMsgId": "", "$errorDump": ""},
                        "$error": WM_MESSAGE, "$errorType": error_type}
        ready = http("GET", f"{server.base_url}/readyz")
        assert ready.status == 503
        assert ready.json == {"status": "unavailable", "reason": "database file deleted"}
        assert not server.db.exists()
    finally:
        code = server.stop()
    log = server.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log
    events = [(e["event"], e["level"]) for e in server.events() if e.get("event", "").startswith("store.")]
    assert ("store.file_gone", "error") in events
    assert [(e["reason"], e["detail"]) for e in server.events() if e.get("event") == "readyz.unready"] == [
        ("database file deleted", "the database file was deleted while taskgate had it open")]
    with sqlite3.connect(kept / "taskgate.db") as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM tasks WHERE style = 'webmethods' ORDER BY id")]
    assert ids == sorted(acknowledged)  # nothing acknowledged before the delete was lost


def _serve(workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    return subprocess.run([sys.executable, "-m", "gateway", "--db", str(workdir / "taskgate.db"), "serve",
                           "--host", "127.0.0.1", "--port", "0"], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=60)


def test_serve_refuses_a_zero_length_database_with_a_clear_message(tmp_path: Path):
    db = tmp_path / "taskgate.db"
    db.write_bytes(b"")
    done = _serve(tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"taskgate: database {str(db)!r} (storage.path): the database file is empty (zero bytes): it is not a "
        "taskgate database; restore it from a backup, or create a new one deliberately (taskgate init, or serve "
        "--allow-new)\n")
    assert db.stat().st_size == 0


def test_serve_refuses_a_damaged_database_with_a_clear_message(tmp_path: Path):
    db = tmp_path / "taskgate.db"
    server = Server(tmp_path).start()
    try:
        auth = f"Bearer {server.admin_token}"
        for n in range(20):
            assert http("POST", f"{server.base_url}/rest/pub/opentask", auth,
                        {"taskTypeID": "T", "TaskData": {"n": n}}).status == 200
    finally:
        assert server.stop() == 0
    with sqlite3.connect(db) as conn:
        (page,), = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'users'").fetchall()
        (size,), = conn.execute("PRAGMA page_size").fetchall()
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)
    done = _serve(tmp_path)
    assert done.returncode == 2, done.stderr
    prefix = f"taskgate: database {str(db)!r} (storage.path): the database file is damaged"
    assert done.stderr.startswith(prefix), done.stderr
    assert done.stderr.endswith("restore it from a backup, or start over with a new database deliberately\n")
    assert "Traceback" not in done.stderr
