"""SuperOffice PUT /api/v1/BatchTask/{Id} in process: the vendor's own sample, every body
format, XML both ways, hostile XML, and bad input that must change nothing."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from structlog.testing import capture_logs

from gateway.apis import superoffice
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password
from gateway.context import STORE
from schemas.superoffice import BatchTaskInfoOutSchema, SoErrorSchema
from tests.superoffice_expected import rights

STYLE = "superoffice"
#: tje0:Tje0, the credentials of the vendor's sample request
TJE0_BASIC = "Basic dGplMDpUamUw"

# The stored task 819 before the vendor's sample PUT; owned by associate 627 (tje0).
SEED = {
    "Id": 819, "Name": "Nightly export", "AssociateId": 627, "DetailsTable": 12, "DetailsRecord": 34,
    "IsSystemTask": False, "IsInternalTask": True,
    "ParameterObject": {"target": "ftp", "format": "csv"},
    "LastStarted": "2024-03-30T22:15:00.000Z", "Created": "2024-01-02T08:00:00.000Z", "StartCount": 3,
    "DatabaseSerialNumber": "1000123", "Context": "export", "Result": "ok", "State": "Started",
    "Description": "Exports the day's sales", "Response": "", "Request": "run",
    "ProgressDescription": "Writing rows", "ProgressPercent": 40, "FileName": "sales.csv",
    "CancellationBehaviour": "CanCancel",
}

# The "Sample request" of the vendor's PUT BatchTask/{Id} page, byte for byte.
VENDOR_SAMPLE_BODY = b'''{
  "Id": 819,
  "Name": "Kilback Group",
  "AssociateId": 627,
  "DetailsTable": 421,
  "DetailsRecord": 739,
  "IsSystemTask": false,
  "IsInternalTask": false,
  "ParameterObject": {
    "ParameterObject1": "ipsum",
    "ParameterObject2": "officia"
  },
  "LastStarted": "2018-06-22T16:32:48.2902385+02:00",
  "Created": "2007-07-11T16:32:48.2902385+02:00",
  "StartCount": 904,
  "DatabaseSerialNumber": "1305401",
  "Context": "veritatis",
  "Result": "fugit",
  "State": "All",
  "Description": "Extended 6th generation monitoring",
  "Response": "et",
  "Request": "neque",
  "ProgressDescription": "Triple-buffered content-based analyzer",
  "ProgressPercent": 640,
  "FileName": "Prohaska, Tremblay and Waelchi",
  "CancellationBehaviour": "CanCancel"
}'''
VENDOR_SAMPLE_HEADERS = {"Authorization": TJE0_BASIC, "Accept": "application/json; charset=utf-8",
                         "Accept-Language": "fr,de,ru,zh", "Content-Type": "application/json; charset=utf-8"}

def owner_rights() -> dict[str, Any]:
    """TableRight and FieldProperties as the owner (tje0) of a task sees them."""
    return rights("owner")

# the same requests and answers on a SQLite file and on PostgreSQL
pytestmark = pytest.mark.both_backends


def seen(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as a client without SO-TimeZone sees it (base zone UTC)."""
    out = dict(doc)
    for name in ("LastStarted", "Created"):
        out[name] = doc[name][:19] if doc[name] else "0001-01-01T00:00:00"
    return out


def so_error(status_type: str, message: str) -> dict[str, Any]:
    return {"Error": True, "ErrorType": status_type, "ErrorMessage": message,
            "ErrorSource": "SuperOffice.Services.Implementation"}


@pytest.fixture(name="so")
async def _so(api):
    """The api fixture plus tje0 (associate 627, owner of task 819) and the task itself."""
    await api.store.add_user("tje0", "user", hash_password("Tje0"), associate_id=627)
    api.tje0 = await api.client.app[AUTHENTICATOR].create_token("tje0")
    task_id, doc = superoffice.import_task(SEED, "2024-01-02T08:00:00.000Z")
    await api.store.put(STYLE, task_id, doc, actor="seed", request_id="seed")
    return api


