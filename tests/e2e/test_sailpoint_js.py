"""SailPoint's TypeScript SDK, ``sailpoint-api-client`` 1.4.15 from npm (its beta and v2024
task-management APIs), against a real ``taskgate serve`` process.

The client is run by Node (``sailpoint_js/task_management.js``, with ``--throw-deprecation``
so that a deprecation is an error, and every other process warning reported): a test hands
it a plan of calls and gets back, for each, what the SDK resolved with (the parsed body its
TypeScript models describe), or the rejection with the answer's status and body; what went
over the socket; and what the SDK printed. scripts/_bootstrap installs the client with
``npm ci`` from the committed package-lock.json. Tasks are set up with taskgate's own
``POST /task-status/v1`` and ``taskgate import``; stored state is read back with plain HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sailpoint_tasks import create, error_dto, stored
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).parent / "sailpoint_js"
SDK_VERSION = "1.4.15"
DOCUMENTED_BODY = [{"op": "replace", "path": "/completionStatus", "value": "Error"},
                   {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"}]
SOURCE_A = {"id": "2c91808a78efc63e0178fb8624b248c5", "type": "APPLICATION", "name": "Active Directory [source]"}
SOURCE_B = {"id": "2c9180835d2e5168015d32f890ca1581", "type": "APPLICATION", "name": "HR [source]"}
#: what the SDK logs before every call that sends X-SailPoint-Experimental (all of v2024's)
EXPERIMENTAL = "log: Warning: You are using Experimental APIs"
#: the request body member that carries the patch, per version
PATCH_PARAMETER = {"beta": "jsonPatchOperationBeta", "v2024": "jsonPatchOperationV2024"}
REFUSED = ("[0].path: '/id' cannot be changed; updatable: /attributes, /completed, /completionStatus, /launched, "
           "/messages, /percentComplete, /progress, /returns")


def run_client(server: Server, calls: list[dict[str, Any]], credentials: dict[str, dict[str, str]],
               workdir: Path) -> dict[str, dict[str, Any]]:
    """Run *calls* through sailpoint-api-client in one Node process; each outcome by label."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the sailpoint-api-client tests need Node.js 18+ (see scripts/_bootstrap)")
    if not (JS_DIR / "node_modules" / "sailpoint-api-client").is_dir():
        pytest.fail(f"sailpoint-api-client is not installed in {JS_DIR}: run scripts/test, which runs npm ci")
    # the SDK falls back to $SAIL_*, ./config.json and ~/.sailpoint when given no base URL: keep them out
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SAIL_") and not k.lower().endswith("_proxy") and k != "NODE_OPTIONS"}
    env["HOME"] = str(workdir)
    env["NODE_PATH"] = str(JS_DIR / "node_modules")
    plan = {"baseUrl": server.base_url, "credentials": credentials, "calls": calls}
    done = subprocess.run([node, "--throw-deprecation", str(JS_DIR / "task_management.js")], cwd=workdir,
                          env=env, input=json.dumps(plan), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["sdk"], result["warnings"]) == (SDK_VERSION, [])
    outcomes = {o["label"]: o for o in result["calls"]}
    assert list(outcomes) == [c["label"] for c in calls]
    return outcomes


