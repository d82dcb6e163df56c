"""The hostile-input corpus across the three styles, counted: every case names its input,
the status it must get, and is checked for the style's error body, an unchanged database
(every task and audit row compared before and after) and an answer within a bounded time.

It adds SailPoint's table and the heavy cases to the SuperOffice and webMethods tables of
test_hostile_inputs.py: 10 000-level nesting, numbers and strings beyond every limit,
bodies over the size limit with and without Content-Length (chunked: aiohttp's streaming
reads are not capped, but every style reads its body with ``request.read()``, which is),
gzip bombs (the cap counts inflated bytes),
100 000 form fields, JSON Patches of 100 000 operations, pointers into nowhere, ids with
path traversal, SQL fragments and Unicode tricks, XXE, billion laughs, external DTDs.
Requests the HTTP parser itself refuses (header floods, NUL bytes in headers, dot
segments) are sent over a raw socket; aiohttp answers those before any handler runs, in
plain text, so only their status and the unchanged database are checked.
"""

from __future__ import annotations

import asyncio
import io
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest

from tests.apis import test_hostile_inputs as tables
from tests.apis.hostile import BOUND, assert_envelope, send
from tests.conftest import Api

SP = "/task-status/v1"
SO = "/api/v1/BatchTask"
WM = "/rest/pub/opentask"
JSON = "application/json"
XML = "application/xml"
FORM = "application/x-www-form-urlencoded"
PATCH = "application/json-patch+json"
LIMIT = 1_048_576  # server.max_body_bytes, the default


@dataclass
class Case:
    style: str
    method: str
    path: str
    status: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.style} {self.method} {self.path[:60]} {str(self.kwargs)[:100]}"


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "") -> str:
    return open_ * depth + inner + close * depth


class Chunks:
    """A body sent chunked, without Content-Length. Each request reads it afresh (the corpus
    is sent more than once in a process: on each backend), as a generator would not be."""

    def __init__(self, data: bytes, size: int = 65536) -> None:
        self.data, self.size = data, size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start:start + self.size]


