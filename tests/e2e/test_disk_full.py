"""Disk trouble on a real ``taskgate serve``: a database that cannot grow (a full file
system, or the ``storage.max_db_mib`` budget) and one that cannot be written at all (a
read-only file system, or read-only permissions). Each scenario ends the same way: reads
answered, writes refused with 503 and Retry-After in each style's shape, a restart on
the same trouble starts and does the same, nothing acknowledged is lost once the trouble
is gone, no 500 and no traceback.

A real small file system needs root (a 24 MiB tmpfs, unmounted afterwards); without root
the full disk is the production setting ``storage.max_db_mib`` and the read-only disk the
file's permissions, so the scenarios never skip silently: each machine runs one of each
pair, root machines also the budget."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, http

IS_ROOT = os.geteuid() == 0
BUSY = "the store could not commit the change"
ERROR_TYPE = "com.wm.app.b2b.server.ServiceException"


def expected(style: str, body: dict[str, Any], message: str) -> dict[str, Any]:
    """The 503 body of *style* with *message* (the volatile members taken from *body*)."""
    if style == "sailpoint":
        return {"detailCode": "503 Service Unavailable", "trackingId": body["trackingId"],
                "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": message}], "causes": []}
    if style == "superoffice":
        return {"Error": True, "ErrorType": "SoException", "ErrorMessage": message,
                "ErrorSource": "SuperOffice.Services.Implementation"}
    return {"$errorDump": "",
            "$errorInfo": {"$error": message, "$localizedError": message, "$errorType": ERROR_TYPE, "$user": "admin",
                           "$time": body["$errorInfo"]["$time"], "$details": "", "$errorMsgId": "", "$errorDump": ""},
            "$error": message, "$errorType": ERROR_TYPE}


def create(style: str, n: int, size: int = 0) -> tuple[str, dict[str, Any]]:
    if style == "sailpoint":
        return "/task-status/v1", {"id": f"sp-{n}", "type": "QUARTZ", "uniqueName": "u",
                                   "attributes": {"pad": "s" * size}}
    if style == "superoffice":
        return "/api/v1/BatchTask", {"Name": f"so-{n}", "Context": "c" * size}
    return "/rest/pub/opentask", {"taskTypeID": "T", "TaskData": {"n": n, "pad": "w" * size}}


def task_id(style: str, body: Any) -> str:
    return {"sailpoint": lambda: body["id"], "superoffice": lambda: str(body),  # SuperOffice answers the new id
            "webmethods": lambda: body["taskID"]}[style]()


def read_path(style: str, tid: str) -> str:
    return {"sailpoint": f"/task-status/v1/{tid}", "superoffice": f"/api/v1/BatchTask/{tid}",
            "webmethods": f"/rest/pub/opentask/{tid}?includeTaskData=true"}[style]


def name_of(style: str, doc: dict[str, Any]) -> Any:
    """What a created task was given, as a read answers it."""
    return {"sailpoint": lambda: doc["id"], "superoffice": lambda: doc["Name"],
            "webmethods": lambda: doc["TaskData"]["n"]}[style]()


class Scenario:
    """One server on the folder under trouble, with what it acknowledged."""

    def __init__(self, tmp_path: Path, folder: Path, env: dict[str, str] | None = None) -> None:
        self.server = Server(tmp_path, env={"TASKGATE_STORAGE_MIN_FREE_MIB": "0", **(env or {})})
        self.server.db = folder / "taskgate.db"  # the log stays outside, on a disk with room
        self.acknowledged: dict[tuple[str, str], Any] = {}
        self.statuses: list[int] = []

    @property
    def auth(self) -> str:
        assert self.server.admin_token
        return f"Bearer {self.server.admin_token}"

    def write(self, style: str, n: int, size: int = 0) -> Any:
        path, body = create(style, n, size)
        reply = http("POST", self.server.base_url + path, self.auth, body)
        self.statuses.append(reply.status)
        if reply.status in (200, 201):
            self.acknowledged[(style, task_id(style, reply.json))] = name_of(style, body)
        return reply

    def refused(self, style: str, n: int, message: str) -> None:
        """The next write of *style* is a 503 with Retry-After in the style's shape."""
        reply = self.write(style, n)
        assert (reply.status, reply.headers["Retry-After"]) == (503, "1"), reply.raw[:300]
        assert reply.json == expected(style, reply.json, message)

    def reads_every_acknowledged_task(self) -> None:
        for (style, tid), name in self.acknowledged.items():
            reply = http("GET", self.server.base_url + read_path(style, tid), self.auth)
            assert reply.status == 200, (style, tid, reply.status)
            assert name_of(style, reply.json) == name

    def clean_log(self) -> None:
        log = self.server.log.read_text()
        assert "Traceback" not in log
        assert 500 not in self.statuses
        assert '"status": 500' not in log


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs, unmounted afterwards (root only)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(scenario: Scenario) -> None:
    """Write until the database cannot grow: large webMethods creates, then small creates of
    each style, each until refused (bounded)."""
    for n in range(400):
        if scenario.write("webmethods", n, 100_000).status == 503:
            break
    else:
        pytest.fail("the disk never filled")
    for style in ("sailpoint", "superoffice", "webmethods"):
        for n in range(1000, 1300):
            if scenario.write(style, n).status == 503:
                break
        else:
            pytest.fail(f"small {style} writes never filled the disk")


def refuses_and_reads(scenario: Scenario, message: str) -> None:
    for n, style in enumerate(("sailpoint", "superoffice", "webmethods")):
        scenario.refused(style, 2000 + n, message)
    scenario.reads_every_acknowledged_task()
    assert http("GET", f"{scenario.server.base_url}/readyz").status == 503
    assert http("GET", f"{scenario.server.base_url}/healthz").status == 200


