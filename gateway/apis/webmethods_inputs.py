"""How the webMethods style reads a service's inputs: flags, counts, names, and inputs
that IS spells two ways.

Integration Server hands a service its inputs as strings (from the query) or as JSON values
(from the body); these functions read either and answer a readable ``BadRequest`` naming
the input. Pure functions: no I/O, no HTTP, no store; they must not decide what a call
may do with the values (the rules do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway import errors

__all__ = ["MAX_ID_LENGTH", "flag", "count", "name", "one_of"]

MAX_ID_LENGTH = 255


def flag(value: Any, what: str, default: bool = False) -> bool:
    """``true``/``false`` in any case, or a JSON boolean; *default* when absent."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise errors.BadRequest(f"{what} must be true or false; got {value!r}")


def count(value: Any, what: str, default: int) -> int:
    """A whole number from 0 to 999,999,999, as digits or a JSON integer; *default* when absent."""
    if value is None:
        return default
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str)
                                                                  and re.fullmatch(r"\s*\d{1,9}\s*", value))):
        raise errors.BadRequest(f"{what} must be a whole number of at least 0; got {value!r}")
    number = int(value)
    if not 0 <= number <= 999_999_999:
        raise errors.BadRequest(f"{what} must be a whole number of at least 0; got {value!r}")
    return number


def name(value: Any, what: str) -> str:
    """A task or user id: a non-empty string (or a JSON integer) of at most :data:`MAX_ID_LENGTH`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSON clients may send numeric task ids as numbers
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise errors.BadRequest(f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} characters; "
                                f"got {value!r}")
    return value.strip()


def one_of(body: Mapping[str, Any], *names: str) -> Any:
    """The value of whichever of *names* is given (``TaskInfo`` or ``taskInfo``…), None
    when none is; more than one is refused rather than one picked."""
    given = [n for n in names if body.get(n) is not None]
    if len(given) > 1:
        raise errors.BadRequest(f"send only one of {', '.join(given)}")
    return body[given[0]] if given else None
