"""Judging hostile input: send a request, and check that it got exactly what the input calls for.

The rule: bad input gets the status that names what is wrong, in the vendor's error body
(every member checked, not only the keys), no uncaught exception is logged, nothing
stored changes, and the answer comes within a bounded time (a generous client timeout,
:data:`BOUND`, not a timing assertion). Shared by the hostile-input tables, the corpus and
the property tests.

It also holds the oracle of the SuperOffice fuzz tests: what a PUT body must do to a
stored BatchTask, written from README's rules ("only State, Description, Response and
Request can be updated", names in any case, the same member twice → 400, State by name
in any case or by number, strings at most 254 characters, null the empty string) and
judged against ``jsonpatch`` for JSON Patch. It decides from the input and the task as
it was before, never from the server's answer.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jsonpatch
import jsonpointer
from hypothesis import event
from structlog.testing import capture_logs

from tests.conftest import Api

__all__ = ["Sent", "send", "assert_envelope", "refused", "answered", "refuse_all", "BOUND", "Refusal",
           "SO_ENVELOPE", "WM_ENVELOPE", "SP_ENVELOPE", "SP_DETAIL_CODES", "SO_ERROR_TYPES", "WM_ERROR_TYPE",
           "SO_MEMBERS", "SO_UPDATABLE", "SO_STATES", "so_state", "so_text", "so_canonical", "so_put_outcome",
           "merge_reference", "same_json", "so_put_judged"]

SO_ENVELOPE = {"Error", "ErrorType", "ErrorMessage", "ErrorSource"}
WM_ENVELOPE = {"$error", "$errorType", "$errorDump", "$errorInfo"}
WM_ERROR_INFO = {"$errorDump", "$error", "$localizedError", "$errorType", "$user", "$time", "$details",
                 "$errorMsgId"}
SP_ENVELOPE = {"detailCode", "trackingId", "messages", "causes"}
#: ErrorResponseDto.detailCode by status, as SailPoint writes them
SP_DETAIL_CODES = {400: "400.1 Bad Request Content", 403: "403 Forbidden", 404: "404 Not found",
                   405: "405 Method Not Allowed", 406: "406 Not Acceptable", 409: "409 Conflict",
                   412: "412 Precondition Failed", 413: "413 Payload Too Large", 415: "415 Unsupported Media Type",
                   408: "408 Request Timeout", 431: "431 Request Header Fields Too Large"}
#: the .NET exception type of SuperOffice's error body, by status (README)
SO_ERROR_TYPES = {400: "ArgumentException", 401: "SoAuthenticationException", 403: "SoAccessDeniedException",
                  404: "SoNotFoundException", 405: "HttpMethodNotAllowedException", 406: "NotAcceptableException",
                  408: "RequestTimeoutException", 409: "SoConflictException", 412: "SoPreconditionFailedException",
                  413: "RequestEntityTooLargeException", 415: "UnsupportedMediaTypeException",
                  429: "TooManyRequestsException", 431: "SoException"}
SO_ERROR_SOURCE = "SuperOffice.Services.Implementation"
WM_ERROR_TYPE = "com.wm.app.b2b.server.ServiceException"
#: Integration Server's ``$time``: ``yyyy-MM-dd HH:mm:ss z``
_WM_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z][A-Za-z0-9+:-]*")
#: seconds any one hostile request may take before the client gives up (and the test fails)
BOUND = 30


@dataclass
class Sent:
    status: int
    body: Any
    text: str
    headers: Any = None
    faults: list[dict[str, Any]] = field(default_factory=list)  # "unhandled error" log events


async def send(api: Api, method: str, path: str, *, body: Any = None, data: Any = None,
               ctype: str | None = "application/json", headers: dict[str, str] | None = None,
               token: str | None = None) -> Sent:
    hdrs = {**api.auth(token), **(headers or {})}
    if body is not None:
        data = json.dumps(body)
    if data is not None and ctype is not None:
        hdrs.setdefault("Content-Type", ctype)
    with capture_logs() as logs:
        resp = await api.client.request(method, path, data=data, headers=hdrs,
                                        timeout=aiohttp.ClientTimeout(total=BOUND), allow_redirects=False)
        text = await resp.text()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    faults = [e for e in logs if e.get("event") == "unhandled error" or e.get("log_level") in ("error", "critical")]
    return Sent(resp.status, parsed, text, resp.headers, faults)


def _says(text: Any, message: str | re.Pattern[str] | None) -> bool:
    if not isinstance(text, str) or not text:
        return False
    if message is None:
        return True
    if isinstance(message, re.Pattern):
        return message.search(text) is not None
    return text == message


def assert_refused(style: str, sent: Sent, refusal: Refusal) -> None:
    """*sent* is the refusal the oracle predicted: its status, and the vendor's whole error
    body with its message."""
    assert sent.status == refusal.status, (sent.status, sent.text[:300], refusal.status)
    assert_envelope(style, sent, refusal.message)


def assert_envelope(style: str, sent: Sent, message: str | re.Pattern[str] | None = None) -> None:
    """The vendor's whole error body for *sent*'s status; *message*: the exact error text,
    or a pattern it must contain."""
    where = (sent.status, sent.text[:300])
    if sent.headers is not None:
        assert sent.headers.get("Content-Type") == "application/json; charset=utf-8", where
    body = sent.body
    assert isinstance(body, dict), where
    if style == "sailpoint":
        if sent.status == 401:
            assert set(body) == {"error"} and _says(body["error"], message), where
        elif sent.status == 429:
            assert body == {"message": " Rate Limit Exceeded "}, where
        else:
            assert set(body) == SP_ENVELOPE, where
            text = body["messages"][0]["text"] if body["messages"] else None
            assert body == {"detailCode": SP_DETAIL_CODES[sent.status], "trackingId": body["trackingId"],
                            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}],
                            "causes": []}, where
            assert _says(text, message), where
            if sent.headers is not None:
                assert body["trackingId"] == sent.headers["X-Request-ID"], where
    elif style == "superoffice":
        assert set(body) == SO_ENVELOPE, where
        assert body == {"Error": True, "ErrorType": SO_ERROR_TYPES[sent.status], "ErrorMessage": body["ErrorMessage"],
                        "ErrorSource": SO_ERROR_SOURCE}, where
        assert _says(body["ErrorMessage"], message), where
        if sent.status == 401 and sent.headers is not None:
            assert sent.headers["WWW-Authenticate"] == 'Basic realm="SuperOffice"', where
    else:
        assert set(body) == WM_ENVELOPE and isinstance(body["$errorInfo"], dict), where
        info = body["$errorInfo"]
        assert set(info) == WM_ERROR_INFO, where
        error = body["$error"]
        assert body == {"$error": error, "$errorType": WM_ERROR_TYPE, "$errorDump": "", "$errorInfo": info}, where
        assert info == {"$errorDump": "", "$error": error, "$localizedError": error, "$errorType": WM_ERROR_TYPE,
                        "$user": info["$user"], "$time": info["$time"], "$details": "", "$errorMsgId": ""}, where
        assert isinstance(info["$user"], str) and _WM_TIME.fullmatch(info["$time"]), where
        assert _says(error, message), where
        if sent.status == 401 and sent.headers is not None:
            assert sent.headers["WWW-Authenticate"] == 'Basic realm="Integration Server"', where


async def refused(api: Api, style: str, method: str, path: str, *, status: int | None = None,
                  message: str | re.Pattern[str] | None = None, **kwargs: Any) -> Sent:
    """The request must be refused: *status* (any 4xx when not given), the style's error
    body, nothing logged or stored."""
    before = await api.snapshot()
    sent = await send(api, method, path, **kwargs)
    if status is None:
        assert 400 <= sent.status < 500, (sent.status, sent.text[:300])
    else:
        assert sent.status == status, (sent.status, sent.text[:300])
    assert_envelope(style, sent, message)
    assert not sent.faults, sent.faults
    assert await api.snapshot() == before, "a refused request changed stored data"
    return sent


async def answered(api: Api, method: str, path: str, *, status: int = 200, **kwargs: Any) -> Sent:
    """The request must be answered with *status*, nothing logged as a fault."""
    sent = await send(api, method, path, **kwargs)
    assert sent.status == status, (sent.status, sent.text[:300])
    assert not sent.faults, sent.faults
    return sent


def _resolve(api: Api, kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(kwargs)
    if kwargs.get("token") in ("user", "read_only"):
        kwargs["token"] = getattr(api, kwargs["token"])
    return kwargs


async def refuse_all(api: Api, style: str, rows: list[tuple[str, str, dict[str, Any]]], fill=lambda x: x) -> None:
    """Every row refused; one app for the table (fast), every failing row reported."""
    failures = []
    for index, (method, path, kwargs) in enumerate(rows):
        try:
            await refused(api, style, method, fill(path), **kwargs)
        except AssertionError as exc:
            failures.append(f"[{index}] {method} {path[:80]} {str(kwargs)[:120]}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)


# -- the SuperOffice oracle ---------------------------------------------------------------
class Refusal(Exception):
    """What the input calls for instead of a change: a status and the error text (or a pattern of it)."""

    def __init__(self, status: int, message: str | re.Pattern[str] | None = None) -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


#: BatchTaskInfo's members, in the vendor's order
SO_MEMBERS = ("Id", "Name", "AssociateId", "DetailsTable", "DetailsRecord", "IsSystemTask", "IsInternalTask",
              "ParameterObject", "LastStarted", "Created", "StartCount", "DatabaseSerialNumber", "Context", "Result",
              "State", "Description", "Response", "Request", "ProgressDescription", "ProgressPercent", "FileName",
              "CancellationBehaviour")
SO_UPDATABLE = ("State", "Description", "Response", "Request")
#: BatchTaskState: names and numbers ("Aquired" as the vendor spells it)
SO_STATES = {"Unknown": 0, "New": 1, "Aquired": 2, "Started": 3, "Succeeded": 4, "Failed": 5,
             "SucceededManualCleanup": 6, "All": 99999}
SO_TEXT_LIMIT = 254
_SO_FOLDED = {name.casefold(): name for name in SO_MEMBERS}
_INVALID = re.compile(r"^invalid BatchTaskInfo: ")


def same_json(a: Any, b: Any) -> bool:
    """Equality as JSON has it: 1, 1.0 and true are three values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return a == b


