"""A JSON object that names a key twice is refused in every JSON body of every style:
400 in the style's error body, nothing stored. Both JSON readers would keep the last
value silently (``{"State":"Failed","State":"Started"}`` stored Started); XML and form
bodies already refuse the same."""

from __future__ import annotations

import pytest

from tests.apis.hostile import refused
from tests.conftest import Api

SO = "/api/v1"
WM = "/rest/pub/opentask"
SP = "/task-status/v1"


async def _seed(api: Api) -> str:
    """A task in each style: SuperOffice 1, webMethods 1, and the SailPoint id returned."""
    status, body, _ = await api.request("POST", f"{SO}/BatchTask", body={"Name": "alpha", "State": "Started"})
    assert status == 200, body
    status, body, _ = await api.request("POST", WM, body={"taskTypeID": "T1", "taskQueueInfo": {"name": "w"}})
    assert status == 200, body
    status, body, _ = await api.request("POST", SP, body={"type": "QUARTZ", "uniqueName": "x", "description": "d"})
    assert status == 201, body
    return body["id"]


CASES = [
    ("superoffice", "PUT", f"{SO}/BatchTask/1", "application/json",
     '{"State":"Failed","State":"Started"}', "State"),
    ("superoffice", "PUT", f"{SO}/BatchTask/1", "application/json",
     '{"State": "Failed", "Description": "d", "State" : "Started"}', "State"),
    ("superoffice", "PUT", f"{SO}/BatchTask/1", "application/merge-patch+json",
     '{"Description":"a","Description":"b"}', "Description"),
    ("superoffice", "PUT", f"{SO}/BatchTask/1", "application/json-patch+json",
     '[{"op":"replace","path":"/State","value":"Failed","value":"Started"}]', "value"),
    ("superoffice", "POST", f"{SO}/BatchTask", "application/json", '{"Name":"a","Name":"b"}', "Name"),
    ("superoffice", "POST", f"{SO}/Agents/Batch/UpdateBatchTask", "application/json",
     '{"BatchTaskInfo":{"Id":1,"State":"Failed","State":"Started"}}', "State"),
    ("webmethods", "PUT", f"{WM}/1", "application/json",
     '{"TaskInfo":{"status":"suspended","status":"active"}}', "status"),
    ("webmethods", "PUT", f"{WM}/1", "application/json",
     '{"TaskData":{"a":1},"TaskData":{"b":2}}', "TaskData"),
    ("webmethods", "POST", WM, "application/json",
     '{"taskTypeID":"T1","taskTypeID":"T2"}', "taskTypeID"),
    ("sailpoint", "PATCH", f"{SP}/{{id}}", "application/json-patch+json",
     '[{"op":"replace","path":"/progress","value":"a","path":"/percentComplete"}]', "path"),
    ("sailpoint", "POST", SP, "application/json",
     '{"type":"QUARTZ","uniqueName":"x","description":"d","description":"e"}', "description"),
]


@pytest.mark.parametrize(("style", "method", "path", "ctype", "data", "key"), CASES)
async def test_a_duplicate_key_is_refused_and_nothing_stored(api: Api, style: str, method: str, path: str,
                                                          ctype: str, data: str, key: str):
    sp_id = await _seed(api)
    await refused(api, style, method, path.format(id=sp_id), status=400, data=data, ctype=ctype,
                  message=f"malformed JSON: the key {key!r} appears twice in one object")


async def test_a_quote_and_colon_inside_a_string_is_no_duplicate(api: Api):
    await _seed(api)
    status, body, _ = await api.request("PUT", f"{SO}/BatchTask/1", data='{"Description":"a\\":b","State":"Failed"}')
    assert status == 200, body
    assert (body["Description"], body["State"]) == ('a":b', "Failed")


async def test_the_same_key_in_two_objects_is_no_duplicate(api: Api):
    sp_id = await _seed(api)
    status, body, _ = await api.request(
        "PATCH", f"{SP}/{sp_id}", content_type="application/json-patch+json",
        data='[{"op":"replace","path":"/progress","value":"half"},{"op":"replace","path":"/percentComplete","value":50}]')
    assert status == 200, body
    assert (body["progress"], body["percentComplete"]) == ("half", 50)
