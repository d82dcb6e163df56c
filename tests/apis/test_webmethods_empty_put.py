"""A webMethods PUT that changes nothing writes nothing: no new version, no audit row, no
new lastModifiedDate or taskVersionNumber; it answers as any update does."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Api

WM = "/rest/pub/opentask"


async def _task(api: Api) -> tuple[str, dict]:
    status, body, _ = await api.request("POST", WM, body={
        "taskTypeID": "T1", "taskQueueInfo": {"name": "w", "priority": "high", "assignedTaskList": ["alice"]},
        "taskData": {"Order": {"id": "42"}}})
    assert status == 200, body
    status, doc, _ = await api.request("GET", f"{WM}/{body['taskID']}?includeTaskData=true")
    assert status == 200, doc
    return body["taskID"], doc


@pytest.mark.parametrize("body", [
    {"TaskInfo": {}},
    {"taskInfo": {}},
    {"TaskInfo": {"priority": None, "name": None}},  # null members leave a field as it is
    {"TaskInfo": {"priority": "high", "name": "w", "assignedToList": ["alice"]}},  # the stored values
    {"TaskInfo": {}, "TaskData": {"Order": {"id": "42"}}},  # the stored TaskData
])
async def test_a_put_that_changes_nothing_writes_nothing(api: Api, body: dict):
    task_id, before_doc = await _task(api)
    before = await api.snapshot()
    for path in (f"{WM}/{task_id}", f"{WM}?taskID={task_id}"):
        status, answer, headers = await api.request("PUT", path, body=body)
        assert (status, answer, headers["ETag"]) == (200, {}, '"1"')
    assert await api.snapshot() == before
    status, after_doc, _ = await api.request("GET", f"{WM}/{task_id}?includeTaskData=true")
    assert after_doc == before_doc
    assert after_doc["TaskInfo"]["taskVersionNumber"] == 1
    rows = await api.db_rows("SELECT action FROM audit WHERE style = 'webmethods' AND task_id = ?", task_id)
    assert rows == [("created",)]


async def test_a_put_that_changes_one_field_or_the_task_data_is_a_new_version(api: Api):
    task_id, _ = await _task(api)
    status, answer, headers = await api.request("PUT", f"{WM}/{task_id}", body={"TaskInfo": {"priority": "low"}})
    assert (status, answer, headers["ETag"]) == (200, {}, '"2"')
    status, answer, headers = await api.request("PUT", f"{WM}/{task_id}", body={"TaskData": {"Order": {"id": "43"}}})
    assert (status, answer, headers["ETag"]) == (200, {}, '"3"')
    status, doc, _ = await api.request("GET", f"{WM}/{task_id}?includeTaskData=true")
    assert (doc["TaskInfo"]["priority"], doc["TaskInfo"]["taskVersionNumber"], doc["TaskData"]) == \
        ("low", 3, {"Order": {"id": "43"}})
    rows = await api.db_rows("SELECT action, patch FROM audit WHERE style = 'webmethods' AND task_id = ? "
                             "ORDER BY seq", task_id)
    assert [action for action, _ in rows] == ["created", "updated", "updated"]
    assert {op["path"] for op in json.loads(rows[2][1])} == \
        {"/TaskData/Order/id", "/TaskInfo/taskVersionNumber", "/TaskInfo/lastModifiedDate"}