def so_state(value: Any) -> str:
    """A BatchTaskState name (any case, blanks around it as .NET's enum parser allows) or number."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Refusal(400, _INVALID)
    key = str(value).strip().casefold()
    for name, number in SO_STATES.items():
        if key in (name.casefold(), str(number)):
            return name
    raise Refusal(400, _INVALID)


#: the characters XML 1.0 cannot carry (docs/superoffice.md: refused, since answers may be XML)
_SO_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def so_text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > SO_TEXT_LIMIT or _SO_NOT_XML.search(value):
        raise Refusal(400, _INVALID)
    return value


def so_canonical(body: dict[str, Any]) -> dict[str, Any]:
    """Members under their names (any case); unknown ones dropped; one given twice → 400."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = _SO_FOLDED.get(key.casefold())
        if name is None:
            continue
        if name in out:
            raise Refusal(400, f"BatchTaskInfo: {name} is given more than once")
        out[name] = value
    return out


def merge_reference(target: Any, patch: Any) -> Any:
    """RFC 7386 §2, as its pseudocode reads."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_reference(result.get(name), value)
    return result


def _so_ops(body: Any) -> list[dict[str, Any]]:
    """JSON Patch as README says SuperOffice takes it: add, replace, remove and test (the
    op in any case), member names in any case, the leading slash optional."""
    if not isinstance(body, list) or not body:
        raise Refusal(400, "a JSON Patch must be a non-empty array of operations")
    ops = []
    for index, op in enumerate(body):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise Refusal(400, f"[{index}]: an operation needs string members op and path")
        kind = op["op"].lower()
        if kind not in ("add", "replace", "remove", "test"):
            raise Refusal(400, re.compile(rf"^\[{index}\]\.op: .* is not supported"))
        if kind != "remove" and "value" not in op:
            raise Refusal(400, f"[{index}]: {kind} needs a value")
        path = op["path"] if op["path"].startswith("/") else "/" + op["path"]
        head, sep, rest = path[1:].partition("/")
        name = _SO_FOLDED.get(head.replace("~1", "/").replace("~0", "~").casefold())
        if name is None:
            raise Refusal(400, re.compile(rf"^\[{index}\]\.path: BatchTaskInfo has no member "))
        ops.append({"op": kind, "path": f"/{name}{sep}{rest}", **({"value": op["value"]} if "value" in op else {})})
    return ops


def _jsonpatch_reference(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The operations applied by ``jsonpatch``: a failed test or a pointer into nowhere is
    409 (RFC 5789 §2.2), an operation jsonpatch cannot read is 400."""
    try:
        return jsonpatch.apply_patch(copy.deepcopy(doc), ops)
    except jsonpatch.JsonPatchTestFailed:
        raise Refusal(409, re.compile("^test failed: ")) from None
    except jsonpatch.InvalidJsonPatch:
        raise Refusal(400, re.compile("^invalid JSON Patch: ")) from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException, TypeError, IndexError, KeyError):
        raise Refusal(409, re.compile("^the patch does not apply to the task: ")) from None


