"""Optional fast paths: uvloop's event loop and orjson, each used when importable.

``pip install taskgate[fast]`` brings both; without them the standard library does the
same work, with the same results. This module owns only the choice: nothing here knows
of HTTP, SQL or vendors. Results never depend on which path ran: orjson is used only
where it gives the same values as :mod:`json`, and anything it refuses or might read
differently (integers beyond 64 bits, which it turns into floats; unpaired surrogates;
out-of-range numbers) goes to :mod:`json`, whose answer (or error) is the reference.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["ORJSON", "UVLOOP", "DuplicateKey", "loads", "loads_unique", "refuse_duplicates", "dumps_bytes",
           "dumps_text", "run", "describe"]

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    orjson = None  # type: ignore[assignment]
try:
    import uvloop
except ImportError:  # pragma: no cover - depends on the install
    uvloop = None  # type: ignore[assignment]

ORJSON = orjson is not None
UVLOOP = uvloop is not None

T = TypeVar("T")

# A number of 19 digits or more may be an integer beyond 64 bits, which orjson reads as a
# float. A number token starts the text or follows "[", ":", "," or whitespace, with an
# optional minus; digits inside strings (ids such as "000…3bb") mostly follow a quote or a
# letter and are no reason to leave orjson (when they do match, json merely reads them).
_LONG_DIGITS = re.compile(rb"(?:^|[\[:,\s])-?[0-9]{19}")
# That pattern costs re about 35 ms a megabyte, with the GIL held; a run of 19 digits
# anywhere is found in about 1 ms by translating every digit to "9" and everything else
# to a space, so the pattern only runs on the rare text that has one (and whose reading
# holds a float: ids of zero-padded digits have such runs in nearly every document).
_DIGITS_ONLY = bytes(0x39 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_NINETEEN = b"9" * 19


def _has_float(value: Any) -> bool:
    """Whether a parsed value holds a float anywhere: orjson reads every integer beyond 64
    bits as one, so a value without floats read no such integer."""
    if type(value) is float:
        return True
    pending = [value] if type(value) is dict or type(value) is list else []
    pop, push = pending.pop, pending.append
    while pending:
        item = pop()
        for v in (item.values() if type(item) is dict else item):
            kind = type(v)
            if kind is float:
                return True
            if kind is dict or kind is list:
                push(v)
    return False


def _long_digits(data: bytes, value: Any) -> bool:
    """Whether *data*, which orjson read as *value*, may hold an integer beyond 64 bits. The
    pattern runs only on text with a run of 19 digits whose reading holds a float: the runs
    are mostly in strings (ids), and then no float came from one."""
    return _NINETEEN in data.translate(_DIGITS_ONLY) and _has_float(value) and _LONG_DIGITS.search(data) is not None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent as a float; ValueError past a double's
    range (``1e400`` would read as infinity, which no JSON text can write back)."""
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:40]} is beyond the range of a 64-bit float")
    return number


def _stdlib_loads(data: bytes | str) -> Any:
    return json.loads(data, parse_constant=_reject_constant, parse_float=_finite)


def loads(data: bytes) -> Any:
    """JSON text (UTF-8 bytes) to Python values; NaN and Infinity literals are refused.
    Errors are :mod:`json`'s (JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError)."""
    if orjson is not None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # let json say what is wrong (or read what orjson refuses, such as 1e400)
        else:
            if not _long_digits(data, value):
                return value
    return _stdlib_loads(data.decode("utf-8"))


