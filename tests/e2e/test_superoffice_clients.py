"""SuperOffice's own clients against a real ``taskgate serve`` process.

* ``superoffice-python-sdk`` 0.2.8: its generic REST wrapper ``SOType`` does GET, partial
  PUT and DELETE on ``/Cust12345/api/v1/BatchTask/{id}``, with its ``SOTicket``
  Authorization, its ``SO-AppToken`` and its misspelled ``Accept: aplication/json``. The
  SDK only knows ``https://{env}.superoffice.com``, so the ``requests.Session`` it is given
  has an adapter on ``https://`` that sends each request to the local server instead (and
  records what went out).
* ``@superoffice/webapi`` 12.4.1514, the official TypeScript client: its ``BatchAgent``
  is run by Node (``superoffice_js/batch_agent.js``) and posts camelCase bodies to
  ``/Cust12345/api/v1/Agents/Batch/*``. The script prints what the client parsed (dates as
  ``Date``, rights masks as flag numbers) and what went over the wire, and the tests compare
  both whole. Node runs in a zone five and a half hours from UTC, so a date the server sends
  without its offset would be parsed as the wrong instant.

Tasks are created with taskgate's ``POST /api/v1/BatchTask`` over plain ``urllib``, and
stored state is read back with plain GETs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from superofficesdk.rest import SOType

from tests.e2e.server import Server, http, running
from tests.superoffice_expected import rights

pytestmark = pytest.mark.e2e

TENANT = "Cust12345"
APP_TOKEN = "f2398a3a7wer3759d4b220e9a9c94321"
JS_DIR = Path(__file__).parent / "superoffice_js"
#: no offset, no fraction: SuperOffice's dates when no SO-TimeZone asks for an offset
PLAIN_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
#: Node's zone for the BatchAgent runs: +05:30 all year, so a date without offset parses 5.5 h off
NODE_TZ = "Asia/Kolkata"
NODE_TZ_OFFSET_MINUTES = "330"

FIELDS = ("Id", "Name", "AssociateId", "DetailsTable", "DetailsRecord", "IsSystemTask", "IsInternalTask",
          "ParameterObject", "LastStarted", "Created", "StartCount", "DatabaseSerialNumber", "Context",
          "Result", "State", "Description", "Response", "Request", "ProgressDescription", "ProgressPercent",
          "FileName", "CancellationBehaviour")
DATE_FIELDS = ("LastStarted", "Created")
#: ETableRight and EFieldRight flag values, as the npm client's Enums.ts has them
TABLE_RIGHT_FLAGS = {"None": 0, "Select": 1, "R": 1, "Update": 2, "Insert": 4, "Delete": 8, "FULL": 15,
                     "Filtering": 16, "RestrictedUpdate": 32}
FIELD_RIGHT_FLAGS = {"None": 0, "Read": 1, "Write": 2, "Update": 3, "Nullable": 32, "UIHintMandatory": 64,
                     "UIHintReadOnly": 128}

#: a task as a batch job would register it: every field of the carrier given
NEW_TASK = {
    "Name": "ImportContacts", "AssociateId": 5, "DetailsTable": 5, "DetailsRecord": 1234,
    "IsSystemTask": False, "IsInternalTask": True, "ParameterObject": {"file": "contacts.csv", "mode": "merge"},
    "LastStarted": "2024-05-17T19:33:16", "StartCount": 1, "DatabaseSerialNumber": "1091865",
    "Context": "import", "Result": "", "State": "New", "Description": "Import of contacts.csv",
    "Response": "", "Request": "contacts.csv", "ProgressDescription": "Queued", "ProgressPercent": 0,
    "FileName": "contacts.csv", "CancellationBehaviour": "CanCancel",
}


# -- plain HTTP --------------------------------------------------------------------------
def bearer(server: Server) -> str:
    return f"Bearer {server.admin_token}"


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def task_url(server: Server, tail: str = "") -> str:
    return f"{server.base_url}/{TENANT}/api/v1/BatchTask{tail}"


def create_task(server: Server, **fields: Any) -> int:
    reply = http("POST", task_url(server), bearer(server), {**NEW_TASK, **fields})
    assert reply.status == 200, reply.raw
    task_id = reply.json
    assert isinstance(task_id, int) and not isinstance(task_id, bool) and task_id > 0, task_id
    return task_id


def raw_get(server: Server, task_id: int, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    reply = http("GET", task_url(server, f"/{task_id}"), bearer(server), headers=headers)
    assert reply.status == 200, reply.raw
    return reply.json


def put_state(server: Server, task_id: int, state: str) -> None:
    reply = http("PUT", task_url(server, f"/{task_id}"), bearer(server), {"State": state})
    assert reply.status == 200, reply.raw
    assert reply.json["State"] == state


def not_found(task_id: int) -> dict[str, Any]:
    return {"Error": True, "ErrorType": "SoNotFoundException",
            "ErrorMessage": f"BatchTask id {task_id} not found",
            "ErrorSource": "SuperOffice.Services.Implementation"}


# -- what a task looks like ----------------------------------------------------------------
def expected_task(task_id: int, created: str, **changes: Any) -> dict[str, Any]:
    """The whole carrier of a task made from NEW_TASK, with *changes* applied."""
    doc = {"Id": task_id, **NEW_TASK, "Created": created, **changes}
    doc = {name: doc[name] for name in FIELDS}
    return {**doc, **rights("admin")}


def check_created(doc: dict[str, Any]) -> None:
    """``Created`` is the server's clock, in UTC, to the second and without offset."""
    assert PLAIN_DATE.match(doc["Created"]), doc["Created"]
    created = datetime.fromisoformat(doc["Created"]).replace(tzinfo=UTC)
    now = datetime.now(UTC)
    assert now - timedelta(seconds=60) <= created <= now + timedelta(seconds=1), (created, now)


