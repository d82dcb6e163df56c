"""Bodies in and out: content types, size, JSON decoding, Accept negotiation, ETags.

Every byte of a request body is read here, after aiohttp's size cap, and every decoding
failure becomes a domain error (400, 406, 413, 415) that the route's style renders.
Vendor-specific document shapes are not this module's business.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, tostring

import defusedxml
import defusedxml.ElementTree
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from gateway import errors
from gateway.limits import dumps, may_hold_surrogates, scan_value
from gateway.speedups import DuplicateKey, dumps_bytes, loads, refuse_duplicates

__all__ = ["BODY_TIMEOUT", "body_timeout", "is_number", "read_body", "decode_json", "decode_xml", "decode_form",
           "negotiate", "parse_if_match", "parse_http_date", "etag", "json_response", "stored_response", "xml_response"]

MAX_FORM_FIELDS = 1000
#: seconds a client has to send a body once its headers are in (``server.body_timeout``)
BODY_TIMEOUT = web.AppKey("body_timeout", float)


#: set when a request's body could not be read whole (too slow, or not decoding as its
#: Content-Encoding says): its answer then closes the connection (see gateway.app._edge)
BODY_ABANDONED = web.RequestKey("body_abandoned", bool)


def body_timeout(request: web.Request) -> asyncio.Timeout:
    """A timeout for reading *request*'s body: aiohttp waits for a slow sender forever."""
    return asyncio.timeout(request.app.get(BODY_TIMEOUT))



def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> web.Response:
    try:  # orjson when installed: bodies are stored documents and messages, finite numbers only
        body = dumps_bytes(data)
    except UnicodeEncodeError:
        # backslashreplace: an error message quoting a client's unpaired surrogate stays valid JSON
        body = dumps(data).encode("utf-8", errors="backslashreplace")
    return web.Response(body=body, status=status, headers=headers, content_type=content_type,
                        charset="utf-8")


