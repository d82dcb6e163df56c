"""Long lists are streamed in chunks, in the same bytes a whole answer had.

Each test stores tasks large enough that a list is read in several chunks (the first
chunk holds a few tasks, later ones about a megabyte of documents), then compares the
streamed answer, byte for byte, with the answer built whole from the same tasks as the
handlers built it before streaming.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element, fromstring, tostring

from gateway.apis import sailpoint, superoffice, webmethods
from gateway.apis.superoffice_carrier import to_xml
from gateway.query import Query, Sort
from gateway.speedups import dumps_bytes
from gateway.store.sqlite.reads import FIRST_CHUNK
from gateway.streaming import MARKER, ListBody, json_list, xml_list
from tests.conftest import Api

NOW = "2024-05-06T07:08:09.000Z"
FILL = 150_000  # characters of filler a task: a list of 14 is read in at least three chunks
COUNT = 14
XSI = b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


async def _raw(api: Api, path: str, *, token: str | None = None, **headers: str) -> tuple[int, bytes, Any]:
    resp = await api.client.get(path, headers={**api.auth(token), **headers})
    return resp.status, await resp.read(), resp.headers


def _tree(element: Element) -> Any:
    return (element.tag, element.attrib, element.text, [_tree(child) for child in element])


async def _chunks_read(api: Api, style: str) -> int:
    ids = [t.id for t in (await api.store.find(style, Query(None, (Sort("id"),))))[0]]
    return len([c async for c in api.store.read_chunks(style, ids)])


async def test_a_long_sailpoint_list_is_streamed_in_the_bytes_of_the_whole_list(api: Api):
    for n in range(COUNT):
        task_id, doc = sailpoint.import_task({"id": f"t{n:02}", "type": "QUARTZ", "uniqueName": "u",
                                              "description": f"{n}" + "d" * FILL, "created": NOW}, NOW)
        await api.store.put("sailpoint", task_id, doc, actor="seed", request_id="seed")
    assert await _chunks_read(api, "sailpoint") >= 3
    tasks, total = await api.store.find("sailpoint", Query(None, (Sort("$.created"),), 250, 0, True))
    for path in ("/task-status/v1?count=true", "/beta/task-status/pending-tasks?count=true"):
        status, body, headers = await _raw(api, path)
        assert (status, headers["Transfer-Encoding"], headers["X-Total-Count"], headers["Content-Type"]) == \
            (200, "chunked", str(total), "application/json; charset=utf-8")
        assert headers["X-Request-ID"]
        assert body == dumps_bytes([t.doc for t in tasks])
    head = await api.client.head("/task-status/v1?count=true", headers=api.auth())
    assert (head.status, head.headers["X-Total-Count"], await head.read()) == (200, str(total), b"")
    assert "Transfer-Encoding" not in head.headers and "Content-Length" not in head.headers
    status, body, headers = await _raw(api, "/task-status/v1?limit=3&offset=2")  # one chunk: sent whole
    assert (status, headers["Content-Length"], body) == (200, str(len(body)), dumps_bytes([t.doc for t in tasks[2:5]]))


async def test_a_long_webmethods_list_and_search_with_task_data_are_streamed_whole(api: Api):
    for n in range(COUNT):
        task_id, doc = webmethods.import_task({"TaskInfo": {"taskID": str(100 + n), "taskTypeID": "T",
                                                            "createdBy": "alice", "createdDate": NOW},
                                               "TaskData": {"blob": f"{n}" + "x" * FILL}}, NOW)
        await api.store.put("webmethods", task_id, doc, actor="seed", request_id="seed")
    assert await _chunks_read(api, "webmethods") >= 3
    items = []
    for n in range(COUNT):  # each task as GET answers it, with its TaskID first
        status, one, _ = await _raw(api, f"/rest/pub/opentask/{100 + n}?includeTaskData=true")
        assert status == 200
        items.append(b'{"TaskID":"%d",' % (100 + n) + one[1:])
    expected = b'{"Tasks":[' + b",".join(items) + b"]}"
    for path in ("/rest/pub/opentask?includeTaskData=true", "/rest/pub/opentasksearch?includeTaskData=true"):
        for token in (api.admin, api.user):  # alice created them all: she sees every one
            status, body, headers = await _raw(api, path, token=token)
            assert (status, headers["Transfer-Encoding"], body) == (200, "chunked", expected), path
    status, body, _ = await _raw(api, "/rest/pub/opentask?includeTaskData=true", token=api.read_only)
    assert (status, json.loads(body)) == (200, {"Tasks": []})  # reader sees none of alice's


async def test_long_superoffice_lists_are_streamed_in_json_and_xml(api: Api):
    for n in range(1, COUNT + 1):
        task_id, doc = superoffice.import_task({"Id": n, "Name": "Import", "Created": NOW,
                                                "Result": f"{n}" + "s" * FILL}, NOW)
        await api.store.put("superoffice", task_id, doc, actor="seed", request_id="seed")
    assert await _chunks_read(api, "superoffice") >= 3
    status, body, headers = await _raw(api, "/api/v1/BatchTask")
    assert (status, headers["Transfer-Encoding"], headers["Content-Language"]) == (200, "chunked", "en")
    envelope = json.loads(body)
    assert (len(envelope["value"]), envelope["odata.nextLink"]) == (COUNT, None)
    assert body == dumps_bytes(envelope)
    status, xml, headers = await _raw(api, "/api/v1/BatchTask?$format=xml")
    assert (status, headers["Content-Type"]) == (200, "application/xml; charset=utf-8")
    assert xml == tostring(to_xml("BatchTaskList", envelope), encoding="utf-8", xml_declaration=True)
    # a page with a next link, as a whole page would be
    status, xml, _ = await _raw(api, f"/api/v1/BatchTask?$format=xml&$top={COUNT - 1}")
    page = json.loads((await _raw(api, f"/api/v1/BatchTask?$top={COUNT - 1}"))[1])
    assert page["odata.nextLink"] is not None
    assert xml == tostring(to_xml("BatchTaskList", {**page, "odata.nextLink": page["odata.nextLink"].replace(
        "$top", "$format=xml&$top")}), encoding="utf-8", xml_declaration=True)
    # the Agents finders and /BatchTask/{state} answer the same carriers, with rights
    resp = await api.client.post("/api/v1/Agents/Batch/GetAllBatchTaskInfosByName", json={"TaskName": "Import"},
                                 headers=api.auth())
    found = await resp.read()
    assert (resp.status, resp.headers["Transfer-Encoding"], [c["Id"] for c in json.loads(found)]) == \
        (200, "chunked", list(range(1, COUNT + 1)))
    singles = [(await _raw(api, f"/api/v1/BatchTask/{n}"))[1] for n in range(1, COUNT + 1)]
    assert found == b"[" + b",".join(singles) + b"]"
    status, by_state, _ = await _raw(api, "/api/v1/BatchTask/New")
    assert (status, by_state) == (200, found)


async def test_a_short_list_is_one_chunk_sent_whole(api: Api):
    for n in range(FIRST_CHUNK):
        task_id, doc = sailpoint.import_task({"id": f"s{n}", "type": "QUARTZ", "uniqueName": "u", "created": NOW},
                                             NOW)
        await api.store.put("sailpoint", task_id, doc, actor="seed", request_id="seed")
    status, body, headers = await _raw(api, "/task-status/v1")
    assert (status, "Transfer-Encoding" in headers, headers["Content-Length"]) == (200, False, str(len(body)))
    assert [t["id"] for t in json.loads(body)] == [f"s{n}" for n in range(FIRST_CHUNK)]


def _xml_body() -> ListBody:
    return xml_list(lambda items: to_xml("List", {"next": "n", "value": items}),
                    lambda item: to_xml("BatchTaskInfo", item), "application/xml")


def _streamed(body: ListBody, first: list[Any], rest: list[Any]) -> bytes:
    """What :func:`gateway.streaming.answer_list` writes for a first chunk and one more."""
    head, tail = body.split(first)
    declared = XSI in head[:head.index(b">", head.index(b"?>") + 2) + 1]
    return head + body.items(rest, first=not first, strip=XSI if declared else b"") + tail


def test_xml_items_after_the_first_chunk_declare_xsi_only_when_the_root_does_not():
    body = _xml_body()
    plain, nil = {"a": "1"}, {"a": None}
    for first, rest in [([plain], [nil, plain]), ([nil], [plain, nil]), ([], [nil, nil]), ([plain], [plain])]:
        whole = body.whole([*first, *rest])
        streamed = _streamed(body, first, rest)
        assert _tree(fromstring(streamed)) == _tree(fromstring(whole))
        if XSI in whole[:whole.index(b">", whole.index(b"?>") + 2) + 1] and (nil in first or nil not in rest):
            assert streamed == whole  # the root declares xsi either way: the same bytes
    # the root declares nothing (no nil before the rest): each later item with a nil declares it
    streamed = _streamed(body, [plain], [nil, nil])
    assert streamed.count(XSI) == 2 and body.whole([plain, nil, nil]).count(XSI) == 1
    assert streamed.replace(XSI, b"") == body.whole([plain, nil, nil]).replace(XSI, b"")


def test_json_lists_split_and_join_to_the_whole():
    body = json_list(lambda items: {"Tasks": items, "after": True})
    for first, rest in [([], []), ([1], []), ([], [1, 2]), ([{"a": MARKER[:5]}], [[3], "x"])]:
        head, tail = body.split(first)
        assert head + body.items(rest, first=not first) + tail == body.whole([*first, *rest])