async def send(api, method: str, path: str, data: bytes | str | None = None, **headers: str):
    resp = await api.client.request(method, path, data=data, headers=headers)
    return resp.status, await resp.read(), resp.headers


async def stored(api, task_id: str = "819") -> dict[str, Any]:
    (doc,), = await api.db_rows("SELECT doc FROM tasks WHERE style = ? AND id = ?", STYLE, task_id)
    return json.loads(doc)


async def test_the_vendor_sample_put_replayed_byte_for_byte_changes_only_the_four_fields(so):
    with capture_logs() as logs:
        status, body, headers = await send(so, "PUT", "/api/v1/BatchTask/819", VENDOR_SAMPLE_BODY,
                                           **VENDOR_SAMPLE_HEADERS)
    expected = {**SEED, "State": "All", "Description": "Extended 6th generation monitoring", "Response": "et",
                "Request": "neque"}
    assert status == 200, body
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert (headers["ETag"], headers["Content-Language"]) == ('"2"', "en")
    assert json.loads(body) == {**seen(expected), **owner_rights()}
    assert BatchTaskInfoOutSchema().validate(json.loads(body)) == {}  # the documented response shape
    assert await stored(so) == expected
    rows = await so.db_rows("SELECT version, actor, action, patch FROM audit WHERE task_id = '819' ORDER BY seq")
    assert [(v, a, act, json.loads(p)) for v, a, act, p in rows][1:] == [(2, "tje0", "updated", [
        {"op": "replace", "path": "/Request", "value": "neque"},
        {"op": "replace", "path": "/Response", "value": "et"},
        {"op": "replace", "path": "/Description", "value": "Extended 6th generation monitoring"},
        {"op": "replace", "path": "/State", "value": "All"}])]
    assert [e["event"] for e in logs if e["event"].startswith("task.")] == ["task.updated"]


CHANGE = {"State": "Failed", "Description": "disk full", "Request": "r2"}
PATCH = [{"op": "replace", "path": "/State", "value": "Failed"},
         {"op": "test", "path": "description", "value": SEED["Description"]},
         {"op": "replace", "path": "Description", "value": "disk full"},
         {"op": "replace", "path": "/request", "value": "r2"}]
FORMATS = {
    "json": ("application/json", json.dumps(CHANGE)),
    "text/json, lower-case names, Name ignored": (
        "text/json; charset=utf-8", json.dumps({"state": "failed", "DESCRIPTION": "disk full", "request": "r2",
                                                "name": "not changed", "Id": 5})),
    "xml": ("application/xml", "<BatchTaskInfo><State>Failed</State><Description>disk full</Description>"
                               "<Request>r2</Request><Name>not changed</Name></BatchTaskInfo>"),
    "text/xml, State as a number": (
        "text/xml", '<?xml version="1.0" encoding="utf-8"?>\n<BatchTaskInfo>\n  <state>5</state>\n'
                    "  <description>disk full</description>\n  <REQUEST>r2</REQUEST>\n</BatchTaskInfo>"),
    "form": ("application/x-www-form-urlencoded", "State=Failed&Description=disk+full&Request=r2&StartCount=1"),
    "json-patch": ("application/json-patch+json", json.dumps(PATCH)),
    "JSON Patch sent as application/json (the npm client does)": ("application/json", json.dumps(PATCH)),
    "merge-patch": ("application/merge-patch+json",
                    json.dumps({"state": "Failed", "Description": "disk full", "Request": "r2", "Name": "x"})),
}


