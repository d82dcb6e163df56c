"""Answers too large to build whole: a list written to the client a chunk at a time.

A list, search or audit page may hold hundreds of megabyte documents. Building such an
answer in memory costs its whole size (several times over, as Python values), and
encoding it on the event loop stalls every other client for as long. Here the items come
in parts (tasks from :meth:`gateway.model.Store.read_chunks`, audit rows a few at a
time), and each part is shaped and encoded
in a worker thread when it is large, one item per call, so that the loop gets its turn
between items; then it is written, and the next chunk is read only once the client has
taken what was sent (aiohttp's write waits for the socket's buffer to drain).

An answer of one chunk is sent as before, whole, with its ``Content-Length``. A longer
one goes out chunked (``Transfer-Encoding: chunked``) with the same status, headers and
bytes a whole answer would have had: the envelope around the items is the vendor's own,
written once with the first chunk's items and a marker where the rest go
(:class:`ListBody`). Only in XML may a later item declare the ``xsi`` namespace itself,
where the whole document would have declared it once on its root: the same document.

A client that stops reading (it closes the connection, or takes nothing for
``server.send_timeout`` seconds) ends the answer: logged at info, the connection closed,
nothing more read. A failure of the store after the head was sent can no longer be an
error body: it is logged and the connection is cut, so the client sees a broken answer
rather than a short list.

Owns how a list travels; must not know a vendor's document shapes (the caller gives the
envelope and how one item reads) or read the store itself.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, tostring

from aiohttp import web

from gateway.audit import logger
from gateway.context import CONFIG, REQUEST_ID
from gateway.model import Chunk
from gateway.speedups import dumps_bytes

__all__ = ["ListBody", "Part", "json_list", "xml_list", "answer_list", "task_parts", "THREAD_BYTES", "MARKER"]

#: a chunk whose stored documents weigh more than this is shaped and encoded in a thread
THREAD_BYTES = 65_536
#: bytes handed to the connection at a time; each must drain within ``server.send_timeout``
SLICE_BYTES = 65_536
#: stands for the items in an envelope; random per process, so no stored text can be it
MARKER = f"taskgate-items-{secrets.token_hex(12)}"
_NS_XSI = b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'

Shape = Callable[[Any], Any]
#: some items of a list, and roughly what encoding them costs (their stored bytes)
Part = tuple[Sequence[Any], int]


async def task_parts(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Part]:
    """The store's chunks of tasks as parts of a list."""
    async for chunk in chunks:
        yield chunk.tasks, chunk.stored_bytes


@dataclass(frozen=True, slots=True)
class ListBody:
    """How one list answer is written: *whole* is the vendor's envelope holding the given
    items, encoded (the answer as it was always built); *item* one item's bytes as they
    appear in it; *sep* what stands between two items."""

    whole: Callable[[list[Any]], bytes]
    item: Callable[[Any], bytes]
    sep: bytes
    content_type: str = "application/json"

    def split(self, first: list[Any]) -> tuple[bytes, bytes]:
        """The bytes before the items after *first* (with *first* in them), and after the last."""
        body = self.whole([*first, MARKER])
        mark = self.item(MARKER)
        at = body.rindex((self.sep if first else b"") + mark)  # the last item: found from the end at once
        return body[:at], body[at + len((self.sep if first else b"") + mark):]

    def items(self, values: Sequence[Any], *, first: bool, strip: bytes = b"") -> bytes:
        """*values* as they follow the items already written (*first*: there are none yet);
        *strip* is taken out of each item's first tag (a namespace the root declares)."""
        out: list[bytes] = []
        for value in values:
            data = self.item(value)
            if strip and strip in data[:data.index(b">") + 1]:
                data = data.replace(strip, b"", 1)
            out.append(data if first and not out else self.sep + data)
        return b"".join(out)


def json_list(envelope: Callable[[list[Any]], Any]) -> ListBody:
    """A JSON answer whose items are a JSON array in *envelope(items)* (the items themselves
    when the answer is the array)."""
    return ListBody(lambda values: dumps_bytes(envelope(values)), dumps_bytes, b",")