def stored_response(text: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A stored document's text (:attr:`gateway.model.Task.text`) as the JSON answer: the
    bytes :func:`json_response` would write for the document, without writing it again
    (the store keeps the form :func:`gateway.limits.dumps` writes, which holds no surrogate)."""
    return web.Response(body=text.encode("utf-8"), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def xml_response(root: Element, *, status: int = 200, headers: dict[str, str] | None = None,
                 content_type: str = "application/xml") -> web.Response:
    body = tostring(root, encoding="utf-8", xml_declaration=True)
    return web.Response(body=body, status=status, headers=headers, content_type=content_type, charset="utf-8")


def is_number(text: str) -> bool:
    """Whether *text* is ASCII decimal digits only: ``str.isdigit`` also takes "²", which
    ``int`` refuses (a 500 where a 400 was due), and "١٢" or "５", which ``int`` reads as
    numbers no client meant."""
    return text.isascii() and text.isdigit()


async def read_body(request: web.Request, accepted: Iterable[str]) -> tuple[str, bytes]:
    """The media type and raw body, if the Content-Type is one of *accepted*."""
    accepted = tuple(accepted)
    ctype = request.content_type if "Content-Type" in request.headers else ""
    if ctype not in accepted:
        raise errors.UnsupportedMediaType(
            f"Content-Type {ctype or '(none)'!r} is not supported here; use {' or '.join(accepted)}")
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise errors.UnsupportedMediaType(f"charset {charset!r} is not supported; use utf-8")
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        # refused before a byte is read: aiohttp would wait until that much had arrived
        # (or the body timeout ran out), then discards what is still sent, for a while
        raise errors.PayloadTooLarge(f"the request body is larger than {request.client_max_size} bytes")
    try:
        if request.content.is_eof():  # all of it has arrived (the usual small body): nothing to wait for
            body = await request.read()
        else:
            async with body_timeout(request):
                body = await request.read()
    except TimeoutError:
        request[BODY_ABANDONED] = True
        raise errors.RequestTimeout("the request body did not arrive in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge(
            f"the request body is larger than {request.client_max_size} bytes") from None
    except (HttpProcessingError, RequestPayloadError):  # e.g. a Content-Encoding the body does not match
        request[BODY_ABANDONED] = True
        raise errors.BadRequest("the request body cannot be read (broken transfer or content encoding)") from None
    return ctype, body


def decode_json(body: bytes) -> Any:
    if not body.strip():
        raise errors.BadRequest("the request body is empty")
    try:
        value = loads(body)  # orjson when installed; json's reading and errors either way
        # one walk: the members it holds (for the duplicate check) and what check_value refuses
        keys, problem = scan_value(value, surrogates=may_hold_surrogates(body))
        if type(value) is dict or type(value) is list:
            refuse_duplicates(body, keys)
    except DuplicateKey as exc:  # both readers keep the last silently: a client's typo or a smuggled value
        raise errors.BadRequest(f"malformed JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(f"the request body is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise errors.BadRequest(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise errors.BadRequest("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, integers longer than Python's digit limit
        raise errors.BadRequest(f"malformed JSON: {exc}") from None
    if problem is not None:
        raise errors.BadRequest(problem)
    return value


#: an XML body is fed to the parser this many bytes at a time, with the event loop's turn
#: between: 1 MiB of nested elements took 250 to 330 ms to parse in one call, every other
#: client waiting (expat calls Python for each element)
_XML_CHUNK = 65_536


async def decode_xml(body: bytes) -> Element:
    """The root element of an XML body, parsed only by defusedxml: a document with a DTD,
    entity declarations or external references is refused before anything is expanded.
    A body over :data:`_XML_CHUNK` bytes is parsed in turns of that many."""
    if not body.strip():
        raise errors.BadRequest("the request body is empty")
    parser = defusedxml.ElementTree.DefusedXMLParser(target=TreeBuilder(), forbid_dtd=True)
    try:
        for start in range(0, len(body), _XML_CHUNK):
            if start:
                await asyncio.sleep(0)
            parser.feed(body[start:start + _XML_CHUNK])
        root: Element = parser.close()
    except defusedxml.DefusedXmlException:
        raise errors.BadRequest("XML with a DTD, entity declarations or external references is refused") from None
    except ParseError as exc:
        raise errors.BadRequest(f"malformed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # a declared encoding expat cannot read
        raise errors.BadRequest(f"unsupported XML encoding: {str(exc)[:80]}; use UTF-8") from None
    return root


def decode_form(body: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, in order. A %-escape
    must spell UTF-8, as the body's own bytes must (``%E9`` alone is refused, not read
    as U+FFFD)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(f"the request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(body.strip()),
                         max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except UnicodeDecodeError:
        raise errors.BadRequest("malformed form body: a %-escape spells bytes that are not UTF-8") from None
    except ValueError as exc:
        raise errors.BadRequest(f"malformed form body: {exc}") from None


def negotiate(request: web.Request, offered: Iterable[str]) -> str:
    """The first of *offered* that the Accept header admits (no header admits all)."""
    offered = tuple(offered)
    header = request.headers.get("Accept", "")
    if not header.strip():
        return offered[0]
    ranges = []
    for part in header.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    best, best_q = None, 0.0
    for candidate in offered:
        major = candidate.split("/")[0]
        for media, q in ranges:
            if q > best_q and media in (candidate, f"{major}/*", "*/*"):
                best, best_q = candidate, q
    if best is None:
        raise errors.NotAcceptable(f"cannot answer with {header!r}; available: {', '.join(offered)}")
    return best


_MONTHS = {name: n for n, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                             "Nov", "Dec"), start=1)}
_HTTP_DATES = (  # RFC 9110 §5.6.7: IMF-fixdate, then the obsolete RFC 850 and asctime forms
    re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (?P<d>\d\d) (?P<m>[A-Z][a-z]{2}) (?P<y>\d{4}) "
               r"(?P<t>\d\d:\d\d:\d\d) GMT"),
    re.compile(r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (?P<d>\d\d)-(?P<m>[A-Z][a-z]{2})-"
               r"(?P<y>\d\d) (?P<t>\d\d:\d\d:\d\d) GMT"),
    re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<m>[A-Z][a-z]{2}) (?P<d>[ \d]\d) (?P<t>\d\d:\d\d:\d\d) "
               r"(?P<y>\d{4})"))


def parse_http_date(text: str, now: datetime | None = None) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) in UTC, or None for anything else: conditional
    headers holding no HTTP-date are ignored (§13.1.3, §13.1.4). The standard library's
    and aiohttp's readers also take RFC 5322 forms (one-digit years, zones), which would
    turn a date to be ignored into a refusal. A two-digit year is the latest past year
    with those digits, unless that lies more than 50 years ahead of *now* (§5.6.7)."""
    for form in _HTTP_DATES:
        match = form.fullmatch(text.strip(" "))
        if match is None:
            continue
        year = int(match["y"])
        if len(match["y"]) == 2:
            now = now or datetime.now(UTC)
            year += 100 * (now.year // 100)
            if year > now.year + 50:
                year -= 100
        month = _MONTHS.get(match["m"])
        hour, minute, second = (int(part) for part in match["t"].split(":"))
        try:
            return datetime(year, month or 0, int(match["d"]), hour, minute, second, tzinfo=UTC)
        except ValueError:  # no such month or day (year 0 included), or a time past 23:59:59
            return None
    return None


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an ``If-Match`` header admits; None means no condition (absent or ``*``).

    Weak tags never match (RFC 9110 §13.1.1 uses the strong comparison); an unparsable
    header admits nothing, so the update is refused rather than applied blindly.
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        match = re.fullmatch(r'\s*"([0-9]{1,18})"\s*', tag)
        if match:
            versions.add(int(match.group(1)))
    return frozenset(versions)


def etag(version: int) -> str:
    return f'"{version}"'
