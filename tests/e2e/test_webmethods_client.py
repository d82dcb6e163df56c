"""The request shapes of public webMethods Task Engine clients, replayed over plain HTTP
against a real ``taskgate serve`` process.

* ``arvin-tomachovsky/uilogic-for-poc`` (Spring RestTemplate, Basic ``Administrator:manage``):
  PUT ``{"TaskInfo": {"assignedToList": [...]}}``, POST ``/rest/pub/opentasksearch`` with
  ``{"includeTaskData": "true"}``, reading ``Tasks`` and parsing ``createdDate`` with
  ``EEE MMM dd HH:mm:ss zzz yyyy`` and ``TaskID`` with ``Long.parseLong``.
* Business Console gadgets: POST ``/rest/pub/opentask`` with ``{"taskTypeID", "taskData"}``,
  reading ``response.taskID``.
* IS clients that read ``$errorInfo.$error`` on a non-2xx answer.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.server import Server, http

pytestmark = pytest.mark.e2e

ADMIN = "Basic " + base64.b64encode(b"Administrator:manage").decode()
TYPE_ID = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"


def call(server: Server, method: str, path: str, body: Any = None,
         auth: str | None = ADMIN) -> tuple[int, Any, dict[str, str]]:
    reply = http(method, server.base_url + path, auth or None, body)
    return reply.status, json.loads(reply.raw or b"null"), dict(reply.headers)


def test_java_client_shapes_against_a_real_server(server: Server):
    server.cli("user", "add", "Administrator", "--role", "admin", "--password-stdin", stdin="manage\n")

    # Business Console gadget: create, read response.taskID
    status, created, _ = call(server, "POST", "/rest/pub/opentask", {
        "taskTypeID": TYPE_ID, "taskData": {"Description": "Check invoice", "Deadline": "Friday"},
        "taskQueueInfo": {"name": "Invoice 42", "priority": "medium", "expireDate": "2099-01-01T00:00:00Z"}})
    assert status == 200 and list(created) == ["taskID"]
    task_id = created["taskID"]
    assert 0 < int(task_id) < 2 ** 63  # Long.parseLong(TaskID)

    # uilogic TasksService: reassign with a partial TaskInfo
    status, answer, headers = call(server, "PUT", f"/rest/pub/opentask/{task_id}",
                                   {"TaskInfo": {"assignedToList": ["operator"]}})
    assert (status, answer) == (200, {}) and headers["Content-Type"].startswith("application/json")

    # uilogic TasksService: search with includeTaskData, read Tasks
    status, found, _ = call(server, "POST", "/rest/pub/opentasksearch", {"includeTaskData": "true"})
    assert status == 200
    (task,) = [t for t in found["Tasks"] if t["TaskID"] == task_id]
    ti = task["TaskInfo"]
    assert (ti["taskTypeID"], ti["name"], ti["priority"], ti["status"], ti["createdBy"], ti["assignedToList"]) == (
        TYPE_ID, "Invoice 42", "medium", "active", "Administrator", ["operator"])
    assert task["TaskData"] == {"Description": "Check invoice", "Deadline": "Friday"}
    # WmsTaskConverter: new SimpleDateFormat("EEE MMM dd HH:mm:ss zzz yyyy").parse(...)
    assert datetime.strptime(ti["expireDate"], "%a %b %d %H:%M:%S %Z %Y") == datetime(2099, 1, 1)
    datetime.strptime(ti["createdDate"], "%a %b %d %H:%M:%S %Z %Y")
    assert ti["taskVersionNumber"] == 2

    # the doc-shaped completion, on behalf of the assignee, with the query form of the URL
    status, answer, _ = call(server, "PUT", f"/rest/pub/opentask?taskID={task_id}&user=operator",
                             {"taskInfo": {"status": "completed"}, "taskData": {"Order": {"id": "42"}}})
    assert (status, answer) == (200, {})
    status, got, _ = call(server, "GET", f"/rest/pub/opentask/{task_id}?includeTaskData=true")
    assert (got["TaskInfo"]["status"], got["TaskInfo"]["lastModifiedBy"], got["TaskData"]) == (
        "completed", "operator", {"Order": {"id": "42"}})

    # a completed task is locked by default; IS clients read $errorInfo.$error
    status, err, _ = call(server, "PUT", f"/rest/pub/opentask/{task_id}", {"TaskInfo": {"status": "active"}})
    assert status == 409 and err["$errorInfo"]["$error"] == err["$error"] == (
        "a task in status completed cannot be updated; only tasks in status active, error, scheduled, suspended "
        "can (webmethods.update_completed_task is false)")
    assert err["$errorType"] == "com.wm.app.b2b.server.ServiceException"

    # audit and rollback over the wire
    status, audit, _ = call(server, "GET", f"/rest/pub/opentask/{task_id}/audit")
    assert [e["taskVersionNumber"] for e in audit["taskAudits"]] == [1, 2, 3]

    status, err, headers = call(server, "GET", f"/rest/pub/opentask/{task_id}", auth=None)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="Integration Server"'
    assert err["$error"] == "no authorization header"