def so_put_outcome(old: dict[str, Any], seen: dict[str, Any], body: Any, ctype: str) -> dict[str, Any]:
    """The stored task after an administrator's PUT of *body* as *ctype* to *old* (whose
    carrier, without rights, the client read as *seen*); Refusal when the input calls for one.

    A JSON body (an array is a JSON Patch) names members to set; a patch or a merge patch
    applies to *seen*, and the members it changes are the members set. Only the updatable
    ones are read, and the others are ignored, values and all (README, strict_readonly off).
    """
    if ctype == "application/json-patch+json" or (isinstance(body, list) and ctype != "application/merge-patch+json"):
        after = _jsonpatch_reference(seen, _so_ops(body))
        given = {name: after.get(name) for name in SO_MEMBERS
                 if name not in after or not same_json(seen.get(name), after[name])}
    elif not isinstance(body, dict):
        raise Refusal(400, re.compile("^the body must be a BatchTaskInfo object"))
    elif ctype == "application/merge-patch+json":
        after = merge_reference(seen, so_canonical(body))
        given = {name: after.get(name) for name in SO_MEMBERS
                 if name not in after or not same_json(seen.get(name), after[name])}
    else:
        given = so_canonical(body)
    new = dict(old)
    for name in SO_UPDATABLE:
        if name in given:
            new[name] = so_state(given[name]) if name == "State" else so_text(given[name])
    return new


