"""Hostile input against the PostgreSQL store, answered as on SQLite.

Every case runs on a SQLite file and on PostgreSQL (a schema of the test cluster) and must
get the same whole answer on both: the status, the vendor's error body with its exact
message (or the exact body of a 200), no fault logged, and nothing stored changed (every
task, audit, hook, user and token row compared before and after). Where the backends
differ on purpose, the case names both answers and docs/scaling.md says why.

PostgreSQL is where these inputs bite, unlike SQLite: its ``text`` cannot hold U+0000, so
a NUL in an id, a user name, a filter value or a webhook id reaches the driver as an error
unless the store answers it first (nothing stored can equal it); ``jsonb`` (the keyed
fields, every filter on a document) cannot hold ``\\u0000`` either, so a document holding
one would make every later filter over its style fail, for everyone. The heavier corpus of
tests/apis/test_hostile_corpus.py runs here on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import random
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config
from tests.apis import test_hostile_corpus as corpus
from tests.apis.hostile import BOUND, assert_envelope, send
from tests.apis.test_hostile_corpus import _seeded  # noqa: F401 (the fixture "seeded")
from tests.conftest import Api

SP = "/task-status/v1"
SO = "/api/v1/BatchTask"
WM = "/rest/pub/opentask"
SEARCH = "/rest/pub/opentasksearch"
SUBS = "/trigger-subscriptions/v1"
ENDPOINTS = "/rest/pub/taskevents/endpoints"
PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"
NUL = "\u0000"
BACKENDS = ("sqlite", "postgresql")
#: the answer of a document holding U+0000 on PostgreSQL (docs/scaling.md)
NUL_REFUSED = "a string holds U+0000 (NUL), which the PostgreSQL store cannot keep"


@dataclass
class Case:
    id: str
    style: str
    method: str
    path: str
    status: int | dict[str, int]
    #: a refusal's exact message (or a pattern), or a 200's exact body ("<t1>": the seeded
    #: SailPoint task as GET answers it); a dict of both backends' when they differ
    answer: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: the known bug this case shows on PostgreSQL, until it is fixed (strict xfail)
    bug: str | None = None
    #: the known bug this case shows on SQLite (gateway/store/sqlite/), until it is fixed (strict xfail)
    sqlite_bug: str | None = None

    def on(self, backend: str) -> tuple[int, Any]:
        status = self.status[backend] if isinstance(self.status, dict) else self.status
        answer = self.answer[backend] if isinstance(self.answer, dict) and set(self.answer) == set(BACKENDS) \
            else self.answer
        return status, answer


def _basic(user: str) -> dict[str, Any]:
    return {"headers": {"Authorization": "Basic " + base64.b64encode(f"{user}:x".encode()).decode()}}


def _term(name: str, operator: str, value: Any) -> dict[str, Any]:
    return {"body": {"taskSearchQuery": {"terms": [{"fields": [name], "operator": operator, "value": value}]}}}


_NO_TASKS = {"Tasks": []}
_WM_NUL_ID = f"Task 1{NUL} not found or access denied"
_BAD_LOGIN = "invalid user name or password"
_HOOK = {"name": "n", "triggerId": "idn:account-aggregation-completed", "type": "HTTP",
         "httpConfig": {"url": "http://127.0.0.1:9/h", "httpDispatchMode": "SYNC"}}
#: text no compression shortens much (as ids and names from another system may be)
_RANDOM = "".join(random.Random(7).choice(string.ascii_letters + string.digits) for _ in range(5000))
_STORED_ON_SQLITE = {"sqlite": 200, "postgresql": 400}
_NOT_XML_SO = "holds U+{}, which XML cannot carry (answers may be XML)."

CASES: list[Case] = [
    # -- SailPoint: a NUL in an id or a filter value matches nothing -------------------------------
    Case("sp-get-nul-id", "sailpoint", "GET", f"{SP}/t1%00", 404, "TaskStatus with id 't1\\x00' was not found"),
    Case("sp-patch-nul-id", "sailpoint", "PATCH", f"{SP}/t1%00", 404, "TaskStatus with id 't1\\x00' was not found",
         {"body": [{"op": "replace", "path": "/progress", "value": "x"}], "ctype": PATCH}),
    Case("sp-filter-id-eq", "sailpoint", "GET", f'{SP}?filters=id eq "t1%00"', 200, []),
    Case("sp-filter-id-in", "sailpoint", "GET", f'{SP}?filters=id in ("t1%00", "x")', 200, []),
    Case("sp-filter-not-id-eq", "sailpoint", "GET", f'{SP}?filters=not id eq "t1%00"', 200, ["<t1>"]),
    Case("sp-filter-launcher-eq", "sailpoint", "GET", f'{SP}?filters=launcher eq "root%00"', 200, []),
    Case("sp-filter-status-eq", "sailpoint", "GET", f'{SP}?filters=completionStatus eq "x%00"', 200, []),
    Case("sp-filter-not-launcher-eq", "sailpoint", "GET", f'{SP}?filters=not launcher eq "root%00"', 200, ["<t1>"]),
    Case("sp-basic-nul-user", "sailpoint", "GET", SP, 401, _BAD_LOGIN, _basic("root\x00")),
    # a document holding U+0000: stored on SQLite; refused on PostgreSQL, whose jsonb cannot hold it
    Case("sp-create-keyed-nul", "sailpoint", "POST", SP, {"sqlite": 201, "postgresql": 400}, NUL_REFUSED,
         {"body": {"type": "QUARTZ", "uniqueName": "a" + NUL}}),
    # a keyed value longer than PostgreSQL's B-tree entries hold: stored on SQLite, refused on PostgreSQL
    *[Case(f"sp-create-long-{name}", "sailpoint", "POST", SP, {"sqlite": 201, "postgresql": 400},
           f"{label} is {size + 2} bytes long; the PostgreSQL store indexes at most 2000 bytes of it",
           {"body": {"type": "QUARTZ", "uniqueName": "ok", **body}})
      for name, label, size, body in (("unique-name", "uniqueName", 3000, {"uniqueName": _RANDOM[:3000]}),
                                      ("target-id", "target.id", 5000,
                                       {"target": {"id": _RANDOM[:5000], "type": "APPLICATION", "name": "x"}}))],
    Case("sp-patch-attribute-nul", "sailpoint", "PATCH", f"{SP}/t1", _STORED_ON_SQLITE, NUL_REFUSED,
         {"body": [{"op": "add", "path": "/attributes/x", "value": "a" + NUL}], "ctype": PATCH}),
    Case("sp-patch-member-name-nul", "sailpoint", "PATCH", f"{SP}/t1", _STORED_ON_SQLITE, NUL_REFUSED,
         {"body": [{"op": "add", "path": "/attributes/x" + NUL, "value": 1}], "ctype": PATCH}),
    # -- SuperOffice -------------------------------------------------------------------------------------
    Case("so-filter-name-eq", "superoffice", "GET", f"{SO}?$filter=Name%20eq%20'alpha%00'", 200,
         {"odata.nextLink": None, "value": []}),
    Case("so-login-nul-user", "superoffice", "POST", "/login", 401, _BAD_LOGIN,
         {"data": "user=root%00&password=x", "ctype": FORM, "token": None}),
    Case("so-basic-nul-user", "superoffice", "GET", SO, 401, _BAD_LOGIN, _basic("root\x00")),
    # SuperOffice refuses U+0000 on both (XML, which its answers may be, cannot carry it)
    Case("so-create-keyed-nul", "superoffice", "POST", SO, 400,
         f"invalid BatchTaskInfo: Name: {_NOT_XML_SO.format('0000')}", {"body": {"Name": "n" + NUL}}),
    Case("so-put-description-nul", "superoffice", "PUT", f"{SO}/1", 400,
         f"invalid BatchTaskInfo: Description: {_NOT_XML_SO.format('0000')}", {"body": {"Description": "d" + NUL}}),
    # -- webMethods --------------------------------------------------------------------------------------
    *[Case(f"wm-{method.lower()}-nul-id", "webmethods", method, f"{WM}/1%00", 404,
           _WM_NUL_ID, {"body": {"TaskInfo": {"name": "x"}}} if method == "PUT" else {})
      for method in ("GET", "PUT", "DELETE")],
    Case("wm-get-taskid-nul", "webmethods", "GET", f"{WM}?taskID=1%00", 404, _WM_NUL_ID),
    Case("wm-audit-nul-id", "webmethods", "GET", f"{WM}/1%00/audit", 404, _WM_NUL_ID),
    Case("wm-audit-delete-nul-id", "webmethods", "DELETE", f"{WM}/1%00/audit/1", 404,
         _WM_NUL_ID),
    *[Case(f"wm-search-{name}-{operator}", "webmethods", "POST", SEARCH, 200, _NO_TASKS,
           _term(name, operator, "w" + NUL))
      for name, operator in (("name", "equals"), ("description", "equals"),
                             ("description", "contains"), ("taskID", "equals"), ("assignedToList", "equals"))],
    Case("wm-search-name-contains", "webmethods", "POST", SEARCH, 200, _NO_TASKS, _term("name", "contains", "w" + NUL)),
    Case("wm-search-name-contains-long", "webmethods", "POST", SEARCH, 200, _NO_TASKS,
         _term("name", "contains", (_RANDOM * 12)[:60_000])),
    Case("wm-search-taskid-ne", "webmethods", "POST", SEARCH, 200, {"count": 1},
         _term("taskID", "not_equals", "1" + NUL)),
    Case("wm-user-tasks-nul", "webmethods", "GET", f"{WM}?user=root%00&searchUserTasks=true", 200, _NO_TASKS),
    Case("wm-basic-nul-user", "webmethods", "GET", WM, 401, _BAD_LOGIN, _basic("root\x00")),
    Case("wm-put-keyed-nul", "webmethods", "PUT", f"{WM}/1", _STORED_ON_SQLITE, NUL_REFUSED,
         {"body": {"TaskInfo": {"name": "x" + NUL}}}),
    Case("wm-put-taskdata-nul", "webmethods", "PUT", f"{WM}/1", _STORED_ON_SQLITE, NUL_REFUSED,
         {"body": {"TaskData": {"x": "x" + NUL}}}),
    # -- tokens and webhooks ---------------------------------------------------------------------------
    Case("oauth-nul-client", "oauth", "POST", "/oauth/token", 401,
         {"error": "invalid_client", "error_description": "unknown client or wrong secret"},
         {"data": "grant_type=client_credentials&client_id=c%00&client_secret=x", "ctype": FORM, "token": None}),
    *[Case(f"sp-hook-{method.lower()}-nul-id", "sailpoint", method, f"{SUBS}/x%00", 404,
           "subscription 'x\\x00' was not found",
           {"body": _HOOK} if method == "PUT" else {} if method != "PATCH" else
           {"body": [{"op": "replace", "path": "/description", "value": "x"}], "ctype": PATCH})
      for method in ("GET", "PUT", "PATCH", "DELETE")],
    *[Case(f"wm-endpoint-{method.lower()}-nul-id", "webmethods", method, f"{ENDPOINTS}/x%00", 404,
           "endpoint 'x\\x00' was not found", {"body": {"url": "http://127.0.0.1:9/h"}} if method == "PUT" else {})
      for method in ("GET", "PUT", "DELETE")],
    Case("ui-login-nul-user", "ui", "POST", "/ui/login", 401, "html",
         {"data": "user=root%00&password=x", "ctype": FORM, "token": None}),
    Case("ui-search-nul", "ui", "GET", "/ui/?q=x%00", 200, "html"),
]


def _params() -> list[Any]:
    out = []
    for case in CASES:
        for backend in BACKENDS:
            bug = case.bug if backend == "postgresql" else case.sqlite_bug
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            out.append(pytest.param(backend, case, id=f"{backend}-{case.id}", marks=marks))
    return out


@pytest.fixture(name="config")
def _config(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Config:
    config = Config(base_dir=str(tmp_path)).replace("webhooks", allow_targets="127.0.0.1")
    if backend == "postgresql":
        return config.replace("storage", path=request.getfixturevalue("pg_url"))
    return config


async def _everything(api: Api) -> tuple[Any, ...]:
    return (*await api.snapshot(), await api.db_rows("SELECT * FROM hooks ORDER BY num"),
            await api.db_rows("SELECT * FROM users ORDER BY name"),
            await api.db_rows("SELECT * FROM tokens ORDER BY hash"))


@pytest.fixture(name="tasks")
async def _tasks(api: Api) -> Api:
    for path, body in ((SP, {"id": "t1", "type": "QUARTZ", "uniqueName": "one"}), (SO, {"Name": "alpha"}),
                       (WM, {"taskTypeID": "T1", "taskQueueInfo": {"name": "w"}})):
        status, answer, _ = await api.request("POST", path, body=body)
        assert status in (200, 201), answer
    return api


def _expected_body(case: Case, answer: Any, t1: Any, sent: Any) -> None:
    if case.style == "ui":  # the dashboard's list page
        assert sent.text.startswith("<!DOCTYPE html>"), sent.text[:200]
    elif isinstance(answer, dict) and "odata.nextLink" in answer:
        assert {k: v for k, v in sent.body.items() if k != "odata.metadata"} == answer
    elif isinstance(answer, dict) and set(answer) == {"count"}:
        assert len(sent.body["Tasks"]) == answer["count"], sent.body
    else:
        assert sent.body == [t1 if item == "<t1>" else item for item in answer] if isinstance(answer, list) \
            else sent.body == answer, sent.text[:300]


@pytest.mark.parametrize("backend, case", _params())
async def test_hostile_input_gets_the_same_answer_on_both_backends(tasks: Api, backend: str, case: Case) -> None:
    api = tasks
    status, answer = case.on(backend)
    if status < 300 and (answer == NUL_REFUSED or "the PostgreSQL store" in str(answer)):
        answer = None  # stored on SQLite: only the status is the case's
    kwargs = dict(case.kwargs)
    if kwargs.get("token", "") is None:
        kwargs.pop("token")
        kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": ""}
    t1 = (await api.request("GET", f"{SP}/t1"))[1]
    before = await _everything(api)
    sent = await asyncio.wait_for(send(api, case.method, case.path, **kwargs), BOUND)
    assert sent.status == status, (sent.status, sent.text[:300])
    assert not sent.faults, sent.faults
    if status >= 400 and case.style in ("sailpoint", "superoffice", "webmethods"):
        assert_envelope(case.style, sent, answer)
    elif answer is not None:
        _expected_body(case, answer, t1, sent)
    if status >= 300 or case.method in ("GET", "DELETE") or case.path == SEARCH:
        assert await _everything(api) == before, "a refused request changed stored data"


@pytest.mark.parametrize("backend, style", [
    ("postgresql", "sailpoint"), ("postgresql", "superoffice"), ("postgresql", "webmethods")])
async def test_the_hostile_corpus_is_refused_the_same_on_postgresql(seeded, backend, style):
    """tests/apis/test_hostile_corpus.py's table, on PostgreSQL (the corpus itself runs on SQLite).
    The table is built afresh from its module: its chunked bodies are async generators,
    which the first run (the SQLite one, in the same process) leaves exhausted."""
    api, fill = seeded
    spec = importlib.util.spec_from_file_location("fresh_hostile_corpus", corpus.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fresh  # its dataclasses look their module up
    try:
        spec.loader.exec_module(fresh)
    finally:
        del sys.modules[spec.name]
    failures = []
    for index, case in enumerate(c for c in fresh.CORPUS if c.style == style):
        try:
            await asyncio.wait_for(corpus._judge(api, case, fill), BOUND)
        except (TimeoutError, AssertionError) as exc:
            failures.append(f"[{index}] {case}: {type(exc).__name__} {str(exc)[:300]}")
    assert not failures, "\n".join(failures)




@pytest.mark.parametrize("backend", [
    "sqlite", "postgresql"])
async def test_a_document_one_user_sends_cannot_break_the_lists_of_everyone(tasks: Api, backend: str) -> None:
    """alice's TaskData holds \\u0000: SQLite keeps it, PostgreSQL refuses it (its jsonb,
    which every filter on a document reads, cannot hold it); either way every list and
    search still answers, for her and for the admin."""
    api = tasks
    sent = await send(api, "POST", WM, token=api.user, body={"taskTypeID": "T1", "TaskData": {"x": "w" + NUL}})
    if backend == "postgresql":
        assert sent.status == 400, sent.text[:300]
        assert_envelope("webmethods", sent, NUL_REFUSED)
    else:
        assert sent.status == 200, sent.text[:300]
    for token, method, path, kwargs in ((api.user, "GET", WM, {}), (api.user, "GET", f"{WM}?searchUserTasks=true", {}),
                                        (api.admin, "POST", SEARCH, _term("description", "equals", "x")),
                                        (api.admin, "POST", SEARCH, _term("assignedToList", "equals", "x"))):
        got = await send(api, method, path, token=token, **kwargs)
        assert (got.status, got.faults) == (200, []), (path, got.text[:300])


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_every_route_takes_random_requests_as_documented_on_postgresql(seeded, backend):
    """test_hostile_corpus.py's 1500 seeded random requests over every route, on PostgreSQL."""
    await corpus.test_every_route_takes_random_requests_as_documented(seeded)


