"""JSON Patch (RFC 6902) on documents, with every failure mapped to a domain error.

Pure functions: no I/O, no vendor knowledge. Which paths a style lets a patch touch is
decided by the style; this module only parses pointers and applies operations.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Sequence

import jsonpatch
import jsonpointer

from gateway import errors
from gateway.codecs import check_value
from gateway.limits import MAX_DOCUMENT_BYTES

__all__ = ["pointer_parts", "apply_json_patch"]


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def pointer_parts(pointer: Any, *, name: str = "path") -> list[str]:
    """The reference tokens of an RFC 6901 pointer; BadRequest when it is not one."""
    if not isinstance(pointer, str):
        raise errors.BadRequest(f"{name} must be a string")
    try:
        return jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        raise errors.BadRequest(f"{name} {pointer!r} is not a JSON pointer: {exc}") from None


def apply_json_patch(doc: dict[str, Any], operations: Sequence[dict[str, Any]], *,
                     max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """A new document with *operations* applied, all or nothing; *doc* is not modified.

    A failed ``test`` or a pointer into nowhere is a Conflict (409, as RFC 5789 §2.2
    advises for a patch that cannot apply to the resource's current state). Values that
    ``add``/``replace`` bring are bounded by the body size, but ``copy`` can double a
    document with every operation, so copies are charged against *max_bytes* before they
    are made (PayloadTooLarge), and the result may nest no deeper than a body may.
    """
    budget = max_bytes - _size(doc)
    try:
        work = copy.deepcopy(doc)
        for op in operations:
            if op["op"] == "copy":
                budget -= _size(jsonpointer.resolve_pointer(work, op["from"]))
                if budget < 0:
                    raise errors.PayloadTooLarge(f"the patch would make the task larger than {max_bytes} bytes")
            work = jsonpatch.JsonPatch([op]).apply(work, in_place=True)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise errors.Conflict(f"test failed: {exc}") from None
    except jsonpatch.InvalidJsonPatch as exc:
        raise errors.BadRequest(f"invalid JSON Patch: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException,
            TypeError, IndexError, KeyError) as exc:  # pointers that do not resolve in *doc*
        raise errors.Conflict(f"the patch does not apply to the task: {exc}") from None
    except RecursionError:
        raise errors.BadRequest("the patch nests the task too deeply") from None
    check_value(work)
    return work