def gzip_bomb(prefix: bytes, suffix: bytes, megabytes: int = 64) -> bytes:
    """*prefix* + *megabytes* MiB of spaces + *suffix*, gzip-compressed (about 1000:1),
    made in pieces so the bomb itself never sits in memory. aiohttp inflates it while the
    body is read; the read stops at the size limit."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    out = [packer.compress(prefix)]
    block = b" " * (1 << 20)
    out.extend(packer.compress(block) for _ in range(megabytes))
    out.append(packer.compress(suffix) + packer.flush())
    return b"".join(out)


_GZIP = {"Content-Encoding": "gzip"}


def op(kind: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"op": kind, "path": path, **extra}


_T = SP + "/t1"
_BIG = b"[" + b" " * LIMIT + b"]"  # just over the limit, and valid JSON if it were read
_XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<BatchTaskInfo><Description>&xxe;</Description></BatchTaskInfo>")
_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                     for i in range(1, 10))
           + ']><BatchTaskInfo><Description>&lol9;</Description></BatchTaskInfo>')
_EXTERNAL_DTD = '<?xml version="1.0"?><!DOCTYPE BatchTaskInfo SYSTEM "http://127.0.0.1:9/x.dtd"><BatchTaskInfo/>'
_PARAMETER = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]>'
              "<BatchTaskInfo/>")
_XINCLUDE = ('<BatchTaskInfo xmlns:xi="http://www.w3.org/2001/XInclude"><Description>'
             '<xi:include href="file:///etc/passwd" parse="text"/></Description></BatchTaskInfo>')
_IDS = ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..", "t1%00", "t1'%20OR%20'1'%3D'1", "t1%3B%20DROP%20TABLE%20tasks",
        "t1%22%20--", "t%EF%BC%91", "t1%E2%80%8B", "%E2%80%AE1t", "T1", "t1%20", "%252e%252e", "t1%C0%AF"]

SAILPOINT: list[Case] = [
    # malformed and truncated JSON
    *[Case("sailpoint", "PATCH", _T, 400, {"data": text, "ctype": PATCH})
      for text in ("[", '[{"op":', '[{"op": "replace", "path": "/progress", "value": "x"}', "{", "]", "[]x",
                   "   ", "NaN", "[1]", '["op"]', "null", '""', "[]", '{"op": "replace"}',
                   '[{"op": "replace", "path": "/progress", "value": NaN}]',
                   '[{"op": "replace", "path": "/progress", "value": Infinity}]',
                   '[{"op": "replace", "path": "/progress", "value": "\\ud800"}]',
                   '[{"op": "replace", "path": "/progress", "value": "x"}] [{"op": "test", "path": ""}]',
                   '[{"op": "replace", "path": "/progress", "value": 01}]',
                   "[{'op': 'replace'}]")],
    # invalid UTF-8 and raw NUL bytes
    *[Case("sailpoint", "PATCH", _T, 400, {"data": b'[{"op": "replace", "path": "/progress", "value": "' + raw + b'"}]',
                                           "ctype": PATCH})
      for raw in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"a\x00b", b"\x80")],
    # nesting and sizes
    Case("sailpoint", "PATCH", _T, 400, {"data": nested(10_000), "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 400, {"data": '[{"op": "add", "path": "/attributes/x", "value": '
                                         + nested(10_000, '{"a":', "}", "1") + "}]", "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 400, {"data": '[{"op": "add", "path": "/attributes/x", "value": '
                                         + nested(65) + "}]", "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 400, {"data": '[{"op": "add", "path": "/attributes/x", "value": 1'
                                         + "0" * 5000 + "}]", "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 400, {"data": '[{"op": "add", "path": "/attributes/x", "value": 1e400}]',
                                         "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 400, {"body": [op("replace", "/percentComplete", value=10**30)], "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"body": [op("replace", "/progress", value="x" * LIMIT)], "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"data": _BIG, "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"data": Chunks(_BIG), "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"data": Chunks(b"[" + b" " * (20 * LIMIT) + b"]", 1 << 20), "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"body": [op("test", "/id", value="t1")] * 100_000, "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"data": gzip_bomb(b"[", b"]"), "ctype": PATCH, "headers": _GZIP}),
    Case("sailpoint", "PATCH", _T, 400, {"data": json.dumps([op("test", "")] * 40_000, separators=(",", ":")),
                                         "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 400, {"body": [op("test", "/id", value="t1")] * 1001, "ctype": PATCH}),
    Case("sailpoint", "PATCH", _T, 413, {"body": [op("add", "/attributes/a", value="x" * 400_000),
                                                  op("copy", "/attributes/b", **{"from": "/attributes/a"}),
                                                  op("copy", "/attributes/c", **{"from": "/attributes/a"})],
                                         "ctype": PATCH}),
    # operations and pointers
    *[Case("sailpoint", "PATCH", _T, 400, {"body": ops, "ctype": PATCH})
      for ops in ([op("bogus", "/progress")], [{"path": "/progress", "value": 1}], [op("replace", 5, value=1)],
                  [op("replace", "progress", value="x")], [op("replace", "/a/~2", value="x")],
                  [op("replace", "/id", value="x")], [op("replace", "", value={})], [op("remove", "/created")],
                  [op("replace", "/progress")], [op("move", "/progress")], [op("copy", "/progress", **{"from": 5})],
                  [op("add", "/type", value="QPOC")], [op("replace", "/modified", value=None)],
                  [op("replace", "/completionStatus", value="bogus")], [op("replace", "/percentComplete", value="50")],
                  [op("replace", "/percentComplete", value=50.5)], [op("replace", "/percentComplete", value=True)],
                  [op("replace", "/percentComplete", value=101)], [op("replace", "/percentComplete", value=-1)],
                  [op("replace", "/completed", value="yesterday")], [op("replace", "/launched", value=12345)],
                  [op("replace", "/completed", value="2024-02-30T00:00:00Z")],
                  [op("add", "/messages/-", value={"x": 1})],
                  [op("replace", "/attributes", value=[])], [op("replace", "/progress", value=5)],
                  [op("replace", "/returns", value={"name": "x"})])],
    *[Case("sailpoint", "PATCH", _T, 409, {"body": ops, "ctype": PATCH})
      for ops in ([op("add", "/attributes/a/b/c", value=1)], [op("replace", "/attributes/missing", value=1)],
                  [op("remove", "/messages/5")], [op("add", "/messages/5", value={})], [op("test", "/id", value="t2")],
                  [op("move", "/attributes/x", **{"from": "/attributes/nowhere"})],
                  [op("copy", "/attributes/x", **{"from": "/nowhere"})], [op("add", "/messages/-/x", value=1)],
                  [op("remove", "/attributes/~1")], [op("test", "/attributes/a", value=None)],
                  [op("replace", "/progress", value="ok"), op("test", "/percentComplete", value=99)])],
    # content types, Accept, preconditions, methods, credentials
    Case("sailpoint", "PATCH", _T, 415, {"body": [op("replace", "/progress", value="x")], "ctype": "text/plain"}),
    Case("sailpoint", "PATCH", _T, 415, {"data": "<x/>", "ctype": XML}),
    Case("sailpoint", "PATCH", _T, 415, {"body": [op("replace", "/progress", value="x")],
                                         "ctype": "application/json; charset=latin-1"}),
    Case("sailpoint", "PATCH", _T, 415, {"data": "[]", "ctype": None}),
    Case("sailpoint", "PATCH", _T, 415, {"data": "progress=x", "ctype": FORM}),
    Case("sailpoint", "PATCH", _T, 406, {"body": [op("replace", "/progress", value="x")], "ctype": PATCH,
                                         "headers": {"Accept": "application/xml"}}),
    Case("sailpoint", "PATCH", _T, 412, {"body": [op("replace", "/progress", value="x")], "ctype": PATCH,
                                         "headers": {"If-Match": '"7"'}}),
    Case("sailpoint", "PATCH", _T, 412, {"body": [op("replace", "/progress", value="x")], "ctype": PATCH,
                                         "headers": {"If-Match": "1' OR '1'='1"}}),
    Case("sailpoint", "PUT", _T, 405, {"body": {}}),
    Case("sailpoint", "DELETE", _T, 405, {}),
    Case("sailpoint", "PATCH", _T, 401, {"body": [op("replace", "/progress", value="x")], "ctype": PATCH,
                                         "token": "tg_forged"}),
    Case("sailpoint", "PATCH", _T, 403, {"body": [op("replace", "/progress", value="x")], "ctype": PATCH,
                                         "token": "read_only"}),
    # ids: path traversal, SQL fragments, Unicode tricks — each is just a task that does not exist
    *[Case("sailpoint", "PATCH", f"{SP}/{task_id}", 404, {"body": [op("replace", "/progress", value="x")],
                                                          "ctype": PATCH}) for task_id in _IDS],
    *[Case("sailpoint", "GET", f"{SP}/{task_id}", 404) for task_id in _IDS],
    # creates
    *[Case("sailpoint", "POST", SP, status, {"body": body})
      for status, body in [(409, {"id": "t1", "type": "QUARTZ", "uniqueName": "again"}),
                           (400, {"id": "../x", "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"id": "a/b", "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"id": "x' OR '1'='1", "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"id": "x\u0000", "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"id": "x\n", "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"id": "\u202ex", "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"id": "x" * 129, "type": "QUARTZ", "uniqueName": "x"}),
                           (400, {"type": "BOGUS", "uniqueName": "x"}), (400, {"type": "QUARTZ"}),
                           (400, {"type": "QUARTZ", "uniqueName": "x", "bogus": 1}), (400, [])]],
    Case("sailpoint", "POST", SP, 400, {"data": nested(10_000, "{\"a\":", "}", "1")}),
    Case("sailpoint", "POST", SP, 413, {"data": Chunks(b'{"type": "QUARTZ", "uniqueName": "' + b"x" * LIMIT + b'"}')}),
    # lists: filters with SQL, nesting and sizes
    *[Case("sailpoint", "GET", f"{SP}?{query}", 400)
      for query in ("limit=-1", "limit=251", "limit=1e2", "offset=-1", "count=maybe",
                    "filters=id%20eq%20x%27%20OR%201%3D1", "filters=" + "(" * 2000 + "id%20eq%20%22x%22" + ")" * 2000,
                    "filters=" + "not%20" * 40 + "id%20eq%20%22x%22", "filters=sourceId%20sw%20%22x%22",
                    "filters=uniqueName%20eq%20%22x%22",
                    "filters=id%20eq%20%22x%22%3B%20DROP%20TABLE%20tasks", "sorters=created%3B%20DROP%20TABLE%20tasks",
                    "sorters=-created,-created", "filters=id%20in%20(" + ",".join(['"x"'] * 251) + ")")],
]

SUPEROFFICE: list[Case] = [
    Case("superoffice", "PUT", SO + "/1", 400, {"data": nested(10_000)}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": nested(10_000, '{"a":', "}", "1")}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": nested(10_000, "<a>", "</a>"), "ctype": XML}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": "<BatchTaskInfo><State>" + nested(10_000, "<a>", "</a>")
                                                + "</State></BatchTaskInfo>", "ctype": XML}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": '{"Description": 1' + "0" * 5000 + "}"}),
    Case("superoffice", "PUT", SO + "/1", 400, {"body": {"Description": "x" * 900_000}}),
    Case("superoffice", "PUT", SO + "/1", 413, {"data": _BIG}),
    Case("superoffice", "PUT", SO + "/1", 413, {"data": Chunks(_BIG)}),
    Case("superoffice", "PUT", SO + "/1", 413, {"data": gzip_bomb(b"<BatchTaskInfo>", b"</BatchTaskInfo>"),
                                                "ctype": XML, "headers": _GZIP}),
    Case("superoffice", "PUT", SO + "/1", 413, {"data": Chunks(b"<BatchTaskInfo>" + b" " * LIMIT + b"</BatchTaskInfo>"),
                                                "ctype": XML}),
    Case("superoffice", "PUT", SO + "/1", 413, {"data": Chunks(b"State=" + b"x" * LIMIT), "ctype": FORM}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": "&".join(f"f{i}=1" for i in range(100_000)), "ctype": FORM}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": "State=New%00", "ctype": FORM}),
    Case("superoffice", "PUT", SO + "/1", 413, {"body": [op("test", "/State", value="Started")] * 100_000,
                                                "ctype": PATCH}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": json.dumps([op("test", "/Name")] * 30_000,
                                                                   separators=(",", ":")), "ctype": PATCH}),
    Case("superoffice", "PUT", SO + "/1", 409, {"body": [op("replace", "/ParameterObject/a/b/c", value="x")],
                                                "ctype": PATCH}),
    Case("superoffice", "PUT", SO + "/1", 409, {"body": [op("remove", "/ParameterObject/missing")], "ctype": PATCH}),
    Case("superoffice", "PUT", SO + "/1", 409, {"body": [op("test", "/State", value="New")], "ctype": PATCH}),
    *[Case("superoffice", "PUT", SO + "/1", 400, {"data": xml, "ctype": XML})
      for xml in (_XXE, _LAUGHS, _EXTERNAL_DTD, _PARAMETER, _XINCLUDE, "<BatchTaskInfo><State>New</State",
                  "<BatchTaskInfo", "<?xml version='1.0'?>", "<BatchTaskInfo><State>New</Stat></BatchTaskInfo>",
                  b"<BatchTaskInfo><State>New\x00</State></BatchTaskInfo>",
                  b"<BatchTaskInfo><State>\xff</State></BatchTaskInfo>",
                  b"\xef\xbb\xbf\xef\xbb\xbf<BatchTaskInfo/>",
                  "<BatchTaskInfo><State>New</State></BatchTaskInfo><BatchTaskInfo/>")],
    Case("superoffice", "PUT", SO + "/1", 400, {"data": b'{"Description": "\xc0\xaf"}'}),
    Case("superoffice", "PUT", SO + "/1", 400, {"data": b'{"Description": "a\x00b"}'}),
    # a GET of a path that is no integer id lists by state, so it is a 400 unless the id looks numeric
    *[Case("superoffice", method, f"{SO}/{task_id}", 404 if method == "PUT" or unquote(task_id).isdigit() else 400,
           {"body": {"State": "New"}} if method == "PUT" else {})
      for task_id in ("..%2F..%2Fetc%2Fpasswd", "1%00", "1%20OR%201%3D1", "1%3B%20DROP%20TABLE%20tasks", "%EF%BC%91",
                      "1%E2%80%8B", "%D9%A1", "0x1", "+1", "1e0", "2147483648")
      for method in ("GET", "PUT")],
    Case("superoffice", "GET", f"{SO}?$filter=Name%20eq%20%27x%27%27%20OR%201%3D1%20--%27", 200,
         {"expect": {"odata.metadata", "odata.nextLink", "value"}}),
    Case("superoffice", "POST", "/login", 400, {"data": "&".join(f"f{i}=1" for i in range(100_000)), "ctype": FORM,
                                                "token": None}),
    Case("superoffice", "POST", "/login", 413, {"data": Chunks(b"user=" + b"x" * LIMIT), "ctype": FORM, "token": None}),
    Case("superoffice", "POST", "/login", 401, {"data": "user=alice%27%20OR%20%271%27%3D%271"
                                                        "&password=x%27%20OR%201%3D1",
                                                "ctype": FORM, "token": None}),
]

WEBMETHODS: list[Case] = [
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": nested(10_000)}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": '{"TaskData": ' + nested(10_000, '{"a":', "}", "1") + "}"}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": '{"TaskData": {"a": 1' + "0" * 5000 + "}}"}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": '{"TaskData": {"a": 1e999}}'}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"body": {"TaskInfo": {"name": "x" * 900_000}}}),
    Case("webmethods", "PUT", WM + "/{wm}", 413, {"data": _BIG}),
    Case("webmethods", "PUT", WM + "/{wm}", 413, {"data": Chunks(_BIG)}),
    Case("webmethods", "PUT", WM + "/{wm}", 413, {"data": gzip_bomb(b'{"TaskData": {"a": "', b'"}}'),
                                                  "headers": _GZIP}),
    Case("webmethods", "PUT", WM + "/{wm}", 413, {"data": Chunks(b'{"TaskData": {"a": "' + b"x" * LIMIT + b'"}}')}),
    Case("webmethods", "PUT", WM + "/{wm}", 413, {"body": {"TaskData": {f"k{i}": i for i in range(100_000)}}}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": b'{"TaskInfo": {"name": "\xed\xa0\x80"}}'}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": b'{"TaskInfo": {"name": "a\x00"}}'}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": '{"TaskInfo": {"name": "x"}'}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": '{"TaskInfo": {"name": "x"}}}'}),
    Case("webmethods", "PUT", WM + "/{wm}", 400, {"data": "<TaskInfo/>"}),
    Case("webmethods", "PUT", WM + "/{wm}", 415, {"data": _XXE, "ctype": XML}),
    Case("webmethods", "PUT", WM + "/{wm}", 412, {"body": {"TaskInfo": {"name": "x"}}, "headers": {"If-Match": '"9"'}}),
    *[Case("webmethods", method, f"{WM}/{task_id}", 404,
           {"body": {"TaskInfo": {"name": "x"}}} if method == "PUT" else {})
      for task_id in ("..%2F..%2Fetc%2Fpasswd", "{wm}%00", "{wm}%20OR%201%3D1",
                      "{wm}%27%3B%20DROP%20TABLE%20tasks%3B--",
                      "%EF%BC%91", "{wm}%E2%80%8B", "%E2%80%AE{wm}", "{wm}.0")
      for method in ("GET", "PUT", "DELETE")],
    Case("webmethods", "GET", WM + "?taskID=..%2F..%2Fetc%2Fpasswd", 404),
    Case("webmethods", "GET", WM + "?taskID={wm}%27%20OR%20%271%27%3D%271", 404),
    Case("webmethods", "POST", "/rest/pub/opentasksearch", 400, {"body": {"taskSearchQuery": {"terms": [
        {"fields": ["name"], "operator": "equals", "value": {"$ne": None}}]}}}),
]

CORPUS = SAILPOINT + SUPEROFFICE + WEBMETHODS


def test_the_corpus_holds_at_least_150_cases_across_the_three_styles():
    counts = {"sailpoint": len(SAILPOINT), "superoffice": len(SUPEROFFICE) + len(tables.SO_REFUSED)
              + len(tables.SO_IGNORED), "webmethods": len(WEBMETHODS) + len(tables.WM_REFUSED)}
    print(f"\n[corpus] {counts} = {sum(counts.values())} table cases")
    assert sum(counts.values()) >= 150 and min(counts.values()) >= 50, counts


@pytest.fixture(name="seeded")
async def _seeded(api: Api) -> tuple[Api, dict[str, str]]:
    status, body, _ = await api.request("POST", SP, body={"id": "t1", "type": "QUARTZ", "uniqueName": "one"})
    assert status == 201, body
    status, body, _ = await api.request("PATCH", _T, body=[op("add", "/attributes/a", value=1)])
    assert status == 200, body
    status, body, _ = await api.request("POST", SO, body={"Name": "alpha", "AssociateId": 7, "State": "Started"})
    assert (status, body) == (200, 1)
    status, body, _ = await api.request("POST", WM, body={"taskTypeID": "T1", "taskQueueInfo": {"name": "w"}})
    assert status == 200, body
    return api, {"wm": body["taskID"]}


async def _judge(api: Api, case: Case, fill: dict[str, str]) -> None:
    kwargs = dict(case.kwargs)
    expect = kwargs.pop("expect", None)
    if kwargs.get("token") == "read_only":
        kwargs["token"] = api.read_only
    if "token" in kwargs and kwargs["token"] is None:
        kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": ""}
        del kwargs["token"]
    kwargs.setdefault("ctype", JSON)
    if "body" in kwargs:
        kwargs["data"] = json.dumps(kwargs.pop("body"))
    if isinstance(kwargs.get("data"), (str, bytes)) and len(kwargs["data"]) > 65536:
        raw = kwargs["data"]  # sent with Content-Length, without blocking the loop
        kwargs["data"] = io.BytesIO(raw.encode() if isinstance(raw, str) else raw)
    before = await api.snapshot()
    sent = await send(api, case.method, case.path.format(**fill), **kwargs)
    assert sent.status == case.status, (sent.status, sent.text[:300])
    assert not sent.faults, sent.faults
    if case.status >= 400:
        assert_envelope(case.style, sent)
    elif expect is not None:
        assert set(sent.body) == expect and sent.body.get("value") == []
    assert await api.snapshot() == before, "a refused request changed stored data"


@pytest.mark.parametrize("style", ["sailpoint", "superoffice", "webmethods"])
async def test_the_corpus_is_refused_the_style_s_way_and_changes_nothing(seeded, style):
    api, fill = seeded
    failures = []
    for index, case in enumerate(c for c in CORPUS if c.style == style):
        try:
            await asyncio.wait_for(_judge(api, case, fill), BOUND)
        except (TimeoutError, AssertionError) as exc:
            failures.append(f"[{index}] {case}: {type(exc).__name__} {str(exc)[:300]}")
    assert not failures, "\n".join(failures)


# -- what the HTTP parser refuses itself, over a raw socket ----------------------------------------
async def raw_request(api: Api, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (no client library tidies them up); the status and body."""
    reader, writer = await asyncio.open_connection(api.client.server.host, api.client.server.port)
    try:
        writer.write(head.encode("utf-8", "surrogateescape") + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1 << 20), BOUND)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _head(method: str, path: str, token: str, *extra: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}",
             "Connection: close", *extra]
    return "\r\n".join(lines) + "\r\n\r\n"