@pytest.mark.parametrize("version", ["beta", "v2024"])
def test_every_task_management_call_of_the_version(fresh_server: Server, tmp_path: Path, version: str) -> None:
    server = fresh_server
    full = create(server, id="full", target=SOURCE_A, parentName="Audit Report", created="2024-01-01T00:00:00Z",
                  launched="2024-01-01T00:00:01Z", progress="Started", percentComplete=10,
                  messages=[{"type": "INFO", "localizedText": {"locale": "en-US", "message": "Started"},
                             "key": "akey", "parameters": [{"name": "value"}, "text"]}],
                  returns=[{"name": "label", "attributeName": "identityCount"}], attributes={"identityCount": 0},
                  taskDefinitionSummary={"id": "2c91808475b4334b0175e1dff64b63c5",
                                         "uniqueName": "Cloud Account Aggregation",
                                         "parentName": "Cloud Account Aggregation", "arguments": {"k": "v"}})
    pending = create(server, id="pending", type="QPOC", target=SOURCE_A, created="2024-01-02T00:00:00Z")
    done = create(server, id="done", target=SOURCE_B, created="2024-01-03T00:00:00Z", completionStatus="SUCCESS",
                  completed="2024-01-03T01:00:00Z")
    nulled = create(server, id="nulled", created="2024-01-04T00:00:00Z", modified=None)
    assert nulled["modified"] == "2024-01-04T00:00:00.000Z"  # stamped: the SDK's model says it is a date
    record = {"style": "sailpoint", "task": {"id": "imported", "type": "QUEUED_TASK", "uniqueName": "Imported",
                                             "target": SOURCE_B, "created": "2024-01-05T00:00:00Z",
                                             "modified": None}}
    server.cli("import", "-", stdin=json.dumps(record) + "\n")
    imported = stored(server, "imported")
    assert (imported["created"], imported["modified"]) == ("2024-01-05T00:00:00.000Z", "2024-01-05T00:00:00.000Z")
    everything = [full, pending, done, nulled, imported]
    reader = server.cli("token", "create", "admin", "--read-only").strip()
    secret = server.cli("oauth-client", "add", "sdk-js", "--user", "admin").strip()
    patch_member = PATCH_PARAMETER[version]

    def call(label: str, method: str, who: str = "admin", **params: Any) -> dict[str, Any]:
        return {"label": label, "version": version, "method": method, "as": who, "params": params}

    calls = [
        call("get", "getTaskStatus", id="full"),
        call("list", "getTaskStatusList", count=True),
        call("list by source", "getTaskStatusList", filters=f'sourceId eq "{SOURCE_A["id"]}"', sorters="-created"),
        call("list page", "getTaskStatusList", limit=2, offset=1, count=True, sorters="created",
             filters=f'sourceId in ("{SOURCE_A["id"]}","{SOURCE_B["id"]}")'),
        call("list example", "getTaskStatusList", filters='completionStatus eq "Success"'),
        call("pending", "getPendingTasks", offset=0, limit=250, count=True),
        call("pending page", "getPendingTasks", offset=1, limit=1),
        call("pending headers", "getPendingTaskHeaders", count=True),
        call("update", "updateTaskStatus", id="full", **{patch_member: DOCUMENTED_BODY}),
        call("update progress", "updateTaskStatus", id="pending",
             **{patch_member: [{"op": "replace", "path": "/progress", "value": "Half way"},
                               {"op": "replace", "path": "/percentComplete", "value": 50}]}),
        call("get after", "getTaskStatus", id="pending"),
        call("get unknown", "getTaskStatus", id="nope"),
        call("update unknown", "updateTaskStatus", id="nope", **{patch_member: DOCUMENTED_BODY}),
        call("update refused", "updateTaskStatus", id="done",
             **{patch_member: [{"op": "replace", "path": "/id", "value": "other"}]}),
        call("list refused", "getTaskStatusList", filters="created gt 2024-01-01T00:00:00Z"),
        call("read-only update", "updateTaskStatus", who="reader", id="done", **{patch_member: DOCUMENTED_BODY}),
        call("read-only list", "getTaskStatusList", who="reader", filters='id eq "done"'),
        call("bad token", "getTaskStatus", who="nobody", id="done"),
        call("client credentials", "getTaskStatus", who="client", id="done"),
    ]
    credentials = {"admin": {"accessToken": server.admin_token or ""}, "reader": {"accessToken": reader},
                   "nobody": {"accessToken": "tg_not-a-real-token"},
                   "client": {"clientId": "sdk-js", "clientSecret": secret}}
    got = run_client(server, calls, credentials, tmp_path)

    prefix = f"/{version}/task-status"
    for spec in calls:
        outcome = got[spec["label"]]
        # the SDK's own console output: the experimental notice of each v2024 call, nothing else
        assert outcome["printed"] == ([EXPERIMENTAL] if version == "v2024" else []), outcome
        assert outcome["warnings"] == [], outcome
        # one request per call (two for the client that first fetches its token), to its version's path
        exchange = outcome["wire"][-1]
        assert exchange["path"].partition("?")[0].startswith(prefix), exchange
        assert exchange["headers"]["x-sailpoint-sdk"] == f"typescript-{SDK_VERSION}"
        assert exchange["headers"].get("x-sailpoint-experimental") == ("true" if version == "v2024" else None)
        assert exchange["headers"]["authorization"] == "Bearer …"
        assert exchange["headers"]["accept"] == "application/json, text/plain, */*"
        if exchange["method"] == "PATCH":
            assert exchange["headers"]["content-type"] == "application/json-patch+json"
            assert exchange["body"] == spec["params"][patch_member]
        assert len(outcome["wire"]) == (2 if spec["as"] == "client" else 1), outcome["wire"]

    def ok(label: str) -> dict[str, Any]:
        outcome = got[label]
        assert outcome["ok"], outcome
        return outcome

    # reads: the whole body the SDK resolved with
    assert (ok("get")["status"], ok("get")["data"], ok("get")["headers"]["etag"]) == (200, full, '"1"')
    listed = ok("list")
    assert (listed["data"], listed["headers"]["x-total-count"]) == (everything, "5")
    assert listed["wire"][0]["path"] == f"{prefix}?count=true"
    assert ok("list by source")["data"] == [pending, full]
    page = ok("list page")
    assert (page["data"], page["headers"]["x-total-count"]) == ([pending, done], "4")
    assert ok("list example")["data"] == [done]
    unfinished = [full, pending, nulled, imported]
    assert (ok("pending")["data"], ok("pending")["headers"]["x-total-count"]) == (unfinished, "4")
    assert ok("pending")["wire"][0]["path"] == f"{prefix}/pending-tasks?offset=0&limit=250&count=true"
    assert ok("pending page")["data"] == [pending]
    headers = ok("pending headers")
    assert (headers["wire"][0]["method"], headers["wire"][0]["path"]) == ("HEAD", f"{prefix}/pending-tasks?count=true")
    assert (headers["status"], headers["data"], headers["headers"]["x-total-count"]) == (200, "", "4")

    # updates: the resolved body is the stored task
    full_after = stored(server, "full")
    assert full_after == {**full, "completionStatus": "ERROR", "completed": "2024-05-17T19:33:16.470Z",
                          "modified": full_after["modified"]}
    assert full_after["modified"] > full["modified"]
    assert (ok("update")["status"], ok("update")["data"], ok("update")["headers"]["etag"]) == (200, full_after, '"2"')
    pending_after = stored(server, "pending")
    assert pending_after == {**pending, "progress": "Half way", "percentComplete": 50,
                             "modified": pending_after["modified"]}
    assert ok("update progress")["data"] == pending_after
    assert ok("get after")["data"] == pending_after

    # refusals: the SDK rejects with the answer, whose body is SailPoint's
    def failed(label: str, status: int) -> dict[str, Any]:
        outcome = got[label]
        assert not outcome["ok"] and outcome["error"]["status"] == status, outcome
        assert outcome["error"]["message"] == f"Request failed with status code {status}"
        return outcome["error"]

    for label, status, detail, text in (
            ("get unknown", 404, "404 Not found", "TaskStatus with id 'nope' was not found"),
            ("update unknown", 404, "404 Not found", "TaskStatus with id 'nope' was not found"),
            ("update refused", 400, "400.1 Bad Request Content", REFUSED),
            ("list refused", 400, "400.1 Bad Request Content", "filters: unsupported field 'created'"),
            ("read-only update", 403, "403 Forbidden", "this token is read-only")):
        error = failed(label, status)
        assert error["data"] == error_dto(detail, text, error["headers"]["x-request-id"]), label
    assert ok("read-only list")["data"] == [done]
    assert failed("bad token", 401)["data"] == {"error": "invalid token"}
    assert stored(server, "done") == done  # refused changes changed nothing

    # client credentials: the SDK posts the form to /oauth/token first, then uses its token
    client = ok("client credentials")
    token, fetch = client["wire"]
    assert (token["method"], token["path"], token["status"], token["body"]) == ("POST", "/oauth/token", 200,
                                                                               "<form data>")
    assert token["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert (fetch["path"], client["data"]) == (f"{prefix}/done", done)
