"""Real answers of every webMethods route, checked against the server's own /openapi.json.

Every operation (create, list, get, the path and query forms of PUT and DELETE, audit,
one audit entry, rollback, both searches), each success and each error it can give,
checked as schemathesis' response checks do (:mod:`tests.openapi_check`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.context import CONFIG
from tests.apis.test_webmethods_fixtures import BASE, WmApi, _make_wm, _wm  # noqa: F401
from tests.openapi_check import Answer, Document, answer

TAG = "webMethods opentask"
TYPE_ID = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"
SEARCH = "/rest/pub/opentasksearch"
#: a create that sets every member a create may set
FULL = {"taskTypeID": TYPE_ID, "taskQueueInfo": {
    "name": "Approve order", "description": "the big one", "customTaskID": "c-1", "priority": "high",
    "expireDate": "2024-06-20T00:00:00Z", "assignedTaskList": ["alice"], "processInstanceID": "p1",
    "rootProcessInstanceID": "r1", "processModelID": "m1", "processModelVersion": "1", "stepID": "s1"},
    "taskData": {"Order": {"id": "42", "lines": [1, 2]}}}


@pytest.fixture(name="document")
async def _document(wm: WmApi) -> Document:
    resp = await wm.client.get("/openapi.json")
    assert resp.status == 200
    return Document(json.loads(await resp.read()), TAG)


async def test_every_webmethods_answer_matches_the_document(wm: WmApi, document: Document) -> None:
    async def send(method: str, path: str, *, token: str | None = None, body: Any = None,
                   data: str | bytes | None = None, ctype: str = "application/json",
                   headers: dict[str, str] | None = None) -> Answer:
        return await answer(wm.client, document, method, path, headers={**wm.auth(token), **(headers or {})},
                            data=data, body=body, ctype=ctype)

    big = b"x" * (wm.client.app[CONFIG].server.max_body_bytes + 1)
    nonsense = "tg_nonsense"

    # create: 200 {taskID}, then each refusal
    created = await send("POST", BASE, body=FULL)
    assert created.status == 200
    tid = created.json()["taskID"]
    other = (await send("POST", f"{BASE}?user=bob", body={"taskTypeID": TYPE_ID}, headers={})).json()["taskID"]
    for expected, kwargs in ((400, {"body": {"taskQueueInfo": {}}}), (400, {"data": "{", "ctype": "application/json"}),
                             (401, {"body": FULL, "token": nonsense}),
                             (403, {"body": FULL, "token": wm.user, "path": f"{BASE}?user=bob"}),
                             (403, {"body": FULL, "token": wm.read_only}),
                             (413, {"data": big}), (415, {"data": "<TaskInfo/>", "ctype": "application/xml"})):
        path = kwargs.pop("path", BASE)
        assert (await send("POST", path, **kwargs)).status == expected, kwargs

    # reads: list (all, one by ?taskID=), get, with every date encoding
    for query in ("", "?searchUserTasks=true", "?includeTaskData=true&jsonDateEncoding=ISO8601",
                  f"?taskID={tid}", f"?taskID={tid}&includeTaskData=true&jsonDateEncoding=long"):
        assert (await send("GET", BASE + query)).status == 200, query
    assert (await send("GET", BASE, token=wm.user)).status == 200
    for query in ("", "?includeTaskData=true", "?jsonDateEncoding=long", "?jsonDateEncoding=ISO8601",
                  "?jsonDateEncoding=yyyy-MM-dd", "?user=alice&includeTaskData=true"):
        got = await send("GET", f"{BASE}/{tid}{query}")
        assert got.status == 200, query
    assert (await send("GET", f"{BASE}/{tid}", token=wm.user)).status == 200  # alice is an assignee
    for path in (BASE, f"{BASE}/{tid}"):
        for expected, query, token in ((400, "?jsonDateEncoding=qqq'", None), (401, "", nonsense),
                                       (403, "?user=bob", wm.user), (400, "?includeTaskData=maybe", None)):
            assert (await send("GET", path + query, token=token)).status == expected, (path, query)
    for expected, path, token in ((404, f"{BASE}?taskID=nope", None), (404, f"{BASE}/nope", None),
                                  (404, f"{BASE}/{other}", wm.user)):  # another user's task is not there for alice
        assert (await send("GET", path, token=token)).status == expected, path

    # updates, by path and by query
    etag = (await send("GET", f"{BASE}/{tid}")).headers["ETag"]
    for path, priority in ((f"{BASE}/{tid}", "low"), (f"{BASE}?taskID={tid}", "high")):  # each a change
        ok = await send("PUT", path, body={"TaskInfo": {"priority": priority}, "TaskData": {"Order": {"id": "43"}}})
        assert ok.status == 200
    ok = await send("PUT", BASE, body={"taskID": tid, "taskInfo": {"name": "renamed"}},
                    headers={"If-Match": (await send("GET", f"{BASE}/{tid}")).headers["ETag"]})
    assert ok.status == 200
    for path in (f"{BASE}/{tid}", f"{BASE}?taskID={tid}"):
        for expected, kwargs in ((400, {"body": {"TaskInfo": {"priority": "urgent"}}}),
                                 (400, {"body": {"TaskInfo": {}, "nonsense": 1}}),
                                 (401, {"body": {}, "token": nonsense}),
                                 (403, {"body": {}, "token": wm.read_only}),
                                 (403, {"body": {}, "token": wm.user, "query": "user=bob"}),
                                 (409, {"body": {"TaskInfo": {"taskScheduleDate": "2030-01-01T00:00:00Z"}}}),
                                 (412, {"body": {}, "headers": {"If-Match": etag}}),
                                 (413, {"data": big}),
                                 (415, {"data": "<TaskInfo/>", "ctype": "application/xml"})):
            query = kwargs.pop("query", "")
            target = path + (("&" if "?" in path else "?") + query if query else "")
            assert (await send("PUT", target, **kwargs)).status == expected, (path, expected)
    assert (await send("PUT", BASE, body={"TaskInfo": {}})).status == 400  # no taskID anywhere
    for path in (f"{BASE}/nope", f"{BASE}?taskID=nope"):
        assert (await send("PUT", path, body={"TaskInfo": {}})).status == 404

    # audit, one entry, rollback
    trail = await send("GET", f"{BASE}/{tid}/audit?jsonDateEncoding=ISO8601")
    assert trail.status == 200
    entries = [entry["id"] for entry in trail.json()["taskAudits"]]
    assert len(entries) == 4
    assert (await send("GET", f"{BASE}/{tid}/audit", token=wm.user)).status == 200
    assert (await send("GET", f"{BASE}/{tid}/audit/{entries[1]}?jsonDateEncoding=long")).status == 200
    for path in (f"{BASE}/{tid}/audit", f"{BASE}/{tid}/audit/{entries[1]}"):
        for expected, query, token in ((400, "?jsonDateEncoding=qqq'", None), (401, "", nonsense),
                                       (403, "?user=bob", wm.user)):
            assert (await send("GET", path + query, token=token)).status == expected, (path, expected)
    for path in (f"{BASE}/nope/audit", f"{BASE}/{tid}/audit/999999", f"{BASE}/{other}/audit"):
        assert (await send("GET", path, token=wm.user if other in path else None)).status == 404, path
    assert (await send("DELETE", f"{BASE}/{tid}/audit/{entries[-1]}")).status == 200
    for expected, entry, token in ((409, entries[0], None), (404, 999999, None), (401, entries[1], nonsense),
                                   (403, entries[1], wm.read_only)):
        assert (await send("DELETE", f"{BASE}/{tid}/audit/{entry}", token=token)).status == expected, expected
    assert (await send("DELETE", f"{BASE}/{tid}/audit/{entries[1]}?user=bob", token=wm.user)).status == 403
    assert (await send("DELETE", f"{BASE}/{tid}/audit/x")).status == 404
    assert (await send("DELETE", f"{BASE}/{tid}/audit/{entries[1]}?user=")).status == 400

    # searches: the simple one in the query, a TaskSearchQuery in the body
    for query in ("", "?nonActive=true&includeTaskData=true&maxRes=5&jsonDateEncoding=ISO8601",
                  "?searchUserTasks=true&notOthers=true"):
        assert (await send("GET", SEARCH + query)).status == 200, query
        assert (await send("POST", SEARCH + query)).status == 200, query
    assert (await send("POST", SEARCH, body={"taskSearchQuery": {"terms": [
        {"fields": ["name"], "operator": "contains", "value": "renamed"}]}, "includeTaskData": True})).status == 200
    for method in ("GET", "POST"):
        for expected, query, token in ((400, "?maxRes=-1", None), (401, "", nonsense), (403, "?user=bob", wm.user)):
            assert (await send(method, SEARCH + query, token=token)).status == expected, (method, expected)
    for expected, kwargs in ((400, {"body": {"taskSearchQuery": {"terms": [{"fields": ["taskData"]}]}}}),
                             (413, {"data": big}), (415, {"data": "<q/>", "ctype": "application/xml"})):
        assert (await send("POST", SEARCH, **kwargs)).status == expected, expected

    # deletes, by path and by query, last
    for expected, path, kwargs in ((401, f"{BASE}/{tid}", {"token": nonsense}),
                                   (403, f"{BASE}/{tid}", {"token": wm.read_only}),
                                   (403, f"{BASE}/{tid}?user=bob", {"token": wm.user}),
                                   (412, f"{BASE}/{tid}", {"headers": {"If-Match": etag}}),
                                   (404, f"{BASE}/nope", {}), (404, f"{BASE}?taskID=nope", {}),
                                   (400, BASE, {})):
        assert (await send("DELETE", path, **kwargs)).status == expected, (path, expected)
    assert (await send("DELETE", f"{BASE}/{tid}")).status == 200
    assert (await send("DELETE", f"{BASE}?taskID={other}")).status == 200

    assert document.unanswered() == []
    assert len(document.checked) == 12
