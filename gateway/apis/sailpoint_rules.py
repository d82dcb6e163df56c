"""SailPoint task-status rules as data and pure functions: which members a PATCH may
change, what a JSON Patch body must be, who may change a task, the PATCH mutation, and
what a new TaskStatus starts from.

Owns "what may change": :data:`UPDATABLE` is the one set of top-level TaskStatus members a
PATCH may write (and anything below them); the path check, its error message and the
OpenAPI pattern all read it. Must not do I/O or know aiohttp or the routes
(:mod:`gateway.apis.sailpoint`): every function takes documents and returns a new one, or
raises a domain error from :mod:`gateway.errors`. A TaskStatus is validated by
:mod:`schemas.sailpoint`, which knows its members' types and nothing of who may change them.

Owns "who may change": a task belongs to the taskgate user its ``launcher`` names
(:func:`may_update`), as a SuperOffice task belongs to the user of its ``AssociateId``;
and "who may read" (:func:`may_read`): anyone signed in, which the event stream applies too.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.limits import MAX_OPERATIONS, check_value
from gateway.model import Doc, Mutate
from gateway.patching import apply_json_patch, pointer_parts, same_json
from schemas.common import load_or_400
from schemas.sailpoint import (
    COMPLETION_STATUSES,
    JsonPatchOperationSchema,
    TaskStatusCreateSchema,
    TaskStatusInputSchema,
)

__all__ = ["UPDATABLE", "OWNER", "Caller", "may_update", "may_read", "reads_everything", "owned_mutation",
           "validate_task_status", "parse_patch",
           "check_patch_paths", "patch_mutation", "new_task_status"]

#: top-level TaskStatus members a PATCH may change (and anything below them)
UPDATABLE = frozenset({"completionStatus", "completed", "launched", "progress", "percentComplete",
                       "messages", "returns", "attributes"})

#: the member that names a task's owner: SailPoint's "who launched it", set only by a create
#: (admins) or an import (the operator) and not updatable (not in :data:`UPDATABLE`)
OWNER = "launcher"

_TASK_STATUS = TaskStatusInputSchema()
_TASK_STATUS_CREATE = TaskStatusCreateSchema()
_PATCH = JsonPatchOperationSchema(many=True)


# -- who may change a task ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a PATCH (a read-only token never gets this far: auth refuses it)."""

    name: str
    is_admin: bool


def may_update(caller: Caller, doc: Mapping[str, Any]) -> bool:
    """An admin, or the user the task's ``launcher`` names. A launcher that names no
    taskgate user (an ISC identity, ``"import"``, a system name) leaves the task to admins.

    Why the launcher and not the creator: only admins create (and the operator imports),
    so a creator rule would leave every plain user owning nothing; the launcher is the
    vendor's own "whose task", which the admin sets when launching a task for someone and
    nobody can PATCH afterwards. Reads are not restricted (SailPoint's list is tenant-wide)."""
    return caller.is_admin or doc.get(OWNER) == caller.name


def reads_everything(caller: Caller) -> bool:
    """Whether *caller* may read every task whatever its document: everyone signed in may,
    as SailPoint's task-status list is tenant-wide (the handlers check nothing more)."""
    return True


def may_read(caller: Caller, doc: Mapping[str, Any] | None) -> bool:
    """Whether *caller* may read the task *doc*: see :func:`reads_everything`."""
    return reads_everything(caller)


