"""Hostile and sloppy input against the SuperOffice and webMethods styles.

The rule every test here checks: bad input gets a 4xx in the vendor's error body, no
uncaught exception is logged, and nothing stored changes.
Table-driven cases name the input; hypothesis (bounded, derandomized) mixes the rest.
Faults it found are kept as regression cases; one framework limit is a strict xfail.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.apis import webmethods
from tests.apis.test_webmethods_fixtures import WmApi, _make_wm, _wm  # noqa: F401  (fixtures)
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR
from gateway.context import STORE
from tests.apis.hostile import _resolve, assert_envelope, no_fault, refuse_all, refused, send
from tests.conftest import Api

SO = "/api/v1"
WM = "/rest/pub/opentask"
WM_SEARCH = "/rest/pub/opentasksearch"
JSON = "application/json"
XML = "application/xml"
FORM = "application/x-www-form-urlencoded"
PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
#: hypothesis: bounded, repeatable, one app per test (the examples share it)
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# -- seeds ------------------------------------------------------------------------------------
async def seed_superoffice(api: Api) -> None:
    """Tasks 1 (Started, owned by associate 7) and 2 (at version 2)."""
    for task in ({"Name": "alpha", "AssociateId": 7, "State": "Started", "ParameterObject": {"k": "v"}},
                 {"Name": "beta"}):
        status, body, _ = await api.request("POST", f"{SO}/BatchTask", body=task)
        assert status == 200, body
    status, body, _ = await api.request("PUT", f"{SO}/BatchTask/2", body={"State": "Started"})
    assert status == 200, body


@dataclass
class WmSeed:
    wid: str  # assigned to alice, updated once
    other: str  # root's own, updated once
    other_seq: int  # the update's audit entry, on *other*

    def fill(self, text: str) -> str:
        return text.format(wid=self.wid, other=self.other, seq=self.other_seq)


async def seed_webmethods(api: WmApi) -> WmSeed:
    ids = []
    for queue in ({"assignedTaskList": ["alice"], "name": "mine"}, {"name": "other"}):
        status, body, _ = await api.request("POST", WM, body={"taskTypeID": "T1", "taskQueueInfo": queue})
        assert status == 200, body
        ids.append(body["taskID"])
        status, body, _ = await api.request("PUT", f"{WM}/{ids[-1]}", body={"TaskInfo": {"description": "d"}})
        assert status == 200, body
    _s, audit, _ = await api.request("GET", f"{WM}/{ids[1]}/audit")
    return WmSeed(ids[0], ids[1], audit["taskAudits"][-1]["id"])


@pytest.fixture(name="so")
async def _so(api: Api) -> Api:
    await seed_superoffice(api)
    return api


@pytest.fixture(name="wms")
async def _wms(wm: WmApi) -> tuple[WmApi, WmSeed]:
    return wm, await seed_webmethods(wm)


# -- SuperOffice: table ----------------------------------------------------------------------------
_T1 = f"{SO}/BatchTask/1"
_CHANGE = {"State": "New"}  # a valid change to task 1: only the oddity around it may refuse it
_DEEP = "[" * 100 + "]" * 100

SO_REFUSED: list[tuple[str, str, dict[str, Any]]] = [
    # headers
    *[("PUT", _T1, {"body": _CHANGE, "headers": {"SO-TimeZone": v}})
      for v in ("../../etc", ",includeTZOffset", "UTC, bogus", "UTC,includeTZOffset,x", "x" * 5000, "Ünïcode",
                "Etc/../UTC", "America", "zone.tab", "/etc/passwd", "US-NY; includeTZOffset", "9999")],
    *[("PUT", _T1, {"body": _CHANGE, "headers": {"Accept-Language": v}})
      for v in ("en;q=2", "en;;", "123456789", "en-", "Ünï", "en;q=0.5x", "*;q=", ",")],
    ("PUT", _T1, {"body": _CHANGE, "headers": {"SO-Language": "../x"}}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"SO-Culture": "ü"}}),
    *[("PUT", _T1, {"body": _CHANGE, "headers": {"If-Match": v}})
      for v in ("junk", 'W/"1"', '"99999999999999999999"', '"2"', '"-1"', '"1 "', "1", '"٣"')],
    ("PUT", _T1, {"body": _CHANGE, "headers": {"If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}}),
    ("DELETE", _T1, {"headers": {"If-Match": "junk"}}),
    ("PUT", _T1, {"body": _CHANGE, "token": "nope"}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"Authorization": "Basic %%%"}}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"Authorization": "Basic " + "w6k="}}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"Authorization": "Negotiate abc"}}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"Authorization": ""}}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"Authorization": "",
                                                 "Cookie": "taskgate_session=\u00ff; XSRF-TOKEN=x",
                                                 "X-XSRF-TOKEN": "Ünï"}}),
    ("PUT", _T1, {"body": _CHANGE, "headers": {"Authorization": "", "Cookie": "taskgate_session=abc"}}),
    # bodies: JSON with a wrong type at each updatable member (read-only ones: SO_IGNORED)
    *[("PUT", _T1, {"body": {member: value}})
      for member, value in [("State", []), ("State", "Bogus"), ("State", None), ("State", 7), ("State", True),
                            ("State", 1.0), ("Description", "x" * 255), ("Description", {"a": 1}),
                            ("Response", False), ("Request", ["r"])]],
    ("PUT", _T1, {"body": {"State": "New", "state": "New"}}),
    ("PUT", _T1, {"data": '{"Description": 1e400}'}),
    ("PUT", _T1, {"data": '{"Description": NaN}'}),
    ("PUT", _T1, {"data": '{"Description": "\\ud800"}'}),
    ("PUT", _T1, {"data": '{"State": 1' + "0" * 5000 + "}"}),
    ("PUT", _T1, {"data": _DEEP}),
    ("PUT", _T1, {"data": b'{"State": "\xff"}'}),
    ("PUT", _T1, {"data": '{"State":'}),
    ("PUT", _T1, {"data": "   "}),
    ("PUT", _T1, {"data": '"New"'}),
    ("PUT", _T1, {"data": "null"}),
    ("PUT", _T1, {"data": "[]"}),
    ("PUT", _T1, {"data": "{}{}"}),
    ("PUT", _T1, {"data": "{}", "ctype": "text/plain"}),
    ("PUT", _T1, {"data": "{}", "ctype": "application/json; charset=latin-1"}),
    ("PUT", _T1, {"data": "{}", "ctype": None}),
    # XML
    *[("PUT", _T1, {"data": xml, "ctype": XML})
      for xml in ("<Task><State>New</State></Task>",
                  "<BatchTaskInfo><State><New/></State></BatchTaskInfo>",
                  "<BatchTaskInfo><State>New</State><State>New</State></BatchTaskInfo>",
                  "<BatchTaskInfo><State>New</State><state>New</state></BatchTaskInfo>",
                  "<BatchTaskInfo><State>Bogus</State></BatchTaskInfo>",
                  "<BatchTaskInfo><State><![CDATA[Bogus]]></State></BatchTaskInfo>",
                  "<?pi x?><!-- c --><BatchTaskInfo><!-- c --><State>Bogus</State></BatchTaskInfo>",
                  "<b:BatchTaskInfo xmlns:b='urn:x'><b:State a='1'>Bogus</b:State></b:BatchTaskInfo>",
                  "<BatchTaskInfo><x:State>New</x:State></BatchTaskInfo>",
                  "<BatchTaskInfo><ParameterObject><KeyValueOfstringstring><Key>k</Key>"
                  "</KeyValueOfstringstring></ParameterObject></BatchTaskInfo>",
                  "<BatchTaskInfo><ParameterObject><KeyValueOfstringstring/></ParameterObject></BatchTaskInfo>",
                  "<!DOCTYPE x [<!ENTITY a 'b'>]><BatchTaskInfo><State>&a;</State></BatchTaskInfo>",
                  "<!DOCTYPE BatchTaskInfo SYSTEM 'file:///etc/passwd'><BatchTaskInfo/>",
                  "<BatchTaskInfo><State>New</State>",
                  '<?xml version="1.0" encoding="utf-16"?><BatchTaskInfo><State>New</State></BatchTaskInfo>',
                  '<?xml version="1.0" encoding="cp037"?><BatchTaskInfo/>',
                  "<BatchTaskInfo><IsSystemTask xsi:nil='true' "
                  "xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'/><State>x</State></BatchTaskInfo>",
                  "")],
    ("PUT", _T1, {"data": b'<?xml version="1.0" encoding="latin-1"?><BatchTaskInfo><State>\xe9</State></BatchTaskInfo>',
                  "ctype": XML}),
    # form
    *[("PUT", _T1, {"data": form, "ctype": FORM})
      for form in ("State=Bogus", "State=New&State=Old", "State", "State=New&state=New", b"State=\xff",
                   "State=%FF", "&".join(f"f{i}=1" for i in range(1001)))],
    # JSON Patch
    *[("PUT", _T1, {"body": ops, "ctype": PATCH})
      for ops in ([], {}, "x", [1], [{"op": "move", "from": "/Name", "path": "/State"}],
                  [{"op": "copy", "from": "/Name", "path": "/State"}], [{"op": "add", "path": "/State"}],
                  [{"op": 1, "path": "/State", "value": "New"}], [{"op": "add", "path": 1, "value": "New"}],
                  [{"op": "replace", "path": "/", "value": "New"}], [{"op": "replace", "path": "", "value": {}}],
                  [{"op": "replace", "path": "/State/0", "value": "x"}], [{"op": "remove", "path": "/State/0"}],
                  [{"op": "add", "path": "/ParameterObject/~", "value": "x"}],
                  [{"op": "add", "path": "/ParameterObject/~2", "value": "x"}],
                  [{"op": "add", "path": "/Name~2", "value": "x"}],
                  [{"op": "replace", "path": "/TableRight/Mask", "value": "x"}],
                  [{"op": "test", "path": "/State", "value": "New"}, {"op": "replace", "path": "/State", "value": "New"}],
                  [{"op": "replace", "path": "/State", "value": None}],
                  [{"op": "replace", "path": "/ParameterObject/a/b", "value": "x"}],
                  [{"op": "replace", "path": "/State", "value": "New"}] * 1001)],
    # merge patch
    *[("PUT", _T1, {"body": patch, "ctype": MERGE})
      for patch in ({"State": {"a": None}}, [], "x", {"State": None}, {"State": "New", "STATE": "New"})],
    # paths
    ("GET", f"{SO}/BatchTask/٣", {}),
    ("GET", f"{SO}/BatchTask/99999999999", {}),
    ("GET", f"{SO}/BatchTask/2147483648", {}),
    ("GET", f"{SO}/BatchTask/-1", {}),
    ("GET", f"{SO}/BatchTask/%00", {}),
    ("PUT", f"{SO}/BatchTask/-1", {"body": _CHANGE}),
    ("PUT", f"{SO}/BatchTask/٣", {"body": _CHANGE}),
    ("PUT", f"{SO}/BatchTask/{'9' * 400}", {"body": _CHANGE}),
    ("DELETE", f"{SO}/BatchTask/1.0", {}),
    ("POST", f"{SO}/BatchTask/99999999999/Stop", {}),
    ("POST", f"{SO}/BatchTask/x/Stop", {}),
    ("PATCH", _T1, {"body": _CHANGE}),
    ("GET", "/bad%20tenant!/api/v1/BatchTask/1", {}),
    ("GET", f"/{'t' * 65}/api/v1/BatchTask/1", {}),
    ("GET", f"{SO}/BatchTask/1/Nope", {}),
    # OData
    *[("GET", f"{SO}/BatchTask?{query}", {})
      for query in ("$filter=Name eq 'x", "$filter=Name eq", "$filter=Foo eq 1", "$filter=State gt 1",
                    "$filter=AssociateId eq 'x'", "$filter=Name eq 5", "$filter=State eq 'Bogus'",
                    "$filter=Name eq 'a' or State eq 1", "$filter=AssociateId eq 99999999999",
                    "$filter=Ñame eq 'x'", "$filter=Name eq 'a' and", "$filter=(Name eq 'a')",
                    "$filter=Name eq 'a' and and", "$filter=State ne 'All'", "$filter=Name eq x",
                    "$filter=AssociateId eq -", "$filter=" + "Name eq 'a' and " * 200 + "Foo eq 1",
                    "$orderby=Bogus", "$orderby=Name sideways", "$orderby=ParameterObject",
                    "$orderby=Name desc desc", "$select=Bogus", "$select=", "$select=TableRight",
                    "$top=-1", "$top=1001", "$top=x", "$top=1e3", "$top=٣", "$top=9999999999", "$skip=-1",
                    "$skip=٣", "$skip=1.5", "$format=atom", "$expand=x", "$Count=true")],
    # Agents
    ("POST", f"{SO}/Agents/Batch/Bogus", {"body": {}}),
    ("GET", f"{SO}/Agents/Batch/Bogus", {}),
    ("POST", f"{SO}/Agents/Batch/GetBatchTaskInfo", {"body": [1]}),
    ("POST", f"{SO}/Agents/Batch/GetBatchTaskInfo", {"data": "<Id>1</Id>", "ctype": XML}),
    *[("POST", f"{SO}/Agents/Batch/{method}", {"body": args})
      for method, args in [("GetBatchTaskInfo", {"Id": "1"}), ("GetBatchTaskInfo", {"Id": 1.5}),
                           ("GetBatchTaskInfo", {"Id": True}), ("GetBatchTaskInfo", {"Id": None}),
                           ("GetBatchTaskInfo", {}), ("GetBatchTaskInfo", {"Id": 1, "id": 1}),
                           ("GetBatchTaskInfosByAssociates", {"AssociateIds": [None]}),
                           ("GetBatchTaskInfosByAssociates", {"AssociateIds": "1"}),
                           ("GetBatchTaskInfosByAssociates", {"AssociateIds": [1.5]}),
                           ("GetBatchTaskInfosByAssociates", {"AssociateIds": [True]}),
                           ("GetBatchTaskInfosByState", {"State": []}),
                           ("GetBatchTaskInfosByState", {"State": "Bogus"}),
                           ("GetBatchTaskInfosByNameAndState", {"Name": 5, "State": 1}),
                           ("StartBatchJob", {"BatchTaskInfo": "x"}),
                           ("StartBatchJob", {"BatchTaskInfo": {"State": "Bogus"}}),
                           ("StartBatchJob", {"BatchTaskInfo": {"Description": "x" * 300}}),
                           ("StartBatchJob", {"BatchTaskInfo": {"Name": "a", "name": "b"}}),
                           ("UpdateBatchTask", {"BatchTaskInfo": {"State": "New"}}),
                           ("UpdateBatchTask", {"BatchTaskInfo": {"Id": "1", "State": "New"}}),
                           ("UpdateBatchTask", {"BatchTaskInfo": {"Id": 1, "State": "Bogus"}}),
                           ("UpdateBatchTask", {"BatchTaskInfo": {"Id": 1, "Description": 5}}),
                           ("StopBatchJob", {"Id": [1]}), ("DeleteBatchTask", {"BatchTaskId": "1"}),
                           ("DeleteBatchTasks", {"BatchTaskIds": [1, True]}),
                           ("DeleteBatchTasks", {"BatchTaskIds": [1, None]}),
                           ("DeleteBatchTasks", {"BatchTaskIds": 1}),
                           ("GetAllBatchTaskInfosByName", {"TaskName": None})]],
    # who may do what
    ("PUT", _T1, {"body": _CHANGE, "token": "user"}),
    ("PUT", _T1, {"body": _CHANGE, "token": "read_only"}),
    ("DELETE", _T1, {"token": "user"}),
    ("POST", f"{SO}/BatchTask/1/Stop", {"token": "read_only"}),
    ("POST", f"{SO}/BatchTask", {"body": {"Name": "x"}, "token": "user"}),
    ("POST", f"{SO}/Agents/Batch/DeleteBatchTasks", {"body": {"BatchTaskIds": [1, 2]}, "token": "user"}),
    ("POST", f"{SO}/Agents/Batch/StartBatchJob", {"body": {"BatchTaskInfo": {}}, "token": "user"}),
    # create bodies
    ("POST", f"{SO}/BatchTask", {"body": [{"op": "add", "path": "/State", "value": "New"}], "ctype": PATCH}),
    ("POST", f"{SO}/BatchTask", {"body": {"State": "New"}, "ctype": MERGE}),
    ("POST", f"{SO}/BatchTask", {"body": {"LastStarted": "9999-12-31T23:59:59-12:00"}}),
    # login and logout
    ("POST", "/login", {"body": {"user": "alice", "password": "alice-password"}, "token": None}),
    ("POST", "/login", {"data": "user=alice", "ctype": FORM}),
    ("POST", "/login", {"data": "user=alice&password=wrong", "ctype": FORM}),
    ("POST", "/login", {"data": "user=%ff&password=%ff", "ctype": FORM}),
    ("POST", "/login", {"data": "user=alice&password=alice-password", "ctype": FORM + "; charset=x-foo"}),
    ("POST", "/login", {"data": b"user=\xff&password=x", "ctype": FORM}),
    ("POST", "/login", {"data": "--x\r\n", "ctype": "multipart/form-data; boundary=x"}),
    ("POST", "/logout", {"headers": {"Authorization": "", "Cookie": "taskgate_session=abc; XSRF-TOKEN=abc",
                                      "X-XSRF-TOKEN": "abc"}}),
]


async def test_superoffice_refuses_hostile_input(so: Api):
    await refuse_all(so, "superoffice", [(m, p, _resolve(so, k)) for m, p, k in SO_REFUSED])


#: bad values in members a PUT ignores: ignored too by default, refused with strict_readonly
SO_IGNORED: list[tuple[str, str, dict[str, Any]]] = [
    *[("PUT", _T1, {"body": {member: value}})
      for member, value in [("Id", "x"), ("Id", 1.5), ("Id", 10**30), ("Id", True), ("Name", 5), ("Name", []),
                            ("AssociateId", 1.5), ("AssociateId", "1e3"), ("DetailsTable", 40000),
                            ("DetailsRecord", -2**31 - 1), ("IsSystemTask", "maybe"), ("IsInternalTask", 2),
                            ("ParameterObject", [1]), ("ParameterObject", {"k": None}), ("ParameterObject", {"k": 1}),
                            ("ParameterObject", "x"), ("LastStarted", 5), ("LastStarted", "yesterday"),
                            ("LastStarted", "2024-13-01T00:00:00"), ("LastStarted", "9999-12-31T23:59:59-12:00"),
                            ("Created", "2024-01-01T00:00:00+01:00x"), ("StartCount", 2**31),
                            ("ProgressPercent", True), ("ProgressPercent", "50%"), ("FileName", "x" * 261),
                            ("CancellationBehaviour", None), ("CancellationBehaviour", "Later"),
                            ("DatabaseSerialNumber", "x" * 40)]],
    ("PUT", _T1, {"data": "<BatchTaskInfo><ParameterObject><KeyValueOfstringstring><Key>k</Key><Value>"
                          + "v" * 4001 + "</Value></KeyValueOfstringstring></ParameterObject></BatchTaskInfo>",
                  "ctype": XML}),
    ("PUT", _T1, {"data": "ProgressPercent=1.5", "ctype": FORM}),
    ("PUT", _T1, {"body": [{"op": "replace", "path": "/State", "value": "Started"}, {"op": "remove", "path": "/Id"}],
                  "ctype": PATCH}),
    *[("PUT", _T1, {"body": patch, "ctype": MERGE})
      for patch in ({"ParameterObject": {"y": {"z": None}}}, {"ParameterObject": [1]}, {"Id": None})],
]


async def test_superoffice_bad_values_in_ignored_members_are_ignored_unless_strict(so: Api, aiohttp_client,
                                                                                  config, tmp_path):
    before = await so.snapshot()
    for method, path, kwargs in SO_IGNORED:
        sent = await no_fault(so, "superoffice", method, path, **kwargs)
        assert sent.status == 200, (path, str(kwargs)[:120], sent.text[:200])
    assert await so.snapshot() == before  # nothing of it was a change
    strict_config = dataclasses.replace(config, base_dir=str(tmp_path / "strict"))
    client = await aiohttp_client(create_app(strict_config.replace("superoffice", strict_readonly=True)))
    await client.app[STORE].add_user("root", "admin", None)
    strict = Api(client, client.app[STORE], admin=await client.app[AUTHENTICATOR].create_token("root"),
                 user="", read_only="")
    await seed_superoffice(strict)
    await refuse_all(strict, "superoffice", SO_IGNORED)


async def test_superoffice_tolerated_oddities_still_answer(so: Api):
    """Headers that are odd but harmless are ignored (RFC 9110) or accepted; never a fault."""
    for headers in ({"If-Modified-Since": "junk"}, {"If-Modified-Since": "Mon, 01 Jan 0 00:00:00 GMT"},
                    {"If-Unmodified-Since": "Mon, 32 Jan 2024 00:00:00 GMT"}, {"Accept": "aplication/json"},
                    {"Accept": "*/*;q=nan, text/xml;q=1e400"}, {"SO-TimeZone": "UTC,"},
                    {"SO-TimeZone": "posixrules, includeTZOffset"}, {"X-Request-ID": "Ünï\u00ff" * 100},
                    {"Accept-Language": "*"}, {"Host": "a b"}, {"Host": "[::1"}):
        sent = await no_fault(so, "superoffice", "GET", f"{SO}/BatchTask?$top=1", headers=headers)
        assert sent.status == 200, (headers, sent.text[:200])


# -- SuperOffice: hypothesis --------------------------------------------------------------------
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["", "New", "All", "99999", "-1", "٣", "\u0000", "x" * 300, "0001-01-01T00:00:00",
                     "2024-05-17T19:33:16", "2024-05-17T19:33:16+14:00", "true", "CanCancel"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
_SO_MEMBERS = st.sampled_from(["Id", "Name", "AssociateId", "DetailsTable", "IsSystemTask", "ParameterObject",
                               "LastStarted", "Created", "StartCount", "State", "state", "Description",
                               "Response", "Request", "ProgressPercent", "CancellationBehaviour", "TableRight",
                               "FieldProperties", "Bogus"])
_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x24f,
                                              blacklist_categories=("Cc",)), max_size=40)


@FUZZ
@given(body=st.dictionaries(_SO_MEMBERS, _VALUES, min_size=1, max_size=3),
       ctype=st.sampled_from([JSON, "text/json", MERGE]))
async def test_superoffice_put_bodies_never_fault(so: Api, body, ctype):
    await no_fault(so, "superoffice", "PUT", _T1, body=body, ctype=ctype)


@FUZZ
@given(ops=st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "test", "Replace", "move", "copy", "x"]),
     "path": st.one_of(st.sampled_from(["", "/", "/State", "State", "/state", "/State/0", "/ParameterObject/k",
                                        "/ParameterObject/~", "/ParameterObject/~2", "/ParameterObject/-",
                                        "/Name/a/b", "/Id", "/LastStarted", "/TableRight/Mask", "~1", "/~0"]),
                       st.text(max_size=10))},
    optional={"value": _VALUES}), min_size=1, max_size=4))
async def test_superoffice_json_patches_never_fault(so: Api, ops):
    await no_fault(so, "superoffice", "PUT", _T1, body=ops, ctype=PATCH)


@FUZZ
@given(name=st.sampled_from(["SO-TimeZone", "Accept-Language", "SO-Language", "SO-Culture", "If-Match",
                             "If-Unmodified-Since", "If-Modified-Since", "Accept", "X-Request-ID", "Cookie"]),
       value=st.one_of(_HEADER_TEXT, st.sampled_from(
           ["../../etc", "UTC,", ",includeTZOffset", "UTC, includeTZOffset", "x" * 2000, "Ünïcode", "Etc/GMT-14",
            "posixrules", "en;q=2", "*;q=0.5", 'W/"1"', '"1", "2"', "*", "Mon, 01 Jan 2024 00:00:00 GMT",
            "Mon, 01 Jan 0 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "0", "-1", "text/xml;q=0.9"])),
       method=st.sampled_from(["GET", "PUT"]))
async def test_superoffice_headers_never_fault(so: Api, name, value, method):
    # the PUT repeats task 1's state: accepted or refused, it changes nothing
    body = {"State": "Started"} if method == "PUT" else None
    before = await so.snapshot()
    await no_fault(so, "superoffice", method, _T1, body=body, headers={name: value})
    assert await so.snapshot() == before


_ODATA_PIECES = st.sampled_from(["Name", "State", "AssociateId", "name", "Id", "eq", "ne", "gt", "and", "or",
                                 "not", "'x'", "''", "'it''s'", "'", "'Started'", "'All'", "1", "-5", "99999",
                                 "9" * 40, "(", ")", "null", "true", "Ñ", "%", " "])


@FUZZ
@given(option=st.sampled_from(["$filter", "$orderby", "$orderBy", "$select", "$top", "$skip", "$format"]),
       value=st.one_of(st.lists(_ODATA_PIECES, max_size=8).map(" ".join), _HEADER_TEXT))
async def test_superoffice_odata_options_never_fault(so: Api, option, value):
    await no_fault(so, "superoffice", "GET", so.client.make_url(f"{SO}/BatchTask").with_query({option: value})
                   .path_qs)


@FUZZ
@given(method=st.sampled_from(["GetBatchTaskInfo", "GetBatchTaskInfosByAssociates", "StopBatchJob",
                               "GetBatchTaskInfosByState", "UpdateBatchTask", "GetBatchTaskInfosByNameAndState",
                               "GetBatchTaskInfosByAssociatesAndState", "DeleteBatchTask", "DeleteBatchTasks",
                               "GetAllBatchTaskInfosByName", "getbatchtaskinfo", "Bogus"]),
       args=st.dictionaries(st.sampled_from(["Id", "id", "AssociateIds", "State", "Name", "TaskName",
                                             "BatchTaskInfo", "BatchTaskId", "BatchTaskIds", "x"]),
                            _VALUES, max_size=3))
async def test_superoffice_agents_never_fault(so: Api, method, args):
    await no_fault(so, "superoffice", "POST", f"{SO}/Agents/Batch/{method}", body=args)


# -- SuperOffice: regressions of faults this file found --------------------------------------------
@pytest.mark.parametrize(("method", "header", "value"), [
    ("GET", "If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 +99999999999999999999999"),
    ("PUT", "If-Unmodified-Since", "1 Jan 99999999999999999999 00:00:00 GMT"),
])
async def test_http_dates_that_overflow_are_ignored_as_invalid(so: Api, method, header, value):
    body = {"State": "Started"} if method == "PUT" else None  # unchanged either way
    await no_fault(so, "superoffice", method, _T1, body=body, headers={header: value})


@pytest.mark.parametrize("encoding", ["shift_jis", "utf-7", "x-foo"])
async def test_xml_in_an_encoding_expat_cannot_read_is_refused(so: Api, encoding):
    xml = f'<?xml version="1.0" encoding="{encoding}"?><BatchTaskInfo><State>New</State></BatchTaskInfo>'
    await refused(so, "superoffice", "PUT", _T1, data=xml, ctype=XML)


async def test_a_filter_number_of_thousands_of_digits_is_refused(so: Api):
    await refused(so, "superoffice", "GET", f"{SO}/BatchTask?$filter=AssociateId eq {'9' * 5000}")


async def test_more_ids_than_an_agents_call_takes_are_refused(so: Api):
    await refused(so, "superoffice", "POST", f"{SO}/Agents/Batch/GetBatchTaskInfosByAssociates",
                  data=json.dumps({"AssociateIds": [7] * 260_000}))
    await refused(so, "superoffice", "POST", f"{SO}/Agents/Batch/DeleteBatchTasks",
                  body={"BatchTaskIds": list(range(1, 1002))})


async def test_delete_many_is_one_commit_and_ignores_single_version_preconditions(so: Api):
    sent = await send(so, "POST", f"{SO}/Agents/Batch/DeleteBatchTasks",
                      body={"BatchTaskIds": [1, 2, 1, 999]}, headers={"If-Match": '"1"'})
    assert (sent.status, sent.faults) == (204, [])
    rows = await so.db_rows("SELECT task_id, action, at FROM audit WHERE action = 'deleted' ORDER BY task_id")
    assert [r[:2] for r in rows] == [("1", "deleted"), ("2", "deleted")]
    assert rows[0][2] == rows[1][2]  # queued together, committed together


async def test_xml_with_thousands_of_unknown_members_is_read(so: Api):
    xml = "<BatchTaskInfo>" + "".join(f"<m{i}/>" for i in range(2000)) + "<State>Started</State></BatchTaskInfo>"
    await no_fault(so, "superoffice", "PUT", _T1, data=xml, ctype=XML)
    xml = "<BatchTaskInfo><State>New</State><m1/><STATE>Failed</STATE></BatchTaskInfo>"
    await refused(so, "superoffice", "PUT", _T1, data=xml, ctype=XML)


@pytest.mark.parametrize("member", ["LastStarted", "Created"])
async def test_superoffice_dates_before_year_1000_read_back(so: Api, member):
    created = await send(so, "POST", f"{SO}/BatchTask", body={"Name": "old", member: "0999-05-06T07:08:09"})
    assert created.status == 200, created.body
    got = await no_fault(so, "superoffice", "GET", f"{SO}/BatchTask/{created.body}")
    assert got.body[member] == "0999-05-06T07:08:09"
    await no_fault(so, "superoffice", "GET", f"{SO}/BatchTask")


@pytest.mark.parametrize(("stored", "zone"), [("9999-12-31T23:00:00Z", "Etc/GMT-14"),
                                              ("9999-12-31T13:00:00+00:00", "AU-ACT")])
async def test_dates_at_the_edge_of_the_calendar_read_back_in_any_zone(so: Api, stored, zone):
    status, task_id, _ = await so.request("POST", f"{SO}/BatchTask", body={"Name": "edge", "LastStarted": stored})
    assert status == 200, task_id
    got = await no_fault(so, "superoffice", "GET", f"{SO}/BatchTask/{task_id}", headers={"SO-TimeZone": zone})
    assert got.body["LastStarted"] == stored[:19]  # the zone's time would be past 9999: given in UTC
    await no_fault(so, "superoffice", "GET", f"{SO}/BatchTask", headers={"SO-TimeZone": zone})


@pytest.mark.xfail(strict=True, reason="framework (aiohttp 3.14 lingering read): after the vendor 400 for a body "
                   "whose Content-Encoding does not decode, aiohttp drains the broken payload for keep-alive, "
                   "logs 'Unhandled exception' and drops the connection under the next request")
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_broken_content_encoding_is_refused_and_the_connection_kept(so: Api, caplog, encoding):
    caplog.set_level(logging.ERROR, logger="aiohttp.server")
    await refused(so, "superoffice", "PUT", _T1, data=b"not compressed", headers={"Content-Encoding": encoding})
    follow = await send(so, "GET", _T1)  # the same pooled connection
    assert follow.status == 200
    assert not [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.ERROR]


@pytest.mark.xfail(strict=True, reason="framework: a Content-Encoding aiohttp cannot decode (br without "
                   "Brotli, zstd) is answered by aiohttp's parser in plain text, before any handler runs")
async def test_undecodable_content_encoding_is_not_vendor_shaped(so: Api):
    await refused(so, "superoffice", "PUT", _T1, body={"State": "New"}, headers={"Content-Encoding": "br"})


# -- webMethods: table ----------------------------------------------------------------------------------
WM_REFUSED: list[tuple[str, str, dict[str, Any]]] = [
    # query parameters
    *[("GET", WM + "/{wid}?jsonDateEncoding=" + e, {})
      for e in ("'''", "'", "y" * 101, "Q", "yyyy-MM-dd'T", "%27%27%27", "yyyy''''MM'", "w", "F")],
    *[("GET", WM_SEARCH + "?maxRes=" + v, {}) for v in ("-1", "1e3", "99999999999", "", "1.0", "0x10", "%00")],
    *[("GET", WM + "?" + q, {})
      for q in ("includeTaskData=maybe", "searchUserTasks=1", "user=", "user=%20", "user=" + "a" * 300,
                "taskID=", "taskID=%20", "taskID=" + "x" * 256, "taskID=nope", "jsonDateEncoding=Q")],
    *[("GET", WM_SEARCH + "?" + q, {})
      for q in ("taskSearchQuery=%7B%7D", "nonActive=x", "notOthers=2", "includeTaskData=", "user=%20")],
    # paths
    ("GET", WM + "/nope", {}),
    ("GET", WM + "/%00", {}),
    ("GET", WM + "/%ED%A0%80", {}),
    ("GET", WM + "/" + "x" * 256, {}),
    ("GET", WM + "/{wid}/audit/-1", {}),
    ("GET", WM + "/{wid}/audit/9999999999999999999", {}),
    ("GET", WM + "/{wid}/audit/%D9%A3", {}),
    ("GET", WM + "/{wid}/audit/x", {}),
    ("GET", WM + "/{wid}/audit/{seq}", {}),  # another task's entry
    ("GET", WM + "/{wid}/nope", {}),
    ("GET", WM + "/", {}),
    ("PATCH", WM + "/{wid}", {"body": {}}),
    ("DELETE", WM + "/{wid}/audit/{seq}", {}),  # another task's entry
    ("DELETE", WM + "/{wid}/audit/0", {}),
    ("DELETE", WM + "/{wid}/audit/-1", {}),
    ("DELETE", WM + "/{wid}/audit/%D9%A3", {}),
    ("DELETE", WM + "/{wid}/audit/99999999999999999999", {}),
    ("DELETE", WM + "?taskID=", {}),
    ("DELETE", WM, {}),
    ("DELETE", WM + "/nope", {}),
    ("DELETE", WM + "/{other}", {"token": "user"}),  # not alice's
    # PUT bodies
    *[("PUT", WM + "/{wid}", {"body": body})
      for body in ({"TaskInfo": {"name": 5}}, {"TaskInfo": {"name": "x" * 256}}, {"TaskInfo": {"assignedToList": [None]}},
                   {"TaskInfo": {"assignedToList": "alice"}}, {"TaskInfo": {"assignedToList": [""]}},
                   {"TaskInfo": {"assignedToList": ["a"] * 1001}}, {"TaskInfo": {"delegationMap": {"": ""}}},
                   {"TaskInfo": {"delegationMap": []}}, {"TaskInfo": {"status": "ACTIVE"}}, {"TaskInfo": {"status": 1}},
                   {"TaskInfo": {"priority": "HIGH"}}, {"TaskInfo": {"expireDate": True}},
                   {"TaskInfo": {"expireDate": 1.5}}, {"TaskInfo": {"expireDate": 10**30}},
                   {"TaskInfo": {"expireDate": -10**16}}, {"TaskInfo": {"expireDate": [2024]}},
                   {"TaskInfo": {"expireDate": "Fri Feb 30 19:33:16 UTC 2024"}},
                   {"TaskInfo": {"expireDate": "Fri May 17 19:33:16 XYZ 2024"}},
                   {"TaskInfo": {"expireDate": "Fri May 17 19:33:16 GMT+99:99 2024"}},
                   {"TaskInfo": {"expireDate": "2024-13-01"}}, {"TaskInfo": {"expireDate": "2024-05-17T19:33:16+25:00"}},
                   {"TaskInfo": {"expireDate": "2024-05-17T19:33:16+14:00" + "0" * 40}},
                   {"TaskInfo": {"expireDate": "9999-12-31T23:59:59-01:00"}}, {"TaskInfo": {"expireDate": "1.5e3"}},
                   {"TaskInfo": {"taskScheduleDate": "2099-01-01T00:00:00Z"}},
                   {"TaskInfo": {"bogus": 1}}, {"TaskInfo": [], "taskID": "x"}, {"TaskInfo": "x"},
                   {"TaskInfo": {"name": "a"}, "taskInfo": {"name": "b"}}, {"TaskData": [1]}, {"TaskData": "x"},
                   {"TaskData": {}, "taskData": {}}, {"retryOnFailureCount": -1}, {"retryDelay": "1.5"},
                   {"retryDelay": True}, {"user": {"a": 1}}, {"user": ""}, {"bogus": 1}, {"taskID": None, "x": 1})],
    ("PUT", WM + "/{wid}", {"data": '{"TaskData": {"a": 1e400}}'}),
    ("PUT", WM + "/{wid}", {"data": '{"TaskData": {"a": NaN}}'}),
    ("PUT", WM + "/{wid}", {"data": '{"TaskData": {"a": "\\udc00"}}'}),
    ("PUT", WM + "/{wid}", {"data": '{"TaskData": ' + _DEEP + "}"}),
    ("PUT", WM + "/{wid}", {"data": "[]"}),
    ("PUT", WM + "/{wid}", {"data": "{", "ctype": JSON}),
    ("PUT", WM + "/{wid}", {"data": b'{"TaskInfo": {"name": "\xff"}}'}),
    ("PUT", WM + "/{wid}", {"data": "{}", "ctype": "text/plain"}),
    ("PUT", WM + "/{wid}", {"data": "{}", "ctype": "application/json; charset=utf-16"}),
    ("PUT", WM + "/{wid}", {"data": "name=x", "ctype": FORM}),
    ("PUT", WM, {"body": {"taskID": ["x"]}}),
    ("PUT", WM, {"body": {"taskID": True}}),
    ("PUT", WM, {"body": {"taskID": 10**30}}),
    ("PUT", WM, {"body": {"taskID": {"a": 1}}}),
    ("PUT", WM, {"body": {"TaskInfo": {"name": "x"}}}),
    ("PUT", WM + "?taskID=nope", {"body": {"taskID": "{wid}"}}),  # query over body
    ("PUT", WM + "/{other}", {"body": {"TaskInfo": {"name": "x"}}, "token": "user"}),
    ("PUT", WM + "/{wid}", {"body": {"TaskInfo": {"name": "x"}}, "token": "read_only"}),
    ("PUT", WM + "/{wid}?user=root", {"body": {"TaskInfo": {"name": "x"}}, "token": "user"}),
    ("PUT", WM + "/{wid}", {"body": {"TaskInfo": {"name": "x"}}, "token": "nope"}),
    # create bodies
    *[("POST", WM, {"body": body})
      for body in ({}, {"taskTypeID": None}, {"taskTypeID": 1.5}, {"taskTypeID": ""}, {"taskTypeID": ["x"]},
                   {"taskTypeID": "x" * 256}, {"taskTypeID": "x", "taskQueueInfo": []},
                   {"taskTypeID": "x", "taskQueueInfo": {"priority": "HIGH"}},
                   {"taskTypeID": "x", "taskQueueInfo": {"bogus": 1}},
                   {"taskTypeID": "x", "taskQueueInfo": {"expireDate": "junk"}},
                   {"taskTypeID": "x", "taskQueueInfo": {}, "TaskQueueInfo": {}},
                   {"taskTypeID": "x", "taskData": [1]}, {"taskTypeID": "x", "bogus": 1},
                   {"taskTypeID": "x", "taskQueueInfo": {"assignedTaskList": [1]}})],
    ("POST", WM, {"data": '{"taskTypeID": "x", "taskData": {"a": 1e400}}'}),
    ("POST", WM, {"body": {"taskTypeID": "x"}, "token": "read_only"}),
    # searches
    *[("POST", WM_SEARCH, {"body": body})
      for body in ({"taskSearchQuery": []}, {"taskSearchQuery": {}, "TaskSearchQuery": {}},
                   {"taskSearchQuery": {"terms": None}}, {"taskSearchQuery": {"terms": {}}},
                   {"taskSearchQuery": {"terms": [{}]}}, {"taskSearchQuery": {"terms": [{"fields": []}]}},
                   {"taskSearchQuery": {"terms": [{"fields": [1]}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["nope"], "value": "x"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["name"], "operator": "co", "value": "%"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["name"], "operator": None, "value": "x"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["name"], "operator": 5, "value": "x"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["status"], "value": None}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["status"], "value": "ACTIVE"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["status"], "operator": "<", "value": "active"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["createdDate"], "operator": ">", "value": 10**30}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["createdDate"], "operator": ">", "value": [1]}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["createdDate"], "operator": "contains", "value": "1"}]}},
                   {"taskSearchQuery": {"terms": [{"Fields": ["name"], "Operator": "equals", "Value": {"a": 1}}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["name"], "value": "x", "bogus": 1}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["name"] * 21, "value": "x"}]}},
                   {"taskSearchQuery": {"terms": [{"fields": ["name"], "value": "x"}] * 51}},
                   {"taskSearchQuery": {"maxResults": "1e400"}}, {"taskSearchQuery": {"maxResults": -1}},
                   {"taskSearchQuery": {"maxResults": 1.0}}, {"taskSearchQuery": {"doNotShowAcceptedByOthers": "y"}},
                   {"taskSearchQuery": {"bogus": 1}}, {"maxRes": [1]}, {"maxRes": True}, {"nonActive": "yes"},
                   {"bogus": 1}, {"searchUserTasks": True, "taskSearchQuery": {"showNonActiveTasks": 2}})],
    ("POST", WM_SEARCH, {"data": '{"maxRes": 1e400}'}),
]


async def test_webmethods_refuses_hostile_input(wms):
    api, seed = wms
    rows = []
    for method, path, kwargs in WM_REFUSED:
        kwargs = _resolve(api, kwargs)
        if isinstance(kwargs.get("body"), dict) and kwargs["body"].get("taskID") == "{wid}":
            kwargs["body"] = {**kwargs["body"], "taskID": seed.wid}
        rows.append((method, path, kwargs))
    await refuse_all(api, "webmethods", rows, seed.fill)


# -- webMethods: hypothesis ---------------------------------------------------------------------------
_WM_DATES = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20),  # epoch milliseconds, years 1-999 included
    st.integers(min_value=-62_135_596_800_000, max_value=-30_610_224_000_000),
    st.sampled_from(["2024-05-17T19:33:16.470Z", "2024-05-17", "Fri May 17 19:33:16 UTC 2024",
                     "Fri May 17 19:33:16 GMT+02:00 2024", "Fri May 17 19:33:16 CEST 2024", "junk", "",
                     "2099-01-01T00:00:00Z", "2024-05-17T19:33:16+14:00"]))
_WM_INFO = st.dictionaries(
    st.sampled_from(["name", "description", "status", "priority", "expireDate", "taskScheduleDate",
                     "assignedToList", "acceptedByList", "delegationMap", "errorCode", "taskID", "createdDate",
                     "bogus"]),
    st.one_of(_VALUES, _WM_DATES, st.sampled_from(["active", "completed", "suspended", "error", "scheduled",
                                                   "high", ["alice"], ["root", "bob"]])), max_size=3)


async def _settle(api: WmApi) -> None:
    """Apply what the (held) clock owes every task, so a request's own effect is all that can change."""
    await webmethods.sweep(api.store, api.clock.now_iso(), "test")