def with_offset(doc: dict[str, Any]) -> dict[str, Any]:
    """*doc* as ``SO-TimeZone: UTC,includeTZOffset`` returns it: its dates tagged ``Z``."""
    return {**doc, **{k: doc[k] + "Z" for k in DATE_FIELDS if doc[k] is not None}}


# -- superoffice-python-sdk ------------------------------------------------------------------
class ToLocalServer(HTTPAdapter):
    """Mounted on ``https://``: sends the SDK's ``https://online.superoffice.com/...`` requests
    to the local taskgate, unchanged but for scheme and host, and keeps each request sent."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urllib.parse.urlsplit(request.url)
        assert (parts.scheme, parts.netloc) == ("https", "online.superoffice.com"), request.url
        request.url = self.base_url + urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        self.sent.append(request)
        kwargs["timeout"] = 10
        return super().send(request, **kwargs)


@pytest.fixture(name="sdk")
def _sdk(srv: Server) -> tuple[SOType, ToLocalServer]:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    adapter = ToLocalServer(srv.base_url)
    session.mount("https://", adapter)
    return SOType("BatchTask", TENANT, "online", "v1", session, srv.admin_token, APP_TOKEN), adapter


def sdk_headers(srv: Server, content_length: str | None) -> dict[str, str]:
    """Exactly what SOType sends: JSON Content-Type on every call and its ``aplication/json``."""
    headers = {"User-Agent": f"python-requests/{requests.__version__}", "Accept-Encoding": "gzip, deflate",
               "Accept": "aplication/json", "Connection": "keep-alive",
               "Authorization": f"SOTicket {srv.admin_token}", "SO-AppToken": APP_TOKEN,
               "Content-Type": "application/json"}
    if content_length is not None:
        headers["Content-Length"] = content_length
    return headers


def test_sdk_get_partial_put_and_delete_with_tenant_prefix(srv: Server,
                                                           sdk: tuple[SOType, ToLocalServer]) -> None:
    api, wire = sdk
    task_id = create_task(srv)
    stored = raw_get(srv, task_id)
    check_created(stored)
    expected = expected_task(task_id, stored["Created"])
    assert stored == expected
    path = f"/{TENANT}/api/v1/BatchTask/{task_id}"

    # GET: the whole carrier, in the order the SDK parsed it
    got = api.get(str(task_id))
    assert got == expected
    assert list(got) == list(expected)  # PascalCase keys in carrier order
    (sent,) = wire.sent
    assert (sent.method, sent.url, sent.body) == ("GET", srv.base_url + path, None)
    assert dict(sent.headers) == sdk_headers(srv, None)

    # a partial PUT: only State and Description, as an integration reports progress
    reply = api.update(str(task_id), {"State": "Started", "Description": "Importing"}, raw_response=True)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    expected = expected_task(task_id, stored["Created"], State="Started", Description="Importing")
    assert reply.json() == expected
    assert raw_get(srv, task_id) == expected
    sent = wire.sent[-1]
    assert (sent.method, sent.url) == ("PUT", srv.base_url + path)
    assert json.loads(sent.body) == {"State": "Started", "Description": "Importing"}
    assert dict(sent.headers) == sdk_headers(srv, str(len(sent.body)))

    # GET /BatchTask/{state}: an array, this task among the Started ones
    listed = api.get("Started")
    assert isinstance(listed, list) and all(t["State"] == "Started" for t in listed), listed
    assert [t for t in listed if t["Id"] == task_id] == [expected]

    # fields outside State/Description/Response/Request are ignored, absent ones kept
    body = {"Response": "1200 contacts", "Request": "contacts-2.csv", "State": "Succeeded", "Name": "Renamed",
            "AssociateId": 99, "StartCount": 42, "Created": "2001-01-01T00:00:00", "ProgressPercent": 77,
            "Id": task_id + 1000}
    assert api.update(str(task_id), body) == 200  # update() gives only the status by default
    expected = expected_task(task_id, stored["Created"], State="Succeeded", Description="Importing",
                             Response="1200 contacts", Request="contacts-2.csv")
    assert raw_get(srv, task_id) == expected
    assert api.get(str(task_id)) == expected

    # DELETE: 204, and the task is gone for plain GETs and for the SDK (which has no error handling)
    assert api.delete(str(task_id)) == 204
    sent = wire.sent[-1]
    assert (sent.method, sent.url, sent.body) == ("DELETE", srv.base_url + path, None)
    assert dict(sent.headers) == sdk_headers(srv, "0")
    reply = http("GET", task_url(srv, f"/{task_id}"), bearer(srv))
    assert reply.status == 404
    assert reply.json == not_found(task_id)
    assert api.get(str(task_id)) == not_found(task_id)
    assert api.update(str(task_id), {"State": "Failed"}) == 404
    assert api.delete(str(task_id)) == 404
    assert len(wire.sent) == 9


def test_sdk_create_posts_to_the_collection_with_a_trailing_slash(srv: Server,
                                                                  sdk: tuple[SOType, ToLocalServer]) -> None:
    """``SOType.create`` POSTs to ``.../BatchTask/``: its base URL ends in a slash. ASP.NET
    routes match with or without a trailing slash, so taskgate must take it as ``.../BatchTask``."""
    api, wire = sdk
    task_id = api.create({**NEW_TASK, "Name": "CreatedBySdk"})
    (sent,) = wire.sent
    assert (sent.method, sent.url) == ("POST", f"{srv.base_url}/{TENANT}/api/v1/BatchTask/")
    assert dict(sent.headers) == sdk_headers(srv, str(len(sent.body)))
    assert isinstance(task_id, int) and not isinstance(task_id, bool), task_id
    stored = raw_get(srv, task_id)
    check_created(stored)
    assert stored == expected_task(task_id, stored["Created"], Name="CreatedBySdk")


def test_sdk_headers_it_lets_callers_add(srv: Server, sdk: tuple[SOType, ToLocalServer]) -> None:
    """SOType's ``headers=`` argument: other Authorization schemes and SO-TimeZone."""
    api, _ = sdk
    task_id = create_task(srv, Name="HeaderVariants")
    stored = raw_get(srv, task_id)
    expected = expected_task(task_id, stored["Created"], Name="HeaderVariants")
    assert stored == expected

    # the scheme is case-insensitive; Bearer works as well
    for authorization in (f"SOTICKET {srv.admin_token}", f"soticket {srv.admin_token}",
                          f"Bearer {srv.admin_token}"):
        assert api.get(str(task_id), headers={"Authorization": authorization}) == expected

    # Basic, for a user with a password
    srv.cli("user", "add", "batchadmin", "--role", "admin", "--password-stdin", stdin="Tje0-secret\n")
    assert api.get(str(task_id), headers={"Authorization": basic("batchadmin", "Tje0-secret")}) == expected
    got = api.update(str(task_id), {"Description": "via Basic"}, raw_response=True,
                     headers={"Authorization": basic("batchadmin", "Tje0-secret")})
    assert got.status_code == 200
    expected = {**expected, "Description": "via Basic"}
    assert got.json() == expected

    # dates carry their offset when asked to
    got = api.get(str(task_id), headers={"SO-TimeZone": "UTC,includeTZOffset"})
    assert got == with_offset(expected)
    assert got["Created"].endswith("Z") and got["LastStarted"] == "2024-05-17T19:33:16Z"

    # a wrong ticket or password changes nothing
    for authorization in ("SOTicket tg_not-a-real-token", basic("batchadmin", "wrong")):
        reply = api.update(str(task_id), {"State": "Failed"}, raw_response=True,
                           headers={"Authorization": authorization})
        assert reply.status_code == 401
    assert raw_get(srv, task_id) == expected


