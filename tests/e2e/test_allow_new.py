"""A deleted database is not silently recreated: a real ``taskgate serve`` on a folder
whose database was removed stops with exit 2 and a clear message and makes no file;
``serve --allow-new`` starts a new one deliberately."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.server import Server, http


def _serve(workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    return subprocess.run([sys.executable, "-m", "gateway", "--db", str(workdir / "taskgate.db"), "serve",
                           "--host", "127.0.0.1", "--port", "0", *flags], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_deleted_database_stops_serve_unless_allow_new(tmp_path: Path):
    server = Server(tmp_path).start()  # the first start in a fresh folder passes --allow-new
    try:
        reply = http("POST", f"{server.base_url}/rest/pub/opentask", f"Bearer {server.admin_token}",
                     {"taskTypeID": "T", "TaskData": {}})
        assert reply.status == 200, reply.raw
    finally:
        assert server.stop() == 0, server.log.read_text()
    first_token = server.admin_token
    for suffix in ("", "-wal", "-shm"):
        Path(f"{server.db}{suffix}").unlink(missing_ok=True)

    done = _serve(tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr == (f"taskgate: database {str(server.db)!r} (storage.path): there is no database file; "
                           "create a new one deliberately (taskgate init, or serve --allow-new), or restore it "
                           "from a backup\n")
    assert not server.db.exists()
    # no database, WAL or shared-memory file; the lock files writers left beside it are no data
    assert sorted(p.name for p in tmp_path.iterdir()
                  if p.name.startswith("taskgate.db") and not p.name.endswith(".lock")) == []

    again = Server(tmp_path).start(allow_new=True)  # deliberately new: empty, with a new admin
    try:
        assert again.admin_token is not None and again.admin_token != first_token
        auth = f"Bearer {again.admin_token}"
        assert http("GET", f"{again.base_url}/rest/pub/opentask/1", auth).status == 404
    finally:
        assert again.stop() == 0, again.log.read_text()
    assert server.db.exists()


def test_an_explicit_restart_without_allow_new_keeps_the_database(tmp_path: Path):
    server = Server(tmp_path).start()
    assert server.stop() == 0
    again = Server(tmp_path).start(allow_new=False)  # the file is there: nothing to create
    try:
        assert again.admin_token is None  # the admin of the first start is still the one
    finally:
        assert again.stop() == 0, again.log.read_text()