PARSER_CASES: list[tuple[str, int, Any]] = [
    # (what, status, head builder(method, path, token) -> (head, body))
    ("200 headers", 400, lambda m, p, t: (_head(m, p, t, *(f"X-H{i}: v" for i in range(200))), b"")),
    ("a 100 kB header", 400, lambda m, p, t: (_head(m, p, t, "X-Big: " + "v" * 100_000), b"")),
    ("a 20 kB cookie", 400, lambda m, p, t: (_head(m, p, t, "Cookie: a=" + "v" * 20_000), b"")),
    ("a 10 kB request line", 400, lambda m, p, t: (_head(m, p + "?q=" + "x" * 10_000, t), b"")),
    ("a NUL byte in a header", 400, lambda m, p, t: (_head(m, p, t, "X-Request-ID: a\x00b"), b"")),
    ("a bare CR in a header", 400, lambda m, p, t: (_head(m, p, t, "X-Request-ID: a\rb"), b"")),
    ("Content-Length and chunked", 400, lambda m, p, t: (
        _head(m, p, t, "Content-Type: application/json", "Content-Length: 2",
              "Transfer-Encoding: chunked"), b"2\r\n[]\r\n0\r\n\r\n")),
    ("a negative Content-Length", 400, lambda m, p, t: (_head(m, p, t, "Content-Length: -1"), b"")),
    ("a bad chunk size", 400, lambda m, p, t: (
        _head(m, p, t, "Content-Type: application/json", "Transfer-Encoding: chunked"), b"zz\r\n[]\r\n0\r\n\r\n")),
    ("two Content-Lengths", 400, lambda m, p, t: (
        _head(m, p, t, "Content-Type: application/json", "Content-Length: 2", "Content-Length: 3"), b"[]")),
    ("two Content-Types", 400, lambda m, p, t: (
        _head(m, p, t, "Content-Type: application/json", "Content-Type: application/json", "Content-Length: 2"),
        b"[]")),
    ("a control character in a header value", 400, lambda m, p, t: (
        _head(m, p, t, "Content-Type: application/json\x0b", "Content-Length: 2"), b"[]")),
]
_TARGETS = [("PATCH", _T), ("PUT", SO + "/1"), ("PUT", WM + "/{wm}")]