# -- @superoffice/webapi BatchAgent ------------------------------------------------------------
def run_batch_agent(server: Server, calls: list[dict[str, Any]], *, auth: dict[str, str] | None = None,
                    options: dict[str, Any] | None = None, tz: str = NODE_TZ) -> list[dict[str, Any]]:
    """Run the calls through BatchAgent in one Node process; returns each call's outcome."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the @superoffice/webapi tests need Node.js 18+ (see scripts/_bootstrap)")
    if not (JS_DIR / "node_modules" / "@superoffice" / "webapi").is_dir():
        pytest.fail(f"@superoffice/webapi is not installed in {JS_DIR}: run scripts/test, which runs npm ci")
    plan = {"baseUrl": f"{server.base_url}/{TENANT}/", "appToken": APP_TOKEN,
            "auth": auth if auth is not None else {"ticket": server.admin_token},
            "options": {"languageCode": "en", "cultureCode": "en", "timezone": "UTC", "timezoneInclude": True}
            if options is None else options,
            "calls": calls}
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["TZ"] = tz
    done = subprocess.run([node, "batch_agent.js"], cwd=JS_DIR, input=json.dumps(plan), capture_output=True,
                          text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)["calls"]
    assert [c["method"] for c in outcome] == [c["method"] for c in calls]
    return outcome


def js_date(value: str | None) -> dict[str, Any] | None:
    """What ``new Date(value)`` gives, as batch_agent.js prints it."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, f"{value!r} has no offset: Node would read it in its local zone"
    return {"$date": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") +
            f"{moment.microsecond // 1000:03d}Z"}


