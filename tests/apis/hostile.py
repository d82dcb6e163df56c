"""Judging hostile input: send a request, and check that it was refused the style's way.

The rule: bad input gets a 4xx in the vendor's error body, no uncaught exception is
logged, nothing stored changes, and the answer comes within a bounded time (a generous
client timeout, :data:`BOUND`, not a timing assertion). Shared by the hostile-input tables,
the corpus and the property tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from tests.conftest import Api

__all__ = ["Sent", "send", "assert_envelope", "refused", "no_fault", "refuse_all", "BOUND",
           "SO_ENVELOPE", "WM_ENVELOPE", "SP_ENVELOPE"]

SO_ENVELOPE = {"Error", "ErrorType", "ErrorMessage", "ErrorSource"}
WM_ENVELOPE = {"$error", "$errorType", "$errorDump", "$errorInfo"}
SP_ENVELOPE = {"detailCode", "trackingId", "messages", "causes"}
#: seconds any one hostile request may take before the client gives up (and the test fails)
BOUND = 30


@dataclass
class Sent:
    status: int
    body: Any
    text: str
    faults: list[dict[str, Any]] = field(default_factory=list)  # "unhandled error" log events


async def send(api: Api, method: str, path: str, *, body: Any = None, data: bytes | str | None = None,
               ctype: str | None = "application/json", headers: dict[str, str] | None = None, token: str | None = None) -> Sent:
    hdrs = {**api.auth(token), **(headers or {})}
    if body is not None:
        data = json.dumps(body)
    if data is not None and ctype is not None:
        hdrs.setdefault("Content-Type", ctype)
    with capture_logs() as logs:
        resp = await api.client.request(method, path, data=data, headers=hdrs,
                                        timeout=aiohttp.ClientTimeout(total=BOUND))
        text = await resp.text()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    faults = [e for e in logs if e.get("event") == "unhandled error" or e.get("log_level") in ("error", "critical")]
    return Sent(resp.status, parsed, text, faults)


def assert_envelope(style: str, sent: Sent) -> None:
    if style == "sailpoint":
        assert isinstance(sent.body, dict), sent.text[:300]
        if sent.status == 401:
            assert set(sent.body) == {"error"} and isinstance(sent.body["error"], str), sent.text[:300]
        elif sent.status == 429:
            assert sent.body == {"message": " Rate Limit Exceeded "}
        else:
            assert set(sent.body) == SP_ENVELOPE, sent.text[:300]
            assert sent.body["detailCode"].startswith(str(sent.status)) and sent.body["causes"] == []
            assert [set(m) for m in sent.body["messages"]] == [{"locale", "localeOrigin", "text"}]
    elif style == "superoffice":
        assert isinstance(sent.body, dict) and set(sent.body) == SO_ENVELOPE, sent.text[:300]
        assert sent.body["Error"] is True and all(isinstance(sent.body[k], str) for k in SO_ENVELOPE - {"Error"})
    else:
        assert isinstance(sent.body, dict) and WM_ENVELOPE <= set(sent.body), sent.text[:300]
        assert isinstance(sent.body["$error"], str) and isinstance(sent.body["$errorInfo"], dict)


async def refused(api: Api, style: str, method: str, path: str, **kwargs: Any) -> Sent:
    """The request must be refused: 4xx, the style's error body, nothing logged or stored."""
    before = await api.snapshot()
    sent = await send(api, method, path, **kwargs)
    assert 400 <= sent.status < 500, (sent.status, sent.text[:300])
    assert_envelope(style, sent)
    assert not sent.faults, sent.faults
    assert await api.snapshot() == before, "a refused request changed stored data"
    return sent


async def no_fault(api: Api, style: str, method: str, path: str, **kwargs: Any) -> Sent:
    """Any answer but a fault: never 5xx; a 4xx is the style's error body and changes nothing."""
    before = await api.snapshot()
    sent = await send(api, method, path, **kwargs)
    assert sent.status < 500, (sent.status, sent.text[:300])
    assert not sent.faults, sent.faults
    if sent.status >= 400:
        assert_envelope(style, sent)
        assert await api.snapshot() == before, "a refused request changed stored data"
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


