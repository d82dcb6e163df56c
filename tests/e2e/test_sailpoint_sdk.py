"""The official ``sailpoint`` 2.1.72 SDK against a real ``taskgate serve`` process.

Every SDK call runs with Python warnings turned into errors: the SDK only *warns* about
an enum value it does not know (``"Error"`` instead of ``"ERROR"``), so a lenient server
would otherwise pass unnoticed. Tasks are set up with taskgate's own ``POST
/task-status/v1`` over plain ``urllib``; raw GETs compare whole JSON documents.

Most tests share one module-scoped server (its tasks never match each other's
assertions); the list test uses the function-scoped ``server`` fixture so that its
``X-Total-Count`` is exact.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sailpoint.configuration import Configuration, ConfigurationParams
from sailpoint.task_management.api.task_management_api import TaskManagementApi
from sailpoint.task_management.api_client import ApiClient
from sailpoint.task_management.exceptions import (
    BadRequestException,
    ForbiddenException,
    NotFoundException,
    UnauthorizedException,
)
from sailpoint.task_management.models.error_response_dto import ErrorResponseDto
from sailpoint.task_management.models.get_task_status_v1401_response import GetTaskStatusV1401Response
from sailpoint.task_management.models.json_patch_operation import JsonPatchOperation
from sailpoint.task_management.models.locale_origin import LocaleOrigin
from sailpoint.task_management.models.task_status import TaskStatus

from tests.e2e.server import Reply, running
from tests.e2e.server import http as send

pytestmark = pytest.mark.e2e


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: the vendor's documented PATCH body (beta spec example): mixed-case "Error"
DOCUMENTED_BODY = [{"op": "replace", "path": "/completionStatus", "value": "Error"},
                   {"op": "replace", "path": "/completed", "value": "2024-05-17T19:33:16.470Z"}]
COMPLETED = datetime(2024, 5, 17, 19, 33, 16, 470000, tzinfo=UTC)
LIST_FILTER = 'completionStatus isnull and type in ("QUARTZ","QPOC")'


# -- helpers -----------------------------------------------------------------------------
@contextmanager
def strict() -> Iterator[None]:
    """Any warning the SDK emits (e.g. an unknown enum value) is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def sdk(base_url: str, token: str | None = None, *, client_id: str | None = None,
        client_secret: str | None = None) -> TaskManagementApi:
    params = ConfigurationParams()
    params.base_url = base_url
    params.access_token = token
    params.client_id = client_id
    params.client_secret = client_secret
    with strict():
        return TaskManagementApi(ApiClient(Configuration(params)))


def ops(*items: dict[str, Any]) -> list[JsonPatchOperation]:
    with strict():
        return [JsonPatchOperation.from_dict(item) for item in items]


def http(method: str, url: str, token: str | None, body: Any = None, **kwargs: Any) -> Reply:
    return send(method, url, None if token is None else f"Bearer {token}", body, **kwargs)


def create_task(server: Any, **fields: Any) -> dict[str, Any]:
    body = {"type": "QUARTZ", "uniqueName": "Cloud Account Aggregation",
            "description": "Aggregate from the specified application", "launcher": "support", **fields}
    reply = http("POST", f"{server.base_url}/task-status/v1", server.admin_token, body)
    assert reply.status == 201, reply.raw
    doc = reply.json
    assert reply.headers["Location"] == f"/task-status/v1/{doc['id']}"
    return doc


def raw_get(server: Any, task_id: str, token: str | None = None) -> dict[str, Any]:
    reply = http("GET", f"{server.base_url}/task-status/v1/{task_id}", token or server.admin_token)
    assert reply.status == 200, reply.raw
    return reply.json


def wire(ts: TaskStatus) -> dict[str, Any]:
    """An SDK TaskStatus as the JSON taskgate would send: camelCase, ``…sssZ`` timestamps."""
    out = ts.model_dump(by_alias=True)
    for key in ("created", "modified", "launched", "completed"):
        moment = out[key]
        if moment is not None:
            assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0, (key, moment)
            out[key] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
                f"{moment.microsecond // 1000:03d}Z"
    return out