def flags(mask: str, table: dict[str, int]) -> int:
    out = 0
    for name in re.split(r",\s*", mask):
        out |= table[name]
    return out


def as_parsed(doc: dict[str, Any]) -> dict[str, Any]:
    """A carrier as the client's converters turn it into a ``BatchTaskInfo`` object."""
    out: dict[str, Any] = {
        "tableRight": {"mask": flags(doc["TableRight"]["Mask"], TABLE_RIGHT_FLAGS),
                       "reason": doc["TableRight"]["Reason"]},
        "fieldProperties": {name: {"fieldRight": {"mask": flags(p["FieldRight"]["Mask"], FIELD_RIGHT_FLAGS),
                                                  "reason": p["FieldRight"]["Reason"]},
                                   "fieldType": p["FieldType"], "fieldLength": p["FieldLength"]}
                            for name, p in doc["FieldProperties"].items()},
    }
    for name in FIELDS:
        value = doc[name]
        out[name[0].lower() + name[1:]] = js_date(value) if name in DATE_FIELDS else value
    return out


def as_sent(parsed: dict[str, Any]) -> dict[str, Any]:
    """A parsed BatchTaskInfo as axios serializes it again: Dates to ISO strings."""
    return {k: (v["$date"] if isinstance(v, dict) and "$date" in v else v) for k, v in parsed.items()}


def agent_headers(authorization: str, content_length: int, **extra: str) -> dict[str, str]:
    headers = {"accept": "application/json", "content-type": "application/json",
               "authorization": authorization, "so-apptoken": APP_TOKEN, "so-language": "en", "so-culture": "en",
               "so-timezone": "UTC,includeTZOffset", "user-agent": "SO-TS-WebApi/1.0",
               "so-browser-tz-offset": NODE_TZ_OFFSET_MINUTES, "accept-encoding": "gzip, compress, deflate, br",
               "content-length": str(content_length), **extra}
    return headers


