"""A test namespace's request journal: what clients sent and what they got, bounded in
count and bytes, secrets redacted, queried with filters.

Each entry is kept as one compact JSON text (``bytes``), so what it costs is what it
weighs: an entry is charged its length plus :data:`ENTRY_OVERHEAD` (the bytes object and
its slot), and the oldest entries go when either bound is passed. Bodies are truncated
to ``journal_body_bytes`` before they are kept. Secrets never reach it: credential
headers, and the values of secret-looking members of query strings, forms and JSON
bodies, are replaced by :data:`REDACTED` (the whole body, when one naming such a member
cannot be read as JSON). Text that UTF-8 cannot hold (a header byte that was not UTF-8)
is kept as its escape. It does no I/O and knows nothing of HTTP
beyond the plain values it is given.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus

__all__ = ["Journal", "REDACTED", "ENTRY_OVERHEAD", "redact_headers", "redact_query", "redact_body", "FILTERS",
           "matches"]

REDACTED = "[redacted]"
#: what one entry costs beyond its text: the bytes object's header and its deque slot
ENTRY_OVERHEAD = 48
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|api-?key|x-xsrf", re.I)
_SECRET_NAME = re.compile(r"secret|password|passwd|token|ticket|credential|api_?key", re.I)
#: the filters an entry can be matched by, and how: glob on text, equality on the rest
FILTERS = ("method", "path", "route", "style", "status", "request_id", "fault")


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = REDACTED if _SECRET_HEADER.search(name) else value
    return out


def redact_query(query: str) -> str:
    if not query or not _SECRET_NAME.search(query):
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{quote_plus(k)}={REDACTED if _SECRET_NAME.search(k) else quote_plus(v)}" for k, v in pairs)


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SECRET_NAME.search(k) else _redact_json(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def _escaped(value: Any) -> Any:
    """*value* with each lone surrogate in its text written as its escape (``\\udcff``)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def redact_body(body: bytes, content_type: str, limit: int) -> tuple[str, bool]:
    """The body as text for the journal, secret members redacted, cut at *limit* bytes;
    and whether it was cut."""
    text = body.decode("utf-8", "replace")
    if _SECRET_NAME.search(text):
        if content_type == "application/x-www-form-urlencoded":
            text = redact_query(text)
        elif content_type.endswith("json"):
            try:
                text = json.dumps(_redact_json(json.loads(text)), separators=(",", ":"))
            except (ValueError, RecursionError):  # not JSON, or nested too deep to walk: kept out whole
                text = REDACTED
    cut = len(text.encode()) > limit
    if cut:
        text = text.encode()[:limit].decode("utf-8", "ignore")
    return text, cut


def matches(entry: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether *entry* passes every filter: ``method`` (any case), ``path`` and ``route``
    (globs: ``/task-status/*``), ``style``, ``status`` (a number), ``request_id``, and
    ``fault`` (true: only entries a fault was injected into; false: only the others)."""
    for key, want in filters.items():
        have = entry.get(key)
        if key == "method":
            if str(have).upper() != str(want).upper():
                return False
        elif key in ("path", "route"):
            if not fnmatch.fnmatchcase(str(have or ""), str(want)):
                return False
        elif key == "fault":
            if bool(have) != bool(want):
                return False
        elif have != want:
            return False
    return True


class Journal:
    """The last requests of one namespace, oldest first, within both bounds."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: deque[bytes] = deque()
        self.bytes = 0  # what the entries kept cost, overhead included
        self.recorded = 0  # every entry ever recorded, dropped ones too
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, entry: Mapping[str, Any]) -> None:
        self.recorded += 1
        try:
            blob = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: aiohttp keeps a header byte that is not UTF-8 as one
            blob = json.dumps(_escaped(entry), separators=(",", ":"), ensure_ascii=False).encode()
        cost = len(blob) + ENTRY_OVERHEAD
        if not self.max_entries or cost > self.max_bytes:
            self.dropped += 1
            return
        self._entries.append(blob)
        self.bytes += cost
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self.bytes -= len(self._entries.popleft()) + ENTRY_OVERHEAD
            self.dropped += 1

    def entries(self, filters: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        for blob in list(self._entries):
            entry = json.loads(blob)
            if not filters or matches(entry, filters):
                yield entry

    def count(self, filters: Mapping[str, Any] | None = None) -> int:
        return sum(1 for _ in self.entries(filters))

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def describe(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self.bytes, "recorded": self.recorded,
                "dropped": self.dropped, "max_entries": self.max_entries, "max_bytes": self.max_bytes}
