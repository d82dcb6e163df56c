"""The request journal: its bounds (count and bytes, also under 100,000 requests), what an
entry keeps, redaction of secrets, and the filters the verify call counts by."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

from gateway.testing.journal import (
    ENTRY_OVERHEAD,
    REDACTED,
    Journal,
    matches,
    redact_body,
    redact_headers,
    redact_query,
)
from tests.conftest import Api


def _entry(number: int, **extra: object) -> dict[str, object]:
    return {"method": "GET", "path": f"/task-status/v1/{number}", "query": "", "headers": {"Accept": "*/*"},
            "body": None, "status": 200, "ms": 0.4, "route": "sailpoint:get:v1", "style": "sailpoint",
            "request_id": f"r{number}", "fault": None, **extra}


def test_the_journal_keeps_the_newest_entries_within_its_count() -> None:
    journal = Journal(max_entries=3, max_bytes=1 << 20)
    for number in range(5):
        journal.record(_entry(number))
    assert [e["request_id"] for e in journal.entries()] == ["r2", "r3", "r4"]
    assert journal.describe() | {"bytes": 0} == {"entries": 3, "bytes": 0, "recorded": 5, "dropped": 2,
                                                 "max_entries": 3, "max_bytes": 1 << 20}


def test_the_journal_keeps_within_its_bytes_and_drops_an_entry_larger_than_them() -> None:
    journal = Journal(max_entries=1000, max_bytes=2000)
    for number in range(100):
        journal.record(_entry(number))
        assert journal.bytes <= 2000
    kept = list(journal.entries())
    assert kept[-1]["request_id"] == "r99" and 0 < len(kept) < 100
    journal.record(_entry(100, body="x" * 5000))
    assert journal.describe()["recorded"] == 101 and list(journal.entries())[-1]["request_id"] == "r99"


def test_journal_memory_stays_within_its_bound_under_100000_requests() -> None:
    bound = 1 << 20
    journal = Journal(max_entries=100_000, max_bytes=bound)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for number in range(100_000):
            journal.record(_entry(number, body='{"op": "replace"}' * (number % 7)))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert journal.describe()["recorded"] == 100_000
    assert journal.bytes <= bound
    # what Python holds for the entries: their charged cost, plus the deque's own blocks
    assert held - base <= bound + 64 * 1024, (held - base, bound)
    assert len(journal) * ENTRY_OVERHEAD < journal.bytes


def test_secrets_are_redacted_from_headers_queries_and_bodies() -> None:
    assert redact_headers([("Authorization", "Bearer tg_x"), ("Cookie", "taskgate_session=s"),
                           ("SO-AppToken", "app"), ("X-XSRF-TOKEN", "x"), ("Accept", "*/*")]) == {
        "Authorization": REDACTED, "Cookie": REDACTED, "SO-AppToken": REDACTED, "X-XSRF-TOKEN": REDACTED,
        "Accept": "*/*"}
    assert redact_query("client_id=a&client_secret=s3cret&limit=5") == \
        f"client_id=a&client_secret={REDACTED}&limit=5"
    assert redact_query("limit=5") == "limit=5"
    assert redact_body(b"grant_type=client_credentials&client_secret=s", "application/x-www-form-urlencoded",
                       100) == (f"grant_type=client_credentials&client_secret={REDACTED}", False)
    assert redact_body(b'{"name": "a", "password": "p", "nested": [{"apiKey": "k"}]}', "application/json",
                       1000) == (f'{{"name":"a","password":"{REDACTED}","nested":[{{"apiKey":"{REDACTED}"}}]}}',
                                 False)
    assert redact_body(b"x" * 50, "text/plain", 10) == ("x" * 10, True)


def test_filters_match_globs_statuses_and_faults() -> None:
    entry = _entry(1, fault={"rule": 1})
    assert matches(entry, {"method": "get", "path": "/task-status/*", "route": "sailpoint:get:*", "status": 200,
                           "fault": True})
    assert not matches(entry, {"status": 201})
    assert not matches(entry, {"fault": False})
    assert not matches(entry, {"path": "/api/*"})


async def test_the_journal_of_a_namespace_records_each_request_and_the_verify_call_counts(tapi: Api) -> None:
    for body in ({"type": "QUARTZ", "uniqueName": "a"}, {"type": "NOPE"}):
        await tapi.request("POST", "/_ns/j/task-status/v1", body=body)
    await tapi.request("GET", "/_ns/j/v2025/task-status?limit=5&client_secret=zzz")
    await tapi.request("GET", "/_ns/j/no/such/route")
    await tapi.request("GET", "/task-status/v1")  # the main store: not in any namespace's journal
    status, body, _ = await tapi.request("GET", "/_taskgate/namespaces/j/journal")
    assert status == 200
    entries = body["entries"]
    assert [(e["method"], e["path"], e["status"], e["route"], e["style"]) for e in entries] == [
        ("POST", "/task-status/v1", 201, "sailpoint:create:v1", "sailpoint"),
        ("POST", "/task-status/v1", 400, "sailpoint:create:v1", "sailpoint"),
        ("GET", "/v2025/task-status", 200, "sailpoint:list:v2025", "sailpoint"),
        ("GET", "/no/such/route", 404, "unmatched", "")]
    first = entries[0]
    assert first["headers"]["Authorization"] == REDACTED
    assert first["body"] == '{"type": "QUARTZ", "uniqueName": "a"}' and first["body_truncated"] is False
    assert first["request_id"] and first["ms"] >= 0 and first["fault"] is None
    assert entries[2]["query"] == f"limit=5&client_secret={REDACTED}"
    status, body, _ = await tapi.request("POST", "/_taskgate/namespaces/j/journal/count",
                                         body={"method": "POST", "status": 400})
    assert (status, body) == (200, {"count": 1})
    status, body, _ = await tapi.request("GET", "/_taskgate/namespaces/j/journal?route=sailpoint:*&limit=1")
    assert [e["status"] for e in body["entries"]] == [200]
    status, _, _ = await tapi.request("DELETE", "/_taskgate/namespaces/j/journal")
    status, body, _ = await tapi.request("POST", "/_taskgate/namespaces/j/journal/count")
    assert (status, body) == (200, {"count": 0})


async def _raw(tapi: Api, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (a client library would refuse a header that is not UTF-8)."""
    server = tapi.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head.encode("utf-8", "surrogateescape") + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1 << 20), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_a_header_byte_that_is_not_utf8_and_a_body_too_deep_to_redact_are_journaled(tapi: Api) -> None:
    """A header holding a byte that is not UTF-8 was a 500 after the task was stored (the
    journal could not encode it); it is kept as its escape. A JSON body naming a secret and
    nested too deep to walk was a 500 too; it is kept out whole."""
    created = json.dumps({"type": "QUARTZ", "uniqueName": "a"}).encode()
    head = ("POST /_ns/j/task-status/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {tapi.admin}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(created)}\r\nX-Note: caf\udce9\r\nConnection: close\r\n\r\n")
    status, body = await _raw(tapi, head, created)
    assert status == 201, body
    deep = b'{"password": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, answer, _ = await tapi.request("POST", "/_ns/j/task-status/v1", data=deep,
                                           headers={"Content-Type": "application/json"})
    assert (status, {**answer, "trackingId": "?"}) == (400, {
        "detailCode": "400.1 Bad Request Content", "trackingId": "?", "causes": [],
        "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": "malformed JSON: nested too deeply"}]})
    status, journal, _ = await tapi.request("GET", "/_taskgate/namespaces/j/journal")
    entries = [{k: v for k, v in e.items() if k not in ("ms", "request_id")} for e in journal["entries"]]
    common = {"method": "POST", "path": "/task-status/v1", "query": "", "body_truncated": False,
              "route": "sailpoint:create:v1", "style": "sailpoint", "fault": None}
    port = tapi.client.server.port
    assert entries == [
        {**common, "status": 201, "body": created.decode(), "headers": {
            "Host": "127.0.0.1", "Authorization": REDACTED, "Content-Type": "application/json",
            "Content-Length": str(len(created)), "X-Note": "caf\\udce9", "Connection": "close"}},
        {**common, "status": 400, "body": REDACTED, "headers": {
            "Host": f"127.0.0.1:{port}", "Authorization": REDACTED, "Content-Type": "application/json",
            "Accept": "*/*", "Accept-Encoding": "gzip, deflate", "User-Agent": entries[1]["headers"]["User-Agent"],
            "Content-Length": str(len(deep))}}]
    assert entries[1]["headers"]["User-Agent"].startswith("Python/")