def model_matches(ts: TaskStatus, doc: dict[str, Any]) -> bool:
    """The SDK model carries exactly *doc* (plus the optional members taskgate omits)."""
    return wire(ts) == {**doc, "target": None, "taskDefinitionSummary": None}


def error_dto(detail: str, text: str, tracking_id: str) -> dict[str, Any]:
    return {"detailCode": detail, "trackingId": tracking_id,
            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}], "causes": []}


def check_error_model(data: Any, detail: str, text: str | None, tracking_id: str) -> None:
    """``exc.data`` as the SDK parsed it: an ErrorResponseDto with SailPoint's members."""
    assert isinstance(data, ErrorResponseDto)
    assert data.detail_code == detail
    assert data.tracking_id == tracking_id
    assert data.causes == []
    assert len(data.messages) == 1
    message = data.messages[0]
    assert message.locale == "en-US"
    assert message.locale_origin == LocaleOrigin.DEFAULT
    if text is not None:
        assert message.text == text


def request_id(exc: Any) -> str:
    rid = exc.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    return rid


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_ambient_sdk_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The SDK falls back to $SAIL_* and ./config.json: keep both out of these tests."""
    for name in ("SAIL_BASE_URL", "SAIL_CLIENT_ID", "SAIL_CLIENT_SECRET", "SAIL_NERM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module", name="srv")
def _srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running(tmp_path_factory.mktemp("sailpoint-sdk")) as server:
        yield server


@pytest.fixture(name="api")
def _api(srv: Any) -> TaskManagementApi:
    return sdk(srv.base_url, srv.admin_token)


# -- update and get ----------------------------------------------------------------------
def test_update_with_documented_body_then_get(srv: Any, api: TaskManagementApi) -> None:
    created_doc = create_task(srv, id="2c9180835d2e5168015d32f890ca1581",
                              description="Aggregation of account data", launcher="support@example.com")
    assert TIMESTAMP.match(created_doc["created"]), created_doc
    expected = {"id": "2c9180835d2e5168015d32f890ca1581", "type": "QUARTZ",
                "uniqueName": "Cloud Account Aggregation", "description": "Aggregation of account data",
                "parentName": None, "launcher": "support@example.com",
                "created": created_doc["created"], "modified": created_doc["created"],
                "launched": None, "completed": None, "completionStatus": None,
                "messages": [], "returns": [], "attributes": {}, "progress": None, "percentComplete": 0}
    assert created_doc == expected
    time.sleep(0.01)  # so that "modified" is a later millisecond than "created"

    with strict():
        ts = api.update_task_status_v1(id=expected["id"], json_patch_operation=ops(*DOCUMENTED_BODY))

    # the returned model, field by field
    assert isinstance(ts, TaskStatus)
    assert ts.id == expected["id"]
    assert ts.type == "QUARTZ"
    assert ts.unique_name == "Cloud Account Aggregation"
    assert ts.description == "Aggregation of account data"
    assert ts.parent_name is None
    assert ts.launcher == "support@example.com"
    assert ts.target is None
    assert ts.created == datetime.fromisoformat(created_doc["created"])
    assert ts.created.utcoffset().total_seconds() == 0
    assert ts.modified is not None and ts.modified > ts.created
    assert ts.launched is None
    assert ts.completed == COMPLETED
    assert ts.completion_status == "ERROR"  # "Error" in, the enum's spelling out
    assert ts.messages == [] and ts.returns == [] and ts.attributes == {}
    assert ts.progress is None
    assert ts.percent_complete == 0
    assert ts.task_definition_summary is None

    # the whole stored document, as a raw GET returns it
    doc = raw_get(srv, expected["id"])
    assert TIMESTAMP.match(doc["created"]) and TIMESTAMP.match(doc["modified"]), doc
    assert doc["created"] == created_doc["created"]
    assert doc["modified"] > doc["created"]
    assert datetime.fromisoformat(doc["modified"]) > datetime.fromisoformat(doc["created"])
    assert doc == {**expected, "modified": doc["modified"], "completed": "2024-05-17T19:33:16.470Z",
                   "completionStatus": "ERROR"}
    assert model_matches(ts, doc)

    # get_task_status_v1 returns the same
    with strict():
        got = api.get_task_status_v1(id=expected["id"])
        info = api.get_task_status_v1_with_http_info(id=expected["id"])
    assert isinstance(got, TaskStatus)
    assert got == ts
    assert model_matches(got, doc)
    assert info.status_code == 200
    assert info.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(info.raw_data) == doc
    assert info.data == ts

    # the same patch again changes nothing, not even "modified"
    with strict():
        again = api.update_task_status_v1(id=expected["id"], json_patch_operation=ops(*DOCUMENTED_BODY))
    assert again == ts
    assert raw_get(srv, expected["id"]) == doc


def test_year_versioned_patch_and_sdk_1x_style_requests(srv: Any, api: TaskManagementApi) -> None:
    task = create_task(srv, id="year-versioned-1", type="QUEUED_TASK")
    base = srv.base_url
    # SDK 1.4.2's v2026 client: X-SailPoint-Experimental, here with plain application/json and
    # the v2024+ spec example's mangled timestamp
    reply = http("PATCH", f"{base}/v2026/task-status/{task['id']}", srv.admin_token,
                 [{"op": "replace", "path": "/completionStatus", "value": "Success"},
                  {"op": "replace", "path": "/completed", "value": "2024-05-17 19:33:16.470000+00:00"}],
                 headers={"X-SailPoint-Experimental": "true", "Content-Type": "application/json"})
    assert reply.status == 200, reply.raw
    doc = reply.json
    assert TIMESTAMP.match(doc["modified"]) and doc["modified"] > task["created"]
    assert doc == {**task, "modified": doc["modified"], "completionStatus": "SUCCESS",
                   "completed": "2024-05-17T19:33:16.470Z"}
    assert raw_get(srv, task["id"]) == doc
    for version in ("beta", "v2024", "v2025", "v2026"):
        reply = http("GET", f"{base}/{version}/task-status/{task['id']}", srv.admin_token)
        assert reply.status == 200 and reply.json == doc
    with strict():
        assert model_matches(api.get_task_status_v1(id=task["id"]), doc)

    # iscUtils' Set-ISCTaskCompleted: beta, application/json;charset=utf-8, json-patch+json body
    reply = http("PATCH", f"{base}/beta/task-status/{task['id']}", srv.admin_token,
                 data=json.dumps(DOCUMENTED_BODY).encode(),
                 headers={"Content-Type": "application/json;charset=utf-8"})
    assert reply.status == 200, reply.raw
    assert reply.json["completionStatus"] == "ERROR"
    assert reply.json["completed"] == "2024-05-17T19:33:16.470Z"


# -- errors ------------------------------------------------------------------------------
def test_not_found_is_error_response_dto(srv: Any, api: TaskManagementApi) -> None:
    with strict(), pytest.raises(NotFoundException) as caught:
        api.get_task_status_v1(id="nope")
    exc = caught.value
    assert exc.status == 404
    assert exc.data is None  # the spec maps no model to GET-by-id 404
    rid = request_id(exc)
    body = json.loads(exc.body)
    assert body == error_dto("404 Not found", "TaskStatus with id 'nope' was not found", rid)
    with strict():
        check_error_model(ErrorResponseDto.from_dict(body), "404 Not found",
                          "TaskStatus with id 'nope' was not found", rid)

    # PATCH maps 404 to ErrorResponseDto, so the SDK parses it
    with strict(), pytest.raises(NotFoundException) as caught:
        api.update_task_status_v1(id="nope", json_patch_operation=ops(*DOCUMENTED_BODY))
    exc = caught.value
    assert exc.status == 404
    rid = request_id(exc)
    check_error_model(exc.data, "404 Not found", None, rid)
    text = exc.data.messages[0].text
    assert "'nope'" in text  # worded differently from GET's; see the report
    assert json.loads(exc.body) == error_dto("404 Not found", text, rid)

    # an X-Request-ID the caller sends comes back as the trackingId
    reply = http("GET", f"{srv.base_url}/task-status/v1/nope", srv.admin_token,
                 headers={"X-Request-ID": "caller-chosen-id.1"})
    assert reply.status == 404
    assert reply.headers["X-Request-ID"] == "caller-chosen-id.1"
    assert reply.json == error_dto("404 Not found", "TaskStatus with id 'nope' was not found",
                                   "caller-chosen-id.1")


def test_bad_request_is_error_response_dto_and_changes_nothing(srv: Any, api: TaskManagementApi) -> None:
    task = create_task(srv, id="bad-request-1", type="QPOC", uniqueName="Cloud Group Aggregation")
    before = raw_get(srv, task["id"])
    bad_patches = [
        [{"op": "replace", "path": "/id", "value": "other"}],
        # all or nothing: the valid first operation is not applied either
        [DOCUMENTED_BODY[0], {"op": "replace", "path": "/id", "value": "other"}],
        [{"op": "replace", "path": "/completionStatus", "value": "Completed"}],  # not an enum value
        [{"op": "replace", "path": "/completed", "value": "yesterday"}],
        [{"op": "replace", "path": "/created", "value": "2024-05-17T19:33:16.470Z"}],
    ]
    for patch in bad_patches:
        with strict(), pytest.raises(BadRequestException) as caught:
            api.update_task_status_v1(id=task["id"], json_patch_operation=ops(*patch))
        exc = caught.value
        assert exc.status == 400
        rid = request_id(exc)
        check_error_model(exc.data, "400.1 Bad Request Content", None, rid)
        body = json.loads(exc.body)
        assert body == error_dto("400.1 Bad Request Content", body["messages"][0]["text"], rid)
        assert body["messages"][0]["text"], patch
        assert raw_get(srv, task["id"]) == before, patch
    # the message names the offending member
    with strict(), pytest.raises(BadRequestException) as caught:
        api.update_task_status_v1(id=task["id"], json_patch_operation=ops(
            {"op": "replace", "path": "/id", "value": "other"}))
    assert "'/id' cannot be changed" in caught.value.data.messages[0].text

    # an unsupported filter on the list is a 400 ErrorResponseDto too
    with strict(), pytest.raises(BadRequestException) as caught:
        api.get_task_status_list_v1(filters="created gt 2024-01-01T00:00:00Z")
    check_error_model(caught.value.data, "400.1 Bad Request Content", None, request_id(caught.value))


# -- list --------------------------------------------------------------------------------
def test_list_filters_sorters_count_and_paging(fresh_server: Any) -> None:
    """A fresh server: the filter sees only these tasks, so the counts are exact."""
    server = fresh_server
    specs = [  # (id, type, completionStatus, day of "created"), in the order they are created;
        # "created" is deliberately not in insertion order, so sorting by insertion would fail
        ("l1", "QUARTZ", None, 5),
        ("l2", "QPOC", None, 3),
        ("l3", "QUEUED_TASK", None, 8),  # wrong type
        ("l4", "QUARTZ", "SUCCESS", 1),  # completed
        ("l5", "QUARTZ", None, 6),
        ("l6", "QPOC", "ERROR", 2),  # completed
        ("l7", "QPOC", None, 4),
        ("l8", "QUEUED_TASK", "TERMINATED", 7),  # completed, wrong type
    ]
    docs = {}
    for n, (task_id, kind, status, day) in enumerate(specs, 1):
        completed = {"completionStatus": status, "completed": f"2024-03-0{n}T12:00:00.000Z"} if status else {}
        docs[task_id] = create_task(server, id=task_id, type=kind, created=f"2024-02-0{day}T08:00:00.123Z",
                                    launcher=f"launcher-{n % 2}", **completed)
        assert docs[task_id]["created"] == docs[task_id]["modified"] == f"2024-02-0{day}T08:00:00.123Z"
    oldest_first = ["l4", "l6", "l2", "l7", "l1", "l5", "l8", "l3"]
    matching_newest_first = ["l5", "l1", "l7", "l2"]
    api = sdk(server.base_url, server.admin_token)

    def page(**kwargs: Any) -> tuple[list[str], Any]:
        with strict():
            resp = api.get_task_status_list_v1_with_http_info(**kwargs)
        assert resp.status_code == 200
        assert all(isinstance(t, TaskStatus) for t in resp.data)
        raw = json.loads(resp.raw_data)
        assert [t["id"] for t in raw] == [t.id for t in resp.data]
        for ts, doc in zip(resp.data, raw, strict=True):
            assert doc == docs[doc["id"]]
            assert model_matches(ts, doc)
        return [t.id for t in resp.data], resp.headers

    ids, headers = page(limit=250, offset=0, count=True, filters=LIST_FILTER, sorters="-created")
    assert ids == matching_newest_first
    assert headers["X-Total-Count"] == "4"

    ids, headers = page(limit=10, offset=0, count=True, filters=LIST_FILTER, sorters="created")
    assert ids == matching_newest_first[::-1]
    assert headers["X-Total-Count"] == "4"

    # paging: X-Total-Count ignores limit and offset
    ids, headers = page(limit=2, offset=1, count=True, filters=LIST_FILTER, sorters="-created")
    assert ids == ["l1", "l7"]
    assert headers["X-Total-Count"] == "4"
    ids, headers = page(limit=2, offset=3, count=True, filters=LIST_FILTER, sorters="-created")
    assert ids == ["l2"]
    assert headers["X-Total-Count"] == "4"
    ids, headers = page(limit=2, offset=4, count=True, filters=LIST_FILTER, sorters="-created")
    assert ids == []
    assert headers["X-Total-Count"] == "4"
    ids, headers = page(limit=0, offset=0, count=True, filters=LIST_FILTER, sorters="-created")
    assert ids == []
    assert headers["X-Total-Count"] == "4"

    # without count there is no X-Total-Count; without filters every task, oldest first
    ids, headers = page(limit=3, offset=0, filters=LIST_FILTER, sorters="-created")
    assert ids == ["l5", "l1", "l7"]
    assert "X-Total-Count" not in headers
    ids, headers = page(count=True)
    assert ids == oldest_first
    assert headers["X-Total-Count"] == "8"
    ids, _ = page(count=True, filters='completionStatus in ("error","terminated")', sorters="-created")
    assert ids == ["l8", "l6"]
    ids, _ = page(filters='launcher eq "launcher-0" and not completionStatus isnull', sorters="created")
    assert ids == ["l4", "l6", "l8"]

    # the same list through the year-versioned path, the exact query the SDK sends
    query = urllib.parse.quote(LIST_FILTER, safe="")
    for version in ("v2025", "v2026"):
        reply = http("GET", f"{server.base_url}/{version}/task-status?limit=2&offset=1&count=true"
                            f"&filters={query}&sorters=-created", server.admin_token)
        assert reply.status == 200
        assert [t["id"] for t in reply.json] == ["l1", "l7"]
        assert reply.headers["X-Total-Count"] == "4"

    # deprecated pending-tasks (SDK 1.x): every unfinished task, oldest first; HEAD too; v2026
    # as well, which the vendor dropped in March 2026 but sailpoint 1.4.2's v2026 module calls
    pending = ["l2", "l7", "l1", "l5", "l3"]
    for version in ("beta", "v2024", "v2025", "v2026"):
        url = f"{server.base_url}/{version}/task-status/pending-tasks"
        reply = http("GET", f"{url}?offset=1&limit=2&count=true", server.admin_token)
        assert reply.status == 200
        assert reply.json == [docs["l7"], docs["l1"]]
        assert reply.headers["X-Total-Count"] == "5"
        reply = http("GET", url, server.admin_token)
        assert [t["id"] for t in reply.json] == pending
        assert "X-Total-Count" not in reply.headers
        reply = http("HEAD", f"{url}?count=true", server.admin_token)
        assert reply.status == 200
        assert reply.raw == b""
        assert reply.headers["X-Total-Count"] == "5"
        assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    # the v1 API never had pending-tasks: there it is an id
    reply = http("GET", f"{server.base_url}/task-status/v1/pending-tasks", server.admin_token)
    assert reply.status == 404
    assert reply.json == error_dto("404 Not found", "TaskStatus with id 'pending-tasks' was not found",
                                   reply.headers["X-Request-ID"])


def test_source_id_filters_on_the_target_and_unknown_versions_are_error_response_dto(
        srv: Any, api: TaskManagementApi) -> None:
    """``sourceId`` (documented for the list in every version) is the task's target.id."""
    source = {"id": "2c91808a78efc63e0178fb8624b248c5", "type": "APPLICATION", "name": "Active Directory [source]"}
    docs = [create_task(srv, id="source-1", target=source),
            create_task(srv, id="source-2", target=source, completionStatus="SUCCESS",
                        completed="2024-05-17T19:33:16.470Z"),
            create_task(srv, id="source-other", target={**source, "id": "another-source", "name": "HR [source]"})]
    with strict():
        one = api.get_task_status_list_v1_with_http_info(filters=f'sourceId eq "{source["id"]}"', count=True)
        both = api.get_task_status_list_v1(filters=f'sourceId in ("another-source","{source["id"]}")',
                                           sorters="-created")
        pending = api.get_task_status_list_v1(filters=f'sourceId eq "{source["id"]}" and completionStatus isnull')
    assert json.loads(one.raw_data) == docs[:2] and one.headers["X-Total-Count"] == "2"
    for ts, doc in zip(one.data, docs[:2], strict=True):
        assert wire(ts) == {**doc, "taskDefinitionSummary": None}
        assert ts.target is not None and (ts.target.id, ts.target.type, ts.target.name) == (
            source["id"], "APPLICATION", "Active Directory [source]")
    assert [t.id for t in both] == ["source-other", "source-2", "source-1"]
    assert [t.id for t in pending] == ["source-1"]

    # /v3 has no task-status: SailPoint's error body, which the SDK's model reads
    for method, body in (("GET", None), ("PATCH", DOCUMENTED_BODY)):
        reply = http(method, f"{srv.base_url}/v3/task-status/source-1", srv.admin_token, body)
        assert reply.status == 404
        rid = reply.headers["X-Request-ID"]
        assert reply.json == error_dto("404 Not found", "no resource at /v3/task-status/source-1", rid)
        with strict():
            check_error_model(ErrorResponseDto.from_dict(reply.json), "404 Not found",
                              "no resource at /v3/task-status/source-1", rid)
    assert raw_get(srv, "source-1") == docs[0]