@pytest.mark.parametrize("content_type, body", list(FORMATS.values()), ids=list(FORMATS))
async def test_every_body_format_leaves_the_same_stored_task(so, content_type: str, body: str):
    status, answer, _ = await send(so, "PUT", "/Cust12345/api/v1/BatchTask/819", body,
                                   Authorization=f"SOTicket {so.tje0}", **{"Content-Type": content_type})
    expected = {**SEED, **CHANGE}
    assert status == 200, answer
    assert json.loads(answer) == {**seen(expected), **owner_rights()}
    assert await stored(so) == expected
    (patch,), = await so.db_rows("SELECT patch FROM audit WHERE task_id = '819' AND version = 2")
    assert sorted(json.loads(patch), key=lambda op: op["path"]) == [
        {"op": "replace", "path": "/Description", "value": "disk full"},
        {"op": "replace", "path": "/Request", "value": "r2"},
        {"op": "replace", "path": "/State", "value": "Failed"}]


def xml_fields(element: ElementTree.Element) -> dict[str, Any]:
    return {child.tag: xml_fields(child) if len(child) else (child.text or "") for child in element}


async def test_xml_in_and_xml_out_round_trip(so):
    status, body, headers = await send(so, "GET", "/api/v1/BatchTask/819", Authorization=f"Bearer {so.tje0}",
                                       Accept="application/xml")
    assert (status, headers["Content-Type"]) == (200, "application/xml; charset=utf-8")
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<BatchTaskInfo><Id>819</Id><Name>Nightly")
    document = ElementTree.fromstring(body)
    assert [xml_fields(p) for p in document.find("ParameterObject")] == [
        {"Key": "target", "Value": "ftp"}, {"Key": "format", "Value": "csv"}]
    assert xml_fields(document.find("TableRight")) == owner_rights()["TableRight"]
    # the client edits what it read and sends the whole document back
    document.find("State").text = "Succeeded"
    document.find("Response").text = "done <ok> & \"fine\""
    document.find("Name").text = "ignored: read-only"
    status, body, headers = await send(so, "PUT", "/api/v1/BatchTask/819", ElementTree.tostring(document),
                                       Authorization=f"Bearer {so.tje0}", Accept="text/xml",
                                       **{"Content-Type": "application/xml"})
    assert (status, headers["Content-Type"]) == (200, "text/xml; charset=utf-8"), body
    expected = {**SEED, "State": "Succeeded", "Response": "done <ok> & \"fine\""}
    assert await stored(so) == expected
    answer = ElementTree.fromstring(body)
    assert answer.tag == "BatchTaskInfo"
    assert [xml_fields(p) for p in answer.find("ParameterObject")] == [
        {"Key": "target", "Value": "ftp"}, {"Key": "format", "Value": "csv"}]
    # every other member, as text: the whole JSON carrier the same request would get
    assert {k: v for k, v in xml_fields(answer).items() if k != "ParameterObject"} == as_text(
        {k: v for k, v in {**seen(expected), **owner_rights()}.items() if k != "ParameterObject"})


def as_text(value: Any) -> Any:
    """A JSON value as XML carries it: every scalar as text."""
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    return "true" if value is True else "false" if value is False else str(value)


HOSTILE_XML = {
    "external entity (XXE)": '<?xml version="1.0"?><!DOCTYPE BatchTaskInfo [<!ENTITY xxe SYSTEM "file://{secret}">]>'
                             "<BatchTaskInfo><Description>&xxe;</Description></BatchTaskInfo>",
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                                for i in range(1, 10))
                      + "]><BatchTaskInfo><Description>&lol9;</Description></BatchTaskInfo>",
    "external DTD": '<?xml version="1.0"?><!DOCTYPE BatchTaskInfo SYSTEM "file://{secret}">'
                    "<BatchTaskInfo><Description>x</Description></BatchTaskInfo>",
    "parameter entity": '<?xml version="1.0"?><!DOCTYPE BatchTaskInfo [<!ENTITY % ext SYSTEM "file://{secret}"> %ext;]>'
                        "<BatchTaskInfo><Description>x</Description></BatchTaskInfo>",
}


