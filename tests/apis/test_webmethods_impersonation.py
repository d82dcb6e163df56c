"""An admin's change made as another user (webMethods' ``user`` input) is audited with both
names: the audit row's actor is that user and its impersonator the admin, and so are the
audit log event, ``taskgate audit`` and the TaskAudit view; ``audit verify`` still passes."""

from __future__ import annotations

import asyncio
import json

from structlog.testing import capture_logs

from gateway.cli import main
from gateway.model import IMPERSONATION
from tests.apis.test_webmethods_fixtures import BASE, WmApi, _make_wm, _wm, create  # noqa: F401  (fixtures)


async def audit_rows(wm: WmApi, task_id: str) -> list[tuple]:
    return await wm.db_rows("SELECT * FROM audit WHERE style = 'webmethods' AND task_id = ? ORDER BY seq", task_id)


async def test_an_admin_s_change_as_alice_records_both_in_the_whole_audit_row(wm: WmApi, capsys):
    tid = await create(wm, taskInfo={"assignedToList": ["alice"]})
    with capture_logs() as logs:
        status, _, headers = await wm.request("PUT", f"{BASE}/{tid}?user=alice",
                                              body={"TaskInfo": {"name": "by alice"}})
    assert status == 200
    created, updated = await audit_rows(wm, tid)
    rid = headers["X-Request-ID"]
    at = updated[1]
    assert updated == (created[0] + 1, at, "webmethods", tid, 2, "updated", "alice", rid,
                       json.dumps([{"op": "replace", "path": "/TaskInfo/taskVersionNumber", "value": 2},
                                   {"op": "replace", "path": "/TaskInfo/lastModifiedBy", "value": "alice"},
                                   {"op": "replace", "path": "/TaskInfo/name", "value": "by alice"}],
                                  separators=(",", ":")),
                       json.dumps([{"op": "replace", "path": "/TaskInfo/taskVersionNumber", "value": 1},
                                   {"op": "replace", "path": "/TaskInfo/lastModifiedBy", "value": "root"},
                                   {"op": "replace", "path": "/TaskInfo/name", "value": None}],
                                  separators=(",", ":")),
                       "127.0.0.1", "root")
    assert created[6:] == ("root", created[7], created[8], created[9], "127.0.0.1", "")  # the admin's own change
    (event,) = [e for e in logs if e["event"] == "task.updated"]
    assert event == {"event": "task.updated", "log_level": "info", "style": "webmethods", "task_id": tid,
                     "version": 2, "actor": "alice", "impersonator": "root", "request_id": rid,
                     "seq": updated[0], "patch": json.loads(updated[8]), "client": "127.0.0.1"}
    # the TaskAudit view: made as alice (userID), by root (sourceURI)
    status, body, _ = await wm.request("GET", f"{BASE}/{tid}/audit")
    assert status == 200
    entry = body["taskAudits"][-1]
    assert (entry["userID"], entry["sourceURI"], entry["taskVersionNumber"]) == ("alice", "user:root", 2)
    assert body["taskAudits"][0]["sourceURI"] == "user:root" and body["taskAudits"][0]["userID"] == "root"
    # the command line on the same file: both names, and the trail still verifies
    db = str(wm.store.path)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--db", db, "audit", "--style", "webmethods", "--task", tid]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["version"], e["actor"], e["impersonator"]) for e in lines] == [(2, "alice", "root"), (1, "root", "")]
    assert await asyncio.to_thread(main, ["--db", db, "audit", "verify"]) == 0


async def test_a_create_as_alice_is_alice_s_and_names_root_and_plain_changes_name_nobody(wm: WmApi):
    status, body, _ = await wm.request("POST", f"{BASE}?user=alice", body={"taskTypeID": "t"})
    assert status == 200
    tid = body["taskID"]
    (row,) = await audit_rows(wm, tid)
    assert (row[5], row[6], row[11]) == ("created", "alice", "root")
    # alice's own change names no impersonator, nor does the next request on the connection
    status, _, _ = await wm.request("PUT", f"{BASE}/{tid}", token=wm.user, body={"TaskInfo": {"name": "mine"}})
    assert status == 200
    status, _, _ = await wm.request("PUT", f"{BASE}/{tid}", body={"TaskInfo": {"name": "root's"}})
    assert status == 200
    assert [(r[6], r[11]) for r in await audit_rows(wm, tid)] == [("alice", "root"), ("alice", ""), ("root", "")]
    assert IMPERSONATION.get() is None
