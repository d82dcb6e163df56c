"""Real answers of every SuperOffice route, checked against the server's own /openapi.json.

Every operation, with and without the tenant prefix and the trailing slash: the REST
BatchTask routes (in JSON and XML), every BatchAgent method, ``$metadata``, ``/login`` and
``/logout``, each success and each error it can give, checked as schemathesis' response
checks do (:mod:`tests.openapi_check`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.apis.superoffice_agents import AGENTS
from gateway.context import CONFIG
from tests.conftest import Api
from tests.openapi_check import Answer, Document, answer

TAG = "SuperOffice BatchTask"
PREFIXES = ("", "/Cust12345")
FORM = "application/x-www-form-urlencoded"
CARRIER = {"Name": "Nightly export", "AssociateId": 0, "DetailsTable": 12, "DetailsRecord": 34,
           "IsSystemTask": False, "IsInternalTask": True, "ParameterObject": {"target": "ftp"},
           "LastStarted": "2024-03-30T22:15:00", "Context": "export", "Result": "ok", "State": "New",
           "Description": "Exports", "Response": "", "Request": "run", "ProgressDescription": "Writing",
           "ProgressPercent": 40, "FileName": "sales.csv", "CancellationBehaviour": "CanCancel"}
XML = "<BatchTaskInfo><Name>From XML</Name><State>Aquired</State></BatchTaskInfo>"
#: each BatchAgent method with arguments that it answers 200 (or 204) to, {id} the task's id
AGENT_CALLS: dict[str, dict[str, Any]] = {
    "GetBatchTaskInfo": {"Id": "{id}"}, "GetBatchTaskInfosByAssociates": {"AssociateIds": [0]},
    "StartBatchJob": {"BatchTaskInfo": {"Name": "agent", "State": "New"}}, "StopBatchJob": {"Id": "{id}"},
    "GetBatchTaskInfosByState": {"State": "New"},
    "UpdateBatchTask": {"BatchTaskInfo": {"Id": "{id}", "State": "Started", "Description": "by agent"}},
    "GetBatchTaskInfosByNameAndState": {"Name": "Nightly export", "State": "Started"},
    "GetBatchTaskInfosByNameAndAssociates": {"Name": "Nightly export", "AssociateIds": [0]},
    "GetBatchTaskInfosByAssociatesAndState": {"AssociateIds": [0], "State": 3},
    "GetAllBatchTaskInfosByName": {"TaskName": "Nightly export"},
    "GetAllBatchTaskInfosByNameAndState": {"TaskName": "Nightly export", "State": "All"},
    "GetSystemBatchTaskInfosByName": {"TaskName": "Nightly export"},
    "GetSystemBatchTaskInfosByNameAndState": {"TaskName": "Nightly export", "State": "New"},
    "DeleteBatchTasks": {"BatchTaskIds": [999998]}, "DeleteBatchTask": {"BatchTaskId": 999999},
}
assert set(AGENT_CALLS) == set(AGENTS)


@pytest.fixture(name="document")
async def _document(api: Api) -> Document:
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200
    return Document(json.loads(await resp.read()), TAG)


def _cookie(resp: Answer, name: str) -> str:
    found = [c for c in resp.headers.getall("Set-Cookie") if c.startswith(name + "=")]
    assert len(found) == 1, resp.headers.getall("Set-Cookie")
    return found[0].split(";")[0].partition("=")[2]


async def test_every_superoffice_answer_matches_the_document(api: Api, document: Document) -> None:
    async def send(method: str, path: str, *, token: str | None = None, body: Any = None,
                   data: str | bytes | None = None, ctype: str = "application/json",
                   headers: dict[str, str] | None = None, auth: bool = True) -> Answer:
        return await answer(api.client, document, method, path, headers={**(api.auth(token) if auth else {}),
                                                                         **(headers or {})},
                            data=data, body=body, ctype=ctype)

    big = b"x" * (api.client.app[CONFIG].server.max_body_bytes + 1)
    nonsense = "tg_nonsense"
    xml_out = {"Accept": "application/xml"}

    # /login and /logout: a session with its XSRF token
    login = await send("POST", "/login", data="user=alice&password=alice-password", ctype=FORM, auth=False)
    assert login.status == 200
    session, xsrf = _cookie(login, "taskgate_session"), _cookie(login, "XSRF-TOKEN")
    api.client.session.cookie_jar.clear()  # each request below sends exactly the cookies it names
    for expected, kwargs in ((400, {"data": "user=alice", "ctype": FORM}),
                             (401, {"data": "user=alice&password=wrong", "ctype": FORM}),
                             (413, {"data": big, "ctype": FORM}),
                             (415, {"body": {"user": "alice", "password": "alice-password"}})):
        assert (await send("POST", "/login", auth=False, **kwargs)).status == expected, expected
    cookies = f"taskgate_session={session}; XSRF-TOKEN={xsrf}"
    assert (await send("POST", "/logout", auth=False, headers={"Cookie": cookies})).status == 401  # no XSRF header
    assert (await send("POST", "/logout", auth=False, headers={"Cookie": cookies, "X-XSRF-TOKEN": xsrf})).status == 204
    assert (await send("POST", "/logout", token=nonsense)).status == 401

    for prefix in PREFIXES:
        base = f"{prefix}/api/v1"
        # $metadata: always XML
        for headers in ({}, {"Accept": "application/json"}):
            assert (await send("GET", f"{base}/$metadata", headers=headers)).status == 200
        assert (await send("GET", f"{base}/$metadata", token=nonsense)).status == 401

        # create, with and without the trailing slash, in every body format, then each refusal
        ids = []
        for slash in ("", "/"):
            for kwargs in ({"body": CARRIER}, {"data": XML, "ctype": "application/xml", "headers": xml_out},
                           {"data": XML, "ctype": "text/xml", "headers": {"Accept": "text/xml"}},
                           {"data": "Name=form&State=New", "ctype": FORM},
                           {"body": CARRIER, "ctype": "text/json", "headers": {"Accept": "text/json"}}):
                created = await send("POST", f"{base}/BatchTask{slash}", **kwargs)
                assert created.status == 200, kwargs
                ids.append(int(created.json() if "json" in created.headers["Content-Type"]
                               else created.body.decode().rpartition("</")[0].rpartition(">")[2]))
            for expected, kwargs in ((400, {"body": {"State": "Bogus"}}), (400, {"data": "{", "ctype": "text/json"}),
                                     (401, {"body": CARRIER, "token": nonsense}),
                                     (403, {"body": CARRIER, "token": api.user}),
                                     (413, {"data": big}), (415, {"data": "x", "ctype": "text/plain"})):
                assert (await send("POST", f"{base}/BatchTask{slash}", **kwargs)).status == expected, (slash, expected)

            # the OData list
            for query in ("", "?$format=xml", "?$format=JSON&$top=1&$skip=1",
                          "?$filter=State eq 'New'&$orderBy=Id desc", "?$select=Id,Name,State"):
                assert (await send("GET", f"{base}/BatchTask{slash}{query}", token=api.read_only)).status == 200
            assert (await send("GET", f"{base}/BatchTask{slash}", headers=xml_out)).status == 200
            for expected, query, token in ((400, "?$filter=Nope eq 1", None), (400, "?$top=-1", None),
                                           (401, "", nonsense)):
                assert (await send("GET", f"{base}/BatchTask{slash}{query}", token=token)).status == expected

        task = f"{base}/BatchTask/{ids[0]}"
        # get, by id (JSON, XML, $select, 304) and by state (an array)
        got = await send("GET", task)
        assert got.status == 200
        for headers in (xml_out, {"Accept": "text/json"}, {"SO-TimeZone": "NO"}):
            assert (await send("GET", task, headers=headers)).status == 200, headers
        assert (await send("GET", task + "?$select=Id,State,TableRight")).status == 200
        assert (await send("GET", task, headers={"If-Modified-Since": got.headers["Last-Modified"]})).status == 304
        for state in ("New", "started", "All"):
            assert (await send("GET", f"{base}/BatchTask/{state}")).status == 200, state
        mars = {"SO-TimeZone": "Mars"}
        for expected, path, kwargs in ((400, f"{base}/BatchTask/abc", {}), (400, task, {"headers": mars}),
                                       (401, task, {"token": nonsense}), (404, f"{base}/BatchTask/999999", {})):
            assert (await send("GET", path, **kwargs)).status == expected, (path, expected)

        # put, in every body format
        etag = got.headers["ETag"]
        for kwargs in ({"body": {**CARRIER, "State": "Started"}},
                       {"data": "<BatchTaskInfo><Description>xml</Description></BatchTaskInfo>",
                        "ctype": "application/xml", "headers": xml_out},
                       {"data": "Description=form", "ctype": FORM},
                       {"body": [{"op": "replace", "path": "/Description", "value": "patched"}],
                        "ctype": "application/json-patch+json"},
                       {"body": [{"op": "replace", "path": "/Description", "value": "as json"}]},
                       {"body": {"Response": "merged"}, "ctype": "application/merge-patch+json",
                        "headers": {"Accept": "text/xml"}}):
            assert (await send("PUT", task, **kwargs)).status == 200, kwargs
        for expected, path, kwargs in (
                (400, task, {"body": {"State": "Bogus"}}), (404, f"{base}/BatchTask/abc", {"body": CARRIER}),
                (401, task, {"body": CARRIER, "token": nonsense}),
                (403, task, {"body": CARRIER, "token": api.read_only}),
                (404, f"{base}/BatchTask/999999", {"body": CARRIER}),
                (409, task, {"body": [{"op": "test", "path": "/Description", "value": "other"}],
                             "ctype": "application/json-patch+json"}),
                (412, task, {"body": CARRIER, "headers": {"If-Match": etag}}),
                (412, task, {"body": CARRIER, "headers": {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}}),
                (413, task, {"data": big}), (415, task, {"data": "x", "ctype": "text/plain"})):
            assert (await send("PUT", path, **kwargs)).status == expected, (path, expected)

        # Stop: true, then false (a task already Failed cannot be stopped)
        for _ in range(2):
            assert (await send("POST", f"{task}/Stop", headers=xml_out if _ else {})).status == 200
        for expected, path, kwargs in ((400, f"{task}/Stop", {"headers": mars}),
                                       (401, f"{task}/Stop", {"token": nonsense}),
                                       (403, f"{task}/Stop", {"token": api.read_only}),
                                       (404, f"{base}/BatchTask/abc/Stop", {}),
                                       (404, f"{base}/BatchTask/999999/Stop", {})):
            assert (await send("POST", path, **kwargs)).status == expected, (path, expected)

        # the BatchAgent methods, each described and called
        other = ids[1]
        for name, args in AGENT_CALLS.items():
            args = json.loads(json.dumps(args).replace('"{id}"', str(other)))
            assert (await send("GET", f"{base}/Agents/Batch/{name}")).status == 200, name
            assert (await send("POST", f"{base}/Agents/Batch/{name}", body=args)).status in (200, 204), name
        for name, args in (("GetBatchTaskInfo", {"Id": 999999}), ("StopBatchJob", {"Id": 999999}),
                           ("UpdateBatchTask", {"BatchTaskInfo": {"Id": 999999}})):  # 200 null: no such task
            answered = await send("POST", f"{base}/Agents/Batch/{name}", body=args)
            assert (answered.status, answered.json()) == (200, None), name
        agent = f"{base}/Agents/Batch/GetBatchTaskInfo"
        assert (await send("POST", agent, body={"Id": other}, headers=xml_out)).status == 200
        assert (await send("POST", f"{base}/Agents/Batch/DeleteBatchTask",
                           body={"BatchTaskId": ids[2]})).status == 204
        for expected, path, kwargs in (
                (400, agent, {"body": {}}), (400, agent, {"body": [1]}),
                (401, agent, {"body": {"Id": 1}, "token": nonsense}),
                (403, f"{base}/Agents/Batch/UpdateBatchTask",
                 {"body": {"BatchTaskInfo": {"Id": other, "State": "Failed"}}, "token": api.read_only}),
                (404, f"{base}/Agents/Batch/NoSuchMethod", {"body": {}}),
                (413, agent, {"data": big}), (415, agent, {"data": "<Id>1</Id>", "ctype": "application/xml"})):
            assert (await send("POST", path, **kwargs)).status == expected, (path, expected)
        for expected, path, token in ((401, agent, nonsense), (404, f"{base}/Agents/Batch/NoSuchMethod", None)):
            assert (await send("GET", path, token=token)).status == expected, (path, expected)

        # delete, last
        for expected, path, kwargs in ((400, task, {"headers": mars}), (401, task, {"token": nonsense}),
                                       (403, task, {"token": api.user}), (404, f"{base}/BatchTask/999999", {}),
                                       (412, task, {"headers": {"If-Match": etag}})):
            assert (await send("DELETE", path, **kwargs)).status == expected, (path, expected)
        assert (await send("DELETE", task)).status == 204

    # a tenant that does not match the pattern matches no route: SuperOffice's 404 all the same
    for method, path in (("GET", "/-x/api/v1/$metadata"), ("GET", "/-x/api/v1/BatchTask"),
                         ("POST", "/-x/api/v1/BatchTask/"), ("GET", "/-x/api/v1/BatchTask/1")):
        assert (await send(method, path, body=CARRIER if method == "POST" else None)).status == 404, path

    assert document.unanswered() == []
    assert len(document.checked) == 24  # 13 routes, 11 of them again under the tenant prefix