@pytest.mark.parametrize("document", list(HOSTILE_XML.values()), ids=list(HOSTILE_XML))
async def test_hostile_xml_is_refused_before_anything_is_expanded_or_read(so, tmp_path: Path, document: str):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    before = await so.snapshot()
    status, body, _ = await send(so, "PUT", "/api/v1/BatchTask/819", document.replace("{secret}", str(secret)),
                                 Authorization=f"Bearer {so.admin}", **{"Content-Type": "application/xml"})
    assert (status, json.loads(body)) == (400, so_error(
        "ArgumentException", "XML with a DTD, entity declarations or external references is refused"))
    assert b"TOP-SECRET" not in body
    assert await so.snapshot() == before


BAD_PUTS = [
    # (id, path, content type, body, token, extra headers, status, ErrorType, message)
    ("malformed JSON", "819", "application/json", '{"State": ', "tje0", {}, 400, "ArgumentException",
     "malformed JSON: Expecting value at line 1 column 11"),
    ("malformed XML", "819", "application/xml", "<BatchTaskInfo><State>Failed</BatchTaskInfo>", "tje0", {}, 400,
     "ArgumentException", "malformed XML: mismatched tag: line 1, column 30"),
    ("wrong XML root", "819", "application/xml", "<Contact><State>Failed</State></Contact>", "tje0", {}, 400,
     "ArgumentException", "the XML root element must be BatchTaskInfo, not 'Contact'"),
    ("XML element where text belongs", "819", "text/xml",
     "<BatchTaskInfo><State><Name>x</Name></State></BatchTaskInfo>", "tje0", {}, 400, "ArgumentException",
     "BatchTaskInfo: <State> must hold text, not elements"),
    ("not an object", "819", "application/json", "42", "tje0", {}, 400, "ArgumentException",
     "the body must be a BatchTaskInfo object or a JSON Patch array"),
    ("merge patch that is an array", "819", "application/merge-patch+json", "[]", "tje0", {}, 400,
     "ArgumentException", "the body must be a BatchTaskInfo object"),
    ("Description of the wrong type", "819", "application/json", '{"Description": 5}', "tje0", {}, 400,
     "ArgumentException", "invalid BatchTaskInfo: Description: Not a valid string."),
    ("unknown State", "819", "application/json", '{"State": "Stopped"}', "tje0", {}, 400, "ArgumentException",
     "invalid BatchTaskInfo: State: 'Stopped' is not one of Unknown (0), New (1), Aquired (2), Started (3), "
     "Succeeded (4), Failed (5), SucceededManualCleanup (6), All (99999)."),
    ("State number out of the enum", "819", "application/json", '{"State": 7}', "tje0", {}, 400,
     "ArgumentException", "invalid BatchTaskInfo: State: '7' is not one of Unknown (0), New (1), Aquired (2), "
     "Started (3), Succeeded (4), Failed (5), SucceededManualCleanup (6), All (99999)."),
    ("State as a boolean", "819", "application/json", '{"State": true}', "tje0", {}, 400, "ArgumentException",
     "invalid BatchTaskInfo: State: Must be a name or number of Unknown (0), New (1), Aquired (2), Started (3), "
     "Succeeded (4), Failed (5), SucceededManualCleanup (6), All (99999)."),
    ("over-long Response", "819", "application/json", json.dumps({"Response": "r" * 255}), "tje0", {}, 400,
     "ArgumentException", "invalid BatchTaskInfo: Response: Longer than maximum length 254."),
    ("over-long Request in a form", "819", "application/x-www-form-urlencoded", "Request=" + "q" * 300, "tje0", {},
     400, "ArgumentException", "invalid BatchTaskInfo: Request: Longer than maximum length 254."),
    ("several bad members at once", "819", "application/json", '{"State": "x", "Description": ["d"]}', "tje0", {},
     400, "ArgumentException", "invalid BatchTaskInfo: State: 'x' is not one of Unknown (0), New (1), Aquired (2), "
     "Started (3), Succeeded (4), Failed (5), SucceededManualCleanup (6), All (99999).; "
     "Description: Not a valid string."),
    ("a member twice in two spellings", "819", "application/json", '{"State": "New", "state": "Failed"}', "tje0",
     {}, 400, "ArgumentException", "BatchTaskInfo: State is given more than once"),
    ("a form field twice", "819", "application/x-www-form-urlencoded", "State=New&State=Failed", "tje0", {}, 400,
     "ArgumentException", "form field 'State' is given more than once"),
    # XML 1.0 cannot carry it: every XML answer holding the task was one no parser reads
    ("a character XML cannot carry", "819", "application/json", '{"Response": "bell\\u0007"}', "tje0", {}, 400,
     "ArgumentException",
     "invalid BatchTaskInfo: Response: holds U+0007, which XML cannot carry (answers may be XML)."),
    ("a patched member XML cannot carry", "819", "application/json-patch+json",
     '[{"op": "replace", "path": "/Description", "value": "\\uffff"}]', "tje0", {}, 400, "ArgumentException",
     "invalid BatchTaskInfo: Description: holds U+FFFF, which XML cannot carry (answers may be XML)."),
    ("a %-escape that is not UTF-8 in a form", "819", "application/x-www-form-urlencoded", "Description=caf%E9",
     "tje0", {}, 400, "ArgumentException", "malformed form body: a %-escape spells bytes that are not UTF-8"),
    ("failed JSON Patch test", "819", "application/json-patch+json",
     '[{"op": "test", "path": "/State", "value": "New"}, {"op": "replace", "path": "/State", "value": "Failed"}]',
     "tje0", {}, 409, "SoConflictException",
     "test failed: /State is not \"New\""),
    ("JSON Patch move", "819", "application/json-patch+json",
     '[{"op": "move", "from": "/Request", "path": "/Response"}]', "tje0", {}, 400, "ArgumentException",
     "[0].op: 'move' is not supported; use add, replace, remove or test"),
    ("JSON Patch on a member that does not exist", "819", "application/json-patch+json",
     '[{"op": "replace", "path": "/Colour", "value": "red"}]', "tje0", {}, 400, "ArgumentException",
     "[0].path: BatchTaskInfo has no member 'Colour'"),
    ("unsupported content type", "819", "text/plain", "State=Failed", "tje0", {}, 415,
     "UnsupportedMediaTypeException",
     "Content-Type 'text/plain' is not supported here; use application/json or text/json or application/xml or "
     "text/xml or application/x-www-form-urlencoded or application/json-patch+json or application/merge-patch+json"),
    ("unknown id", "999", "application/json", '{"State": "Failed"}', "tje0", {}, 404, "SoNotFoundException",
     "BatchTask id 999 not found"),
    ("an id that is no integer", "abc", "application/json", '{"State": "Failed"}', "tje0", {}, 404,
     "SoNotFoundException", "BatchTask id abc not found"),
    ("another user's task", "819", "application/json", '{"State": "Failed"}', "user", {}, 403,
     "SoAccessDeniedException", "you may not update BatchTask 819: only the task's owner (associate 627) or an "
     "administrator may update it"),
    ("a read-only token", "819", "application/json", '{"State": "Failed"}', "read_only", {}, 403,
     "SoAccessDeniedException", "this token is read-only"),
    ("stale If-Match", "819", "application/json", '{"State": "Failed"}', "tje0", {"If-Match": '"7"'}, 412,
     "SoPreconditionFailedException", "task '819' is at version 1, not 7"),
    ("If-Unmodified-Since before the last change", "819", "application/json", '{"State": "Failed"}', "tje0",
     {"If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}, 412, "SoPreconditionFailedException",
     "task '819' was modified after 2024-01-01T00:00:00+00:00"),
    ("unknown SO-TimeZone", "819", "application/json", '{"State": "Failed"}', "tje0", {"SO-TimeZone": "Mars"}, 400,
     "ArgumentException", "SO-TimeZone: unknown time zone 'Mars'; use a SuperOffice code (UTC, NO, DK, FR, US-NY, "
     "US-CA, AU-ACT, CA-QC, BD, US-HI), its numeric id, or an IANA name"),
    ("malformed Accept-Language", "819", "application/json", '{"State": "Failed"}', "tje0",
     {"Accept-Language": "en;q=2"}, 400, "ArgumentException", "Accept-Language: 'en;q=2' is not a language range"),
]


@pytest.mark.parametrize("case", BAD_PUTS, ids=[c[0] for c in BAD_PUTS])
async def test_bad_puts_answer_in_the_envelope_and_change_nothing(so, case):
    _name, task_id, content_type, body, who, extra, status, error_type, message = case
    before = await so.snapshot()
    token = {"tje0": so.tje0, "user": so.user, "read_only": so.read_only}[who]
    got, answer, headers = await send(so, "PUT", f"/api/v1/BatchTask/{task_id}", body,
                                      Authorization=f"Bearer {token}", **{"Content-Type": content_type}, **extra)
    assert (got, json.loads(answer)) == (status, so_error(error_type, message))
    assert SoErrorSchema().validate(json.loads(answer)) == {}
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert await so.snapshot() == before


async def test_wrong_password_is_401_in_the_envelope(so):
    before = await so.snapshot()
    bad = "Basic " + base64.b64encode(b"tje0:wrong").decode()
    status, body, headers = await send(so, "PUT", "/api/v1/BatchTask/819", '{"State": "Failed"}',
                                       Authorization=bad, **{"Content-Type": "application/json"})
    assert (status, json.loads(body)) == (401, so_error("SoAuthenticationException", "invalid user name or password"))
    assert headers["WWW-Authenticate"] == 'Basic realm="SuperOffice"'
    assert await so.snapshot() == before


async def test_a_partial_body_keeps_every_absent_field(so):
    status, body, _ = await send(so, "PUT", "/api/v1/BatchTask/819", '{"Response": "half"}',
                                 Authorization=f"Bearer {so.tje0}", **{"Content-Type": "application/json"})
    assert (status, json.loads(body)) == (200, {**seen({**SEED, "Response": "half"}), **owner_rights()})
    assert await stored(so) == {**SEED, "Response": "half"}
    # null is SuperOffice's empty string, and the same body again changes nothing
    for version in (3, 3):
        status, body, headers = await send(so, "PUT", "/api/v1/BatchTask/819", '{"Response": null}',
                                           Authorization=f"Bearer {so.tje0}", **{"Content-Type": "application/json"})
        assert (status, json.loads(body), headers["ETag"]) == (
            200, {**seen({**SEED, "Response": ""}), **owner_rights()}, f'"{version}"')
    assert await stored(so) == {**SEED, "Response": ""}
    assert await so.db_rows("SELECT version FROM audit WHERE task_id = '819' ORDER BY seq") == [(1,), (2,), (3,)]


async def test_a_base_zone_shapes_dates_without_a_header_and_created_is_utc_only_with_offsets(
        aiohttp_client, config, tmp_path: Path):
    app = create_app(dataclasses.replace(config, base_dir=str(tmp_path / "no")).replace("superoffice", time_zone="NO"))
    client = await aiohttp_client(app)
    await client.app[STORE].add_user("root", "admin", None)
    token = await client.app[AUTHENTICATOR].create_token("root")
    task_id, doc = superoffice.import_task(SEED, "2024-01-02T08:00:00.000Z")
    await client.app[STORE].put(STYLE, task_id, doc, actor="seed", request_id="seed")
    # stored: LastStarted 2024-03-30T22:15Z (Oslo +01:00), Created 2024-01-02T08:00Z (Oslo +01:00)
    for header, last_started, created in [
            (None, "2024-03-30T23:15:00", "2024-01-02T09:00:00"),
            ("NO,includeTZOffset", "2024-03-30T23:15:00+01:00", "2024-01-02T08:00:00Z"),
            ("UTC", "2024-03-30T22:15:00", "2024-01-02T08:00:00"),
            ("US-NY", "2024-03-30T18:15:00", "2024-01-02T03:00:00")]:
        resp = await client.get("/api/v1/BatchTask/819", headers={
            "Authorization": f"Bearer {token}", **({"SO-TimeZone": header} if header else {})})
        body = await resp.json()
        assert (resp.status, body["LastStarted"], body["Created"]) == (200, last_started, created), header
    # an incoming date without offset is read in the base zone
    resp = await client.post("/api/v1/BatchTask", json={"LastStarted": "2024-07-01T12:00:00"},
                             headers={"Authorization": f"Bearer {token}"})
    new_id = await resp.json()
    (stored_doc,) = await client.app[STORE].read_sql("SELECT doc FROM tasks WHERE id = ?", (str(new_id),))
    assert json.loads(stored_doc[0])["LastStarted"] == "2024-07-01T10:00:00.000Z"


async def test_a_read_only_token_reads_through_the_agents_but_changes_nothing(so):
    before = await so.snapshot()
    status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfo", token=so.read_only,
                                       body={"id": 819})
    read_only_view = rights("readonly")
    assert (status, body) == (200, {**seen(SEED), **read_only_view})
    status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfosByState", token=so.read_only,
                                       body={"state": "started"})
    assert (status, body) == (200, [{**seen(SEED), **read_only_view}])
    status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/UpdateBatchTask", token=so.read_only,
                                       body={"batchTaskInfo": {"id": 819, "state": "Failed"}})
    assert (status, body) == (403, so_error("SoAccessDeniedException",
                                            "you may not update BatchTask 819: this token is read-only"))
    assert await so.snapshot() == before


