"""Real answers of every SailPoint route, checked against the server's own /openapi.json.

Every route, each success and each error it can give, checked as schemathesis' response
checks do (:mod:`tests.openapi_check`): status, media type, body schema and headers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.context import CONFIG
from tests.openapi_check import Document

PATCH_JSON = "application/json-patch+json"
TAG = "SailPoint task-status"
VERSIONS = ("beta", "v2024", "v2025", "v2026")
#: a task that fills every optional member the document describes
FULL_TASK = {
    "id": "full-1", "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation",
    "description": "Aggregate from the specified application", "parentName": "Audit Report", "launcher": "support",
    "target": {"id": "c6dc37bf508149b28ce5b7d90ca4bbf9", "type": "APPLICATION", "name": "Active Directory [source]"},
    "created": "2020-07-11T21:23:15.000Z", "modified": "2020-07-11T21:23:15.000Z",
    "launched": "2020-07-11T21:23:15.000Z", "completed": None, "completionStatus": None,
    "messages": [{"type": "INFO", "localizedText": {"locale": "en-US", "message": "Started"}, "key": "akey",
                  "parameters": [{"name": "value"}, "text"]},
                 {"type": "WARN", "key": "bare"}],  # localizedText and parameters are stored as null
    "returns": [{"name": "label", "attributeName": "identityCount"}],
    "attributes": {"identityCount": 0}, "progress": "Started", "percentComplete": 10,
    "taskDefinitionSummary": {"id": "2c91808475b4334b0175e1dff64b63c5", "uniqueName": "Cloud Account Aggregation",
                              "parentName": "Cloud Account Aggregation", "arguments": {"mantraPropertyName": "x"}},
}


@pytest.fixture(name="document")
async def _document(api) -> Document:
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200
    return Document(json.loads(await resp.read()), TAG)


def every_prefix() -> Iterator[str]:
    yield "/task-status/v1"
    for version in VERSIONS:
        yield f"/{version}/task-status"


async def test_every_sailpoint_answer_matches_the_document(api, document: Document) -> None:
    async def send(method: str, path: str, *, token: str | None = None, body: Any = None,
                   data: str | bytes | None = None, ctype: str = "application/json",
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = {**api.auth(token), **(headers or {})}
        if body is not None:
            data = json.dumps(body)
        if data is not None:
            hdrs.setdefault("Content-Type", ctype)
        payload = io.BytesIO(data) if isinstance(data, bytes) else data  # a large body as a stream, as aiohttp asks
        resp = await api.client.request(method, path, data=payload, headers=hdrs)
        raw = await resp.read()
        document.check(method, path, resp.status, resp.headers, raw)
        return resp.status, json.loads(raw)

    # create: 201 with every member, then each refusal
    assert (await send("POST", "/task-status/v1", body=FULL_TASK))[0] == 201
    status, created = await send("POST", "/task-status/v1", body={"type": "QPOC", "uniqueName": "u",
                                                                  "modified": None})
    assert status == 201 and created["modified"] == created["created"]
    for expected, kwargs in ((409, {"body": FULL_TASK}), (400, {"body": {"type": "nope"}}),
                             (403, {"body": {"type": "QPOC", "uniqueName": "u"}, "token": api.user}),
                             (415, {"data": "x", "ctype": "text/plain"}),
                             (406, {"body": {"type": "QPOC", "uniqueName": "u"}, "headers": {"Accept": "text/html"}}),
                             (401, {"body": {"type": "QPOC", "uniqueName": "u"}, "token": "tg_nonsense"})):
        assert (await send("POST", "/task-status/v1", **kwargs))[0] == expected, kwargs
    big = b"x" * (api.client.app[CONFIG].server.max_body_bytes + 1)
    assert (await send("POST", "/task-status/v1", data=big))[0] == 413

    for prefix in every_prefix():
        # get, list and patch under every prefix, successes first
        status, got = await send("GET", f"{prefix}/full-1", headers={"X-SailPoint-Experimental": "true"})
        assert status == 200 and got["messages"][1] == {"type": "WARN", "localizedText": None, "key": "bare",
                                                        "parameters": None}
        assert got["taskDefinitionSummary"]["description"] is None and got["taskDefinitionSummary"]["executor"] is None
        for query in ("", "?count=true", "?limit=1&offset=1&count=true&sorters=-created",
                      '?filters=sourceId eq "c6dc37bf508149b28ce5b7d90ca4bbf9"',
                      '?filters=completionStatus isnull and type in ("QUARTZ","QPOC")'):
            status, listed = await send("GET", prefix + query, token=api.read_only)
            assert status == 200 and listed, query
        status, patched = await send("PATCH", f"{prefix}/full-1", ctype=PATCH_JSON,
                                     body=[{"op": "replace", "path": "/percentComplete", "value": 20}])
        assert (status, patched["percentComplete"]) == (200, 20)
        for expected, path, kwargs in (
                (404, "nope", {"body": [{"op": "replace", "path": "/progress", "value": "x"}]}),
                (400, "full-1", {"body": [{"op": "replace", "path": "/id", "value": "x"}]}),
                (409, "full-1", {"body": [{"op": "test", "path": "/progress", "value": "other"}]}),
                (412, "full-1", {"body": [{"op": "replace", "path": "/progress", "value": "x"}],
                                 "headers": {"If-Match": '"1"'}}),
                (403, "full-1", {"body": [{"op": "replace", "path": "/progress", "value": "x"}],
                                 "token": api.read_only}),
                (401, "full-1", {"body": [], "token": "tg_nonsense"}),
                (406, "full-1", {"body": [], "headers": {"Accept": "application/xml"}}),
                (415, "full-1", {"data": "<a/>", "ctype": "application/xml"}),
                (413, "full-1", {"data": big})):
            kwargs.setdefault("ctype", PATCH_JSON)
            assert (await send("PATCH", f"{prefix}/{path}", **kwargs))[0] == expected, (prefix, expected)
        for expected, path, kwargs in ((404, "nope", {}), (401, "full-1", {"token": "tg_nonsense"}),
                                       (406, "full-1", {"headers": {"Accept": "text/html"}})):
            assert (await send("GET", f"{prefix}/{path}", **kwargs))[0] == expected, (prefix, expected)
        for expected, query, kwargs in ((400, "?filters=name eq \"x\"", {}), (400, "?limit=251", {}),
                                        (401, "", {"token": "tg_nonsense"}),
                                        (406, "", {"headers": {"Accept": "text/html"}})):
            assert (await send("GET", prefix + query, **kwargs))[0] == expected, (prefix, expected)

    for version in VERSIONS:
        pending = f"/{version}/task-status/pending-tasks"
        for query in ("", "?offset=0&limit=1&count=true"):
            status, listed = await send("GET", pending + query, headers={"X-SailPoint-Experimental": "true"})
            assert status == 200 and listed
        for expected, query, kwargs in ((400, "?count=maybe", {}), (401, "", {"token": "tg_nonsense"}),
                                        (406, "", {"headers": {"Accept": "text/html"}})):
            assert (await send("GET", pending + query, **kwargs))[0] == expected, (version, expected)

    # every SailPoint operation of the document was answered, a success included
    assert document.unanswered() == []
    assert len(document.checked) == 20  # create; get, list and patch under five prefixes; pending under four


async def test_the_document_describes_what_sailpoint_clients_rely_on(document: Document) -> None:
    """The gaps generated clients met: members always sent but optional in the document, an
    undocumented 403, an undeclared header, a missing v2026 pending-tasks."""
    schemas = document.document["components"]["schemas"]
    assert set(schemas["TaskStatusMessage"]["required"]) == {"type", "localizedText", "key", "parameters"}
    assert set(schemas["TaskDefinitionSummary"]["required"]) == {"id", "uniqueName", "description", "parentName",
                                                                "executor", "arguments"}
    assert "modified" in schemas["TaskStatus"]["required"]
    assert "nullable" not in schemas["TaskStatus"]["properties"]["modified"]
    # what a client may send still may leave those out
    assert set(schemas["TaskStatusMessageInput"]["required"]) == {"type", "key"}
    assert schemas["TaskStatusCreate"]["properties"]["modified"].get("nullable") is True
    for (method, path), op in document.operations.items():
        names = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        if method == "POST":
            continue  # taskgate's own create: no SailPoint client sends it
        assert ("header", "X-SailPoint-Experimental") in names, (method, path)
        header = next(p for p in op["parameters"] if p["name"] == "X-SailPoint-Experimental")
        assert header["required"] is False
        if method == "PATCH":
            assert op["responses"]["403"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponseDto"}
    for version in VERSIONS:
        op = document.operations[("GET", f"/{version}/task-status/pending-tasks")]
        assert op["deprecated"] is True