@pytest.mark.parametrize("kind", ["tmpfs", "budget"])
def test_a_full_disk_refuses_writes_answers_reads_restarts_and_recovers(tmp_path: Path, kind: str, request):
    if kind == "tmpfs":
        if not IS_ROOT:
            pytest.skip("a real small file system needs root; the budget scenario covers this machine")
        folder = request.getfixturevalue("small_disk")
        ballast = folder / "ballast"
        # what an operator frees to recover: as much as the WAL will hold, so that the
        # checkpoint that copies it into the database file has room too
        ballast.write_bytes(b"\0" * 12 * 2**20)
        env: dict[str, str] = {}
    else:
        folder = tmp_path / "db"
        folder.mkdir()
        env = {"TASKGATE_STORAGE_MAX_DB_MIB": "2"}
    scenario = Scenario(tmp_path, folder, env)
    scenario.server.start(allow_new=True)
    try:
        fill(scenario)
        stored = len(scenario.acknowledged)
        assert stored > 10
        refuses_and_reads(scenario, BUSY)
    finally:
        assert scenario.server.stop() == 0
    # restart while still full: it starts, reads, refuses writes
    scenario.server.start()
    try:
        refuses_and_reads(scenario, BUSY)
        if kind == "tmpfs":  # space freed while serving: writes pass again, no restart needed
            ballast.unlink()
            assert scenario.write("webmethods", 3000).status == 200
    finally:
        assert scenario.server.stop() == 0
    if kind == "budget":  # a larger budget, at the next start
        scenario.server.env["TASKGATE_STORAGE_MAX_DB_MIB"] = "16"
    scenario.server.start()
    try:
        for n, style in enumerate(("sailpoint", "superoffice", "webmethods")):
            assert scenario.write(style, 4000 + n).status in (200, 201)
        scenario.reads_every_acknowledged_task()
        assert len(scenario.acknowledged) == stored + (4 if kind == "tmpfs" else 3)
        assert http("GET", f"{scenario.server.base_url}/readyz").status == 200
    finally:
        assert scenario.server.stop() == 0
    scenario.clean_log()


@pytest.mark.parametrize("kind", ["remount", "permissions"])
def test_a_read_only_database_is_served_for_reading_and_refuses_writes(tmp_path: Path, kind: str, request):
    if kind == "remount" and not IS_ROOT:
        pytest.skip("remounting needs root; the permissions scenario covers this machine")
    if kind == "permissions" and IS_ROOT:
        pytest.skip("root writes whatever the permissions say; the remount scenario covers this machine")
    folder = request.getfixturevalue("small_disk") if kind == "remount" else tmp_path / "db"
    folder.mkdir(exist_ok=True)
    scenario = Scenario(tmp_path, folder)
    scenario.server.start(allow_new=True)
    try:
        for n, style in enumerate(("sailpoint", "superoffice", "webmethods") * 3):
            assert scenario.write(style, n, 1000).status in (200, 201)
    finally:
        assert scenario.server.stop() == 0
    db = scenario.server.db
    if kind == "remount":
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        reason = "the database is on a read-only file system"
    else:
        db.chmod(stat.S_IRUSR | stat.S_IRGRP)
        reason = "the database file is read-only (its permissions)"
    try:
        scenario.server.start()
        try:
            refuses_and_reads(scenario, f"the store refuses writes: {reason}: reads are answered, writes refused")
            ready = http("GET", f"{scenario.server.base_url}/readyz")
            assert ready.status == 503
        finally:
            assert scenario.server.stop() == 0
    finally:
        if kind == "remount":
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
        else:
            db.chmod(stat.S_IRUSR | stat.S_IWUSR)
    events = [e for e in scenario.server.events() if e.get("event") == "store.read_only"]
    assert events and {(e["level"], e["reason"]) for e in events} == {("warning", reason)}
    # writable again: every acknowledged task is there and writes pass
    scenario.server.start()
    try:
        scenario.reads_every_acknowledged_task()
        assert scenario.write("webmethods", 100).status == 200
    finally:
        assert scenario.server.stop() == 0
    scenario.clean_log()


def test_a_read_only_database_whose_wal_holds_changes_stops_serve_with_one_line(tmp_path: Path, request):
    """Killed with changes still in its WAL, then remounted read-only: an immutable open
    would not see them, so serve refuses (exit 2) rather than answer stale reads."""
    if not IS_ROOT:
        pytest.skip("remounting needs root")
    small_disk = request.getfixturevalue("small_disk")
    scenario = Scenario(tmp_path, small_disk)
    scenario.server.start(allow_new=True)
    assert scenario.write("webmethods", 1).status == 200
    scenario.server.kill()
    wal = Path(f"{scenario.server.db}-wal")
    assert wal.stat().st_size > 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
        done = subprocess.run([sys.executable, "-m", "gateway", "--db", str(scenario.server.db), "serve", "--host",
                               "127.0.0.1", "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"taskgate: database {str(scenario.server.db)!r} (storage.path): the database is on a read-only file "
        "system, and its write-ahead log (taskgate.db-wal) holds changes not yet copied into it, which cannot be "
        "read without writing: make it writable for one start (taskgate then copies them in), or copy the files "
        "somewhere writable\n")
    scenario.server.start()  # writable again: the change is there
    try:
        scenario.reads_every_acknowledged_task()
    finally:
        assert scenario.server.stop() == 0