async def test_an_agents_call_with_a_bad_select_is_refused_before_it_writes(so):
    """UpdateBatchTask wrote the change, then refused the $select it answers with: a 400
    that had stored the change, its audit row, its event and its webhook delivery."""
    before = await so.snapshot()
    for call, body in (("UpdateBatchTask", {"BatchTaskInfo": {"Id": 819, "Response": "changed"}}),
                       ("GetBatchTaskInfo", {"Id": 819}), ("GetBatchTaskInfosByState", {"State": "Started"})):
        status, answer, _ = await so.request("POST", f"/api/v1/Agents/Batch/{call}?$select=NoSuchMember",
                                             body=body)
        assert (status, answer) == (400, so_error("ArgumentException", "$select: unknown member NoSuchMember")), call
    assert await so.snapshot() == before


async def test_app_tokens_are_checked_before_the_ticket_so_a_refusal_tells_nothing_of_it(
        aiohttp_client, config, tmp_path: Path):
    app = create_app(dataclasses.replace(config, base_dir=str(tmp_path / "apps")).replace(
        "superoffice", app_tokens="app-1, app-2"))
    client = await aiohttp_client(app)
    await client.app[STORE].add_user("root", "admin", None)
    token = await client.app[AUTHENTICATOR].create_token("root")
    answers = []
    for ticket in (token, "not-a-ticket"):
        resp = await client.get("/api/v1/BatchTask", headers={"Authorization": f"soticket {ticket}"})
        answers.append((resp.status, await resp.json()))
    assert answers == [(401, so_error("SoAuthenticationException", "SOTicket needs a known SO-AppToken header"))] * 2
    resp = await client.get("/api/v1/BatchTask", headers={"Authorization": f"SOTicket {token}", "SO-AppToken": "app-2"})
    assert resp.status == 200


async def test_if_match_takes_precedence_over_if_unmodified_since(so):
    # a current If-Match and a stale If-Unmodified-Since: RFC 9110 ignores the date
    headers = {"Content-Type": "application/json", "If-Match": '"1"',
               "If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    status, body, _ = await send(so, "PUT", "/api/v1/BatchTask/819", '{"State": "Failed"}',
                                 Authorization=f"Bearer {so.tje0}", **headers)
    assert status == 200, body
    assert (await stored(so))["State"] == "Failed"