# -- authentication ----------------------------------------------------------------------
def test_client_credentials(srv: Any, capsys: pytest.CaptureFixture[str]) -> None:
    secret = srv.cli("oauth-client", "add", "sdk-client", "--user", "admin").strip()
    assert secret.startswith("tgs_")
    task = create_task(srv, id="client-credentials-1")

    # no access_token: the SDK POSTs /oauth/token while the Configuration is built
    api = sdk(srv.base_url, client_id="sdk-client", client_secret=secret)
    assert capsys.readouterr().out == ""
    token = api.api_client.configuration.access_token
    assert isinstance(token, str) and token.startswith("tg_")
    with strict():
        ts = api.update_task_status_v1(id=task["id"], json_patch_operation=ops(*DOCUMENTED_BODY))
        got = api.get_task_status_v1(id=task["id"])
    assert ts.completion_status == "ERROR" and ts.completed == COMPLETED
    doc = raw_get(srv, task["id"])
    assert doc == {**task, "modified": doc["modified"], "completionStatus": "ERROR",
                   "completed": "2024-05-17T19:33:16.470Z"}
    assert model_matches(ts, doc) and model_matches(got, doc)
    # the issued token works for raw calls too
    assert raw_get(srv, task["id"], token) == doc

    # the token endpoint itself, as the SDK calls it (form body, no Basic)
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "sdk-client",
                                   "client_secret": secret}).encode()
    reply = http("POST", f"{srv.base_url}/oauth/token", None, data=form,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 200
    grant = reply.json
    assert set(grant) == {"access_token", "token_type", "expires_in", "scope"}
    assert grant["token_type"] == "bearer" and isinstance(grant["expires_in"], int) and grant["expires_in"] > 0
    assert reply.headers["Cache-Control"] == "no-store"

    # a wrong secret: 401 invalid_client ...
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "sdk-client",
                                   "client_secret": secret + "x"}).encode()
    reply = http("POST", f"{srv.base_url}/oauth/token", None, data=form,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 401
    assert reply.json == {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
    # ... which the SDK only prints, leaving it without a token
    api = sdk(srv.base_url, client_id="sdk-client", client_secret=secret + "x")
    assert api.api_client.configuration.access_token is None
    assert capsys.readouterr().out == \
        "Unable to fetch access token. Unauthorized when retrieving access token.\n"
    with strict(), pytest.raises(TypeError):
        api.get_task_status_v1(id=task["id"])


def test_read_only_token_may_get_but_not_update(srv: Any) -> None:
    task = create_task(srv, id="read-only-1")
    token = srv.cli("token", "create", "admin", "--read-only").strip()
    api = sdk(srv.base_url, token)
    with strict(), pytest.raises(ForbiddenException) as caught:
        api.update_task_status_v1(id=task["id"], json_patch_operation=ops(*DOCUMENTED_BODY))
    exc = caught.value
    assert exc.status == 403
    rid = request_id(exc)
    check_error_model(exc.data, "403 Forbidden", "this token is read-only", rid)
    assert json.loads(exc.body) == error_dto("403 Forbidden", "this token is read-only", rid)
    assert raw_get(srv, task["id"]) == task  # unchanged

    with strict():
        got = api.get_task_status_v1(id=task["id"])
        listed = api.get_task_status_list_v1(filters=f'id eq "{task["id"]}"')
    assert model_matches(got, task)
    assert listed == [got]


def test_invalid_and_expired_tokens_are_401(srv: Any) -> None:
    task = create_task(srv, id="unauthorized-1")
    expiring = srv.cli("token", "create", "admin", "--expires-in", "1").strip()
    after_cli = time.time()

    def check(api: TaskManagementApi, message: str) -> None:
        calls = [lambda: api.get_task_status_v1(id=task["id"]),
                 lambda: api.get_task_status_v1(id="nope"),
                 lambda: api.update_task_status_v1(id=task["id"], json_patch_operation=ops(*DOCUMENTED_BODY)),
                 lambda: api.get_task_status_list_v1(count=True)]
        for call in calls:
            with strict(), pytest.raises(UnauthorizedException) as caught:
                call()
            exc = caught.value
            assert exc.status == 401
            assert isinstance(exc.data, GetTaskStatusV1401Response)
            assert exc.data.error == message
            assert json.loads(exc.body) == {"error": message}
            assert exc.headers["Content-Type"] == "application/json; charset=utf-8"

    check(sdk(srv.base_url, "tg_not-a-real-token"), "invalid token")

    # a token past its expiry (the CLI stored int(its now) + 1) is refused
    time.sleep(max(0.0, int(after_cli) + 1.05 - time.time()))
    check(sdk(srv.base_url, expiring), "token expired")

    # no Authorization header at all
    reply = http("GET", f"{srv.base_url}/task-status/v1/{task['id']}", None)
    assert reply.status == 401
    assert reply.json == {"error": "no authorization header"}
    assert raw_get(srv, task["id"]) == task
