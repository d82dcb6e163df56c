"""``taskgate backup`` and ``taskgate audit verify`` against a real ``taskgate serve``.

* a backup taken with the CLI while threads write through all three styles opens, passes
  ``integrity_check``, has the current schema, replays cleanly from its audit trail, and
  holds every change acknowledged before the backup started;
* ``audit verify`` passes on a database made by real traffic (updates, deletes, a task
  created again, a webMethods rollback) and reports, one JSON line each, a task whose
  document, version or audit trail was tampered with directly in SQLite.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.store import SCHEMA_VERSION
from tests.audit_replay import assert_replays
from tests.e2e.server import Server, http

pytestmark = pytest.mark.e2e

WM_TYPE = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"
PATCH = {"Content-Type": "application/json-patch+json"}


def taskgate(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    return subprocess.run([sys.executable, "-m", "gateway", "--db", str(db), *args], env=env, cwd=db.parent,
                          capture_output=True, text=True, timeout=120)


def create_one_of_each(server: Server, n: int) -> list[tuple[str, str]]:
    """A SailPoint, a SuperOffice and a webMethods task; their (style, id)."""
    auth, base = f"Bearer {server.admin_token}", server.base_url
    sp_id = f"{n:032x}"
    r = http("POST", f"{base}/task-status/v1", auth, {"id": sp_id, "type": "QUARTZ", "uniqueName": f"t{n}"})
    assert r.status == 201, r.raw
    r = http("POST", f"{base}/api/v1/BatchTask", auth, {"Name": f"t{n}", "State": "Started"})
    assert r.status == 200, r.raw
    so_id = str(r.json)
    r = http("POST", f"{base}/rest/pub/opentask", auth, {"taskTypeID": WM_TYPE})
    assert r.status == 200, r.raw
    return [("sailpoint", sp_id), ("superoffice", so_id), ("webmethods", r.json["taskID"])]


def update(server: Server, style: str, task_id: str, k: int) -> int:
    """One update in *style*'s own way; the version it acknowledged (the ETag)."""
    auth, base = f"Bearer {server.admin_token}", server.base_url
    if style == "sailpoint":
        r = http("PATCH", f"{base}/task-status/v1/{task_id}", auth, headers=PATCH,
                 data=json.dumps([{"op": "add", "path": f"/attributes/k{k}", "value": k}]).encode())
    elif style == "superoffice":
        r = http("PUT", f"{base}/api/v1/BatchTask/{task_id}", auth, {"Response": f"step {k}"})
    else:
        r = http("PUT", f"{base}/rest/pub/opentask/{task_id}", auth, {"TaskData": {"k": k}})
    assert r.status == 200, r.raw
    return int(r.headers["ETag"].strip('"'))


def test_backup_taken_during_a_write_burst_is_consistent(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        tasks = [t for n in range(4) for t in create_one_of_each(server, n)]  # 12 tasks, 4 per style
        acked: list[tuple[str, str, int]] = []
        lock = threading.Lock()
        started = threading.Event()  # set once 60 updates are acknowledged
        finished = threading.Event()  # set when the backup command has exited

        def work(w: int) -> None:
            # writes until the backup has finished, then 5 more: the burst spans the whole
            # backup whatever the machine's speed (at most 1000 updates per thread)
            after = 0
            for i in range(1000):
                style, task_id = tasks[(w + i) % len(tasks)]
                version = update(server, style, task_id, w * 1000 + i)
                with lock:
                    acked.append((style, task_id, version))
                    if len(acked) >= 60:
                        started.set()
                after += finished.is_set()
                if after >= 5:
                    return

        workers = [threading.Thread(target=work, args=(w,)) for w in range(6)]
        for t in workers:
            t.start()
        try:
            assert started.wait(60)
            with lock:
                before = list(acked)  # acknowledged before the backup command starts
            backup = tmp_path / "backup.db"
            done = taskgate(server.db, "backup", str(backup))
        finally:
            finished.set()
            for t in workers:
                t.join(60)
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("backup")) == ["backup.db"]

    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        stored = {(s, i): v for s, i, v in db.execute("SELECT style, id, version FROM tasks")}
        audited = set(db.execute("SELECT style, task_id, version FROM audit"))
    db.close()
    assert set(stored) == set(tasks)
    # every change acknowledged before the backup started is in it
    for style, task_id, version in before:
        assert stored[(style, task_id)] >= version
        assert (style, task_id, version) in audited
    # every task is exactly the replay of its audit rows up to its version: by the test
    # suite's own serial replay, and by `taskgate audit verify`
    assert_replays(backup)
    verified = taskgate(backup, "audit", "verify")
    assert (verified.returncode, verified.stdout) == (0, ""), verified.stdout
    assert verified.stderr.splitlines()[-1] == "verified 12 task(s): 0 disagree with their audit trail"
    in_backup = sum(stored.values()) - len(stored)
    assert len(before) <= in_backup < len(acked)  # the server went on writing past the backup's snapshot
    print(f"updates acknowledged before the backup started: {len(before)}, in the backup: {in_backup}, "
          f"acknowledged in all: {len(acked)}")

    # restore as the README says: server stopped (above), copy over, drop -wal/-shm, start
    shutil.copyfile(backup, server.db)
    for suffix in ("-wal", "-shm"):
        Path(f"{server.db}{suffix}").unlink(missing_ok=True)
    server.start()
    try:
        auth, base = f"Bearer {server.admin_token}", server.base_url
        paths = {"sailpoint": "/task-status/v1/{}", "superoffice": "/api/v1/BatchTask/{}",
                 "webmethods": "/rest/pub/opentask/{}"}
        served = {}
        for style, task_id in tasks:
            r = http("GET", base + paths[style].format(task_id), auth)
            assert r.status == 200, r.raw
            served[(style, task_id)] = int(r.headers["ETag"].strip('"'))
        assert served == stored
        update(server, *tasks[0], 99_999)  # and it takes writes again
    finally:
        assert server.stop() == 0, server.log.read_text()