async def so_put_judged(api: Api, task_id: str, body: Any, ctype: str, *, path: str | None = None,
                        headers: dict[str, str] | None = None) -> Sent:
    """An administrator's PUT of *body* to BatchTask *task_id*, judged by :func:`so_put_outcome`:
    the exact status, the stored task, the whole answer (the carrier read before, its
    updatable members as stored now), the ETag, and one audit row per change, none otherwise."""
    status, carrier, hdrs = await api.request("GET", f"/api/v1/BatchTask/{task_id}")
    assert status == 200, carrier
    version = int(hdrs["ETag"].strip('"'))
    old = (await api.store.get("superoffice", task_id)).doc
    seen = {k: v for k, v in carrier.items() if k not in ("TableRight", "FieldProperties")}
    try:
        expected: dict[str, Any] | Refusal = so_put_outcome(old, seen, body, ctype)
    except Refusal as refusal:
        expected = refusal
    before = await api.snapshot()
    event(f"refused {expected.status}" if isinstance(expected, Refusal)
          else "unchanged" if same_json(expected, old) else "changed")
    sent = await send(api, "PUT", path or f"/api/v1/BatchTask/{task_id}", body=body, ctype=ctype, headers=headers)
    assert not sent.faults, sent.faults
    if isinstance(expected, Refusal):
        assert_refused("superoffice", sent, expected)
        assert await api.snapshot() == before, "a refused request changed stored data"
        return sent
    assert sent.status == 200, (sent.status, sent.text[:300])
    stored = (await api.store.get("superoffice", task_id)).doc
    assert stored == expected
    assert sent.body == {**carrier, **{name: expected[name] for name in SO_UPDATABLE}}
    changed = not same_json(expected, old)
    assert sent.headers["ETag"] == f'"{version + changed}"'
    if changed:
        rows = await api.db_rows("SELECT style, task_id, version, action FROM audit WHERE seq > ? ORDER BY seq",
                                 max((row[0] for row in before[1]), default=0))
        assert rows == [("superoffice", task_id, version + 1, "updated")]
    else:
        assert await api.snapshot() == before, "an unchanged task was written"
    return sent