def check_exchange(server: Server, exchange: dict[str, Any], call: str, body: Any, status: int, data: Any,
                   authorization: str | None = None) -> None:
    """One request the BatchAgent sent and the response it got, all of it."""
    host = server.base_url.removeprefix("http://")
    assert set(exchange) == {"method", "path", "headers", "body", "status", "data"}
    assert (exchange["method"], exchange["path"]) == ("POST", f"/{TENANT}/api/v1/Agents/Batch/{call}")
    assert exchange["headers"] == agent_headers(authorization or f"SOTicket {server.admin_token}",
                                                len(json.dumps(body, separators=(",", ":")).encode()), host=host)
    assert exchange["body"] == body
    assert exchange["status"] == status
    assert exchange["data"] == data


def test_batch_agent_get_update_list_stop_delete(fresh_server: Server) -> None:
    srv = fresh_server  # a new database, so that lists by state are exact
    task_id = create_task(srv)
    other_id = create_task(srv, Name="ExportSales", CancellationBehaviour="CannotCancel")
    put_state(srv, other_id, "Started")
    tz = {"SO-TimeZone": "UTC,includeTZOffset"}
    stored = raw_get(srv, task_id, headers=tz)
    created = stored["Created"].removesuffix("Z")
    assert stored == with_offset(expected_task(task_id, created))
    other = raw_get(srv, other_id, headers=tz)
    assert other == with_offset(expected_task(other_id, other["Created"].removesuffix("Z"), Name="ExportSales",
                                              CancellationBehaviour="CannotCancel", State="Started"))

    calls = [
        {"method": "getBatchTaskInfoAsync", "args": [task_id]},
        # get, modify, update: the object the client parsed goes back whole, camelCase, Dates and all
        {"method": "updateBatchTaskAsync", "args": [{"$result": 0, "set": {
            "state": "Started", "description": "Importing", "request": "contacts-2.csv",
            "name": "Renamed", "startCount": 42, "progressPercent": 50}}]},
        {"method": "getBatchTaskInfosByStateAsync", "args": ["Started"]},
        {"method": "getBatchTaskInfosByStateAsync", "args": ["New"]},
        {"method": "stopBatchJobAsync", "args": [task_id]},
        {"method": "stopBatchJobAsync", "args": [task_id]},  # already Failed
        {"method": "stopBatchJobAsync", "args": [other_id]},  # CannotCancel
        {"method": "getBatchTaskInfoAsync", "args": [task_id]},
        {"method": "deleteBatchTaskAsync", "args": [task_id]},
        {"method": "getBatchTaskInfoAsync", "args": [task_id]},
        {"method": "getBatchTaskInfosByStateAsync", "args": ["Failed"]},
    ]
    out = run_batch_agent(srv, calls)
    assert all(c["ok"] for c in out), [c.get("error") for c in out]
    wires = [c["wire"] for c in out]
    assert all(len(w) == 1 for w in wires), wires

    # GetBatchTaskInfo: {"id": n} in, the carrier with Z-dates out, parsed into Dates and flags
    check_exchange(srv, wires[0][0], "GetBatchTaskInfo", {"id": task_id}, 200, stored)
    assert out[0]["value"] == as_parsed(stored)
    assert out[0]["value"]["tableRight"]["mask"] == 15  # Select | Update | Insert | Delete
    assert out[0]["value"]["created"] == js_date(created + "Z")
    assert out[0]["value"]["lastStarted"] == {"$date": "2024-05-17T19:33:16.000Z"}

    # UpdateBatchTask: only state, description and request change; the reply is the stored carrier
    started = with_offset(expected_task(task_id, created, State="Started", Description="Importing",
                                        Request="contacts-2.csv"))
    sent = {**as_sent(as_parsed(stored)), "state": "Started", "description": "Importing",
            "request": "contacts-2.csv", "name": "Renamed", "startCount": 42, "progressPercent": 50}
    check_exchange(srv, wires[1][0], "UpdateBatchTask", {"batchTaskInfo": sent}, 200, started)
    assert out[1]["value"] == as_parsed(started)

    # GetBatchTaskInfosByState
    check_exchange(srv, wires[2][0], "GetBatchTaskInfosByState", {"state": "Started"}, 200, [started, other])
    assert out[2]["value"] == [as_parsed(started), as_parsed(other)]
    check_exchange(srv, wires[3][0], "GetBatchTaskInfosByState", {"state": "New"}, 200, [])
    assert out[3]["value"] == []

    # StopBatchJob: true once for a cancellable running task, then false; false for CannotCancel
    for n, result in ((4, True), (5, False), (6, False)):
        target = task_id if n < 6 else other_id
        check_exchange(srv, wires[n][0], "StopBatchJob", {"id": target}, 200, result)
        assert out[n]["value"] is result
    stopped = with_offset(expected_task(task_id, created, State="Failed", Description="Importing",
                                        Request="contacts-2.csv", Response="Stopped by admin"))  # by whom: the caller
    check_exchange(srv, wires[7][0], "GetBatchTaskInfo", {"id": task_id}, 200, stopped)
    assert out[7]["value"] == as_parsed(stopped)

    # DeleteBatchTask: 204 and an empty body, which the client resolves as ""; then GetBatchTaskInfo is null
    check_exchange(srv, wires[8][0], "DeleteBatchTask", {"batchTaskId": task_id}, 204, "")
    assert out[8]["value"] == ""
    check_exchange(srv, wires[9][0], "GetBatchTaskInfo", {"id": task_id}, 200, None)
    assert out[9]["value"] is None
    check_exchange(srv, wires[10][0], "GetBatchTaskInfosByState", {"state": "Failed"}, 200, [])

    # the stored state, read back with plain GETs
    reply = http("GET", task_url(srv, f"/{task_id}"), bearer(srv))
    assert reply.status == 404 and reply.json == not_found(task_id)
    assert raw_get(srv, other_id, headers=tz) == other


