"""``taskgate export`` / ``import`` stream in constant memory and draw a progress bar only on
a terminal; ``taskgate backup`` refuses what it must; :func:`gateway.verify.verify_trail` on
trails a server cannot easily be made to write.

The commands run as real subprocesses on real SQLite files. Memory is compared, not
timed: the peak RSS of a run over ten times the tasks may grow only a little.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.model import Change, Task
from gateway.store import SCHEMA_VERSION
from gateway.store.sqlite import SQLiteStore
from gateway.verify import verify_trail

BLOB = 8000  # characters of payload per task: 10x the tasks is tens of MB more if anything is held


def taskgate(db: Path, *args: str, stdin: Path | None = None, stdout: Path | None = None,
             stderr: int | None = None) -> tuple[int, str, int]:
    """Run the CLI; its exit status, standard error and peak RSS in KiB (from wait4)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    err_path = db.parent / "stderr.txt"
    with open(stdin or os.devnull, "rb") as fin, open(stdout or os.devnull, "wb") as fout, \
            open(err_path, "wb") as ferr:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "--db", str(db), *args], cwd=db.parent, env=env,
                                stdin=fin, stdout=fout, stderr=ferr if stderr is None else stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err_path.read_text(), usage.ru_maxrss


def sailpoint_task(n: int) -> dict:
    return {"id": f"{n:032x}", "type": "QUARTZ", "uniqueName": f"task {n}", "description": "", "parentName": None,
            "launcher": "import", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "launched": None, "completed": None, "completionStatus": "SUCCESS", "messages": [], "returns": [],
            "attributes": {"payload": f"{n:08d}" * (BLOB // 8)}, "progress": None, "percentComplete": 0}


def seeded(workdir: Path, count: int) -> Path:
    """A database of *count* SailPoint tasks, written straight into SQLite (fast; export
    reads only the tasks table)."""
    workdir.mkdir()
    db = workdir / "seed.db"
    assert taskgate(db, "init")[0] == 0
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO tasks (style, id, version, created, modified, doc) VALUES ('sailpoint', ?, 1, ?, ?, ?)",
            ((f"{n:032x}", "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z",
              json.dumps(sailpoint_task(n), separators=(",", ":"))) for n in range(count)))
    conn.close()
    return db


def round_trip(tmp_path: Path, count: int) -> tuple[int, int]:
    """Export *count* tasks, import them into an empty database, export that: the same
    bytes. The peak RSS (KiB) of the first export and of the import."""
    work = tmp_path / str(count)
    db = seeded(work, count)
    exported = work / "export.jsonl"
    code, err, export_rss = taskgate(db, "export", stdout=exported)
    assert (code, err) == (0, "")  # no progress bar on a file
    assert exported.stat().st_size > count * BLOB
    fresh = work / "fresh.db"
    assert taskgate(fresh, "init")[0] == 0  # import never creates a database itself
    code, err, import_rss = taskgate(fresh, "import", "-", stdin=exported)
    assert (code, err) == (0, f"imported {count} task(s), 0 failed\n")  # the summary, no log event per task
    again = work / "again.jsonl"
    assert taskgate(fresh, "export", stdout=again)[:2] == (0, "")
    assert again.read_bytes() == exported.read_bytes()
    with sqlite3.connect(fresh) as conn:  # each imported task has its audit row
        assert conn.execute("SELECT count(*), count(DISTINCT task_id), min(action), max(action) FROM audit "
                            "WHERE actor = 'cli:import'").fetchone() == (count, count, "created", "created")
    conn.close()
    exported.unlink()
    again.unlink()
    return export_rss, import_rss


def test_export_and_import_stream_in_constant_memory(tmp_path: Path):
    small = round_trip(tmp_path, 600)
    large = round_trip(tmp_path, 6_000)  # about 50 MB of JSON Lines
    growth_mib = [(b - a) / 1024 for a, b in zip(small, large, strict=True)]
    print(f"peak RSS export {small[0] // 1024} → {large[0] // 1024} MiB, import {small[1] // 1024} → "
          f"{large[1] // 1024} MiB for 600 → 6,000 tasks of {BLOB} bytes")
    assert all(g < 16 for g in growth_mib), growth_mib


def read_terminal(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def on_a_terminal(db: Path, *args: str, stdin: Path | None = None, stdout: Path | None = None) -> tuple[int, str]:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    try:
        code, _, _ = taskgate(db, *args, stdin=stdin, stdout=stdout, stderr=follower)
    finally:
        os.close(follower)
    try:
        return code, read_terminal(leader)
    finally:
        os.close(leader)


def test_progress_bars_are_drawn_on_a_terminal_only(tmp_path: Path):
    db = seeded(tmp_path / "work", 300)
    out = tmp_path / "out.jsonl"
    code, screen = on_a_terminal(db, "export", stdout=out)
    assert code == 0
    assert "export: 100%" in screen and "300/300" in screen, screen
    assert len(out.read_text().splitlines()) == 300
    with open(out, "a") as f:
        f.write("not json\n")
    assert taskgate(tmp_path / "work" / "new.db", "init")[0] == 0
    code, screen = on_a_terminal(tmp_path / "work" / "new.db", "import", str(out))
    assert code == 1
    assert "import: 100%" in screen and screen.rstrip().endswith("imported 300 task(s), 1 failed"), screen
    # the bar is cleared, the error written on a line of its own, then the bar drawn again below it
    assert "\rline 301: Expecting value: line 1 column 1 (char 0)\r\n\rimport: 100%" in screen, screen
    code, screen = on_a_terminal(tmp_path / "work" / "new.db", "audit", "verify", stdout=tmp_path / "report.jsonl")
    assert code == 0 and (tmp_path / "report.jsonl").read_text() == ""
    assert "verify: 100%" in screen and "300/300" in screen, screen
    assert screen.rstrip().endswith("verified 300 task(s): 0 disagree with their audit trail"), screen
    # the same commands on files and pipes: nothing but the summary
    assert taskgate(db, "export", stdout=tmp_path / "again.jsonl")[:2] == (0, "")
    assert taskgate(tmp_path / "work" / "new.db", "audit", "verify")[:2] == (
        0, "verified 300 task(s): 0 disagree with their audit trail\n")
    assert taskgate(tmp_path / "work" / "new.db", "import", str(out))[:2] == (
        1, "line 301: Expecting value: line 1 column 1 (char 0)\nimported 300 task(s), 1 failed\n")


def test_backup_and_verify_refusals(tmp_path: Path, monkeypatch, capsys):
    """In-process (these need no process of their own): every refusal, and nothing written."""
    db = seeded(tmp_path / "work", 3)
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)

    def run(database: Path, *args: str) -> tuple[int, str]:
        code = main(["--db", str(database), *args])
        out, err = capsys.readouterr()
        assert out == ""
        return code, err

    dest = tmp_path / "copy.db"
    assert run(db, "backup", str(dest)) == (
        0, f"backed up {db} to {dest}: 3 task(s), {dest.stat().st_size // 4096} pages, "
           f"schema version {SCHEMA_VERSION}\n")
    assert run(db, "backup", str(dest)) == (1, f"taskgate: {str(dest)!r} exists (--force replaces it)\n")
    assert run(db, "backup", str(dest), "--force")[0] == 0
    assert run(db, "backup", str(db)) == (1, f"taskgate: {str(db)!r} exists (--force replaces it)\n")
    assert run(db, "backup", str(db), "--force") == (1, "taskgate: the backup cannot replace the database itself\n")
    # missing folders are made, as mkdir -p makes them; where a file is in the way, nothing is
    deep = tmp_path / "backups" / "2026" / "copy.db"
    assert run(db, "backup", str(deep)) == (
        0, f"created folder {deep.parent}\nbacked up {db} to {deep}: 3 task(s), {deep.stat().st_size // 4096} pages, "
           f"schema version {SCHEMA_VERSION}\n")
    assert run(db, "backup", str(deep.parent / "again.db"))[1].startswith(f"backed up {db} to ")
    (tmp_path / "afile").write_text("")
    blocked = tmp_path / "afile" / "copy.db"
    assert run(db, "backup", str(blocked)) == (
        1, f"taskgate: cannot create the folder {str(blocked.parent)!r} for the backup: File exists\n")
    blocked = tmp_path / "x" / "afile" / "y" / "copy.db"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "afile").write_text("")
    assert run(db, "backup", str(blocked)) == (
        1, f"taskgate: cannot create the folder {str(blocked.parent)!r} for the backup: File exists: "
           f"{str(tmp_path / 'x' / 'afile')!r}\n")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["afile"]
    shutil.rmtree(tmp_path / "x")
    (tmp_path / "afile").unlink()
    shutil.rmtree(tmp_path / "backups")
    assert run(db, "audit", "--style", "sailpoint", "verify") == (
        2, "taskgate: audit verify checks every task; --style, --task and --limit are for listing\n")
    missing = tmp_path / "work" / "missing.db"
    assert run(missing, "backup", str(tmp_path / "x.db")) == (
        2, f"taskgate: database {str(missing)!r} (storage.path): there is no database file to back up\n")
    assert not missing.exists() and not (tmp_path / "x.db").exists()
    # a backup that fails leaves no folder it made behind
    assert run(missing, "backup", str(tmp_path / "new" / "folder" / "x.db"))[0] == 2
    assert not (tmp_path / "new").exists()
    not_ours = tmp_path / "work" / "other.db"
    sqlite3.connect(not_ours).close()
    assert run(not_ours, "backup", str(tmp_path / "x.db")) == (
        2, f"taskgate: database {str(not_ours)!r} (storage.path): not a taskgate database (no schema version)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "work"]
    # the writers' lock file (gateway/store/sqlite/write_connection.py) stays beside the database, as -shm does
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [
        "other.db", "seed.db", "seed.db-writer.lock", "stderr.txt"]


# -- verify_trail on trails the server writes rarely ------------------------------------------
def change(seq: int, version: int, action: str, patch: list) -> Change:
    return Change(seq=seq, at="", style="s", task_id="t", version=version, action=action, actor="a",
                  request_id="r", patch=patch, undo=[])


CREATE = change(1, 1, "created", [{"op": "add", "path": "/a", "value": 1}])
DELETE = change(2, 2, "deleted", [{"op": "remove", "path": "/a"}])


@pytest.mark.parametrize("trail, stored, problems", [
    ([CREATE, DELETE], None, None),
    # deleted and created again in one commit batch: the new life continues the numbering
    ([CREATE, DELETE, change(3, 3, "created", [{"op": "add", "path": "/b", "value": 2}])], Task("s", "t", 3, {"b": 2}),
     None),
    ([CREATE, DELETE, change(3, 1, "created", [{"op": "add", "path": "/b", "value": 2}])], Task("s", "t", 1, {"b": 2}),
     None),
    ([], Task("s", "t", 1, {"a": 1}), ["the task has no audit trail"]),
    ([CREATE], None, ["no task is stored, but its trail ends at version 1, not in a delete"]),
    ([DELETE], None, ["audit row seq 2 (deleted) is at version 2, expected 1: the trail has a gap",
                      "audit row seq 2 (deleted) comes before any creation"]),
    ([CREATE, change(2, 2, "updated", [{"op": "replace", "path": "/zzz", "value": 1}])], Task("s", "t", 2, {"a": 1}),
     ["audit row seq 2 does not apply: the patch does not apply to the task: "
      "can't replace a non-existent object 'zzz'"]),
    ([CREATE, change(2, 2, "deleted", [])], None, ["audit row seq 2 deletes the task but leaves ['a']"]),
    ([CREATE, change(2, 1, "created", [])], Task("s", "t", 1, {}),
     ["audit row seq 2 (created) is at version 1, expected 2: the trail has a gap",
      "audit row seq 2 creates a task that exists"]),
    ([CREATE], Task("s", "t", 1, {"a": True}), ["the stored document differs from the replay of its trail"]),
])
def test_verify_trail(trail, stored, problems):
    finding = verify_trail("s", "t", stored, trail)
    assert (finding.problems if finding else None) == (tuple(problems) if problems else None)


def test_export_into_a_pipe_closed_early_exits_quietly(tmp_path: Path):
    db = seeded(tmp_path / "work", 2000)  # several MB: far more than a pipe holds
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--db", str(db), "export"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())  # `taskgate export | head -1`
    proc.stdout.close()
    assert (proc.wait(60), proc.stderr.read()) == (141, b"")
    proc.stderr.close()
    assert first == {"style": "sailpoint", "task": sailpoint_task(0)}


# -- the store's streaming reads ---------------------------------------------------------------
async def test_trails_merge_tasks_and_audit_rows_across_chunks(tmp_path: Path):
    store = await SQLiteStore.open(tmp_path / "t.db")
    try:
        for n in range(5):
            await store.create("b" if n % 2 else "a", f"t{n}", {"n": n}, actor="t", request_id="r")
        await store.update("a", "t2", lambda old: {**old, "n": 20}, actor="t", request_id="r")
        await store.delete("b", "t3", actor="t", request_id="r")
        got = [(style, task_id, stored.version if stored else None, [(c.version, c.action) for c in trail])
               async for style, task_id, stored, trail in store.trails(chunk=2)]
    finally:
        await store.close()
    assert got == [("a", "t0", 1, [(1, "created")]), ("a", "t2", 2, [(1, "created"), (2, "updated")]),
                   ("a", "t4", 1, [(1, "created")]), ("b", "t1", 1, [(1, "created")]),
                   ("b", "t3", None, [(1, "created"), (2, "deleted")])]


async def test_export_and_trails_read_one_snapshot_while_another_process_writes(tmp_path: Path):
    ours, theirs = await SQLiteStore.open(tmp_path / "t.db"), await SQLiteStore.open(tmp_path / "t.db")
    try:
        for n in range(6):
            await ours.create("s", f"t{n}", {"n": n}, actor="t", request_id="r")

        async def write_elsewhere() -> None:  # as a server would, on its own connections
            await theirs.update("s", "t5", lambda old: {**old, "n": old["n"] + 1}, actor="t", request_id="r")

        async def export_while_writing() -> list[int]:
            versions = []
            async for task in ours.export(chunk=2):
                versions.append(task.version)
                if task.id == "t0":
                    await write_elsewhere()
            return versions

        # without a snapshot each chunk is read afresh: the change shows up half-way
        assert await export_while_writing() == [1, 1, 1, 1, 1, 2]
        async with ours.read_snapshot():
            assert await export_while_writing() == [1, 1, 1, 1, 1, 2]  # the snapshot began before t5's 3rd version
        async with ours.read_snapshot():
            assert [t.version async for t in ours.export(chunk=2)] == [1, 1, 1, 1, 1, 3]
            await write_elsewhere()
            assert [t.version async for t in ours.export(chunk=2)] == [1, 1, 1, 1, 1, 3]
        assert [t.version async for t in ours.export(chunk=2)] == [1, 1, 1, 1, 1, 4]
        trail_lengths = []
        async for _style, task_id, _stored, trail in ours.trails(chunk=2):
            trail_lengths.append(len(trail))
            if task_id == "t0":
                await write_elsewhere()
        assert trail_lengths == [1, 1, 1, 1, 1, 4]  # not 5: the walk is one snapshot
        assert (await ours.get("s", "t5")).version == 5
    finally:
        await theirs.close()
        await ours.close()


def test_a_hostile_import_file_fails_line_by_line_or_is_refused_whole(tmp_path: Path, monkeypatch, capsys):
    """A second hostile-input hunt: a style that is not a string was a TypeError traceback
    that lost the lines queued before it; a file that is not UTF-8 a UnicodeDecodeError; a
    missing file or a folder a traceback; and a task id holding a lone surrogate failed
    its whole batch of writes (the good lines around it too) and killed a read-ahead
    thread. Each bad line now fails alone, by its number, and the others are imported."""
    monkeypatch.delenv("TASKGATE_CONFIG", raising=False)
    db = tmp_path / "i.db"
    assert main(["--db", str(db), "init"]) == 0
    capsys.readouterr()

    def task(task_id: str) -> str:
        return json.dumps({"style": "webmethods", "task": {"TaskInfo": {"taskID": task_id, "taskTypeID": "T"}}})
    lines = [b'{"style": ["x"], "task": {}}', task("w1").encode(), b'{"style": "sailpoint", "task": {"id": "\xff"}}',
             task("w2").encode(), task("\ud800").encode(), task("w3").encode()]
    (tmp_path / "hostile.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    assert main(["--db", str(db), "import", str(tmp_path / "hostile.ndjson")]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith(("line ", "imported"))] == [
        'line 1: expected {"style": one of sailpoint, superoffice, webmethods, "task": {…}}',
        "line 3: invalid TaskStatus: id: String does not match expected pattern.; type: Missing data for "
        "required field.; uniqueName: Missing data for required field.",
        "line 5: the task id is not text that can be stored (it holds a lone surrogate)",
        "imported 3 task(s), 3 failed"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM tasks ORDER BY id").fetchall() == [("w1",), ("w2",), ("w3",)]
    for missing, why in ((tmp_path / "nowhere.ndjson", "No such file or directory"), (tmp_path, "Is a directory")):
        assert main(["--db", str(db), "import", str(missing)]) == 2
        assert capsys.readouterr().err.endswith(f"taskgate: cannot read {str(missing)!r}: {why}\n")
