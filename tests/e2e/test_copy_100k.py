"""The big one, the PostgreSQL issue's acceptance item: ``taskgate copy`` of a SQLite file of
100,000 tasks (the three styles, as ``taskgate import`` would store them, with updated and
deleted ones among them) into PostgreSQL (the test cluster) and back into a new file gives
byte-identical ``taskgate export``s of all three, and a clean audit verify of each target
(``taskgate copy`` ends with the replay of ``taskgate audit verify``: every trail of the
target, through the same store.trails() and verify_trail()). Every command runs as its own
``taskgate`` process. It costs about a minute (the numbers are in docs/scaling.md);
``-m "not big"`` leaves it out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.apis import sailpoint, superoffice, webmethods
from gateway.store.sqlite import SQLiteStore

pytestmark = [pytest.mark.e2e, pytest.mark.big]
PER_STYLE = {"sailpoint": 34_000, "superoffice": 33_000, "webmethods": 33_000}
TOTAL = sum(PER_STYLE.values())
START = datetime(2026, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _docs(style: str, n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """*n* tasks of *style* as its import would store them, each with dates of its own."""
    if style == "sailpoint":
        _id, base = sailpoint.import_task({"id": "0" * 32, "type": "QUARTZ", "uniqueName": "Aggregation",
                                           "launcher": "ann"}, _iso(START))
        for i in range(1, n + 1):
            when = _iso(START + timedelta(seconds=i))
            yield f"{i:032x}", {**base, "id": f"{i:032x}", "created": when, "modified": when,
                                "uniqueName": f"Aggregation {i} ü"}
    elif style == "superoffice":
        _id, base = superoffice.import_task({"Id": 1, "Name": "Export", "AssociateId": 7, "State": "Started"},
                                            _iso(START))
        for i in sorted(range(1, n + 1), key=str):
            yield str(i), {**base, "Id": i, "Name": f"Export {i}", "Created": _iso(START + timedelta(seconds=i))}
    else:
        _id, base = webmethods.import_task({"TaskInfo": {"taskID": "1", "taskTypeID": "T", "name": "Approve",
                                                         "createdBy": "import"}, "TaskData": {"Order": {"id": "1"}}},
                                           _iso(START))
        for i in sorted(range(1, n + 1), key=str):
            yield str(i), {"TaskInfo": {**base["TaskInfo"], "taskID": str(i), "name": f"Approve {i}"},
                           "TaskData": {"Order": {"id": str(i), "lines": [1.50, 2e3, None]}}}


async def _seed(path: Path) -> None:
    store = await SQLiteStore.open(path, synchronous="OFF")
    try:
        await store.add_user("ann", "admin", None, ("tok", False, None, "cli"))
        for style, n in PER_STYLE.items():
            await store.bulk_create(style, _docs(style, n), actor="ann", request_id="seed")
        for i in range(1, 201):  # trails longer than one row, and tasks that are gone
            await store.update("superoffice", str(i), lambda old: {**old, "Name": old["Name"] + " (renamed)"},
                               actor="ann", request_id=f"u{i}")
        for i in range(201, 301):
            await store.delete("superoffice", str(i), actor="ann", request_id=f"d{i}")
    finally:
        await store.close()


def _taskgate(workdir: Path, *args: str, stdout: Any = subprocess.PIPE) -> str:
    """What ``taskgate ARGS`` wrote (standard output, then standard error: no terminal, no bar)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    done = subprocess.run([sys.executable, "-m", "gateway", *args], cwd=workdir, env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return (done.stdout if stdout is subprocess.PIPE else "") + done.stderr


def test_100000_tasks_copied_to_postgresql_and_back_export_identically_and_verify_clean(pg_url, tmp_path):
    asyncio.run(_seed(tmp_path / "src.db"))
    stored = TOTAL - 100
    out = _taskgate(tmp_path, "copy", "src.db", pg_url)
    assert out == (f"copied src.db to {pg_url}: {stored} task(s), {TOTAL + 300} audit row(s), 1 user(s), "
                   "1 token(s), 0 OAuth client(s), 0 webhook(s)\n"
                   f"verified {TOTAL} task(s) in {pg_url}: 0 disagree with their audit trail\n")
    out = _taskgate(tmp_path, "copy", pg_url, "back.db")
    assert out == (f"copied {pg_url} to back.db: {stored} task(s), {TOTAL + 300} audit row(s), 1 user(s), "
                   "1 token(s), 0 OAuth client(s), 0 webhook(s)\n"
                   f"verified {TOTAL} task(s) in back.db: 0 disagree with their audit trail\n")
    exports = {}
    for name, db in (("src", "src.db"), ("pg", pg_url), ("back", "back.db")):
        with open(tmp_path / f"{name}.jsonl", "w") as out_file:
            _taskgate(tmp_path, "--db", db, "export", stdout=out_file)
        exports[name] = (tmp_path / f"{name}.jsonl").read_bytes()
    assert exports["pg"] == exports["src"] and exports["back"] == exports["src"]
    assert exports["src"].count(b"\n") == stored
    assert exports["src"].count(b'"style":"superoffice"') == PER_STYLE["superoffice"] - 100