class DuplicateKey(ValueError):
    """A JSON object names the same key twice (both readers would keep the last)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"the key {key!r} appears twice in one object")


# Where a key may end: a closing quote, optional whitespace, a colon. Every key of the text
# matches, and so may a value's `":` inside a string, so the count is never below the
# number of keys written. Whitespace before the colon is rare: bytes.count finds the rest.
_KEY_END_SPACED = re.compile(rb'"[ \t\n\r]+:')


def _key_ends(data: bytes) -> int:
    count = data.count(b'":')
    if _KEY_END_SPACED.search(data):
        count += len(_KEY_END_SPACED.findall(data))
    return count


def _key_count(value: Any) -> int:
    """How many keys the parsed objects hold, all levels."""
    count = 0
    pending = [value]
    pop, push = pending.pop, pending.append
    while pending:
        item = pop()
        if type(item) is dict:
            count += len(item)
            item = item.values()
        for v in item:
            kind = type(v)
            if kind is dict or kind is list:
                push(v)
    return count


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return result


def refuse_duplicates(data: bytes, keys: int) -> None:
    """:class:`DuplicateKey` if JSON *data*, whose reading holds *keys* members in all its
    objects, repeats a key in one object: only when the text might name more keys than
    that (a duplicate, or a string holding a quote and a colon) is it read again with
    :mod:`json`, which reports each key it meets."""
    if _key_ends(data) > keys:
        json.loads(data.decode("utf-8"), object_pairs_hook=_refuse_duplicates, parse_constant=_reject_constant,
                   parse_float=_finite)


def loads_unique(data: bytes) -> Any:
    """:func:`loads`, and :class:`DuplicateKey` for an object that repeats a key. A parsed
    value holding as many keys as the text can name has none twice; only when the text
    might name more (a duplicate, or a string holding a quote and a colon) is it read again
    with :mod:`json`, which reports each key it meets."""
    value = loads(data)
    if isinstance(value, (dict, list)):
        refuse_duplicates(data, _key_count(value))
    return value


# orjson and json spell floats between 1e-9 and 1e-4 differently (0.00001 and 1e-7 for
# 1e-05 and 1e-07), and only those: orjson's text holding either form goes to json.
_ODD_DECIMAL = b"0.0000"
_EXPONENT = b"e-"
_SMALL_EXPONENT_DIGITS = frozenset(b"56789")
_DIGIT_BYTES = frozenset(b"0123456789")
#: the most "e-" in a text that :func:`_spelled_as_json` looks at one by one
_SCAN_EXPONENTS = 16


def _spelled_as_json(out: bytes) -> bool:
    """Whether orjson's *out* has no float that json would spell differently. A string
    holding such a spelling ("0.00001", "1e-7") only sends its value to json, which agrees."""
    if _ODD_DECIMAL in out:
        return False
    at = out.find(_EXPONENT)
    while at != -1:
        if at and out[at - 1] in _DIGIT_BYTES and at + 2 < len(out) and out[at + 2] in _SMALL_EXPONENT_DIGITS \
                and (at + 3 == len(out) or out[at + 3] not in _DIGIT_BYTES):
            return False
        at = out.find(_EXPONENT, at + 2)
    return True


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps_bytes(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON as UTF-8 bytes, for values known to hold only JSON types, str keys and
    finite numbers (orjson writes NaN as null where :func:`json.dumps` refuses it): byte
    for byte ``json.dumps(separators=(",", ":"), ensure_ascii=False)``. *default*
    converts other objects."""
    if orjson is not None:
        try:
            out = orjson.dumps(value, default=default)
        except TypeError:
            pass  # integers beyond 64 bits, surrogates: json decides
        else:
            # a text without the spellings that differ is json's (a scan of the bytes, when
            # few "e-" make it short); else a value without floats is spelled alike (what
            # *default* makes is not walked)
            if (out.count(_EXPONENT) <= _SCAN_EXPONENTS and _spelled_as_json(out)) \
                    or (default is None and not _has_float(value)):
                return out
    if default is None:
        return _ENCODER.encode(value).encode("utf-8")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=default).encode("utf-8")


def dumps_text(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``,
    character for character, and its errors (ValueError for NaN and infinities, which
    orjson writes as null): orjson writes a value that holds no float."""
    if orjson is not None and not _has_float(value):
        try:
            return orjson.dumps(value).decode("utf-8")
        except TypeError:
            pass  # integers beyond 64 bits, surrogates, keys that are not str: json decides
    return _ENCODER.encode(value)


def run(main: Awaitable[T]) -> T:
    """``asyncio.run`` on uvloop's loop when it is installed, else on asyncio's own."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def describe() -> str:
    """Which paths are in use, for start-up logs and benchmark reports."""
    return f"loop={'uvloop' if UVLOOP else 'asyncio'} json={'orjson' if ORJSON else 'json'}"