def test_audit_verify_passes_real_traffic_and_reports_tampering(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        auth, base = f"Bearer {server.admin_token}", server.base_url
        tasks = create_one_of_each(server, 1) + create_one_of_each(server, 2)
        for k, (style, task_id) in enumerate(tasks * 2):  # versions 2 and 3
            update(server, style, task_id, k)
        (_, sp1), (_, so1), (_, wm1), (_, sp2), (_, so2), (_, wm2) = tasks
        # a webMethods rollback of the first update: a new audited change
        audit = http("GET", f"{base}/rest/pub/opentask/{wm1}/audit", auth).json["taskAudits"]
        r = http("DELETE", f"{base}/rest/pub/opentask/{wm1}/audit/{audit[1]['id']}", auth)
        assert (r.status, r.headers["ETag"]) == (200, '"4"')
        # deleted in two styles; the webMethods task comes back under its id through import
        r = http("DELETE", f"{base}/api/v1/BatchTask/{so2}", auth)
        assert (r.status, r.raw) == (204, b"")
        r = http("DELETE", f"{base}/rest/pub/opentask/{wm2}", auth)
        assert (r.status, r.json) == (200, {})
        again = json.dumps({"style": "webmethods", "task": {"TaskInfo": {"taskID": wm2, "taskTypeID": WM_TYPE}}})
        assert server.cli("import", "-", stdin=again + "\n") == ""
        clean = taskgate(server.db, "audit", "verify")  # while the server runs
        assert (clean.returncode, clean.stdout) == (0, "")
        assert clean.stderr.splitlines()[-1] == "verified 6 task(s): 0 disagree with their audit trail"
    finally:
        assert server.stop() == 0, server.log.read_text()

    with sqlite3.connect(server.db) as db:
        # a document edited behind taskgate's back
        db.execute("UPDATE tasks SET doc = json_set(doc, '$.Response', 'forged') "
                   "WHERE style = 'superoffice' AND id = ?", (so1,))
        # a version bumped without a change
        db.execute("UPDATE tasks SET version = version + 1 WHERE style = 'webmethods' AND id = ?", (wm1,))
        # an audit row deleted from the middle of a trail
        (seq3,), = db.execute("SELECT seq FROM audit WHERE style = 'sailpoint' AND task_id = ? AND version = 3",
                              (sp1,)).fetchall()
        db.execute("DELETE FROM audit WHERE style = 'sailpoint' AND task_id = ? AND version = 2", (sp1,))
        # the last audit row of another task
        db.execute("DELETE FROM audit WHERE style = 'sailpoint' AND task_id = ? AND version = 3", (sp2,))
        # a deleted task that is back in the table
        db.execute("INSERT INTO tasks (style, id, version, created, modified, doc) SELECT style, ?, 3, created, "
                   "modified, doc FROM tasks WHERE style = 'superoffice' AND id = ?", (so2, so1))
    db.close()
    done = taskgate(server.db, "audit", "verify")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == "verified 6 task(s): 5 disagree with their audit trail"
    report = [json.loads(line) for line in done.stdout.splitlines()]
    differences = [sorted(r.pop("difference", []), key=lambda op: op["path"]) for r in report]
    assert report == [
        {"style": "sailpoint", "task_id": sp1, "stored_version": 3, "replayed_version": 3, "audit_rows": 2,
         "problems": [f"audit row seq {seq3} (updated) is at version 3, expected 2: the trail has a gap",
                      "the stored document differs from the replay of its trail"]},
        {"style": "sailpoint", "task_id": sp2, "stored_version": 3, "replayed_version": 2, "audit_rows": 2,
         "problems": ["stored version 3 differs from the trail's 2",
                      "the stored document differs from the replay of its trail"]},
        {"style": "superoffice", "task_id": so1, "stored_version": 3, "replayed_version": 3, "audit_rows": 3,
         "problems": ["the stored document differs from the replay of its trail"]},
        {"style": "superoffice", "task_id": so2, "stored_version": 3, "replayed_version": None, "audit_rows": 4,
         "problems": ["the task is stored, but its trail ends in a delete"]},
        {"style": "webmethods", "task_id": wm1, "stored_version": 5, "replayed_version": 4, "audit_rows": 4,
         "problems": ["stored version 5 differs from the trail's 4"]},
    ]
    # what the replay misses: the deleted update (k0 was sp1's first), the last update (k9 was sp2's second)
    assert [[op["op"] + " " + op["path"] for op in d] for d in differences] == [
        ["add /attributes/k0"], ["add /attributes/k9", "replace /modified"],
        ["replace /Response"], [], []]
    assert differences[2][0]["value"] == "forged"
