"""A declared Content-Length over ``server.max_body_bytes`` is refused at once, in the
route's error shape, before any of the body is sent (on a real socket of the test server)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import Api

LIMIT = 1_048_576  # server.max_body_bytes by default


async def _headers_only(api: Api, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send *head* and a Content-Length one byte over the limit, then no body at all; the
    answer read within a few seconds (the body timeout is 60 s: a 408 would not be here yet).
    aiohttp then lingers a while, discarding what the client still sends, before it
    closes the connection."""
    host, port = api.client.server.host, api.client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write((head + f"Host: 127.0.0.1\r\nAuthorization: Bearer {api.admin}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {LIMIT + 1}\r\n\r\n").encode())
        await writer.drain()
        head_part = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head_part.decode("latin-1").strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    finally:
        writer.close()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(("head", "expected"), [
    ("PATCH /task-status/v1/abc HTTP/1.1\r\n",
     {"detailCode": "413 Payload Too Large", "messages": [
         {"locale": "en-US", "localeOrigin": "DEFAULT", "text": f"the request body is larger than {LIMIT} bytes"}],
      "causes": []}),
    ("PUT /api/v1/BatchTask/1 HTTP/1.1\r\n",
     {"Error": True, "ErrorType": "RequestEntityTooLargeException",
      "ErrorMessage": f"the request body is larger than {LIMIT} bytes",
      "ErrorSource": "SuperOffice.Services.Implementation"}),
])
async def test_an_oversized_content_length_gets_413_before_the_body(api: Api, head: str, expected: dict):
    before = await api.snapshot()
    status, headers, body = await _headers_only(api, head)
    assert status == 413
    doc = json.loads(body)
    doc.pop("trackingId", None)
    assert doc == expected
    assert await api.snapshot() == before


async def test_an_oversized_webmethods_put_gets_413_in_the_envelope(api: Api):
    status, headers, body = await _headers_only(api, "PUT /rest/pub/opentask/1 HTTP/1.1\r\n")
    assert status == 413
    doc = json.loads(body)
    message = f"the request body is larger than {LIMIT} bytes"
    assert doc["$error"] == message and doc["$errorInfo"]["$error"] == message
    assert doc["$errorType"] == doc["$errorInfo"]["$errorType"] == "com.wm.app.b2b.server.ServiceException"
    assert doc["$errorInfo"]["$user"] == "root"  # refused inside the service, after the caller is known


async def test_a_body_within_the_limit_is_still_read(api: Api):
    status, body, _ = await api.request("PATCH", "/task-status/v1/nope", data="[]",
                                        content_type="application/json-patch+json")
    assert status == 400 and body["messages"][0]["text"] != f"the request body is larger than {LIMIT} bytes"
