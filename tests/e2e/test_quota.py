"""The storage quota on a real ``taskgate serve`` with its default configuration: an
ordinary user's 300 webMethods creates of the largest storable task are stopped by
``quota.mib_per_user``. Only what fits is stored, every other create is a 413 in the
webMethods envelope naming the limit, and the database file grows by no more than the
quota and SQLite's page overhead."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import QuotaConfig
from tests.e2e.server import Server, call, session

CREATES = 300
TASK_TYPE = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"
#: TaskData of a task that is just below the stored document limit (1 MiB) with its TaskInfo
BLOB = 1_048_576 - 2_000
QUOTA_BYTES = QuotaConfig().mib_per_user * 2**20


def file_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def test_an_ordinary_user_s_300_largest_creates_are_stopped_by_the_quota(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        server.cli("user", "add", "alice", "--role", "user")
        token = server.cli("token", "create", "alice").strip()
        before = file_bytes(server.db)

        async def run() -> tuple[list[int], list[object], list[dict]]:
            statuses: list[int] = []
            refusals: list[object] = []
            async with session(server, token) as client:
                for n in range(CREATES):
                    status, body, _ = await call(client, "POST", "/rest/pub/opentask", body={
                        "taskTypeID": TASK_TYPE, "TaskData": {"blob": chr(97 + n % 26) * BLOB}})
                    statuses.append(status)
                    if status != 200:
                        refusals.append(body)
                _, listed, _ = await call(client, "GET", "/rest/pub/opentask")
            return statuses, refusals, listed["Tasks"]
        statuses, refusals, listed = asyncio.run(run())
    finally:
        assert server.stop() == 0
    stored = statuses.count(200)
    # every create up to the quota is stored, every one after it refused; nothing else
    assert statuses == [200] * stored + [413] * (CREATES - stored)
    assert len(listed) == stored
    per_task = 2 * BLOB  # its document and the audit row of its creation (the whole document again)
    assert stored * per_task <= QUOTA_BYTES < (stored + 2) * per_task
    for body in refusals:
        assert isinstance(body, dict)
        message = body["$error"]
        assert message.startswith("alice's webmethods tasks would take ") and message.endswith(
            f"the quota is {QUOTA_BYTES} bytes per user (quota.mib_per_user = {QUOTA_BYTES // 2**20}); make the "
            "task smaller, or ask an administrator (deleted tasks' audit rows count until they are purged)"), message
        assert body["$errorInfo"]["$user"] == "alice"
    grown = file_bytes(server.db) - before
    assert stored * per_task <= grown <= QUOTA_BYTES * 1.02 + 4 * 2**20, (grown, stored)
    log = server.log.read_text()
    assert "Traceback" not in log and '"status": 500' not in log
