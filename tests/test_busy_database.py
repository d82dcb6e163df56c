"""Another connection holding the database's write lock past ``storage.busy_timeout_ms``:
a write gets 503 with Retry-After in its style's error body and stores nothing; once the
lock is let go, writes succeed again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.openapi_check import Document, answer
from tests.test_ops import SP_ID, audit_clients, start

MESSAGE = "the store could not commit the change"
WRITES = {
    "sailpoint": ("PATCH", f"/task-status/v1/{SP_ID}", "application/json-patch+json",
                  [{"op": "replace", "path": "/completionStatus", "value": "Error"}]),
    "superoffice": ("PUT", "/api/v1/BatchTask/1", "application/json", {"State": "Succeeded"}),
    "webmethods": ("PUT", "/rest/pub/opentask/1", "application/json", {"TaskData": {"n": 2}}),
}


def _expected(style: str, body: dict) -> dict:
    if style == "sailpoint":
        return {"detailCode": "503 Service Unavailable", "trackingId": body["trackingId"],
                "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": MESSAGE}], "causes": []}
    if style == "superoffice":
        return {"Error": True, "ErrorType": "SoException", "ErrorMessage": MESSAGE,
                "ErrorSource": "SuperOffice.Services.Implementation"}
    error_type = "com.wm.app.b2b.server.ServiceException"
    return {"$errorDump": "",
            "$errorInfo": {"$error": MESSAGE, "$localizedError": MESSAGE, "$errorType": error_type, "$user": "root",
                           "$time": body["$errorInfo"]["$time"], "$details": "", "$errorMsgId": "", "$errorDump": ""},
            "$error": MESSAGE, "$errorType": error_type}


def _rows(db: Path) -> tuple[list[tuple], list[tuple]]:
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT style, id, version, modified, doc FROM tasks ORDER BY style, id").fetchall(),
                conn.execute("SELECT * FROM audit ORDER BY seq").fetchall())


@pytest.mark.parametrize("style", WRITES)
async def test_a_write_while_another_connection_holds_the_lock_is_503_with_retry_after(
        aiohttp_client, tmp_path: Path, style: str):
    c = await start(aiohttp_client, tmp_path, storage={"busy_timeout_ms": 50})
    await c.one_update_per_style()
    db = tmp_path / "taskgate.db"
    before = _rows(db)
    method, path, ctype, body = WRITES[style]
    document = Document(json.loads(await (await c.client.get("/openapi.json")).read()))
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with capture_logs() as logs:  # checked against the document's 503 (and its Retry-After) too
            busy = await answer(c.client, document, method, path, body=body, ctype=ctype,
                                headers={"Authorization": f"Bearer {c.token}"})
        assert busy.status == 503, busy.body
        assert busy.headers["Retry-After"] == "1"
        assert busy.json() == _expected(style, busy.json())
        assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
        assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("store.")] == \
            [("store.busy", "warning")]
        other.execute("ROLLBACK")
        assert _rows(db) == before  # nothing stored while refused
        status, got, _ = await c.call(method, path, body, content_type=ctype)
        assert status == 200, got
    finally:
        other.close()
    assert len(audit_clients(tmp_path)) == len(before[1]) + 1