@pytest.mark.parametrize("what, status, build", PARSER_CASES, ids=[c[0] for c in PARSER_CASES])
async def test_malformed_http_is_refused_by_the_parser_and_changes_nothing(seeded, what, status, build):
    api, fill = seeded
    for method, path in _TARGETS:
        before = await api.snapshot()
        head, body = build(method, path.format(**fill), api.admin)
        got, text = await raw_request(api, head, body)
        assert got == status, (what, path, got, text[:200])
        assert await api.snapshot() == before


@pytest.mark.parametrize("path, style", [("/task-status/v1/../../../etc/passwd", "sailpoint"),
                                         ("/api/v1/BatchTask/../../../etc/passwd", "superoffice"),
                                         ("/rest/pub/opentask/%2e%2e/%2e%2e/etc/passwd", "webmethods"),
                                         ("/api/v1/BatchTask/1/..%2f..%2f..%2fetc%2fpasswd", "superoffice")])
async def test_dot_segments_reach_no_file(seeded, path, style):
    """Paths are routes, never files: dot segments are resolved or stay part of an id."""
    api, _fill = seeded
    before = await api.snapshot()
    got, text = await raw_request(api, _head("GET", path, api.admin))
    assert got == 404, (path, got, text[:200])
    assert b"root:" not in text
    assert await api.snapshot() == before