@FUZZ
@given(info=_WM_INFO, data=st.one_of(st.none(), _VALUES), key=st.sampled_from(["TaskInfo", "taskInfo"]),
       who=st.sampled_from(["admin", "user", "bob"]))
async def test_webmethods_put_bodies_never_fault(wms, info, data, key, who):
    api, seed = wms
    await _settle(api)
    body: dict[str, Any] = {key: info}
    if data is not None:
        body["TaskData"] = data
    await no_fault(api, "webmethods", "PUT", f"{WM}/{seed.wid}", body=body, token=getattr(api, who))


_TERM = st.fixed_dictionaries({}, optional={
    "fields": st.lists(st.sampled_from(["name", "status", "createdDate", "assignedToList", "taskID",
                                        "expireDate", "bogus"]), max_size=3),
    "operator": st.sampled_from(["equals", "=", "!=", "contains", ">", "<=", "greater_than", "co", "", " ="]),
    "value": st.one_of(_VALUES, _WM_DATES)})


@FUZZ
@given(query=st.fixed_dictionaries({}, optional={
    "terms": st.lists(_TERM, max_size=3), "maxResults": _SCALARS, "showNonActiveTasks": _SCALARS,
    "doNotShowAcceptedByOthers": _SCALARS}),
    top=st.dictionaries(st.sampled_from(["maxRes", "nonActive", "notOthers", "searchUserTasks", "includeTaskData"]),
                        _SCALARS, max_size=2),
    who=st.sampled_from(["admin", "user"]))
