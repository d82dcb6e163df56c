"""The pytest plugin against its real ``taskgate serve --testing``: the acceptance of the
testing toolkit, with real clients (the ``sailpoint`` SDK, plain HTTP for the others).

Each test gets the plugin's ``taskgate`` fixture: a namespace of its own on the session's
one server. The first three tests are the examples of docs/testing.md, word for word
(tests/testing/test_docs_testing.py checks that). The parallel test runs a small suite of
two tests under pytest-xdist in a subprocess and checks that they shared the server and
did not see each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests
from sailpoint.configuration import Configuration, ConfigurationParams
from sailpoint.task_management.api.task_management_api import TaskManagementApi
from sailpoint.task_management.api_client import ApiClient
from sailpoint.task_management.exceptions import UnauthorizedException
from urllib3.util.retry import Retry

from gateway.testing.plugin import Namespace, TaskgateError

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
WM_TYPE = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"


# -- the example of docs/testing.md -------------------------------------------------------------


def sailpoint_client(taskgate: Namespace) -> TaskManagementApi:
    params = ConfigurationParams()
    params.base_url = taskgate.sailpoint_url  # this test's namespace
    params.client_id, params.client_secret = taskgate.client_id, taskgate.client_secret
    config = Configuration(params)
    # retry a 429 at once: the injected fault says Retry-After: 0
    config.retries = Retry(total=3, status_forcelist=[429], respect_retry_after_header=True)
    return TaskManagementApi(ApiClient(config))


def test_a_polling_client_meets_a_429_then_sees_the_task_complete(taskgate: Namespace) -> None:
    task = taskgate.request("POST", "/task-status/v1", {"type": "QUARTZ", "uniqueName": "Nightly Aggregation"})
    api = sailpoint_client(taskgate)
    taskgate.fault(route="sailpoint:get:*", status=429, retry_after=0, count=1)
    taskgate.clock.freeze()
    taskgate.progress("sailpoint", task["id"], seconds=600, status="SUCCESS")
    seen = []
    while (status := api.get_task_status_v1(id=task["id"])).completion_status is None:
        seen.append(status.percent_complete)
        taskgate.clock.advance(minutes=2)  # no sleep: the namespace's clock moves
    assert seen == [0, 20, 40, 60, 80]
    assert status.completion_status == "SUCCESS" and status.percent_complete == 100
    # the first GET met the fault and the SDK retried: one journal entry per attempt
    assert taskgate.count(route="sailpoint:get:*", status=429, fault=True) == 1
    assert taskgate.count(route="sailpoint:get:*", status=200) == 6


def test_a_superoffice_client_reads_a_seeded_task_through_a_503(taskgate: Namespace) -> None:
    taskgate.seed({"superoffice": [{"Id": 7, "Name": "Import contacts", "State": "Started"}]})
    taskgate.fault(style="superoffice", method="GET", status=503, retry_after=0, count=1)
    session = requests.Session()
    session.headers.update({"Authorization": f"SOTicket {taskgate.admin_token}", "Accept": "application/json"})
    url = f"{taskgate.superoffice_url}/BatchTask/7"
    first = session.get(url)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "0")
    assert session.get(url).json()["State"] == "Started"
    assert taskgate.count(style="superoffice", status=503, fault=True) == 1


def test_an_overdue_approval_expires_when_the_clock_passes_its_expire_date(taskgate: Namespace) -> None:
    taskgate.clock.freeze("2030-01-01T00:00:00Z")
    created = taskgate.request("POST", "/rest/pub/opentask", {
        "taskTypeID": "26629648-BF99-D8E1-BDC6-AD91EC9AE268",
        "taskInfo": {"name": "approve", "expireDate": "2030-01-01T01:00:00Z"}})
    taskgate.clock.advance(hours=1)  # the expiry rule runs at once
    task = taskgate.request("GET", f"/rest/pub/opentask/{created['taskID']}")
    assert task["TaskInfo"]["status"] == "expired"


# -- the acceptance, one by one ----------------------------------------------------------------
def test_reset_and_restore_bring_back_the_exact_exported_state(taskgate: Namespace) -> None:
    taskgate.seed({"sailpoint": [{"id": "kept", "type": "QUARTZ", "uniqueName": "kept"}],
                   "webmethods": [{"TaskInfo": {"taskID": "w", "taskTypeID": WM_TYPE, "status": "active"},
                                   "TaskData": {"n": 1}}]})
    before = taskgate.export()
    checkpoint = taskgate.checkpoint()
    taskgate.request("PATCH", "/v2025/task-status/kept", [{"op": "replace", "path": "/percentComplete", "value": 50}])
    taskgate.request("POST", "/task-status/v1", {"id": "new", "type": "QUARTZ", "uniqueName": "new"})
    assert taskgate.export() != before
    taskgate.restore(checkpoint)
    assert taskgate.export() == before
    taskgate.reset()
    assert taskgate.export() == {"tasks": [], "seq": 0}


def test_a_sailpoint_sdk_call_meets_each_injected_429_and_each_attempt_is_journaled(taskgate: Namespace) -> None:
    task = taskgate.request("POST", "/task-status/v1", {"type": "QUARTZ", "uniqueName": "x"})
    api = sailpoint_client(taskgate)
    rule = taskgate.fault(route="sailpoint:get:*", status=429, retry_after=0, count=2)
    got = api.get_task_status_v1(id=task["id"])
    assert got.id == task["id"]
    attempts = taskgate.journal(route="sailpoint:get:v1")
    assert [(e["status"], e["fault"] and e["fault"]["rule"]) for e in attempts] == \
        [(429, rule["id"]), (429, rule["id"]), (200, None)]
    assert len({e["request_id"] for e in attempts}) == 3
    assert all(e["headers"]["Authorization"] == "[redacted]" for e in attempts)
    # the token request's secret never reached the journal either
    token_calls = taskgate.journal(route="oauth:token")
    assert [e["body"] for e in token_calls] == \
        ["grant_type=client_credentials&client_id=taskgate-pytest&client_secret=[redacted]"]
    assert taskgate.call("GET", "/faults")["faults"][0]["fired"] == 2


def test_a_fault_answers_in_each_vendors_shape_and_a_dropped_connection_is_journaled(taskgate: Namespace) -> None:
    taskgate.fault(style="webmethods", status=503, retry_after=7, count=1)
    with pytest.raises(TaskgateError) as failed:
        taskgate.request("GET", "/rest/pub/opentask/nothing")
    assert failed.value.status == 503
    assert failed.value.body["$error"] == "fault injected by taskgate testing (rule " + \
        str(taskgate.call("GET", "/faults")["faults"][0]["id"]) + ")"
    taskgate.fault(style="superoffice", drop=True, count=1)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        taskgate.request("GET", "/api/v1/BatchTask/1")
    dropped = taskgate.journal(style="superoffice")
    assert len(dropped) == 1 and dropped[0]["status"] is None and dropped[0]["fault"]["drop"] is True
    assert taskgate.request("GET", "/api/v1/BatchTask")["value"] == []  # the count is spent: served again


def test_advancing_the_clock_expires_a_webmethods_task_by_its_rule(taskgate: Namespace) -> None:
    taskgate.clock.freeze("2030-01-01T00:00:00Z")
    created = taskgate.request("POST", "/rest/pub/opentask", {
        "taskTypeID": WM_TYPE, "taskInfo": {"name": "approve", "expireDate": "2030-01-01T01:00:00Z"}})
    info = taskgate.request("GET", f"/rest/pub/opentask/{created['taskID']}")["TaskInfo"]
    assert info["status"] == "active"
    assert taskgate.clock.advance(minutes=59)["swept"] == 0
    assert taskgate.clock.advance(minutes=1)["swept"] == 1  # expireDate reached: the rule expires it
    info = taskgate.request("GET", f"/rest/pub/opentask/{created['taskID']}")["TaskInfo"]
    assert info["status"] == "expired"
    # the change is the clock's, stamped with the namespace's time
    audit = taskgate.request("GET", f"/rest/pub/opentask/{created['taskID']}/audit?jsonDateEncoding=ISO8601")
    assert [(e["taskVersionNumber"], e["userID"]) for e in audit["taskAudits"]] == [(1, "admin"), (2, "system")]
    assert 'replace /TaskInfo/status "expired"' in audit["taskAudits"][1]["difference"]
    info = taskgate.export("webmethods")["tasks"][0]["doc"]["TaskInfo"]
    assert (info["createdDate"], info["lastModifiedDate"], info["lastModifiedBy"]) == \
        ("2030-01-01T00:00:00.000Z", "2030-01-01T01:00:00.000Z", "system")


def test_tokens_expire_by_the_namespaces_clock(taskgate: Namespace) -> None:
    api = sailpoint_client(taskgate)  # signs in: a token for an hour of this namespace's time
    assert api.get_task_status_list_v1() == []
    taskgate.clock.advance(hours=1)
    with pytest.raises(UnauthorizedException):
        api.get_task_status_list_v1()


def test_two_tests_under_xdist_share_the_server_and_not_their_tasks(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_parallel.py").write_text(textwrap.dedent('''
        import json, os, time
        from pathlib import Path
        import pytest

        OUT = Path(os.environ["TASKGATE_PARALLEL_OUT"])

        @pytest.mark.parametrize("who", ["left", "right"])
        def test_same_id(taskgate, who):
            taskgate.request("POST", "/task-status/v1", {"id": "same", "type": "QUARTZ", "uniqueName": who})
            (OUT / who).write_text(json.dumps({"server": taskgate.server.url, "ns": taskgate.name,
                                               "worker": os.environ.get("PYTEST_XDIST_WORKER")}))
            other = OUT / ("right" if who == "left" else "left")
            deadline = time.monotonic() + 20
            while not other.exists():  # both tasks exist at once: the two tests overlap
                assert time.monotonic() < deadline, "the other test never ran beside this one"
                time.sleep(0.05)
            assert taskgate.request("GET", "/v2025/task-status/same")["uniqueName"] == who
            assert [t["id"] for t in taskgate.export()["tasks"]] == ["same"]
        '''))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "TASKGATE_PARALLEL_OUT": str(out), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "-p", "gateway.testing.plugin", "--rootdir", str(suite), str(suite)],
                          cwd=suite, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    seen: dict[str, Any] = {who: json.loads((out / who).read_text()) for who in ("left", "right")}
    assert seen["left"]["server"] == seen["right"]["server"]
    assert seen["left"]["ns"] != seen["right"]["ns"]
    assert {seen["left"]["worker"], seen["right"]["worker"]} == {"gw0", "gw1"}
    # the last worker out stopped the shared server
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(seen["left"]["server"] + "/healthz", timeout=5)