@pytest.mark.parametrize("data, ctype, status", [
    ("&".join(f"f{i}=1" for i in range(100_000)), FORM, 413),  # aiohttp's form reader caps the fields
    (Chunks(b"grant_type=" + b"x" * (2 * LIMIT)), FORM, 413),
    (Chunks(b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + b"x" * (2 * LIMIT) + b"\r\n--b--\r\n"),
     "multipart/form-data; boundary=b", 413),
    ("grant_type=client_credentials&client_id=x%27%20OR%20%271%27%3D%271&client_secret=x", FORM, 401),
    (b"grant_type=client_credentials&client_id=\xff&client_secret=x", FORM, 400),
])
async def test_the_token_endpoint_refuses_hostile_forms(seeded, data, ctype, status):
    api, _fill = seeded
    if isinstance(data, str) and len(data) > 65536:
        data = io.BytesIO(data.encode())
    before = await api.snapshot()
    tokens = await api.db_rows("SELECT count(*) FROM tokens")
    resp = await asyncio.wait_for(api.client.post("/oauth/token", data=data, headers={"Content-Type": ctype}), BOUND)
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error", "error_description"}, body
    assert await api.snapshot() == before and await api.db_rows("SELECT count(*) FROM tokens") == tokens


# -- every route, seeded random requests ----------------------------------------------------------------
_KEYS = ["Id", "id", "State", "TaskInfo", "taskInfo", "TaskData", "taskID", "op", "path", "value", "from",
         "taskSearchQuery", "terms", "BatchTaskInfo", "BatchTaskIds", "AssociateIds", "user", "grant_type",
         "client_id", "client_secret", "maxRes", "Description", "status", "fields", "operator", "password"]
