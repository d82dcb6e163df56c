"""JSON Patch (RFC 6902) on documents, with every failure mapped to a domain error.

Pure functions: no I/O, no vendor knowledge. Which paths a style lets a patch touch is
decided by the style; this module only parses pointers and applies operations.
"""

from __future__ import annotations

from typing import Any, Sequence

import jsonpatch
import jsonpointer

from gateway import errors

__all__ = ["pointer_parts", "apply_json_patch", "MAX_OPERATIONS"]

#: a patch longer than this is refused before any work is done on it
MAX_OPERATIONS = 1000


def pointer_parts(pointer: Any, *, name: str = "path") -> list[str]:
    """The reference tokens of an RFC 6901 pointer; BadRequest when it is not one."""
    if not isinstance(pointer, str):
        raise errors.BadRequest(f"{name} must be a string")
    try:
        return jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        raise errors.BadRequest(f"{name} {pointer!r} is not a JSON pointer: {exc}") from None


def apply_json_patch(doc: dict[str, Any], operations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A new document with *operations* applied, all or nothing; *doc* is not modified.

    A failed ``test`` or a pointer into nowhere is a Conflict (409, as RFC 5789 §2.2
    advises for a patch that cannot apply to the resource's current state).
    """
    try:
        return jsonpatch.JsonPatch(list(operations)).apply(doc, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise errors.Conflict(f"test failed: {exc}") from None
    except jsonpatch.InvalidJsonPatch as exc:
        raise errors.BadRequest(f"invalid JSON Patch: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException,
            TypeError, IndexError, KeyError) as exc:  # pointers that do not resolve in *doc*
        raise errors.Conflict(f"the patch does not apply to the task: {exc}") from None