def judged(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`may_read` reads of *doc*: nothing."""
    return {}


def owned_mutation(caller: Caller, task_id: str, mutate: Mutate) -> Mutate:
    """*mutate*, run only when :func:`may_update` allows *caller* the task as stored at the
    write (so a task whose owner changed meanwhile is judged as it is now); else Forbidden."""
    def guarded(old: Doc | None) -> Doc | None:
        assert old is not None
        if not may_update(caller, old):
            raise errors.Forbidden(f"TaskStatus {task_id!r} belongs to its launcher {old.get(OWNER)!r}: "
                                   "only that user or an admin may change it")
        return mutate(old)
    return guarded


def validate_task_status(doc: Any) -> dict[str, Any]:
    """The canonical TaskStatus for *doc*, or BadRequest naming every invalid member."""
    return load_or_400(_TASK_STATUS, doc, "TaskStatus")


def parse_patch(body: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations from a decoded body; BadRequest when it is not a valid patch."""
    if not isinstance(body, list):
        raise errors.BadRequest("the body must be a JSON array of JSON Patch operations")
    if not body:
        raise errors.BadRequest("the patch has no operations")
    if len(body) > MAX_OPERATIONS:
        raise errors.BadRequest(f"the patch has {len(body)} operations; at most {MAX_OPERATIONS} are allowed")
    ops = _plain_ops(body)
    if ops is None:
        ops = load_or_400(_PATCH, body, "JSON Patch")
    check_patch_paths(ops)
    return ops


_PLAIN_OPS = frozenset({"add", "replace", "test"})
_PLAIN_KEYS = frozenset({"op", "path", "value"})
_TOP_MEMBER = re.compile(r"/[A-Za-z0-9_]+\Z")


def _plain_ops(body: list[Any]) -> list[dict[str, Any]] | None:
    """What the JsonPatchOperation schema loads from operations of the usual shape (exactly
    ``op``, ``path``, ``value``; add, replace or test; a string path), without running the
    schema; None for anything else, which the schema then judges."""
    for op in body:
        if type(op) is not dict or op.keys() != _PLAIN_KEYS or type(op["op"]) is not str \
                or op["op"] not in _PLAIN_OPS or type(op["path"]) is not str:
            return None
    return [{"op": op["op"], "path": op["path"], "value": op["value"]} for op in body]


def _replace_members(old: dict[str, Any], ops: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The validated result of a patch made only of ``replace`` operations on existing
    top-level members (``/percentComplete``), without deep copies or JSON Patch machinery;
    None for any other patch. The stored task is valid, so validating the members it
    replaces gives what validating the whole result gives."""
    for op in ops:
        if op["op"] != "replace" or not _TOP_MEMBER.match(op["path"]) or op["path"][1:] not in old \
                or op["path"][1:] not in _TASK_STATUS.fields:
            return None
    new = dict(old)  # members are replaced, never changed in place: the old task is untouched
    for op in ops:
        new[op["path"][1:]] = op["value"]
    replaced = {name: new[name] for name in dict.fromkeys(op["path"][1:] for op in ops)}
    check_value(list(replaced.values()))  # each at the depth it has in the task
    # a value the schema would load as itself needs no schema; the others (nested documents
    # load whole, defaults and all; refusals) go through it; the other members are as stored
    if not all(_loads_as_itself(name, value) for name, value in replaced.items()):
        new.update(load_or_400(_members_schema(frozenset(replaced)), replaced, "TaskStatus"))
    return new


_STATUSES = frozenset(COMPLETION_STATUSES)


def _loads_as_itself(name: str, value: Any) -> bool:
    """Whether the TaskStatus schema loads *value* as member *name* unchanged, by its own
    rules (:mod:`schemas.sailpoint`): an integer from 0 to 100 as ``percentComplete``,
    a string or null as ``progress``, a status as spelled there or null as
    ``completionStatus``, null as ``completed`` or ``launched``. False says only "ask the
    schema", which also words every refusal."""
    kind = type(value)
    if name == "percentComplete":
        return kind is int and 0 <= value <= 100
    if name == "progress":
        return kind is str or value is None
    if name == "completionStatus":
        return value is None or (kind is str and value in _STATUSES)
    if name == "completed" or name == "launched":
        return value is None
    return False


@functools.lru_cache(maxsize=64)
def _members_schema(names: frozenset[str]) -> TaskStatusInputSchema:
    """TaskStatus restricted to *names* (members of a stored task, so fields of the schema):
    loads what ``partial=`` the other members would, without visiting the others."""
    return TaskStatusInputSchema(only=sorted(names))


def check_patch_paths(ops: Sequence[dict[str, Any]]) -> None:
    """Refuse pointers that are malformed or that change a member outside :data:`UPDATABLE`.

    ``test`` and the source of ``copy`` only read, so they may name any member.
    """
    for index, op in enumerate(ops):
        targets = [("path", op["path"])]
        if "from" in op:
            targets.append(("from", op["from"]))
        for name, pointer in targets:
            parts = pointer_parts(pointer, name=f"[{index}].{name}")
            reads_only = op["op"] == "test" or (op["op"] == "copy" and name == "from")
            if not reads_only and (not parts or parts[0] not in UPDATABLE):
                raise errors.BadRequest(
                    f"[{index}].{name}: {pointer!r} cannot be changed; updatable: "
                    + ", ".join(f"/{p}" for p in sorted(UPDATABLE)))


def patch_mutation(ops: Sequence[dict[str, Any]], now: str) -> Mutate:
    """The store mutation for a PATCH: apply all of *ops* or none, validate, stamp ``modified``.

    A patch that leaves the task as it was (say, only ``test``) changes nothing, not even
    ``modified``.
    """
    def mutate(old: Doc | None) -> Doc:
        assert old is not None
        new = _replace_members(old, ops)
        if new is None:
            patched = apply_json_patch(old, ops)
            if patched.get("modified") is None:  # stored before taskgate stamped every task: stamp it now
                patched["modified"] = now
            new = validate_task_status(patched)
        if same_json(new, old):
            return old
        new["modified"] = now
        return new
    return mutate


def new_task_status(body: Any, *, now: str, launcher: str) -> dict[str, Any]:
    """A complete TaskStatus from a create (or import) body: defaults filled, id generated
    if absent, ``modified`` stamped with ``created`` when absent or null."""
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a JSON object (a TaskStatus)")
    fields = load_or_400(_TASK_STATUS_CREATE, body, "TaskStatus")
    fields.setdefault("id", uuid.uuid4().hex)
    fields.setdefault("launcher", launcher)
    fields.setdefault("created", now)
    if fields.get("modified") is None:  # absent or null: the SDKs' models need a date here
        fields["modified"] = fields["created"]
    return validate_task_status(fields)