def xml_list(envelope: Callable[[list[Any]], Element], item: Callable[[Any], Element], content_type: str) -> ListBody:
    """An XML answer: *envelope(items)* the whole document's root, *item* one item's element."""
    return ListBody(lambda values: tostring(envelope(values), encoding="utf-8", xml_declaration=True),
                    lambda value: tostring(item(value), encoding="utf-8"), b"", content_type)


def _shaped(items: Sequence[Any], shape: Shape) -> list[Any]:
    return [value for value in map(shape, items) if value is not None]


def _encoded(body: ListBody, items: Sequence[Any], shape: Shape, first: bool, strip: bytes) -> bytes:
    return body.items(_shaped(items, shape), first=first, strip=strip)


async def _off_loop(size: int, fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args) if size > THREAD_BYTES else fn(*args)


class _Abandoned(Exception):
    """The client stopped taking the answer."""


async def answer_list(request: web.Request, parts: AsyncIterator[Part], shape: Shape, body: ListBody, *,
                      status: int = 200, headers: dict[str, str] | None = None) -> web.StreamResponse:
    """The list of every item *parts* gives, each as *shape* makes it (None leaves it
    out), in *body*'s envelope. Failures before the first byte is sent (a bad query, the
    store refusing the first read) are raised, for the style's error body."""
    parts = aiter(parts)
    first = await anext(parts, None)
    second = await anext(parts, None) if first is not None else None
    if first is None or second is None:  # one part at most: the whole answer, as it was always sent
        items, size = first if first is not None else ([], 0)
        data = await _off_loop(size, lambda: body.whole(_shaped(items, shape)))
        whole = web.Response(body=data, status=status, headers=headers)
        whole.content_type, whole.charset = body.content_type, "utf-8"
        return whole
    if request.method == "HEAD":  # a streamed answer's headers, without its length or its body
        await parts.aclose()  # type: ignore[attr-defined]
        empty = web.Response(status=status, headers=headers)
        empty.content_type, empty.charset = body.content_type, "utf-8"
        return empty
    shaped = await _off_loop(first[1], _shaped, first[0], shape)
    head, tail = await _off_loop(first[1], body.split, shaped)
    started = bool(shaped)
    strip = b""
    if body.sep == b"" and _NS_XSI in head[:head.index(b">", head.index(b"?>") + 2) + 1]:
        strip = _NS_XSI  # the root declares xsi: items need not
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type, response.charset = body.content_type, "utf-8"
    response.headers["X-Request-ID"] = request.get(REQUEST_ID, "")  # the request log's middleware is too late
    response.enable_chunked_encoding()
    timeout = request.config_dict[CONFIG].server.send_timeout
    sent = 0

    async def send(data: bytes) -> None:
        """*data* in slices, each of which the client must take within the timeout: a
        slow client that keeps reading is never cut off, one that stops is."""
        nonlocal sent
        view = memoryview(data)
        try:
            for at in range(0, len(view), SLICE_BYTES):
                async with asyncio.timeout(timeout):
                    await response.write(view[at:at + SLICE_BYTES])
                sent += min(SLICE_BYTES, len(view) - at)
        except TimeoutError:
            raise _Abandoned(f"took nothing for {timeout:g} s") from None
        except ConnectionError:
            raise _Abandoned("closed the connection") from None

    pending: Part | None = second
    try:
        await response.prepare(request)
        await send(head)
        while pending is not None:
            data = await _off_loop(pending[1], _encoded, body, pending[0], shape, not started, strip)
            if data:
                started = True
                await send(data)
            pending = await anext(parts, None)
        await send(tail)
        await response.write_eof()
    except _Abandoned as exc:
        logger.info("answer abandoned", reason=f"the client {exc}", path=request.path, bytes_sent=sent,
                    request_id=request.get(REQUEST_ID))
        _cut(request)
    except Exception:
        # the head is out: an error body can no longer be sent; a cut connection tells the
        # client that the answer is incomplete (no last chunk)
        logger.exception("streamed answer failed", path=request.path, bytes_sent=sent,
                         request_id=request.get(REQUEST_ID))
        _cut(request)
    finally:
        await parts.aclose()  # type: ignore[attr-defined]
    return response


def _cut(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
