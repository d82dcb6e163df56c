"""SuperOffice BatchTask routes in process: list, create, get, delete, Stop, the Agents calls,
auth (Basic, SOTicket, Bearer, cookie session), headers (time zones, languages, Accept),
conditional requests and strict_readonly. Whole bodies, stored rows and audit rows asserted.

The PUT body formats, the vendor sample replay, XML parsing hazards and the PUT bad-input
table live in test_superoffice_api.py.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, fromstring

import pytest

from gateway.apis import superoffice, superoffice_agents
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, hash_password, secret_hash
from gateway.context import STORE
from tests.conftest import Api
from tests.superoffice_expected import FIELDS, OWNER_ID, READ_ONLY_REASON, rights

STYLE = "superoffice"
SOURCE = "SuperOffice.Services.Implementation"
EMPTY_DATE = "0001-01-01T00:00:00"
SEEDED = "2024-01-02T03:04:05.678Z"  # the Created of seeded tasks, with milliseconds as real ones have
TJE0_HASH = hash_password("Tje0")  # once per module: scrypt is slow on purpose
STATES = ["Unknown", "New", "Aquired", "Started", "Succeeded", "Failed", "SucceededManualCleanup", "All"]
CANCELLATIONS = ["CanCancel", "CancelWithWarning", "CannotCancel"]
STATE_LIST = ("Unknown (0), New (1), Aquired (2), Started (3), Succeeded (4), Failed (5), "
              "SucceededManualCleanup (6), All (99999)")


# -- helpers --------------------------------------------------------------------------------
def so_error(status_type: str, message: str) -> dict[str, Any]:
    return {"Error": True, "ErrorType": status_type, "ErrorMessage": message, "ErrorSource": SOURCE}


def bad(message: str) -> dict[str, Any]:
    return so_error("ArgumentException", message)


def stored_doc(task_id: int, **fields: Any) -> dict[str, Any]:
    """A stored BatchTaskInfo: every member, defaults where not given."""
    doc = {"Id": task_id, "Name": "", "AssociateId": 0, "DetailsTable": 0, "DetailsRecord": 0,
           "IsSystemTask": False, "IsInternalTask": False, "ParameterObject": {}, "LastStarted": None,
           "Created": SEEDED, "StartCount": 0, "DatabaseSerialNumber": "", "Context": "", "Result": "",
           "State": "New", "Description": "", "Response": "", "Request": "", "ProgressDescription": "",
           "ProgressPercent": 0, "FileName": "", "CancellationBehaviour": "CanCancel"}
    doc.update(fields)
    return doc


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """What a client sees of a stored doc without SO-TimeZone: UTC, whole seconds, no offset."""
    return {**doc, "LastStarted": doc["LastStarted"][:19] if doc["LastStarted"] else EMPTY_DATE,
            "Created": doc["Created"][:19]}


def full(doc: dict[str, Any], who: str = "admin") -> dict[str, Any]:
    return {**view(doc), **rights(who, doc["AssociateId"])}


async def seed(api: Api, task_id: int, **fields: Any) -> dict[str, Any]:
    """Store a task as `taskgate import` does; returns the stored document."""
    tid, doc = superoffice.import_task({"Id": task_id, "Created": SEEDED, **fields}, SEEDED)
    await api.store.put(STYLE, tid, doc, actor="seed", request_id="seed")
    assert doc == stored_doc(task_id, **fields)
    return doc


async def stored(api: Api, task_id: int) -> dict[str, Any] | None:
    rows = await api.db_rows("SELECT doc FROM tasks WHERE style = ? AND id = ?", STYLE, str(task_id))
    return json.loads(rows[0][0]) if rows else None


async def audit(api: Api) -> list[tuple]:
    return await api.db_rows("SELECT task_id, version, action, actor FROM audit ORDER BY seq")


async def raw(api: Api, method: str, path: str, *, headers: dict[str, str] | None = None,
              data: bytes | str | None = None) -> tuple[int, str, Any]:
    resp = await api.client.request(method, path, data=data, headers=headers or {})
    return resp.status, await resp.text(), resp.headers


def base_url(api: Api) -> str:
    return f"http://{api.client.host}:{api.client.port}"


def xml_obj(element: Element) -> Any:
    """An XML answer as the JSON it mirrors (scalars as text)."""
    if element.get("nil") == "true":
        return None
    if element.tag == "ParameterObject" and all(c.tag == "KeyValueOfstringstring" for c in element):
        return {pair.find("Key").text or "": pair.find("Value").text or "" for pair in element}
    if len(element):
        if element.tag in ("value", "ArrayOfBatchTaskInfo", "Result") and all(c.tag == "BatchTaskInfo"
                                                                                for c in element):
            return [xml_obj(c) for c in element]
        return {child.tag: xml_obj(child) for child in element}
    return element.text or ""


def as_text(value: Any) -> Any:
    """The JSON expectation with scalars written as XML text."""
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _add_users(client) -> Api:
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", None)
    await store.add_user("reader", "user", None)
    await store.add_user("tje0", "user", TJE0_HASH, associate_id=OWNER_ID)
    api = Api(client, store, admin=await auth.create_token("root"), user=await auth.create_token("alice"),
              read_only=await auth.create_token("reader", read_only=True))
    api.owner = await auth.create_token("tje0")  # type: ignore[attr-defined]
    return api


@pytest.fixture(name="make_api")
def _make_api(aiohttp_client, config):
    """A real app on a temporary SQLite file, with `superoffice` settings changed if given.

    Users: root (admin), alice (user), reader (read-only token), tje0 (password Tje0,
    associate 627: the owner of tasks with AssociateId 627)."""
    async def make(**settings: Any) -> Api:
        app_config = config.replace("superoffice", **settings) if settings else config
        return await _add_users(await aiohttp_client(create_app(app_config)))
    return make


@pytest.fixture(name="so")
async def _so(make_api) -> Api:
    return await make_api()


# -- list: GET /api/v1/BatchTask --------------------------------------------------------------
LIST_TASKS = [  # id, fields
    (1, {"Name": "Import", "AssociateId": 627, "State": "New"}),
    (2, {"Name": "Export", "AssociateId": 700, "State": "Started", "LastStarted": "2024-07-01T10:00:00.250Z"}),
    (3, {"Name": "O'Brien", "AssociateId": 627, "State": "Started"}),
    (4, {"Name": "Import", "AssociateId": 0, "State": "Failed", "IsSystemTask": True}),
    (5, {"Name": "Archive", "AssociateId": 700, "State": "New", "ParameterObject": {"k": "v"}}),
]


@pytest.fixture(name="listed")
async def _listed(so: Api) -> dict[int, dict[str, Any]]:
    return {task_id: await seed(so, task_id, **fields) for task_id, fields in LIST_TASKS}


async def test_list_is_the_odata_envelope_of_every_task(so, listed):
    for prefix in ("", "/Cust12345"):
        status, body, headers = await so.request("GET", f"{prefix}/api/v1/BatchTask", token=so.read_only)
        assert (status, headers["Content-Type"], headers["Content-Language"]) == (
            200, "application/json; charset=utf-8", "en")
        assert body == {"odata.metadata": f"{base_url(so)}{prefix}/api/v1/$metadata#BatchTask",
                        "odata.nextLink": None, "value": [view(listed[n]) for n in (1, 2, 3, 4, 5)]}


async def test_list_pages_with_top_skip_and_next_link(so, listed):
    base = base_url(so)
    status, body, _ = await so.request("GET", "/Cust12345/api/v1/BatchTask?$top=2")
    assert (status, body) == (200, {
        "odata.metadata": f"{base}/Cust12345/api/v1/$metadata#BatchTask",
        "odata.nextLink": f"{base}/Cust12345/api/v1/BatchTask?$top=2&$skip=2",
        "value": [view(listed[1]), view(listed[2])]})
    status, body, _ = await so.request("GET", body["odata.nextLink"][len(base):])
    assert (status, body) == (200, {
        "odata.metadata": f"{base}/Cust12345/api/v1/$metadata#BatchTask",
        "odata.nextLink": f"{base}/Cust12345/api/v1/BatchTask?$top=2&$skip=4",
        "value": [view(listed[3]), view(listed[4])]})
    status, body, _ = await so.request("GET", body["odata.nextLink"][len(base):])
    assert (status, body) == (200, {"odata.metadata": f"{base}/Cust12345/api/v1/$metadata#BatchTask",
                                    "odata.nextLink": None, "value": [view(listed[5])]})
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$skip=3&$orderBy=Id desc&$TOP=1")
    assert (status, body) == (200, {"odata.metadata": f"{base}/api/v1/$metadata#BatchTask",
                                    "odata.nextLink": f"{base}/api/v1/BatchTask?$orderBy=Id+desc&$TOP=1&$skip=4",
                                    "value": [view(listed[2])]})
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$skip=9")
    assert (status, body) == (200, {"odata.metadata": f"{base}/api/v1/$metadata#BatchTask",
                                    "odata.nextLink": None, "value": []})


async def test_top_zero_has_no_next_link(so, listed):
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$top=0")
    assert (status, body) == (200, {"odata.metadata": f"{base_url(so)}/api/v1/$metadata#BatchTask",
                                    "odata.nextLink": None, "value": []})


async def test_list_order_by(so, listed):
    for order, ids in [("Name", [5, 2, 1, 4, 3]), ("name ASC", [5, 2, 1, 4, 3]), ("Name desc", [3, 1, 4, 2, 5]),
                       ("Id desc", [5, 4, 3, 2, 1]), ("AssociateId desc,Name asc", [5, 2, 1, 3, 4]),
                       ("AssociateId, Id desc", [4, 3, 1, 5, 2]), ("LastStarted desc,Id", [2, 1, 3, 4, 5]),
                       ("", [1, 2, 3, 4, 5]),
                       # a member named again sorts nothing more (2,100 of them were past SQLite's
                       # ORDER BY limit: a 500)
                       ("Name desc," + ",".join(["Id"] * 2100), [3, 1, 4, 2, 5])]:
        status, body, _ = await so.request("GET", f"/api/v1/BatchTask?$orderBy={order}&$select=Id")
        assert (status, body["value"]) == (200, [{"Id": n} for n in ids]), order


async def test_list_ties_go_in_numeric_id_order_and_state_all_matches_every_state(so):
    for n in range(1, 13):
        await seed(so, n, State=("New", "Failed")[n % 2])
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$orderBy=AssociateId&$select=Id")
    assert (status, body["value"]) == (200, [{"Id": n} for n in range(1, 13)])  # not 1, 10, 11, 12, 2, …
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$filter=State eq 'all' and Name eq ''&$select=Id")
    assert (status, body["value"]) == (200, [{"Id": n} for n in range(1, 13)])
    before = await so.snapshot()
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$filter=State ne 'All'")
    assert (status, body) == (400, bad("$filter: State ne 'All' matches no task"))
    assert await so.snapshot() == before


async def test_list_orders_state_by_its_value(so, listed):
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$orderBy=State,Id&$select=Id,State")
    assert (status, body["value"]) == (200, [{"Id": 1, "State": "New"}, {"Id": 5, "State": "New"},
                                             {"Id": 2, "State": "Started"}, {"Id": 3, "State": "Started"},
                                             {"Id": 4, "State": "Failed"}])


async def test_list_select_keeps_the_named_members_in_the_order_given(so, listed):
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$select=name,Id,parameterObject,Name&$top=5")
    assert (status, body["value"]) == (200, [
        {"Name": listed[n]["Name"], "Id": n, "ParameterObject": listed[n]["ParameterObject"]} for n in range(1, 6)])
    assert list(body["value"][0]) == ["Name", "Id", "ParameterObject"]


async def test_list_filter(so, listed):
    for text, ids in [("State eq 'started'", [2, 3]), ("state EQ 3", [2, 3]),
                      ("State eq 'STARTED' and AssociateId eq 627", [3]), ("State ne 'New'", [2, 3, 4]),
                      ("Name eq 'O''Brien'", [3]), ("Name eq 'Import' AND State ne 'failed'", [1]),
                      ("AssociateId ne 627 and Name ne 'Export'", [4, 5]), ("AssociateId eq -1", []),
                      ("  Name eq 'Archive'  ", [5]), ("Name eq 'Import' and Name ne 'Import'", [])]:
        status, body, _ = await so.request("GET", f"/api/v1/BatchTask?$filter={text}")
        assert (status, body["odata.nextLink"], body["value"]) == (200, None, [view(listed[n]) for n in ids]), text


async def test_list_format_xml(so, listed):
    base = base_url(so)
    for fmt in ("xml", "XML"):
        status, text, headers = await raw(so, "GET", f"/api/v1/BatchTask?$format={fmt}&$top=1&$select=Id,Name",
                                          headers=so.auth())
        assert (status, headers["Content-Type"]) == (200, "application/xml; charset=utf-8")
        assert text == ("<?xml version='1.0' encoding='utf-8'?>\n<BatchTaskList>"
                        f"<odata.metadata>{base}/api/v1/$metadata#BatchTask</odata.metadata>"
                        f"<odata.nextLink>{base}/api/v1/BatchTask?$format={fmt}&amp;$top=1&amp;$select=Id,Name"
                        "&amp;$skip=1</odata.nextLink>"
                        "<value><BatchTaskInfo><Id>1</Id><Name>Import</Name></BatchTaskInfo></value></BatchTaskList>")
    status, text, _ = await raw(so, "GET", "/api/v1/BatchTask?$format=xml&$skip=1&$top=2",
                                headers={**so.auth(), "Accept": "application/json"})
    root = fromstring(text.encode())
    assert (status, root.tag, xml_obj(root)) == (200, "BatchTaskList", {
        "odata.metadata": f"{base}/api/v1/$metadata#BatchTask",
        "odata.nextLink": f"{base}/api/v1/BatchTask?$format=xml&$top=2&$skip=3",
        "value": as_text([view(listed[2]), view(listed[3])])})
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$format=json&$top=1&$select=Id",
                                       headers={"Accept": "application/xml"})
    assert (status, body["value"]) == (200, [{"Id": 1}])


BAD_LISTS = [
    ("$filter=State eq 'New' or Name eq 'x'", "$filter: 'or' is not supported; terms are joined with and"),
    ("$filter=AssociateId gt 5", "$filter: operator 'gt' is not supported; use eq, ne and and"),
    ("$filter=Name ge 'a'", "$filter: operator 'ge' is not supported; use eq, ne and and"),
    ("$filter=Description eq 'x'", "$filter: 'Description' cannot be filtered on; use State, Name, AssociateId"),
    ("$filter=(State eq 'New')", "$filter: '(' cannot be filtered on; use State, Name, AssociateId"),
    ("$filter=not State eq 'New'", "$filter: 'not' cannot be filtered on; use State, Name, AssociateId"),
    ("$filter=State eq 'Running'", f"invalid BatchTaskInfo: State: 'Running' is not one of {STATE_LIST}."),
    ("$filter=AssociateId eq '627'", "$filter: AssociateId compares with an integer, not '627'"),
    ("$filter=Name eq 5", "$filter: Name compares with text in quotes, not 5"),
    ("$filter=Name eq Import", "$filter: 'Import' is not a value; quote text as 'text'"),
    ("$filter=State eq 'New' and", "$filter: expected 'Field eq|ne value' at the end of \"State eq 'New' and\""),
    ("$mode=full", "$mode is not supported; use $filter, $orderby, $select, $top, $skip, $format"),
    ("$entities=x", "$entities is not supported; use $filter, $orderby, $select, $top, $skip, $format"),
    ("$top=1001", "$top must be a non-negative integer at most 1000; got '1001'"),
    ("$top=-1", "$top must be a non-negative integer at most 1000; got '-1'"),
    ("$top=ten", "$top must be a non-negative integer at most 1000; got 'ten'"),
    ("$skip=1.5", "$skip must be a non-negative integer; got '1.5'"),
    ("$orderBy=ParameterObject", "$orderBy: cannot sort by 'ParameterObject'; use a member name and asc or desc"),
    ("$orderBy=Name sideways", "$orderBy: cannot sort by 'Name sideways'; use a member name and asc or desc"),
    ("$select=Nope,Id", "$select: unknown member Nope"),
    ("$select=TableRight", "$select: unknown member TableRight"),
    ("$format=csv", "$format must be JSON or XML; got 'csv'"),
]


async def test_list_refuses_what_it_does_not_support(so, listed):
    before = await so.snapshot()
    for query, message in BAD_LISTS:
        for prefix in ("", "/Cust12345"):
            status, body, _ = await so.request("GET", f"{prefix}/api/v1/BatchTask?{query}")
            assert (status, body) == (400, bad(message)), query
    assert await so.snapshot() == before


async def test_huge_integers_are_a_bad_request_not_a_fault(so, listed):
    status, body, _ = await so.request("GET", "/api/v1/BatchTask?$filter=AssociateId eq 99999999999999999999")
    assert (status, body) == (400, bad("$filter: AssociateId 99999999999999999999 is out of range"))


async def test_huge_associate_ids_in_an_agent_call_are_not_a_fault(so, listed):
    status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfosByAssociates",
                                       body={"AssociateIds": [99999999999999999999, 627]})
    assert (status, body) == (200, [full(listed[1]), full(listed[3])])


# -- create: POST /api/v1/BatchTask --------------------------------------------------------------
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_create_answers_the_new_id_and_stores_a_complete_task(so):
    status, text, headers = await raw(so, "POST", "/api/v1/BatchTask", headers={
        **so.auth(), "Content-Type": "application/json", "X-Request-ID": "create-1"},
        data=json.dumps({"Id": 999, "name": "Import", "AssociateId": 627, "State": 3, "Bogus": 1,
                         "ParameterObject": {"file": "a.csv"}, "Created": None}))
    assert (status, text, headers["Content-Type"]) == (200, "1", "application/json; charset=utf-8")
    doc = await stored(so, 1)
    assert ISO_MS.match(doc["Created"])
    assert doc == stored_doc(1, Name="Import", AssociateId=627, State="Started",
                             ParameterObject={"file": "a.csv"}, Created=doc["Created"])
    assert await so.db_rows("SELECT task_id, version, action, actor, request_id FROM audit") == [
        ("1", 1, "created", "root", "create-1")]
    for expected in (2, 3):
        status, body, _ = await so.request("POST", "/Cust12345/api/v1/BatchTask", body={})
        assert (status, body) == (200, expected)
    three = await stored(so, 3)
    assert three == stored_doc(3, Created=three["Created"])
    status, _, _ = await so.request("DELETE", "/api/v1/BatchTask/3")
    assert status == 204
    status, body, _ = await so.request("POST", "/api/v1/BatchTask", body={"Name": "after delete"})
    assert (status, body) == (200, 4)  # ids are never reused
    assert await audit(so) == [("1", 1, "created", "root"), ("2", 1, "created", "root"),
                               ("3", 1, "created", "root"), ("3", 2, "deleted", "root"),
                               ("4", 1, "created", "root")]


async def test_create_from_xml_answers_xml(so):
    xml = ("<BatchTaskInfo><Name>From XML</Name><State>Aquired</State><IsSystemTask>true</IsSystemTask>"
           "<CancellationBehaviour>2</CancellationBehaviour><ParameterObject><KeyValueOfstringstring>"
           "<Key>a</Key><Value>b</Value></KeyValueOfstringstring></ParameterObject>"
           "<LastStarted>2024-07-01T10:00:00</LastStarted></BatchTaskInfo>")
    status, text, headers = await raw(so, "POST", "/api/v1/BatchTask", data=xml, headers={
        **so.auth(), "Content-Type": "application/xml; charset=utf-8", "Accept": "application/xml"})
    assert (status, text, headers["Content-Type"]) == (
        200, "<?xml version='1.0' encoding='utf-8'?>\n<int>1</int>", "application/xml; charset=utf-8")
    doc = await stored(so, 1)
    assert doc == stored_doc(1, Name="From XML", State="Aquired", IsSystemTask=True,
                             CancellationBehaviour="CannotCancel", ParameterObject={"a": "b"},
                             LastStarted="2024-07-01T10:00:00.000Z", Created=doc["Created"])
    assert await audit(so) == [("1", 1, "created", "root")]


async def test_create_from_a_form(so):
    status, body, _ = await so.request(
        "POST", "/api/v1/BatchTask", content_type="application/x-www-form-urlencoded",
        data="Name=From+form&ProgressPercent=5&IsInternalTask=1&AssociateId=627&Description=a%26b")
    assert (status, body) == (200, 1)
    doc = await stored(so, 1)
    assert doc == stored_doc(1, Name="From form", ProgressPercent=5, IsInternalTask=True, AssociateId=627,
                             Description="a&b", Created=doc["Created"])
    assert await audit(so) == [("1", 1, "created", "root")]


async def test_only_an_admin_creates(so):
    await seed(so, 1)
    before = await so.snapshot()
    for who, message, agents_message in (
            ("user", "only an administrator may create batch tasks", None),
            ("owner", "only an administrator may create batch tasks", None),
            # the Agents call reaches its handler (read-only tokens may read through Agents)
            ("read_only", "this token is read-only", "only an administrator may create batch tasks")):
        status, body, _ = await so.request("POST", "/api/v1/BatchTask", token=getattr(so, who), body={"Name": "x"})
        assert (status, body) == (403, so_error("SoAccessDeniedException", message)), who
        status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/StartBatchJob", token=getattr(so, who),
                                           body={"BatchTaskInfo": {"Name": "x"}})
        assert (status, body) == (403, so_error("SoAccessDeniedException", agents_message or message)), who
    assert await so.snapshot() == before


async def test_bad_creates_store_nothing(so):
    for data, ctype, status, message in [
        ('[{"op":"replace","path":"/State","value":"New"}]', "application/json", 400,
         "a new BatchTask is created from a BatchTaskInfo, not a patch"),
        ('{"Name":"x"}', "application/merge-patch+json", 400,
         "a new BatchTask is created from a BatchTaskInfo, not a patch"),
        ('{"State":"Running"}', "application/json", 400,
         f"invalid BatchTaskInfo: State: 'Running' is not one of {STATE_LIST}."),
        ('{"Description":"' + "x" * 255 + '"}', "application/json", 400,
         "invalid BatchTaskInfo: Description: Longer than maximum length 254."),
        ('"x"', "application/json", 400, "the body must be a BatchTaskInfo object or a JSON Patch array"),
        ("Name=x", "text/plain", 415, "Content-Type 'text/plain' is not supported here; use application/json or "
         "text/json or application/xml or text/xml or application/x-www-form-urlencoded or "
         "application/json-patch+json or application/merge-patch+json"),
    ]:
        got_status, body, _ = await so.request("POST", "/api/v1/BatchTask", data=data, content_type=ctype)
        kind = {400: "ArgumentException", 415: "UnsupportedMediaTypeException"}[status]
        assert (got_status, body) == (status, so_error(kind, message)), message
    assert await so.snapshot() == ([], [])
    status, body, _ = await so.request("POST", "/api/v1/BatchTask", body={})
    assert (status, body) == (200, 1)  # refused creates used no id


# -- GET /api/v1/BatchTask/{id} and /{state} ----------------------------------------------------
async def test_get_gives_the_carrier_with_the_callers_rights(so):
    doc = await seed(so, 7, Name="Import", AssociateId=OWNER_ID, State="Started",
                     LastStarted="2024-07-01T10:00:00.250Z", ParameterObject={"a": "1"}, Description="d")
    for who, token in (("admin", so.admin), ("owner", so.owner), ("other", so.user), ("readonly", so.read_only)):
        status, body, headers = await so.request("GET", "/Cust12345/api/v1/BatchTask/7", token=token)
        assert (status, headers["Content-Language"], headers["ETag"]) == (200, "en", '"1"')
        assert body == {**view(doc), **rights(who)}, who
        assert body["LastStarted"] == "2024-07-01T10:00:00" and body["Created"] == "2024-01-02T03:04:05"
        assert list(body) == [name for name, _, _ in FIELDS] + ["TableRight", "FieldProperties"]
        assert list(body["FieldProperties"]) == [name for name, _, _ in FIELDS]


async def test_owner_rights_come_from_the_associate_id_for_basic_auth_too(so):
    doc = await seed(so, 1, AssociateId=OWNER_ID)
    other = await seed(so, 2, AssociateId=628)
    basic = {"Authorization": "Basic " + base64.b64encode(b"tje0:Tje0").decode()}
    assert basic["Authorization"] == "Basic dGplMDpUamUw"  # the vendor's sample credentials
    status, text, _ = await raw(so, "GET", "/api/v1/BatchTask/1", headers=basic)
    assert (status, json.loads(text)) == (200, full(doc, "owner"))
    status, text, _ = await raw(so, "GET", "/api/v1/BatchTask/2", headers=basic)
    assert (status, json.loads(text)) == (200, full(other, "other"))


async def test_get_headers_and_if_modified_since(so):
    await seed(so, 1)
    (modified,), = await so.db_rows("SELECT modified FROM tasks WHERE id = '1'")
    last_modified = datetime.fromisoformat(modified).strftime("%a, %d %b %Y %H:%M:%S GMT")
    status, body, headers = await so.request("GET", "/api/v1/BatchTask/1")
    assert (status, headers["ETag"], headers["Last-Modified"]) == (200, '"1"', last_modified)
    status, text, headers = await raw(so, "GET", "/api/v1/BatchTask/1",
                                      headers={**so.auth(), "If-Modified-Since": last_modified})
    assert (status, text, headers["ETag"], headers["Last-Modified"]) == (304, "", '"1"', last_modified)
    for since in ("Sat, 01 Jan 2000 00:00:00 GMT", "not a date"):
        status, got, _ = await so.request("GET", "/api/v1/BatchTask/1", headers={"If-Modified-Since": since})
        assert (status, got) == (200, body)
    status, _, headers = await so.request("PUT", "/api/v1/BatchTask/1", body={"State": "Started"})
    assert (status, headers["ETag"]) == (200, '"2"')
    status, got, headers = await so.request("GET", "/api/v1/BatchTask/1",
                                            headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert (status, got, headers["ETag"]) == (200, {**body, "State": "Started"}, '"2"')


async def test_get_unknown_id_is_404(so):
    await seed(so, 1)
    for key in ("99", "2147483647", "2147483648", "99999999999", "0", "00099"):
        for prefix in ("", "/Cust12345"):
            status, body, _ = await so.request("GET", f"{prefix}/api/v1/BatchTask/{key}")
            assert (status, body) == (404, so_error("SoNotFoundException", f"BatchTask id {key} not found")), key


async def test_get_by_state_lists_user_tasks(so, listed):
    for state, ids in [("Started", [2, 3]), ("started", [2, 3]), ("STARTED", [2, 3]), ("New", [1, 5]),
                       ("failed", []), ("Aquired", []), ("All", [1, 2, 3, 5]), ("all", [1, 2, 3, 5])]:
        status, body, headers = await so.request("GET", f"/Cust12345/api/v1/BatchTask/{state}", token=so.owner)
        assert (status, headers["Content-Language"]) == (200, "en")
        assert body == [full(listed[n], "owner" if listed[n]["AssociateId"] == OWNER_ID else "other")
                        for n in ids], state


async def test_get_by_unknown_state_is_400(so, listed):
    for key in ("Running", "Acquired", "-1", "Started,New", "default"):
        status, body, _ = await so.request("GET", f"/api/v1/BatchTask/{key}")
        assert (status, body) == (400, bad(
            f"{key!r} is neither a BatchTask id nor a BatchTaskState; states: Unknown, New, Aquired, Started, "
            "Succeeded, Failed, SucceededManualCleanup, All")), key


async def test_get_by_state_in_xml(so):
    doc = await seed(so, 1, Name="x", State="Started")
    status, text, headers = await raw(so, "GET", "/api/v1/BatchTask/Started",
                                      headers={**so.auth(), "Accept": "text/xml"})
    root = fromstring(text.encode())
    assert (status, headers["Content-Type"], root.tag) == (200, "text/xml; charset=utf-8", "ArrayOfBatchTaskInfo")
    assert xml_obj(root) == as_text([full(doc)])


async def test_xml_field_properties_of_parameter_object(so):
    await seed(so, 1)
    status, text, _ = await raw(so, "GET", "/api/v1/BatchTask/1", headers={**so.auth(), "Accept": "application/xml"})
    assert "{'Mask'" not in text
    assert xml_obj(fromstring(text.encode()))["FieldProperties"]["ParameterObject"] == {
        "FieldRight": {"Mask": "Read", "Reason": READ_ONLY_REASON},
        "FieldType": "SuperOffice.Util.StringDictionary", "FieldLength": "0"}


# -- DELETE ------------------------------------------------------------------------------------
async def test_delete_is_204_removes_the_row_and_audits(so):
    await seed(so, 1)
    await seed(so, 2)
    status, text, headers = await raw(so, "DELETE", "/Cust12345/api/v1/BatchTask/1",
                                      headers={**so.auth(), "X-Request-ID": "del-1"})
    assert (status, text) == (204, "")
    assert await so.db_rows("SELECT id FROM tasks") == [("2",)]
    assert await so.db_rows("SELECT task_id, version, action, actor, request_id FROM audit WHERE seq > 2") == [
        ("1", 2, "deleted", "root", "del-1")]
    status, body, _ = await so.request("GET", "/api/v1/BatchTask/1")
    assert (status, body) == (404, so_error("SoNotFoundException", "BatchTask id 1 not found"))


async def test_only_an_admin_deletes(so):
    await seed(so, 1, AssociateId=OWNER_ID)
    before = await so.snapshot()
    for who, message, agents_message in (
            ("user", "only an administrator may delete batch tasks", None),
            ("owner", "only an administrator may delete batch tasks", None),
            ("read_only", "this token is read-only", "only an administrator may delete batch tasks")):
        status, body, _ = await so.request("DELETE", "/api/v1/BatchTask/1", token=getattr(so, who))
        assert (status, body) == (403, so_error("SoAccessDeniedException", message)), who
        for agent, args in (("DeleteBatchTask", {"BatchTaskId": 1}), ("DeleteBatchTasks", {"BatchTaskIds": [1]})):
            status, body, _ = await so.request("POST", f"/api/v1/Agents/Batch/{agent}", token=getattr(so, who),
                                               body=args)
            assert (status, body) == (403, so_error("SoAccessDeniedException", agents_message or message)), \
                (who, agent)
    assert await so.snapshot() == before


async def test_delete_unknown_is_404(so):
    await seed(so, 1)
    before = await so.snapshot()
    for key in ("99", "abc", "1.0", "-1", "2147483648"):
        status, body, _ = await so.request("DELETE", f"/api/v1/BatchTask/{key}")
        assert (status, body) == (404, so_error("SoNotFoundException", f"BatchTask id {key} not found")), key
    assert await so.snapshot() == before


# -- Stop ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", STATES)
async def test_stop_every_state_and_cancellation(so, state):
    docs = {n: await seed(so, n, State=state, CancellationBehaviour=cancel, Response="was running",
                          AssociateId=OWNER_ID) for n, cancel in enumerate(CANCELLATIONS, start=1)}
    for n, cancel in enumerate(CANCELLATIONS, start=1):
        stops = state in ("New", "Aquired", "Started") and cancel != "CannotCancel"
        before = await so.snapshot()
        status, text, headers = await raw(so, "POST", f"/api/v1/BatchTask/{n}/Stop", headers=so.auth())
        assert (status, text, headers["Content-Type"]) == (200, "true" if stops else "false",
                                                           "application/json; charset=utf-8"), cancel
        if stops:
            assert await stored(so, n) == {**docs[n], "State": "Failed", "Response": "Stopped by root"}
            assert (await audit(so))[len(before[1]):] == [(str(n), 2, "updated", "root")]
            others = [row for row in (await so.snapshot())[0] if row[1] != str(n)]
            assert others == [row for row in before[0] if row[1] != str(n)]  # only task n changed
        else:
            assert await so.snapshot() == before
    expected = sum(state in ("New", "Aquired", "Started") and c != "CannotCancel" for c in CANCELLATIONS)
    assert len(await audit(so)) == 3 + expected


async def test_stop_by_the_owner_in_xml_and_through_the_tenant_prefix(so):
    doc = await seed(so, 1, AssociateId=OWNER_ID, State="Started")
    status, text, headers = await raw(so, "POST", "/Cust12345/api/v1/BatchTask/1/Stop",
                                      headers={"Authorization": f"SOTicket {so.owner}", "Accept": "application/xml"})
    assert (status, text, headers["Content-Type"]) == (
        200, "<?xml version='1.0' encoding='utf-8'?>\n<boolean>true</boolean>", "application/xml; charset=utf-8")
    assert await stored(so, 1) == {**doc, "State": "Failed", "Response": "Stopped by tje0"}
    assert await audit(so) == [("1", 1, "created", "seed"), ("1", 2, "updated", "tje0")]
    before = await so.snapshot()
    status, body, _ = await so.request("POST", "/api/v1/BatchTask/1/Stop", token=so.owner)
    assert (status, body) == (200, False)
    assert await so.snapshot() == before


async def test_stop_by_someone_else_is_refused(so):
    await seed(so, 1, AssociateId=OWNER_ID, State="Started")
    before = await so.snapshot()
    for token, message in ((so.user, "you may not stop BatchTask 1: only the task's owner (associate 627) or an "
                                     "administrator may update it"),
                           (so.read_only, "this token is read-only")):
        status, body, _ = await so.request("POST", "/api/v1/BatchTask/1/Stop", token=token)
        assert (status, body) == (403, so_error("SoAccessDeniedException", message))
        if token == so.read_only:  # the Agents call reaches the Stop rule, which refuses it
            message = "you may not stop BatchTask 1: this token is read-only"
        status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/StopBatchJob", token=token, body={"Id": 1})
        assert (status, body) == (403, so_error("SoAccessDeniedException", message))
    assert await so.snapshot() == before


async def test_stop_unknown_is_404(so):
    for key in ("5", "x", "0"):
        status, body, _ = await so.request("POST", f"/api/v1/BatchTask/{key}/Stop")
        assert (status, body) == (404, so_error("SoNotFoundException", f"BatchTask id {key} not found"))
    assert await so.snapshot() == ([], [])


# -- Agents ---------------------------------------------------------------------------------------
AGENT_TASKS = [
    (1, {"Name": "Import", "AssociateId": 627, "State": "New"}),
    (2, {"Name": "Import", "AssociateId": 700, "State": "Started"}),
    (3, {"Name": "Cleanup", "AssociateId": 627, "State": "Started", "IsSystemTask": True}),
    (4, {"Name": "Import", "AssociateId": 0, "State": "New", "IsSystemTask": True}),
    (5, {"Name": "Export", "AssociateId": 627, "State": "Started"}),
]


@pytest.fixture(name="agents")
async def _agents(so: Api) -> dict[int, dict[str, Any]]:
    return {task_id: await seed(so, task_id, **fields) for task_id, fields in AGENT_TASKS}


SEARCHES = [  # method, PascalCase body, camelCase body, ids found
    ("GetBatchTaskInfosByAssociates", {"AssociateIds": [627]}, {"associateIds": [627]}, [1, 3, 5]),
    ("GetBatchTaskInfosByAssociates", {"AssociateIds": [700, 0]}, {"associateids": [700, 0]}, [2, 4]),
    ("GetBatchTaskInfosByAssociates", {"AssociateIds": []}, {"associateIds": []}, []),
    ("GetBatchTaskInfosByState", {"State": "Started"}, {"state": "started"}, [2, 5]),
    ("GetBatchTaskInfosByState", {"State": "All"}, {"state": 99999}, [1, 2, 5]),
    ("GetBatchTaskInfosByState", {"State": 1}, {"state": "NEW"}, [1]),
    ("GetBatchTaskInfosByNameAndState", {"Name": "Import", "State": "New"}, {"name": "Import", "state": "new"}, [1]),
    ("GetBatchTaskInfosByNameAndAssociates", {"Name": "Import", "AssociateIds": [627, 700]},
     {"name": "Import", "associateIds": [627, 700]}, [1, 2]),
    ("GetBatchTaskInfosByNameAndAssociates", {"Name": "import", "AssociateIds": [627]},
     {"name": "import", "associateIds": [627]}, []),
    ("GetBatchTaskInfosByAssociatesAndState", {"AssociateIds": [627], "State": "Started"},
     {"associateIds": [627], "state": 3}, [3, 5]),
    ("GetAllBatchTaskInfosByName", {"TaskName": "Import"}, {"taskName": "Import"}, [1, 2, 4]),
    ("GetAllBatchTaskInfosByNameAndState", {"TaskName": "Import", "State": "New"},
     {"taskName": "Import", "state": "New"}, [1, 4]),
    ("GetAllBatchTaskInfosByNameAndState", {"TaskName": "Import", "State": "All"},
     {"taskName": "Import", "state": "all"}, [1, 2, 4]),
    ("GetSystemBatchTaskInfosByName", {"TaskName": "Import"}, {"taskName": "Import"}, [4]),
    ("GetSystemBatchTaskInfosByNameAndState", {"TaskName": "Cleanup", "State": "started"},
     {"taskName": "Cleanup", "state": "Started"}, [3]),
    ("GetSystemBatchTaskInfosByNameAndState", {"TaskName": "Cleanup", "State": "New"},
     {"taskName": "Cleanup", "state": "New"}, []),
]


async def test_agent_searches(so, agents):
    before = await so.snapshot()
    for method, pascal, camel, ids in SEARCHES:
        expected = [full(agents[n], "owner" if agents[n]["AssociateId"] == OWNER_ID else "other") for n in ids]
        for body, path in ((pascal, f"/api/v1/Agents/Batch/{method}"),
                           (camel, f"/Cust1/api/v1/Agents/Batch/{method}")):
            status, got, headers = await so.request("POST", path, body=body, token=so.owner)
            assert (status, headers["Content-Language"], got) == (200, "en", expected), (method, body)
    assert await so.snapshot() == before


async def test_agent_get_and_select(so, agents):
    for body in ({"Id": 3}, {"id": 3}, {"ID": 3}):
        status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfo", body=body)
        assert (status, got) == (200, full(agents[3]))
    status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfo?$select=Id,tableRight",
                                      body={"Id": 3}, token=so.user)
    assert (status, got) == (200, {"Id": 3, "TableRight": rights("other")["TableRight"]})
    status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfosByState?$select=Name,Id",
                                      body={"State": "Started"})
    assert (status, got) == (200, [{"Name": "Import", "Id": 2}, {"Name": "Export", "Id": 5}])
    status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/GetBatchTaskInfo?$select=Nope", body={"Id": 3})
    assert (status, got) == (400, bad("$select: unknown member Nope"))


async def test_agent_start_batch_job(so, agents):
    for new_id, body in ((6, {"BatchTaskInfo": {"Name": "Started by agent", "State": "Started", "AssociateId": 627,
                                                "Id": 1}}),
                         (7, {"batchTaskInfo": {"name": "Started by agent", "state": "started",
                                                "associateId": 627}})):
        status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/StartBatchJob", body=body)
        assert (status, got) == (200, new_id)
        doc = await stored(so, new_id)
        assert doc == stored_doc(new_id, Name="Started by agent", State="Started", AssociateId=627,
                                 Created=doc["Created"])
        assert (await audit(so))[-1] == (str(new_id), 1, "created", "root")
    assert await stored(so, 1) == agents[1]


async def test_agent_stop_batch_job(so, agents):
    for task_id, body in ((5, {"Id": 5}), (1, {"id": 1})):
        status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/StopBatchJob", body=body, token=so.owner)
        assert (status, got) == (200, True)
        assert await stored(so, task_id) == {**agents[task_id], "State": "Failed", "Response": "Stopped by tje0"}
        assert (await audit(so))[-1] == (str(task_id), 2, "updated", "tje0")
        before = await so.snapshot()
        status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/StopBatchJob", body=body, token=so.owner)
        assert (status, got) == (200, False)
        assert await so.snapshot() == before


async def test_agent_update_batch_task(so, agents):
    for task_id, body in (
            (1, {"BatchTaskInfo": {"Id": 1, "State": "Failed", "Description": "agent", "Name": "ignored",
                                   "AssociateId": 1}}),
            (5, {"batchTaskInfo": {"id": 5, "state": "failed", "description": "agent", "name": "ignored",
                                   "associateId": 1, "tableRight": None}})):
        status, got, _ = await so.request("POST", "/Cust1/api/v1/Agents/Batch/UpdateBatchTask", body=body,
                                          token=so.owner, headers={"SO-TimeZone": "UTC,includeTZOffset"})
        after = {**agents[task_id], "State": "Failed", "Description": "agent"}
        assert (status, got) == (200, {**full(after, "owner"), "Created": "2024-01-02T03:04:05Z"})
        assert await stored(so, task_id) == after
        assert (await audit(so))[-1] == (str(task_id), 2, "updated", "tje0")


async def test_agent_update_by_someone_else_is_403(so, agents):
    before = await so.snapshot()
    status, got, _ = await so.request("POST", "/api/v1/Agents/Batch/UpdateBatchTask", token=so.user,
                                      body={"BatchTaskInfo": {"Id": 1, "State": "Failed"}})
    assert (status, got) == (403, so_error("SoAccessDeniedException", "you may not update BatchTask 1: only the "
                                           "task's owner (associate 627) or an administrator may update it"))
    assert await so.snapshot() == before


async def test_agent_deletes(so, agents):
    status, text, _ = await raw(so, "POST", "/api/v1/Agents/Batch/DeleteBatchTask", data='{"batchTaskId": 1}',
                                headers={**so.auth(), "Content-Type": "application/json"})
    assert (status, text) == (204, "")
    status, text, _ = await raw(so, "POST", "/api/v1/Agents/Batch/DeleteBatchTasks",
                                data='{"BatchTaskIds": [2, 99, 3, 2, 0, -4]}',
                                headers={**so.auth(), "Content-Type": "text/json"})
    assert (status, text) == (204, "")
    assert await so.db_rows("SELECT id FROM tasks ORDER BY id") == [("4",), ("5",)]
    assert [r for r in await audit(so) if r[2] == "deleted"] == [
        ("1", 2, "deleted", "root"), ("2", 2, "deleted", "root"), ("3", 2, "deleted", "root")]
    before = await so.snapshot()
    status, text, _ = await raw(so, "POST", "/api/v1/Agents/Batch/DeleteBatchTasks", data='{"batchTaskIds": []}',
                                headers={**so.auth(), "Content-Type": "application/json"})
    assert (status, text) == (204, "")
    assert await so.snapshot() == before


async def test_agent_missing_task_is_200_null(so, agents):
    before = await so.snapshot()
    for method, body in [("GetBatchTaskInfo", {"Id": 99}), ("GetBatchTaskInfo", {"id": 0}),
                         ("GetBatchTaskInfo", {"Id": -3}), ("GetBatchTaskInfo", {"Id": 2**31}),
                         ("StopBatchJob", {"Id": 99}), ("StopBatchJob", {"id": -1}),
                         ("UpdateBatchTask", {"BatchTaskInfo": {"Id": 99, "State": "Failed"}}),
                         ("UpdateBatchTask", {"batchTaskInfo": {"id": 0, "state": "Failed"}}),
                         ("DeleteBatchTask", {"BatchTaskId": 99}), ("DeleteBatchTask", {"batchTaskId": -1})]:
        status, text, headers = await raw(so, "POST", f"/api/v1/Agents/Batch/{method}", data=json.dumps(body),
                                          headers={**so.auth(), "Content-Type": "application/json"})
        assert (status, text, headers["Content-Type"]) == (200, "null", "application/json; charset=utf-8"), body
    assert await so.snapshot() == before


BAD_AGENT_CALLS = [  # method, raw body, content type, status, message
    ("GetBatchTaskInfo", '{"Id": 1', "application/json", 400,
     "malformed JSON: Expecting ',' delimiter at line 1 column 9"),
    ("GetBatchTaskInfo", "", "application/json", 400, "the request body is empty"),
    ("GetBatchTaskInfo", "[1]", "application/json", 400, "an Agents request body is a JSON object"),
    ("GetBatchTaskInfo", "{}", "application/json", 400, "the request needs Id"),
    ("GetBatchTaskInfo", '{"Id": "1"}', "application/json", 400, "Id must be an integer"),
    ("GetBatchTaskInfo", '{"Id": true}', "application/json", 400, "Id must be an integer"),
    ("GetBatchTaskInfo", '{"Id": 1, "id": 2}', "application/json", 400, "Id is given more than once"),
    ("GetBatchTaskInfosByAssociates", '{"AssociateIds": [1, "2"]}', "application/json", 400,
     "AssociateIds must be an array of integers"),
    ("GetBatchTaskInfosByAssociates", '{"AssociateIds": 627}', "application/json", 400,
     "AssociateIds must be an array of integers"),
    ("GetBatchTaskInfosByState", '{"State": "Running"}', "application/json", 400,
     f"invalid BatchTaskInfo: State: 'Running' is not one of {STATE_LIST}."),
    ("GetAllBatchTaskInfosByName", '{"TaskName": 5}', "application/json", 400, "TaskName must be a string"),
    ("GetBatchTaskInfosByNameAndState", '{"Name": "Import"}', "application/json", 400, "the request needs State"),
    ("StartBatchJob", '{"BatchTaskInfo": []}', "application/json", 400, "BatchTaskInfo must be an object"),
    ("StartBatchJob", '{"BatchTaskInfo": {"ProgressPercent": 40000}}', "application/json", 400,
     "invalid BatchTaskInfo: ProgressPercent: Must be greater than or equal to -32768 and less than or equal "
     "to 32767."),
    ("UpdateBatchTask", '{"BatchTaskInfo": {"State": "Failed"}}', "application/json", 400,
     "BatchTaskInfo.Id must be the integer id of the task to update"),
    ("UpdateBatchTask", '{"BatchTaskInfo": {"Id": 1, "State": "Stopped"}}', "application/json", 400,
     f"invalid BatchTaskInfo: State: 'Stopped' is not one of {STATE_LIST}."),
    ("DeleteBatchTasks", '{"BatchTaskIds": [1, null]}', "application/json", 400,
     "BatchTaskIds must be an array of integers"),
    ("GetBatchTaskInfo", "Id=1", "application/x-www-form-urlencoded", 415,
     "Content-Type 'application/x-www-form-urlencoded' is not supported here; use application/json or text/json"),
]


async def test_malformed_agent_calls_are_refused(so, agents):
    before = await so.snapshot()
    for method, data, ctype, status, message in BAD_AGENT_CALLS:
        got_status, body, _ = await so.request("POST", f"/api/v1/Agents/Batch/{method}", data=data,
                                               content_type=ctype)
        kind = {400: "ArgumentException", 415: "UnsupportedMediaTypeException"}[status]
        assert (got_status, body) == (status, so_error(kind, message)), (method, data)
    assert await so.snapshot() == before


async def test_unknown_agent_method_is_404(so):
    for verb in ("POST", "GET"):
        status, body, _ = await so.request(verb, "/api/v1/Agents/Batch/GetEverything",
                                           body={} if verb == "POST" else None)
        assert (status, body) == (404, so_error("SoNotFoundException", "BatchAgent has no method 'GetEverything'"))
    assert await so.snapshot() == ([], [])


AGENT_DESCRIPTIONS = {
    "GetBatchTaskInfo": ("Id", "BatchTaskInfo, or null when there is none"),
    "GetBatchTaskInfosByAssociates": ("AssociateIds", "BatchTaskInfo[] owned by those associates"),
    "StartBatchJob": ("BatchTaskInfo", "the new task's integer id"),
    "StopBatchJob": ("Id", "true if the task was stopped, false if it could not be, null if none"),
    "GetBatchTaskInfosByState": ("State", "user BatchTaskInfo[] in that state"),
    "UpdateBatchTask": ("BatchTaskInfo", "the updated BatchTaskInfo, or null when there is none"),
    "GetBatchTaskInfosByNameAndState": ("Name, State", "user BatchTaskInfo[] with that name and state"),
    "GetBatchTaskInfosByNameAndAssociates": ("Name, AssociateIds", "BatchTaskInfo[] with that name and owners"),
    "GetBatchTaskInfosByAssociatesAndState": ("AssociateIds, State", "BatchTaskInfo[] with those owners and state"),
    "DeleteBatchTasks": ("BatchTaskIds", "nothing (204)"),
    "DeleteBatchTask": ("BatchTaskId", "nothing (204), or null when there is none"),
    "GetAllBatchTaskInfosByName": ("TaskName", "system and user BatchTaskInfo[] with that name"),
    "GetAllBatchTaskInfosByNameAndState": ("TaskName, State",
                                           "system and user BatchTaskInfo[] with that name and state"),
    "GetSystemBatchTaskInfosByName": ("TaskName", "system BatchTaskInfo[] with that name"),
    "GetSystemBatchTaskInfosByNameAndState": ("TaskName, State", "system BatchTaskInfo[] with that name and state"),
}


async def test_get_on_every_agent_url_describes_it(so):
    assert sorted(superoffice_agents.AGENTS) == sorted(AGENT_DESCRIPTIONS)  # all 15 of the reference, no more
    for method, (members, returns) in AGENT_DESCRIPTIONS.items():
        status, body, _ = await so.request("GET", f"/Cust1/api/v1/Agents/Batch/{method}", token=so.read_only)
        assert (status, body) == (200, {"Method": f"Batch/{method}", "HttpMethod": "POST",
                                        "Request": f"a JSON object with {members}", "Returns": returns})
    assert await so.snapshot() == ([], [])


async def test_agent_description_names_the_method_canonically(so):
    status, body, _ = await so.request("GET", "/api/v1/Agents/Batch/getbatchtaskinfo")
    assert (status, body["Method"]) == (200, "Batch/GetBatchTaskInfo")


async def test_agent_method_names_are_case_insensitive(so, agents):
    status, body, _ = await so.request("POST", "/api/v1/Agents/Batch/getbatchtaskinfo", body={"id": 2})
    assert (status, body) == (200, full(agents[2]))


# -- auth ------------------------------------------------------------------------------------------
async def test_ticket_and_bearer_schemes(so):
    doc = await seed(so, 1, AssociateId=OWNER_ID)
    for scheme in ("SOTicket", "SoTicket", "SOTICKET", "soticket", "Bearer", "bearer"):
        status, text, _ = await raw(so, "GET", "/api/v1/BatchTask/1",
                                    headers={"Authorization": f"{scheme} {so.owner}", "SO-AppToken": "anything"})
        assert (status, json.loads(text)) == (200, full(doc, "owner")), scheme


async def test_without_valid_credentials_401(so):
    await seed(so, 1, AssociateId=OWNER_ID)
    before = await so.snapshot()
    for headers, message in [({}, "no authorization header"),
                             ({"Authorization": "SOTicket 7T:abc=="}, "invalid token"),
                             ({"Authorization": "Basic dGplMDpXcm9uZw=="}, "invalid user name or password"),
                             ({"Authorization": "Negotiate abc"}, "unsupported authorization scheme"),
                             ({"Authorization": "SOTicket"}, "unsupported authorization scheme")]:
        for method, path, data in (("GET", "/api/v1/BatchTask/1", None), ("GET", "/api/v1/BatchTask", None),
                                   ("PUT", "/api/v1/BatchTask/1", '{"State":"Failed"}'),
                                   ("DELETE", "/api/v1/BatchTask/1", None),
                                   ("POST", "/Cust1/api/v1/Agents/Batch/GetBatchTaskInfo", '{"Id":1}')):
            status, text, resp_headers = await raw(so, method, path, data=data,
                                                   headers={**headers, "Content-Type": "application/json"})
            assert (status, json.loads(text), resp_headers["WWW-Authenticate"]) == (
                401, so_error("SoAuthenticationException", message), 'Basic realm="SuperOffice"'), (headers, path)
    assert await so.snapshot() == before


async def test_app_tokens_are_required_with_soticket_only(make_api):
    api = await make_api(app_tokens="a1, a2")
    doc = await seed(api, 1)
    url = "/api/v1/BatchTask/1"
    refused = so_error("SoAuthenticationException", "SOTicket needs a known SO-AppToken header")
    for headers in ({}, {"SO-AppToken": "a3"}, {"SO-AppToken": ""}, {"SO-AppToken": "a1,a2"}, {"SO-AppToken": "A1"}):
        status, text, resp = await raw(api, "GET", url, headers={"Authorization": f"SOTicket {api.admin}", **headers})
        assert (status, json.loads(text), resp["WWW-Authenticate"]) == (401, refused, 'Basic realm="SuperOffice"')
    before = await api.snapshot()
    status, text, _ = await raw(api, "PUT", url, data='{"State":"Failed"}', headers={
        "Authorization": f"sOtIcKeT {api.admin}", "Content-Type": "application/json"})
    assert (status, json.loads(text)) == (401, refused)
    assert await api.snapshot() == before
    for scheme, headers in (("SOTicket", {"SO-AppToken": "a1"}), ("SOTICKET", {"SO-AppToken": "a2"}),
                            ("Bearer", {}), ("Bearer", {"SO-AppToken": "wrong"})):
        status, text, _ = await raw(api, "GET", url, headers={"Authorization": f"{scheme} {api.admin}", **headers})
        assert (status, json.loads(text)) == (200, full(doc)), (scheme, headers)
    basic = "Basic " + base64.b64encode(b"tje0:Tje0").decode()
    status, text, _ = await raw(api, "GET", url, headers={"Authorization": basic})
    assert (status, json.loads(text)) == (200, full(doc, "other"))
    status, text, _ = await raw(api, "PUT", url, data='{"State":"Failed"}', headers={
        "Authorization": f"SOTicket {api.admin}", "SO-AppToken": "a2", "Content-Type": "application/json"})
    assert (status, json.loads(text)) == (200, full({**doc, "State": "Failed"}))
    assert (await audit(api))[-1] == ("1", 2, "updated", "root")


def _cookie(headers, name: str) -> str:
    found = [c for c in headers.getall("Set-Cookie") if c.startswith(name + "=")]
    assert len(found) == 1, headers.getall("Set-Cookie")
    return found[0]


async def _login(api: Api, user: str = "tje0", password: str = "Tje0") -> tuple[str, str]:
    resp = await api.client.post("/login", data={"user": user, "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    session = _cookie(resp.headers, "taskgate_session")
    xsrf = _cookie(resp.headers, "XSRF-TOKEN")
    session_value = session.split(";")[0].partition("=")[2]
    xsrf_value = xsrf.split(";")[0].partition("=")[2]
    attrs = {a.strip().lower() for a in session.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "max-age=3600"} <= attrs, session
    xsrf_attrs = {a.strip().lower() for a in xsrf.split(";")[1:]}
    assert "httponly" not in xsrf_attrs and "samesite=strict" in xsrf_attrs, xsrf
    assert body == {"user": user, "xsrf_token": xsrf_value} and resp.headers["Cache-Control"] == "no-store"
    api.client.session.cookie_jar.clear()  # each request below sends exactly the cookies it names
    return session_value, xsrf_value


async def test_cookie_session_with_xsrf(so):
    doc = await seed(so, 1, AssociateId=OWNER_ID)
    session, xsrf = await _login(so)
    (source, user, read_only), = await so.db_rows(
        "SELECT source, user, read_only FROM tokens WHERE hash = ?", secret_hash(session))
    assert (source, user, read_only) == ("session", "tje0", 0)
    cookies = f"taskgate_session={session}; XSRF-TOKEN={xsrf}"
    refused = so_error("SoAuthenticationException",
                       "a session needs an X-XSRF-TOKEN header equal to the XSRF-TOKEN cookie")
    before = await so.snapshot()
    wrong = xsrf[:-1] + ("1" if xsrf.endswith("0") else "0")
    for headers in ({"Cookie": cookies}, {"Cookie": cookies, "X-XSRF-TOKEN": wrong},
                    {"Cookie": cookies, "X-XSRF-TOKEN": ""},
                    {"Cookie": f"taskgate_session={session}", "X-XSRF-TOKEN": xsrf},
                    {"Cookie": f"taskgate_session={session}; XSRF-TOKEN=forged", "X-XSRF-TOKEN": "forged"}):
        for method, data in (("GET", None), ("PUT", '{"State":"Failed"}')):
            status, text, resp = await raw(so, method, "/api/v1/BatchTask/1", data=data,
                                           headers={**headers, "Content-Type": "application/json"})
            assert (status, json.loads(text), resp["WWW-Authenticate"]) == (
                401, refused, 'Basic realm="SuperOffice"'), headers
    assert await so.snapshot() == before
    good = {"Cookie": cookies, "X-XSRF-TOKEN": xsrf}
    status, text, _ = await raw(so, "GET", "/api/v1/BatchTask/1", headers=good)
    assert (status, json.loads(text)) == (200, full(doc, "owner"))
    status, text, _ = await raw(so, "PUT", "/api/v1/BatchTask/1", data='{"State":"Failed"}',
                                headers={**good, "Content-Type": "application/json"})
    assert (status, json.loads(text)) == (200, full({**doc, "State": "Failed"}, "owner"))
    assert (await audit(so))[-1] == ("1", 2, "updated", "tje0")
    # logout is itself XSRF-checked
    status, text, _ = await raw(so, "POST", "/logout", headers={"Cookie": cookies})
    assert (status, json.loads(text)) == (401, refused)
    resp = await so.client.post("/logout", headers=good)
    assert (resp.status, await resp.text()) == (204, "")
    expired = {c.split("=")[0]: c for c in resp.headers.getall("Set-Cookie")}
    assert set(expired) == {"taskgate_session", "XSRF-TOKEN"}
    assert all('=""' in c and "max-age=0" in c.lower() for c in expired.values()), expired
    assert await so.db_rows("SELECT count(*) FROM tokens WHERE hash = ?", secret_hash(session)) == [(0,)]
    so.client.session.cookie_jar.clear()
    status, text, _ = await raw(so, "GET", "/api/v1/BatchTask/1", headers=good)
    assert (status, json.loads(text)) == (401, so_error("SoAuthenticationException", "invalid token"))
    assert (await stored(so, 1))["State"] == "Failed"


async def test_bad_login(so):
    tokens = await so.db_rows("SELECT hash FROM tokens ORDER BY hash")
    for data, status, body in [
        ({"user": "tje0", "password": "wrong"}, 401, so_error("SoAuthenticationException",
                                                               "invalid user name or password")),
        ({"user": "nobody", "password": "Tje0"}, 401, so_error("SoAuthenticationException",
                                                               "invalid user name or password")),
        ({"user": "reader", "password": "x"}, 401, so_error("SoAuthenticationException",
                                                            "invalid user name or password")),
        ({"user": "tje0"}, 400, bad("the form needs user and password")),
    ]:
        resp = await so.client.post("/login", data=data)
        assert (resp.status, await resp.json()) == (status, body), data
        assert "Set-Cookie" not in resp.headers
    resp = await so.client.post("/login", json={"user": "tje0", "password": "Tje0"})
    assert (resp.status, await resp.json()) == (415, so_error("UnsupportedMediaTypeException",
                                                              "Content-Type 'application/json' is not supported here; "
                                                              "use application/x-www-form-urlencoded"))
    assert await so.db_rows("SELECT hash FROM tokens ORDER BY hash") == tokens


# -- SO-TimeZone, languages, Accept ---------------------------------------------------------------
ZONES = [  # header → (summer LastStarted, winter LastStarted, Created: the zone's time, or UTC "Z" with offsets)
    (None, ("2024-07-01T10:00:00", "2024-01-15T10:00:00", "2024-01-02T03:04:05")),
    ("UTC", ("2024-07-01T10:00:00", "2024-01-15T10:00:00", "2024-01-02T03:04:05")),
    ("1", ("2024-07-01T10:00:00", "2024-01-15T10:00:00", "2024-01-02T03:04:05")),
    ("NO", ("2024-07-01T12:00:00", "2024-01-15T11:00:00", "2024-01-02T04:04:05")),
    ("no", ("2024-07-01T12:00:00", "2024-01-15T11:00:00", "2024-01-02T04:04:05")),
    ("261", ("2024-07-01T12:00:00", "2024-01-15T11:00:00", "2024-01-02T04:04:05")),
    ("Europe/Oslo", ("2024-07-01T12:00:00", "2024-01-15T11:00:00", "2024-01-02T04:04:05")),
    ("NO,includeTZOffset", ("2024-07-01T12:00:00+02:00", "2024-01-15T11:00:00+01:00", "2024-01-02T03:04:05Z")),
    ("no, IncludeTzOffset", ("2024-07-01T12:00:00+02:00", "2024-01-15T11:00:00+01:00", "2024-01-02T03:04:05Z")),
    ("261,includeTZOffset", ("2024-07-01T12:00:00+02:00", "2024-01-15T11:00:00+01:00", "2024-01-02T03:04:05Z")),
    ("utc,includeTZOffset", ("2024-07-01T10:00:00Z", "2024-01-15T10:00:00Z", "2024-01-02T03:04:05Z")),
    ("UTC, includeTZOffset", ("2024-07-01T10:00:00Z", "2024-01-15T10:00:00Z", "2024-01-02T03:04:05Z")),
    ("DK,includeTZOffset", ("2024-07-01T12:00:00+02:00", "2024-01-15T11:00:00+01:00", "2024-01-02T03:04:05Z")),
    ("FR", ("2024-07-01T12:00:00", "2024-01-15T11:00:00", "2024-01-02T04:04:05")),
    ("US-NY,includeTZOffset", ("2024-07-01T06:00:00-04:00", "2024-01-15T05:00:00-05:00", "2024-01-02T03:04:05Z")),
    ("US-CA,includeTZOffset", ("2024-07-01T03:00:00-07:00", "2024-01-15T02:00:00-08:00", "2024-01-02T03:04:05Z")),
    ("425", ("2024-07-01T03:00:00", "2024-01-15T02:00:00", "2024-01-01T19:04:05")),
    ("Asia/Kolkata,includeTZOffset", ("2024-07-01T15:30:00+05:30", "2024-01-15T15:30:00+05:30",
                                      "2024-01-02T03:04:05Z")),
]


async def test_so_timezone_shapes_outgoing_dates(so):
    summer = await seed(so, 1, LastStarted="2024-07-01T10:00:00.250Z")
    winter = await seed(so, 2, LastStarted="2024-01-15T10:00:00.000Z")
    never = await seed(so, 3)
    for header, (summer_text, winter_text, created) in ZONES:
        headers = {"SO-TimeZone": header} if header is not None else {}
        status, body, _ = await so.request("GET", "/api/v1/BatchTask/1", headers=headers)
        assert (status, body) == (200, {**full(summer), "LastStarted": summer_text, "Created": created}), header
        status, body, _ = await so.request("GET", "/api/v1/BatchTask?$filter=Name eq ''", headers=headers)
        assert (status, body["value"]) == (200, [
            {**view(summer), "LastStarted": summer_text, "Created": created},
            {**view(winter), "LastStarted": winter_text, "Created": created},
            {**view(never), "LastStarted": EMPTY_DATE, "Created": created}]), header


async def test_unknown_time_zone_is_400(so):
    await seed(so, 1, State="Started")
    before = await so.snapshot()
    hint = "use a SuperOffice code (UTC, NO, DK, FR, US-NY, US-CA, AU-ACT, CA-QC, BD, US-HI), its numeric id, " \
           "or an IANA name"
    for header, message in [("Mars/Olympus", f"SO-TimeZone: unknown time zone 'Mars/Olympus'; {hint}"),
                            ("999", f"SO-TimeZone: unknown time zone '999'; {hint}"),
                            ("../etc/passwd", f"SO-TimeZone: unknown time zone '../etc/passwd'; {hint}"),
                            (",includeTZOffset", f"SO-TimeZone: unknown time zone ''; {hint}"),
                            ("NO,withOffset", "SO-TimeZone: unknown option 'withOffset'; the only one is "
                                              "includeTZOffset")]:
        for method, path, body in (("GET", "/api/v1/BatchTask/1", None), ("GET", "/api/v1/BatchTask", None),
                                   ("POST", "/api/v1/BatchTask", {"Name": "x"}),
                                   ("PUT", "/api/v1/BatchTask/1", {"State": "Failed"}),
                                   ("POST", "/api/v1/BatchTask/1/Stop", None)):
            status, got, _ = await so.request(method, path, body=body, headers={"SO-TimeZone": header})
            assert (status, got) == (400, bad(message)), (header, method, path)
    assert await so.snapshot() == before


async def test_incoming_dates_without_offset_are_read_in_the_requested_zone(so):
    cases = [("NO", "2024-07-01T12:00:00", "2024-07-01T10:00:00.000Z"),
             ("Europe/Oslo", "2024-01-15T11:30:00", "2024-01-15T10:30:00.000Z"),
             ("US-NY,includeTZOffset", "2024-07-01T06:00:00", "2024-07-01T10:00:00.000Z"),
             ("NO", "2024-07-01T12:00:00Z", "2024-07-01T12:00:00.000Z"),
             ("NO", "2024-07-01T12:00:00-01:00", "2024-07-01T13:00:00.000Z"),
             (None, "2024-07-01T12:00:00", "2024-07-01T12:00:00.000Z")]
    for task_id, (header, sent, kept) in enumerate(cases, start=1):
        headers = {"SO-TimeZone": header} if header else {}
        status, body, _ = await so.request("POST", "/api/v1/BatchTask", body={"LastStarted": sent}, headers=headers)
        assert (status, body) == (200, task_id)
        doc = await stored(so, task_id)
        assert doc == stored_doc(task_id, LastStarted=kept, Created=doc["Created"]), (header, sent)


async def test_valid_language_headers_answer_in_english(so):
    doc = await seed(so, 1)
    for headers in ({"Accept-Language": "sv"}, {"Accept-Language": "en-US,en;q=0.9,nb-NO;q=0.8"},
                    {"Accept-Language": "*"}, {"Accept-Language": "de;q=1.0, fr; q=0.5"}, {"SO-Language": "no"},
                    {"SO-Language": "*"}, {"SO-Language": "x"}, {"SO-Culture": "nb-NO"}, {"SO-Culture": "en"},
                    {"Accept-Language": "zh-Hant-TW", "SO-Language": "sv", "SO-Culture": "sv-SE"}):
        status, body, resp = await so.request("GET", "/api/v1/BatchTask/1", headers=headers)
        assert (status, body, resp["Content-Language"]) == (200, full(doc), "en"), headers


async def test_malformed_language_headers_are_400(so):
    await seed(so, 1)
    before = await so.snapshot()
    for headers, message in [
        ({"Accept-Language": "en_US"}, "Accept-Language: 'en_US' is not a language range"),
        ({"Accept-Language": "en;q=2"}, "Accept-Language: 'en;q=2' is not a language range"),
        ({"Accept-Language": "en;level=1"}, "Accept-Language: 'en;level=1' is not a language range"),
        ({"Accept-Language": "en,"}, "Accept-Language: '' is not a language range"),
        ({"Accept-Language": "toolonglanguage"}, "Accept-Language: 'toolonglanguage' is not a language range"),
        ({"SO-Language": "en sv"}, "SO-Language: 'en sv' is not a language code"),
        ({"SO-Culture": "nb_NO"}, "SO-Culture: 'nb_NO' is not a language code"),
        ({"SO-Culture": ""}, "SO-Culture: '' is not a language code"),
    ]:
        for method, path, body in (("GET", "/api/v1/BatchTask/1", None), ("PUT", "/api/v1/BatchTask/1", {"State": 5}),
                                   ("GET", "/api/v1/BatchTask", None)):
            status, got, _ = await so.request(method, path, body=body, headers=headers)
            assert (status, got) == (400, bad(message)), (headers, method, path)
    assert await so.snapshot() == before


ACCEPTS = [  # Accept → answered Content-Type
    (None, "application/json"), ("aplication/json", "application/json"), ("*/*", "application/json"),
    ("application/json", "application/json"), ("application/json; charset=utf-8", "application/json"),
    ("text/json", "text/json"), ("application/json-patch+json", "application/json"),
    ("application/merge-patch+json", "application/json"), ("text/html", "application/json"),
    ("application/xml", "application/xml"), ("text/xml", "text/xml"),
    ("application/xml; charset=utf-8", "application/xml"),
    ("application/xml;q=0.4, application/json;q=0.9", "application/json"),
    ("application/xml;q=0.9, application/json;q=0.4", "application/xml"),
    ("text/xml, */*;q=0.1", "text/xml"), ("APPLICATION/XML", "application/xml"),
]


async def test_accept_negotiation(so):
    doc = await seed(so, 1, ParameterObject={"k": "v", "e": ""}, Description="<&>")
    for accept, ctype in ACCEPTS:
        headers = {**so.auth(), **({"Accept": accept} if accept is not None else {})}
        status, text, resp = await raw(so, "GET", "/api/v1/BatchTask/1", headers=headers)
        assert (status, resp["Content-Type"]) == (200, f"{ctype}; charset=utf-8"), accept
        if "xml" in ctype:
            root = fromstring(text.encode())
            assert text.startswith("<?xml version='1.0' encoding='utf-8'?>\n<BatchTaskInfo>"), accept
            assert (root.tag, xml_obj(root)) == ("BatchTaskInfo", as_text(full(doc))), accept
        else:
            assert json.loads(text) == full(doc), accept


# -- conditional requests ------------------------------------------------------------------------
async def test_if_match(so):
    doc = await seed(so, 1, AssociateId=OWNER_ID)
    status, body, headers = await so.request("PUT", "/api/v1/BatchTask/1", body={"State": "Started"},
                                             headers={"If-Match": '"1"'})
    assert (status, body, headers["ETag"]) == (200, full({**doc, "State": "Started"}), '"2"')
    before = await so.snapshot()
    for method, path, body in (("PUT", "/api/v1/BatchTask/1", {"State": "Failed"}),
                               ("DELETE", "/api/v1/BatchTask/1", None),
                               ("POST", "/api/v1/Agents/Batch/UpdateBatchTask",
                                {"BatchTaskInfo": {"Id": 1, "State": "Failed"}})):
        for tag, versions in (('"1"', "1"), ('W/"2"', ""), ('"1", "3"', "1, 3"), ("garbage", "")):
            status, got, _ = await so.request(method, path, body=body, headers={"If-Match": tag})
            assert (status, got) == (412, so_error("SoPreconditionFailedException",
                                                   f"task '1' is at version 2, not {versions}")), (method, tag)
    assert await so.snapshot() == before
    status, body, headers = await so.request("PUT", "/api/v1/BatchTask/1", body={"State": "Failed"},
                                             headers={"If-Match": '"1", "2"'}, token=so.owner)
    assert (status, body, headers["ETag"]) == (200, full({**doc, "State": "Failed"}, "owner"), '"3"')
    status, body, _ = await so.request("DELETE", "/api/v1/BatchTask/1", headers={"If-Match": "*"})
    assert (status, body) == (204, None)
    assert [r[1:3] for r in await audit(so)] == [(1, "created"), (2, "updated"), (3, "updated"), (4, "deleted")]


async def test_if_unmodified_since(so):
    doc = await seed(so, 1)
    before = await so.snapshot()
    for method, path, body in (("PUT", "/api/v1/BatchTask/1", {"State": "Failed"}),
                               ("DELETE", "/api/v1/BatchTask/1", None)):
        status, got, _ = await so.request(method, path, body=body,
                                          headers={"If-Unmodified-Since": "Wed, 01 Jan 2020 00:00:00 GMT"})
        assert (status, got) == (412, so_error("SoPreconditionFailedException",
                                               "task '1' was modified after 2020-01-01T00:00:00+00:00")), method
    assert await so.snapshot() == before
    (modified,), = await so.db_rows("SELECT modified FROM tasks WHERE id = '1'")
    same_second = datetime.fromisoformat(modified).strftime("%a, %d %b %Y %H:%M:%S GMT")
    status, got, headers = await so.request("PUT", "/api/v1/BatchTask/1", body={"State": "Failed"},
                                            headers={"If-Unmodified-Since": same_second})
    assert (status, got, headers["ETag"]) == (200, full({**doc, "State": "Failed"}), '"2"')
    status, got, _ = await so.request("PUT", "/api/v1/BatchTask/1", body={"State": "Started"},
                                      headers={"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert (status, got) == (200, full({**doc, "State": "Started"}))
    assert [r[1:3] for r in await audit(so)] == [(1, "created"), (2, "updated"), (3, "updated")]


# -- strict_readonly ---------------------------------------------------------------------------------
async def test_strict_readonly_refuses_changes_to_read_only_fields(make_api):
    api = await make_api(strict_readonly=True)
    doc = await seed(api, 1, Name="Import", AssociateId=OWNER_ID, Created="2024-01-02T03:04:05.000Z")
    before = await api.snapshot()
    for body, names in (({"Name": "Renamed", "AssociateId": 1, "State": "Started"}, "AssociateId, Name"),
                        ({"id": 2, "isSystemTask": True}, "Id, IsSystemTask"),
                        ({"Created": "2024-01-02T03:04:06", "State": "Failed"}, "Created"),
                        ({"ParameterObject": {"x": "y"}}, "ParameterObject")):
        status, got, _ = await api.request("PUT", "/api/v1/BatchTask/1", body=body, token=api.owner)
        assert (status, got) == (400, bad("only State, Description, Response and Request can be updated; "
                                          f"this body changes {names}")), body
        status, got, _ = await api.request("POST", "/api/v1/Agents/Batch/UpdateBatchTask", token=api.owner,
                                           body={"BatchTaskInfo": {"Id": 1, **body}})
        if "id" not in body:
            assert (status, got) == (400, bad("only State, Description, Response and Request can be updated; "
                                              f"this body changes {names}")), body
    assert await api.snapshot() == before
    # the stored values in another spelling or zone are no change
    status, got, _ = await api.request("PUT", "/api/v1/BatchTask/1", token=api.owner,
                                       headers={"SO-TimeZone": "NO"},
                                       body={"Id": "1", "name": "Import", "AssociateId": "627",
                                             "Created": "2024-01-02T04:04:05", "State": "Started"})
    assert (status, got) == (200, {**full({**doc, "State": "Started"}, "owner"), "Created": "2024-01-02T04:04:05"})
    assert await stored(api, 1) == {**doc, "State": "Started"}
    assert (await audit(api))[-1] == ("1", 2, "updated", "tje0")


async def test_strict_readonly_takes_back_the_carrier_it_gave_out(make_api):
    api = await make_api(strict_readonly=True)
    doc = await seed(api, 1, Name="Import", AssociateId=OWNER_ID, Created="2024-01-02T03:04:05.000Z",
                     LastStarted="2024-07-01T10:00:00.000Z", ParameterObject={"a": "b"})
    for version, (zone, state) in enumerate((("UTC", "Started"), ("NO,includeTZOffset", "Failed"),
                                             ("US-CA,includeTZOffset", "Succeeded")), start=2):
        status, carrier, _ = await api.request("GET", "/api/v1/BatchTask/1", token=api.owner,
                                               headers={"SO-TimeZone": zone})
        carrier["State"] = state
        status, got, headers = await api.request("PUT", "/api/v1/BatchTask/1", body=carrier, token=api.owner,
                                                 headers={"SO-TimeZone": zone})
        assert (status, got, headers["ETag"]) == (200, carrier, f'"{version}"'), zone
        assert await stored(api, 1) == {**doc, "State": state}


async def test_strict_readonly_takes_back_a_carrier_with_sub_second_dates(make_api):
    api = await make_api(strict_readonly=True)
    doc = await seed(api, 1, AssociateId=OWNER_ID, LastStarted="2024-07-01T10:00:00.250Z")  # Created has .678
    status, carrier, _ = await api.request("GET", "/api/v1/BatchTask/1")
    carrier["State"] = "Failed"
    status, got, _ = await api.request("PUT", "/api/v1/BatchTask/1", body=carrier)
    assert (status, got) == (200, carrier)
    assert await stored(api, 1) == {**doc, "State": "Failed"}


async def test_strict_readonly_takes_back_the_carrier_in_a_local_zone(make_api):
    api = await make_api(strict_readonly=True)
    doc = await seed(api, 1, AssociateId=OWNER_ID, Created="2024-01-02T03:04:05.000Z")
    status, carrier, _ = await api.request("GET", "/api/v1/BatchTask/1", headers={"SO-TimeZone": "NO"})
    assert carrier["Created"] == "2024-01-02T04:04:05"  # Oslo time, unlabelled
    carrier["State"] = "Failed"
    status, got, _ = await api.request("PUT", "/api/v1/BatchTask/1", body=carrier, headers={"SO-TimeZone": "NO"})
    assert (status, got) == (200, carrier)
    assert await stored(api, 1) == {**doc, "State": "Failed"}
