"""The official ``sailpoint`` 1.4.2 SDK (its beta, v2024, v2025 and v2026 modules) against a
real ``taskgate serve`` process.

1.4.2 is the last 1.x release and the one that still calls the year-versioned paths
(2.x calls only ``/task-status/v1``, see tests/e2e/test_sailpoint_sdk.py). It cannot share
the virtual environment with 2.1.72, so scripts/_bootstrap installs it into a folder of
its own, :data:`SDK_DIR`, and each test runs this same file as a script in a subprocess,
``python -W error -m tests.e2e.test_sailpoint_sdk_1x``, with that folder first on
``PYTHONPATH``: the subprocess imports 1.4.2, the test process never does. Every warning
is an error there (the SDK only *warns* about an enum value it does not know), except the
``DeprecationWarning`` the SDK itself raises for the pending-task calls, which is
recorded and compared.

A test hands the script a plan on standard input (the clients to build and the calls to
make, in order) and gets back, for each call, the returned object as the SDK built it
(its class, and ``to_dict()`` with each datetime as the SDK parsed it) or the exception
with its status, body and parsed ``data``; plus what the SDK printed and warned. Tasks are
set up with taskgate's own ``POST /task-status/v1`` and ``taskgate import``; the stored
state is read back with plain HTTP, and the server's request log shows the paths the SDK
called.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: where scripts/_bootstrap installs sailpoint 1.4.2 (pip install --target, beside 2.1.72)
SDK_DIR = ROOT / ".venv" / "sailpoint-1.4.2"
VERSIONS = ("beta", "v2024", "v2025", "v2026")
DOCUMENTED_BODY = [{"op": "replace", "path": "/completionStatus", "value": "Error"},
                   {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"}]
SOURCE_A = {"id": "2c91808a78efc63e0178fb8624b248c5", "type": "APPLICATION", "name": "Active Directory [source]"}
SOURCE_B = {"id": "2c9180835d2e5168015d32f890ca1581", "type": "APPLICATION", "name": "HR [source]"}
EXPERIMENTAL = "Warning: You are using Experimental APIs"
PENDING_DEPRECATED = {"get_pending_tasks": "GET /task-status/pending-tasks is deprecated.",
                      "get_pending_task_headers": "HEAD /task-status/pending-tasks is deprecated."}


# -- the script side: runs under sailpoint 1.4.2, in a subprocess ------------------------------
def _encode(value: Any) -> Any:
    """What the SDK returned, as JSON: a model as its class and ``to_dict()``, a datetime
    as its ISO form (so that the test sees how the SDK parsed it)."""
    from pydantic import BaseModel
    if isinstance(value, BaseModel):
        return {"$model": f"{type(value).__module__}.{type(value).__qualname__}", "dict": _encode(value.to_dict())}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


class _Clients:
    """One TaskManagementApi per (credentials, version), built on first use (inside the
    call that needs it, so that what building prints or warns is that call's)."""

    def __init__(self, base_url: str, credentials: dict[str, dict[str, str]]) -> None:
        self.base_url, self.credentials = base_url, credentials
        self.apis: dict[tuple[str, str], Any] = {}

    def api(self, who: str, version: str) -> Any:
        if (who, version) not in self.apis:
            from sailpoint.configuration import Configuration, ConfigurationParams
            params = ConfigurationParams()
            params.base_url = self.base_url
            params.access_token = self.credentials[who].get("token")
            params.client_id = self.credentials[who].get("clientId")
            params.client_secret = self.credentials[who].get("clientSecret")
            configuration = Configuration(params)
            configuration.experimental = True  # v2026 refuses its calls otherwise (they send the header)
            package = importlib.import_module(f"sailpoint.{version}")
            self.apis[who, version] = package.TaskManagementApi(package.ApiClient(configuration))
        return self.apis[who, version]


def _call(clients: _Clients, call: dict[str, Any]) -> dict[str, Any]:
    version = call["version"]
    kwargs = dict(call.get("kwargs", {}))
    printed = io.StringIO()
    outcome: dict[str, Any] = {"label": call["label"]}
    with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as caught:
        if call.get("deprecated"):
            warnings.simplefilter("always", DeprecationWarning)  # the SDK's own, compared by the test
        try:
            api = clients.api(call.get("as", "admin"), version)
            if "patch" in call:
                model = importlib.import_module(f"sailpoint.{version}.models.json_patch_operation")
                kwargs["json_patch_operation"] = [model.JsonPatchOperation.from_dict(op) for op in call["patch"]]
            result = getattr(api, call["method"])(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test, which judges it
            outcome.update(ok=False, exception=f"{type(exc).__module__}.{type(exc).__qualname__}",
                           status=getattr(exc, "status", None), body=getattr(exc, "body", None),
                           data=_encode(getattr(exc, "data", None)), message=str(exc))
        else:
            outcome["ok"] = True
            if call["method"].endswith("_with_http_info"):
                outcome.update(status=result.status_code, headers=dict(result.headers or {}),
                               raw=result.raw_data.decode() if result.raw_data else "", value=_encode(result.data))
            else:
                outcome["value"] = _encode(result)
    outcome["printed"] = printed.getvalue()
    outcome["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return outcome


def main() -> None:
    """Read a plan on standard input, make its calls in order, print the outcomes as JSON."""
    plan = json.load(sys.stdin)
    import sailpoint
    assert sailpoint.__file__.startswith(plan["sdkDir"]), sailpoint.__file__  # 1.4.2, not the venv's 2.x
    clients = _Clients(plan["baseUrl"], plan["credentials"])
    outcomes = [_call(clients, call) for call in plan["calls"]]
    json.dump({"sdk": importlib.import_module("sailpoint.v2025").__version__, "calls": outcomes}, sys.stdout)


if __name__ == "__main__":
    main()
    raise SystemExit(0)


# -- the test side -----------------------------------------------------------------------------
from tests.e2e.sailpoint_tasks import create, error_dto, stored  # noqa: E402 - not needed by the script side above
from tests.e2e.server import Server  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _sdk_installed() -> None:
    if not (SDK_DIR / "sailpoint" / "v2026").is_dir():
        pytest.fail(f"sailpoint 1.4.2 is not installed in {SDK_DIR}: run scripts/test, which installs it "
                    "(scripts/_bootstrap)")


def run_sdk(server: Server, calls: list[dict[str, Any]], credentials: dict[str, dict[str, str]],
            workdir: Path) -> dict[str, dict[str, Any]]:
    """Make *calls* with sailpoint 1.4.2 in one subprocess; each call's outcome by label."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SAIL_", "TASKGATE_", "PYTHON")) and not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join([str(SDK_DIR), str(ROOT)])
    plan = {"baseUrl": server.base_url, "sdkDir": str(SDK_DIR), "credentials": credentials, "calls": calls}
    # a hang bound, not a timing: importing a version module of the SDK alone takes seconds, and
    # a loaded two-core machine once needed over 120 s for one subprocess
    done = subprocess.run([sys.executable, "-W", "error", "-m", "tests.e2e.test_sailpoint_sdk_1x"],
                          cwd=workdir, env=env, input=json.dumps(plan), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sdk"] == "1.4.2"
    outcomes = {o["label"]: o for o in result["calls"]}
    assert list(outcomes) == [c["label"] for c in calls]
    return outcomes


def sdk_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored TaskStatus as 1.4.2 gives it back: ``to_dict()`` of a TaskStatus, each
    timestamp an aware UTC datetime, and an absent ``target`` (nullable there) as None."""
    out = {"target": None, **doc}
    for key in ("created", "modified", "launched", "completed"):
        if out[key] is not None:
            moment = datetime.fromisoformat(out[key])
            assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0
            out[key] = {"$datetime": moment.isoformat()}
    return out


def task_model(version: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"$model": f"sailpoint.{version}.models.task_status.TaskStatus", "dict": sdk_view(doc)}


def error_model(version: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"$model": f"sailpoint.{version}.models.error_response_dto.ErrorResponseDto", "dict": body}


@contextlib.contextmanager
def requests_seen(server: Server) -> Iterator[list[tuple[str, str, int]]]:
    """The (method, path, status) of each request the server logged inside the block."""
    before = len([e for e in server.events() if e.get("event") == "request"])
    seen: list[tuple[str, str, int]] = []
    yield seen
    seen.extend((e["method"], e["path"], e["status"])
                for e in [e for e in server.events() if e.get("event") == "request"][before:])


@pytest.mark.parametrize("version", VERSIONS)
def test_every_task_status_call_of_the_version_module(fresh_server: Server, tmp_path: Path, version: str) -> None:
    server = fresh_server
    # a task with every optional member, two pending, one done, one created and one imported with
    # "modified": null (stamped: one null would break every list call below)
    full = create(server, id="full", target=SOURCE_A, parentName="Audit Report", created="2024-01-01T00:00:00Z",
                  launched="2024-01-01T00:00:01Z", progress="Started", percentComplete=10,
                  messages=[{"type": "INFO", "localizedText": {"locale": "en-US", "message": "Started"},
                             "key": "akey", "parameters": [{"name": "value"}, "text"]},
                            {"type": "WARN", "key": "bare"}],
                  returns=[{"name": "label", "attributeName": "identityCount"}], attributes={"identityCount": 0},
                  taskDefinitionSummary={"id": "2c91808475b4334b0175e1dff64b63c5",
                                         "uniqueName": "Cloud Account Aggregation",
                                         "parentName": "Cloud Account Aggregation", "arguments": {"k": "v"}})
    assert full["messages"][1] == {"type": "WARN", "localizedText": None, "key": "bare", "parameters": None}
    pending = create(server, id="pending", type="QPOC", target=SOURCE_A, created="2024-01-02T00:00:00Z")
    done = create(server, id="done", target=SOURCE_B, created="2024-01-03T00:00:00Z", completionStatus="SUCCESS",
                  completed="2024-01-03T01:00:00Z")
    nulled = create(server, id="nulled", created="2024-01-04T00:00:00Z", modified=None)
    assert nulled["modified"] == "2024-01-04T00:00:00.000Z"
    record = {"style": "sailpoint", "task": {"id": "imported", "type": "QUEUED_TASK", "uniqueName": "Imported",
                                             "description": "", "parentName": None, "launcher": "elsewhere",
                                             "target": SOURCE_B, "created": "2024-01-05T00:00:00Z", "modified": None,
                                             "launched": None, "completed": None, "completionStatus": None,
                                             "messages": [], "returns": [], "attributes": {}, "progress": None,
                                             "percentComplete": 0}}
    server.cli("import", "-", stdin=json.dumps(record) + "\n")
    imported = stored(server, "imported")
    assert imported == {**record["task"], "created": "2024-01-05T00:00:00.000Z",
                        "modified": "2024-01-05T00:00:00.000Z", "target": SOURCE_B}
    everything = [full, pending, done, nulled, imported]
    reader = server.cli("token", "create", "admin", "--read-only").strip()
    secret = server.cli("oauth-client", "add", "sdk-1x", "--user", "admin").strip()

    def call(label: str, method: str, who: str = "admin", **kwargs: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"label": label, "version": version, "method": method, "as": who, **kwargs}
        spec["deprecated"] = method.removesuffix("_with_http_info") in PENDING_DEPRECATED
        return spec

    calls = [
        call("get", "get_task_status", kwargs={"id": "full"}),
        call("get+info", "get_task_status_with_http_info", kwargs={"id": "full"}),
        call("list", "get_task_status_list_with_http_info", kwargs={"count": True}),
        call("list by source", "get_task_status_list",
             kwargs={"filters": f'sourceId eq "{SOURCE_A["id"]}"', "sorters": "-created"}),
        call("list page", "get_task_status_list_with_http_info",
             kwargs={"limit": 2, "offset": 1, "count": True, "sorters": "created",
                     "filters": f'sourceId in ("{SOURCE_A["id"]}","{SOURCE_B["id"]}")'}),
        call("list example", "get_task_status_list", kwargs={"filters": 'completionStatus eq "Success"'}),
        call("list pending", "get_task_status_list", kwargs={"filters": 'completionStatus isnull and type in '
                                                                         '("QPOC","QUEUED_TASK")'}),
        call("pending", "get_pending_tasks_with_http_info", kwargs={"offset": 0, "limit": 250, "count": True}),
        call("pending page", "get_pending_tasks", kwargs={"offset": 1, "limit": 1}),
        call("pending headers", "get_pending_task_headers_with_http_info", kwargs={"count": True}),
        call("pending headers plain", "get_pending_task_headers", kwargs={"limit": 1}),
        call("update", "update_task_status", kwargs={"id": "full"}, patch=DOCUMENTED_BODY),
        call("update+info", "update_task_status_with_http_info", kwargs={"id": "pending"},
             patch=[{"op": "replace", "path": "/progress", "value": "Half way"},
                    {"op": "replace", "path": "/percentComplete", "value": 50}]),
        call("get after", "get_task_status", kwargs={"id": "pending"}),
        call("list after", "get_task_status_list", kwargs={"sorters": "-created"}),
        call("get unknown", "get_task_status", kwargs={"id": "nope"}),
        call("update unknown", "update_task_status", kwargs={"id": "nope"}, patch=DOCUMENTED_BODY),
        call("update refused", "update_task_status", kwargs={"id": "done"},
             patch=[{"op": "replace", "path": "/id", "value": "other"}]),
        call("list refused", "get_task_status_list", kwargs={"filters": "created gt 2024-01-01T00:00:00Z"}),
        call("read-only update", "update_task_status", kwargs={"id": "done"}, patch=DOCUMENTED_BODY, who="reader"),
        call("read-only get", "get_task_status", kwargs={"id": "done"}, who="reader"),
        call("bad token", "get_task_status", kwargs={"id": "done"}, who="nobody"),
        call("client credentials", "get_task_status", kwargs={"id": "done"}, who="client"),
    ]
    credentials = {"admin": {"token": server.admin_token or ""}, "reader": {"token": reader},
                   "nobody": {"token": "tg_not-a-real-token"},
                   "client": {"clientId": "sdk-1x", "clientSecret": secret}}
    with requests_seen(server) as seen:
        got = run_sdk(server, calls, credentials, tmp_path)

    # what the SDK printed and warned: the experimental notice of every v2026 call, the
    # deprecation of the pending-task calls, nothing else
    for spec in calls:
        outcome = got[spec["label"]]
        assert (EXPERIMENTAL in outcome["printed"]) == (version == "v2026"), outcome
        assert outcome["printed"].count("\n") == (1 if version == "v2026" else 0), outcome
        deprecated = PENDING_DEPRECATED.get(spec["method"].removesuffix("_with_http_info"))
        assert outcome["warnings"] == ([f"DeprecationWarning: {deprecated}"] if deprecated else []), outcome

    def ok(label: str) -> Any:
        outcome = got[label]
        assert outcome["ok"], outcome
        return outcome

    def models(*docs: dict[str, Any]) -> list[dict[str, Any]]:
        return [task_model(version, d) for d in docs]

    # reads: whole models, as the SDK built them
    assert ok("get")["value"] == task_model(version, full)
    info = ok("get+info")
    assert (info["status"], info["headers"]["ETag"], json.loads(info["raw"])) == (200, '"1"', full)
    assert info["value"] == task_model(version, full)
    listed = ok("list")
    assert (listed["value"], listed["headers"]["X-Total-Count"]) == (models(*everything), "5")
    assert ok("list by source")["value"] == models(pending, full)
    page = ok("list page")
    assert (page["value"], page["headers"]["X-Total-Count"]) == (models(pending, done), "4")
    assert ok("list example")["value"] == models(done)
    assert ok("list pending")["value"] == models(pending, imported)
    unfinished = [full, pending, nulled, imported]
    pending_list = ok("pending")
    assert (pending_list["status"], pending_list["value"], pending_list["headers"]["X-Total-Count"]) == (
        200, models(*unfinished), "4")
    assert ok("pending page")["value"] == models(pending)
    headers = ok("pending headers")
    assert (headers["status"], headers["raw"], headers["value"], headers["headers"]["X-Total-Count"]) == (
        200, "", None, "4")
    assert ok("pending headers plain")["value"] is None

    # updates: the returned model is the stored task
    full_after = stored(server, "full")
    assert full_after == {**full, "completionStatus": "ERROR", "completed": "2024-05-17T19:33:16.470Z",
                          "modified": full_after["modified"]}
    assert full_after["modified"] > full["modified"]
    assert ok("update")["value"] == task_model(version, full_after)
    pending_after = stored(server, "pending")
    assert pending_after == {**pending, "progress": "Half way", "percentComplete": 50,
                             "modified": pending_after["modified"]}
    update_info = ok("update+info")
    assert (update_info["status"], update_info["headers"]["ETag"]) == (200, '"2"')
    assert update_info["value"] == task_model(version, pending_after)
    assert ok("get after")["value"] == task_model(version, pending_after)
    assert ok("list after")["value"] == models(imported, nulled, done, pending_after, full_after)

    # refusals: the SDK's exception for the status, SailPoint's error bodies parsed where it maps a model
    def failed(label: str, exception: str, status: int) -> dict[str, Any]:
        outcome = got[label]
        assert not outcome["ok"] and (outcome["exception"], outcome["status"]) == (
            f"sailpoint.{version}.exceptions.{exception}", status), outcome
        return outcome

    def dto(outcome: dict[str, Any], detail: str, text: str) -> None:
        body = json.loads(outcome["body"])
        assert body == error_dto(detail, text, body["trackingId"])
        assert outcome["data"] == error_model(version, body)

    unknown = failed("get unknown", "NotFoundException", 404)
    assert json.loads(unknown["body"]) == error_dto("404 Not found", "TaskStatus with id 'nope' was not found",
                                                    json.loads(unknown["body"])["trackingId"])
    assert unknown["data"] is None  # the spec maps no model to GET-by-id 404
    dto(failed("update unknown", "NotFoundException", 404), "404 Not found",
        "TaskStatus with id 'nope' was not found")
    dto(failed("update refused", "BadRequestException", 400), "400.1 Bad Request Content",
        "[0].path: '/id' cannot be changed; updatable: /attributes, /completed, /completionStatus, /launched, "
        "/messages, /percentComplete, /progress, /returns")
    dto(failed("list refused", "BadRequestException", 400), "400.1 Bad Request Content",
        "filters: unsupported field 'created'")
    dto(failed("read-only update", "ForbiddenException", 403), "403 Forbidden", "this token is read-only")
    assert ok("read-only get")["value"] == task_model(version, done)
    bad = failed("bad token", "UnauthorizedException", 401)
    assert json.loads(bad["body"]) == {"error": "invalid token"}
    # 1.4.2's 401 model types "error" as an object (the spec gives it no type), so it parses
    # no 401 body of the vendor's documented shape ({"error": "JWT validation failed: …"})
    assert bad["data"] is None
    assert ok("client credentials")["value"] == task_model(version, done)  # the token from POST /oauth/token
    assert stored(server, "done") == done  # refused changes changed nothing

    # the paths the SDK called: its version's, HEAD for the pending headers
    prefix = f"/{version}/task-status"
    assert seen == [
        ("GET", f"{prefix}/full", 200), ("GET", f"{prefix}/full", 200),
        *[("GET", prefix, 200)] * 5,
        ("GET", f"{prefix}/pending-tasks", 200), ("GET", f"{prefix}/pending-tasks", 200),
        ("HEAD", f"{prefix}/pending-tasks", 200), ("HEAD", f"{prefix}/pending-tasks", 200),
        ("PATCH", f"{prefix}/full", 200), ("PATCH", f"{prefix}/pending", 200), ("GET", f"{prefix}/pending", 200),
        ("GET", prefix, 200), ("GET", f"{prefix}/nope", 404), ("PATCH", f"{prefix}/nope", 404),
        ("PATCH", f"{prefix}/done", 400), ("GET", prefix, 400), ("PATCH", f"{prefix}/done", 403),
        ("GET", f"{prefix}/done", 200), ("GET", f"{prefix}/done", 401),
        ("POST", "/oauth/token", 200), ("GET", f"{prefix}/done", 200),
    ]