_VALID = ["\uffff", "\U0001f600", "\u2028\u2029", "\u00e9e\u0301", "\\u0000", "\x7f\x01\x1f", "\ufeff", "\U0010ffff"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_valid_but_unusual_strings_are_kept_and_read_back_alike(tasks: Api, backend: str) -> None:
    """Noncharacters, astral and line-separator characters, combining marks, a backslash
    before u0000 (the text, not the character), C0 controls other than NUL: each stored as
    sent and answered back the same, in each style, and found by an exact filter; but
    SuperOffice refuses what XML 1.0 cannot carry (U+0001, U+001F, U+FFFF), on both."""
    api = tasks
    for n, text in enumerate(_VALID):
        status, body, _ = await api.request("PATCH", f"{SP}/t1", content_type=PATCH,
                                            body=[{"op": "add", "path": f"/attributes/a{n}", "value": text}])
        assert status == 200 and body["attributes"][f"a{n}"] == text, (text, body)
        status, body, _ = await api.request("PUT", f"{SO}/1", body={"Description": text})
        refused = next((c for c in text if c in "\x01\x1f\uffff"), None)  # XML 1.0 cannot carry them
        if refused is None:
            assert status == 200 and body["Description"] == text, (text, body)
        else:
            assert (status, body["ErrorMessage"]) == (
                400, f"invalid BatchTaskInfo: Description: {_NOT_XML_SO.format(f'{ord(refused):04X}')}"), text
        status, body, _ = await api.request("PUT", f"{WM}/1", body={"TaskInfo": {"name": text}})
        assert status == 200, (text, body)
        status, body, _ = await api.request("POST", SEARCH, body=_term("name", "equals", text)["body"])
        assert status == 200 and [t["TaskInfo"]["name"] for t in body["Tasks"]] == [text], (text, body)
    stored = (await api.store.get("sailpoint", "t1")).doc
    assert [stored["attributes"][f"a{n}"] for n in range(len(_VALID))] == _VALID