_LEAVES = [None, 0, -1, 2**70, 1.5, "", "x", "New", "active", "/State", [], {}, True]
_CTYPES = [JSON, XML, FORM, PATCH, "application/merge-patch+json", "text/json", "multipart/form-data; boundary=x",
           "text/plain", None]


def _random_value(rng, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {rng.choice(_KEYS): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if depth < 3 and roll < 0.4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(_LEAVES)


def _random_body(rng) -> bytes:
    roll = rng.random()
    if roll < 0.55:
        return json.dumps(_random_value(rng)).encode()
    if roll < 0.65:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
    if roll < 0.75:
        name = rng.choice(_KEYS)
        return f"<BatchTaskInfo><{name}>{rng.choice(['', 'x', '5', 'New'])}</{name}></BatchTaskInfo>".encode()
    if roll < 0.85:
        return "&".join(f"{rng.choice(_KEYS)}={rng.choice(['', 'x', '1', '%FF'])}" for _ in range(3)).encode()
    return json.dumps([{"op": rng.choice(["add", "replace", "remove", "test", "move", "copy"]),
                        "path": rng.choice(["/State", "", "/-", "/attributes/a", "/progress", "/TaskData"]),
                        "value": _random_value(rng), "from": rng.choice(["/id", "", "/x"])}
                       for _ in range(rng.randint(1, 3))]).encode()


async def test_every_route_takes_random_requests_as_documented(seeded):
    """1500 seeded random requests spread over every route of the router. What the input
    decides is asserted exactly: a read-only token on a write (not a public route, not an
    Agents call, which refuse writes themselves) gets 403 "this token is read-only" before
    anything else is read. Every other answer must be one of the statuses the OpenAPI
    document lists for that operation, never a 5xx or a logged fault; a 4xx is the route's
    whole vendor error body and changes nothing. (Each style's own fuzz tests in
    test_hostile_inputs.py and test_patch_properties.py judge exact outcomes route by route.)"""
    import random

    from gateway import openapi
    api, fill = seeded
    rng = random.Random(7)
    params = {"id": ["t1", "1", "All", "x"], "tenant": ["C1"], "taskID": [fill["wm"], "999"],
              "method": ["GetBatchTaskInfo", "UpdateBatchTask", "StartBatchJob", "DeleteBatchTasks", "StopBatchJob",
                         "GetBatchTaskInfosByAssociatesAndState"], "auditEntryID": ["1", "5", "99"],
              "asset": ["swagger-ui.css", "swagger-initializer.js", "LICENSE", "x"],
              "name": ["dashboard.css", "htmx-2.0.11.min.js", "x", "..%2Fpages.py"]}
    document = openapi.build_document(api.client.app)
    # GET /events is left out: a valid call is a stream that lasts while the client reads;
    # tests/events/test_sse.py judges its refusals and its stream against the document
    routes = [(r.method, r.resource.canonical, (r.resource.name or "").partition(":")[0], r.handler)
              for r in api.client.app.router.routes()
              if r.method != "HEAD" and r.resource.canonical not in ("/events", "/ui/live")]  # lasting streams
    tokens = [api.admin, api.user, api.read_only]
    failures = []
    for _ in range(1500):
        method, canonical, style, handler = rng.choice(routes)
        documented = {int(status) for status in document["paths"][canonical][method.lower()]["responses"]}
        path = canonical.format(**{k: rng.choice(v) for k, v in params.items()})
        if rng.random() < 0.3:
            path += "?" + rng.choice([f"taskID={fill['wm']}", "user=alice", "includeTaskData=true", "$select=State",
                                      "filters=id%20eq%20%22t1%22", "jsonDateEncoding=long", "$top=1"])
        token = rng.choice(tokens)
        headers = {"Authorization": f"Bearer {token}"}
        if rng.random() < 0.2:
            headers["If-Match"] = rng.choice(['"1"', '"2"', "*", "x"])
        if rng.random() < 0.1:
            headers["Accept"] = rng.choice(["application/xml", "text/xml", "x/y"])
        read_only_write = (token == api.read_only and method not in ("GET", "HEAD", "OPTIONS")
                           and not getattr(handler, "taskgate_public", False)
                           and not getattr(handler, "taskgate_reads_by_post", False))
        before = await api.snapshot()
        sent = await send(api, method, path, data=_random_body(rng), ctype=rng.choice(_CTYPES), headers=headers)
        try:
            assert not sent.faults, sent.faults[:1]
            if read_only_write:
                assert sent.status == 403, (sent.status, sent.text[:200])
            else:
                assert sent.status in documented, (sent.status, sorted(documented), sent.text[:200])
            if sent.status >= 400 and style in ("sailpoint", "superoffice", "webmethods"):
                assert_envelope(style, sent, "this token is read-only" if read_only_write else None)
                assert await api.snapshot() == before
        except AssertionError as exc:
            failures.append(f"{method} {path}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures[:20])
