"""Limits on what a client can make taskgate hold or compute, in one place.

They keep every request's cost bounded: the recursive code downstream (deep copies,
diffs, schema validation) never nears Python's recursion limit, and no patch can grow
a stored document without bound.
"""

import re
from collections.abc import Iterable
from typing import Any

from gateway import errors
from gateway.speedups import dumps_text

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_OPERATIONS", "check_value", "scan_value", "may_hold_surrogates",
           "dumps"]

#: deepest nesting of arrays and objects accepted in a body or kept in a document
MAX_DEPTH = 64
#: the largest stored document, serialized by :func:`dumps` as UTF-8
MAX_DOCUMENT_BYTES = 1_048_576
#: most operations in one JSON Patch
MAX_OPERATIONS = 1000

def dumps(value: Any) -> str:
    """The one JSON form taskgate stores and sends: compact, UTF-8 text, no NaN (ValueError).
    orjson writes it when installed, the same text as :mod:`json` (:func:`~gateway.speedups.dumps_text`)."""
    return dumps_text(value)


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_MESSAGE = "a string holds an unpaired UTF-16 surrogate"
# JSON text can only hold a surrogate as an escape (UTF-8 has none): \uD800 to \uDFFF
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def check_value(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """BadRequest if *value* nests deeper than *max_depth* or holds an unpaired surrogate
    (valid JSON escape syntax, but not storable as UTF-8). Iterative: no recursion limit."""
    _, problem = scan_value(value, max_depth=max_depth)
    if problem is not None:
        raise errors.BadRequest(problem)


def may_hold_surrogates(text: bytes) -> bool:
    """Whether JSON *text* has an escape that reads as a surrogate: without one, nothing
    read from it holds an unpaired one."""
    return b"\\u" in text and _SURROGATE_ESCAPE.search(text) is not None


def scan_value(value: Any, *, max_depth: int = MAX_DEPTH, surrogates: bool = True) -> tuple[int, str | None]:
    """One walk of *value*: how many members its objects hold at every level, and what
    :func:`check_value` refuses in it (a message), or None. *surrogates* False skips the
    search for unpaired surrogates (a value read from text without such escapes)."""
    search = _SURROGATE.search if surrogates else None
    if type(value) is not dict and type(value) is not list:
        if search is not None and isinstance(value, str) and search(value):
            return 0, _SURROGATE_MESSAGE
        return 0, None
    keys = 0
    problem: str | None = None
    pending = [(value, 1)]
    pop, push = pending.pop, pending.append
    while pending:
        item, depth = pop()
        if depth > max_depth:
            problem = problem or f"nested deeper than {max_depth} levels"
            continue
        if type(item) is dict:
            keys += len(item)
            if search is not None and problem is None and any(search(k) for k in item):
                problem = _SURROGATE_MESSAGE
            children: Iterable[Any] = item.values()
        else:
            children = item
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
            elif search is not None and problem is None and isinstance(child, str) and search(child):
                problem = _SURROGATE_MESSAGE
    return keys, problem