def test_batch_agent_without_timezone_option_gets_plain_dates(srv: Server) -> None:
    """No SO-TimeZone header: dates without offset, which Node reads as its local time."""
    task_id = create_task(srv, Name="PlainDates")
    stored = raw_get(srv, task_id)
    assert stored == expected_task(task_id, stored["Created"], Name="PlainDates")
    out = run_batch_agent(srv, [{"method": "getBatchTaskInfoAsync", "args": [task_id]}],
                          options={"languageCode": "en"}, tz="UTC")
    (call,) = out
    assert call["ok"], call
    (exchange,) = call["wire"]
    assert "so-timezone" not in exchange["headers"]
    assert exchange["headers"]["so-browser-tz-offset"] == "0"
    assert exchange["data"] == stored
    assert call["value"] == as_parsed(with_offset(stored))  # read in a UTC process: the same instants


@pytest.mark.parametrize("kind", ["ticket", "token", "password"])
def test_batch_agent_authentication(srv: Server, kind: str) -> None:
    """WebApi.authenticateWithTicket / WithToken / WithPassword, and a wrong credential."""
    task_id = create_task(srv, Name=f"Auth-{kind}")
    tz = {"SO-TimeZone": "UTC,includeTZOffset"}
    stored = raw_get(srv, task_id, headers=tz)
    if kind == "password":
        user = f"agent-{kind}"
        srv.cli("user", "add", user, "--role", "admin", "--password-stdin", stdin="s3cret-pw\n")
        good, bad = {"username": user, "password": "s3cret-pw"}, {"username": user, "password": "nope"}
        authorization = basic(user, "s3cret-pw")
    else:
        good, bad = {kind: srv.admin_token}, {kind: "tg_not-a-real-token"}
        authorization = f"{'SOTicket' if kind == 'ticket' else 'Bearer'} {srv.admin_token}"

    out = run_batch_agent(srv, [{"method": "getBatchTaskInfoAsync", "args": [task_id]},
                                {"method": "updateBatchTaskAsync", "args": [{"$result": 0,
                                                                             "set": {"response": kind}}]}],
                          auth=good)
    assert [c["ok"] for c in out] == [True, True], out
    check_exchange(srv, out[0]["wire"][0], "GetBatchTaskInfo", {"id": task_id}, 200, stored, authorization)
    updated = {**stored, "Response": kind}
    assert out[1]["value"] == as_parsed(updated)
    assert raw_get(srv, task_id, headers=tz) == updated

    out = run_batch_agent(srv, [{"method": "getBatchTaskInfoAsync", "args": [task_id]},
                                {"method": "stopBatchJobAsync", "args": [task_id]}], auth=bad)
    for call in out:
        assert call["ok"] is False
        assert call["error"]["status"] == 401
        assert call["error"]["message"] == "Request failed with status code 401"
    assert raw_get(srv, task_id, headers=tz) == updated  # not stopped


# -- the server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", name="srv")
def _srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("superoffice-clients")) as server:
        yield server
