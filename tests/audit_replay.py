"""Replaying the audit table: the one helper the durability, concurrency and crash tests
use to prove that the stored tasks are exactly what their audit trail adds up to.

It reads a database file directly (read-only, standard-library sqlite3) and applies every
audit row's RFC 6902 patch in ``seq`` order. It is deliberately independent of the
product's replay (``gateway/verify.py``): :func:`assert_replays` runs both, the real
``taskgate audit verify`` command and this cross-check, so a bug in one is caught by the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch

__all__ = ["Row", "Dump", "read_db", "replay", "assert_replays"]

Key = tuple[str, str]  # (style, task id)


@dataclass(frozen=True)
class Row:
    seq: int
    style: str
    task_id: str
    version: int
    action: str
    request_id: str
    patch: list[dict[str, Any]]


@dataclass
class Dump:
    integrity: str
    tasks: dict[Key, tuple[int, dict[str, Any]]]
    audit: list[Row]
    #: for every audit row, the task's document right after it (None after a delete)
    after: dict[int, dict[str, Any] | None] = field(default_factory=dict)


def read_db(db: Path) -> Dump:
    """integrity_check, every task and every audit row, straight from the file."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        integrity = "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        tasks = {(s, i): (v, json.loads(d)) for s, i, v, d in conn.execute("SELECT style, id, version, doc FROM tasks")}
        audit = [Row(seq, s, t, v, a, r, json.loads(p)) for seq, s, t, v, a, r, p in conn.execute(
            "SELECT seq, style, task_id, version, action, request_id, patch FROM audit ORDER BY seq")]
    return Dump(integrity, tasks, audit)


def replay(dump: Dump) -> dict[Key, tuple[int, dict[str, Any]]]:
    """The tasks the audit trail describes, applied serially; fills ``dump.after``.

    AssertionError when the trail is not a sane history: versions of a task not
    consecutive, a change to a task that does not exist, a create over a live one."""
    state: dict[Key, tuple[int, dict[str, Any] | None]] = {}
    for row in dump.audit:
        key = (row.style, row.task_id)
        version, doc = state.get(key, (0, None))
        if row.action == "created":
            assert doc is None, f"seq {row.seq}: {key} created while it exists"
            doc = {}
            version = 0
        else:
            assert doc is not None, f"seq {row.seq}: {row.action} of {key}, which does not exist"
        assert row.version == version + 1, f"seq {row.seq}: {key} goes from version {version} to {row.version}"
        new = None if row.action == "deleted" else jsonpatch.apply_patch(doc, row.patch)
        state[key] = (row.version, new)
        dump.after[row.seq] = new
    return {key: (version, doc) for key, (version, doc) in state.items() if doc is not None}


def assert_replays(db: Path, *, verify: bool = True) -> Dump:
    """The file is sound and its tasks are exactly the serial replay of its audit trail.

    With ``verify`` it also runs ``taskgate audit verify`` on the file. That opens the store
    (and checkpoints the WAL when it closes), so a caller that must leave a crashed file
    untouched for the next start passes ``verify=False``.
    """
    dump = read_db(db)
    assert dump.integrity == "ok", dump.integrity
    replayed = replay(dump)
    assert set(replayed) == set(dump.tasks), (set(replayed) ^ set(dump.tasks))
    for key, stored in dump.tasks.items():
        assert replayed[key] == stored, f"{key}: the audit trail does not add up to the stored task"
    if not verify:
        return dump
    done = subprocess.run([sys.executable, "-m", "gateway", "--db", str(db), "audit", "verify"],
                            env={k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")},
                            capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
    return dump
