"""Another connection holding the database's write lock past ``storage.busy_timeout_ms``:
a write gets 503 with Retry-After in its style's error body and stores nothing; once the
lock is let go, writes succeed again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.auth import hash_password, new_secret, secret_hash
from gateway.context import STORE
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


def _tokens(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT hash, user, source FROM tokens ORDER BY hash").fetchall()


SO_BUSY = {"Error": True, "ErrorType": "SoException", "ErrorMessage": MESSAGE,
           "ErrorSource": "SuperOffice.Services.Implementation"}


@pytest.mark.parametrize("route", ["oauth", "login", "logout"])
async def test_an_account_write_while_another_connection_holds_the_lock_is_503_with_retry_after(
        aiohttp_client, tmp_path: Path, route: str):
    """Sign-ins that issue a token or a session, and a sign-out, write the tokens table:
    a held write lock is a 503 in the route's error body (RFC 6749's for /oauth/token,
    SuperOffice's for /login and /logout), not a 500, and nothing is stored."""
    c = await start(aiohttp_client, tmp_path, storage={"busy_timeout_ms": 50})
    store = c.client.app[STORE]
    await store.add_user("bob", "user", hash_password("bob-password"))
    secret = new_secret()
    await store.add_oauth_client("cid", secret_hash(secret), "bob")
    form = "application/x-www-form-urlencoded"
    requests = {
        "oauth": ("/oauth/token", f"grant_type=client_credentials&client_id=cid&client_secret={secret}", {}),
        "login": ("/login", "user=bob&password=bob-password", {}),
    }
    if route == "logout":
        signed_in = await c.client.post("/login", data="user=bob&password=bob-password", headers={"Content-Type": form})
        assert signed_in.status == 200
        xsrf = (await signed_in.json())["xsrf_token"]
        requests["logout"] = ("/logout", "", {"X-XSRF-TOKEN": xsrf})
    path, data, headers = requests[route]
    db = tmp_path / "taskgate.db"
    before = _tokens(db)
    document = Document(json.loads(await (await c.client.get("/openapi.json")).read()))
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with capture_logs() as logs:
            busy = await answer(c.client, document, "POST", path, data=data, ctype=form, headers=headers)
        assert (busy.status, busy.headers["Retry-After"]) == (503, "1"), busy.body
        assert busy.json() == ({"error": "temporarily_unavailable", "error_description": MESSAGE}
                               if route == "oauth" else SO_BUSY)
        assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
        assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("store.")] == \
            [("store.busy", "warning")]
        other.execute("ROLLBACK")
        assert _tokens(db) == before  # nothing stored (nor removed) while refused
        again = await c.client.post(path, data=data, headers={"Content-Type": form, **headers})
        assert again.status == (204 if route == "logout" else 200)
    finally:
        other.close()
    assert len(_tokens(db)) == len(before) + (-1 if route == "logout" else 1)