async def test_webmethods_searches_never_fault(wms, query, top, who):
    api, _seed = wms
    await _settle(api)
    await no_fault(api, "webmethods", "POST", WM_SEARCH, body={**top, "taskSearchQuery": query},
                   token=getattr(api, who))


@FUZZ
@given(pattern=st.text(alphabet="yMdHmsSEazZXGuDkKhLQw'- :.T", max_size=40),
       path=st.sampled_from(["/{wid}", "", "/{wid}/audit"]))
async def test_webmethods_date_patterns_never_fault(wms, pattern, path):
    api, seed = wms
    url = api.client.make_url(WM + seed.fill(path)).with_query({"jsonDateEncoding": pattern}).path_qs
    sent = await no_fault(api, "webmethods", "GET", url)
    assert sent.status in (200, 400), sent.text[:200]


# -- webMethods: confirmed bugs ---------------------------------------------------------------------------
_EDGE_TO_STRING = ["Mon Jan 01 00:00:00 GMT+01:00 0001", "Fri Dec 31 23:59:59 GMT-01:00 9999"]


# Found by this file as 500s (OverflowError escaping WmDate); fixed meanwhile in webmethods_dates: kept as guards.
@pytest.mark.parametrize("date", _EDGE_TO_STRING)
@pytest.mark.parametrize("where", ["put", "create", "search"])
async def test_date_to_string_at_the_calendar_edge_is_refused(wms, where, date):
    api, seed = wms
    if where == "put":
        await refused(api, "webmethods", "PUT", f"{WM}/{seed.wid}", body={"TaskInfo": {"expireDate": date}})
    elif where == "create":
        await refused(api, "webmethods", "POST", WM, body={"taskTypeID": "x", "taskQueueInfo": {"expireDate": date}})
    else:
        await refused(api, "webmethods", "POST", WM_SEARCH, body={"taskSearchQuery": {"terms": [
            {"fields": ["createdDate"], "operator": ">", "value": date}]}})


# Found by this file as stored '999-01-01T…' dates that made every later read a 500; fixed meanwhile
# (webmethods_dates._canonical pads the year): kept as guards.
@pytest.mark.parametrize("date", ["0999-01-01T00:00:00Z", -62_135_596_800_000, "Fri Jan 01 00:00:00 UTC 0999"])
async def test_dates_before_year_1000_read_back(wms, date):
    api, seed = wms
    before = await api.snapshot()
    sent = await send(api, "PUT", f"{WM}/{seed.wid}", body={"TaskInfo": {"expireDate": date}})
    if sent.status >= 400:  # refusing such a date is a fine answer too
        assert_envelope("webmethods", sent)
        assert await api.snapshot() == before
        return
    await no_fault(api, "webmethods", "GET", f"{WM}/{seed.wid}")
    await no_fault(api, "webmethods", "GET", WM)
    await no_fault(api, "webmethods", "GET", WM, token=api.user)  # alice's list, too
