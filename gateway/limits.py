"""Limits on what a client can make taskgate hold or compute, in one place.

They keep every request's cost bounded: the recursive code downstream (deep copies,
diffs, schema validation) never nears Python's recursion limit, and no patch can grow
a stored document without bound.
"""

import re
from typing import Any

from gateway import errors
from gateway.speedups import dumps_text

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_OPERATIONS", "check_value", "dumps"]

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


def check_value(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """BadRequest if *value* nests deeper than *max_depth* or holds an unpaired surrogate
    (valid JSON escape syntax, but not storable as UTF-8). Iterative: no recursion limit."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise errors.BadRequest("a string holds an unpaired UTF-16 surrogate")
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise errors.BadRequest(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
