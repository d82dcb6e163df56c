"""SuperOffice BatchTask rules as data and pure functions: which members a PUT may change,
which states Stop applies to, who may update a task and the rights that follow, what a
create starts from, and the store mutations of PUT and Stop.

Owns "what may change": :data:`UPDATABLE` is the one list of members a PUT changes, and
every message, right and OpenAPI text that names them is derived from it. Must not do
I/O, know aiohttp or read request bodies (that is :mod:`gateway.apis.superoffice_carrier`):
every function takes documents and facts and returns a new document, or raises a domain
error from :mod:`gateway.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from gateway import errors
from gateway.apis.superoffice_carrier import Zone, canonical, format_date, load_fields, view
from gateway.model import Doc, Mutate
from gateway.patching import apply_json_patch, apply_merge_patch, same_json
from schemas.superoffice import FIELDS

__all__ = ["OWNER_FIELD", "UPDATABLE", "UPDATABLE_TEXT", "READ_ONLY_REASON", "STOPPABLE", "Caller", "may_update",
           "may_read", "reads_everything", "rights",
           "new_batch_task", "put_mutation", "stop_mutation"]

#: the only members a PUT may change, in the vendor's words and order: "Only the following
#: properties can be updated: State, Description, Response and Request."
#: the member naming a task's owner: the associate whose user may update it (:func:`may_update`)
OWNER_FIELD = "$.AssociateId"
UPDATABLE = ("State", "Description", "Response", "Request")
#: :data:`UPDATABLE` as prose: "State, Description, Response and Request"
UPDATABLE_TEXT = ", ".join(UPDATABLE[:-1]) + " and " + UPDATABLE[-1]
#: the FieldRight reason of every member outside :data:`UPDATABLE`
READ_ONLY_REASON = f"only {UPDATABLE_TEXT} can be updated"
#: states a Stop applies to (the others have finished, or have not been seen yet)
STOPPABLE = frozenset({"New", "Aquired", "Started"})
_ALL_RIGHTS = "Select, Update, Insert, Delete"


@dataclass(frozen=True, slots=True)
class Caller:
    """What the rights depend on; built from the request's principal."""

    name: str
    is_admin: bool
    associate_id: int | None
    read_only: bool = False


# -- who may update -----------------------------------------------------------------------
def may_update(caller: Caller, doc: Mapping[str, Any]) -> bool:
    """An administrator, or the task's owner (its AssociateId); never a read-only token."""
    if caller.read_only:
        return False
    return caller.is_admin or (caller.associate_id is not None and caller.associate_id == doc.get("AssociateId"))


def reads_everything(caller: Caller) -> bool:
    """Whether *caller* may read every task whatever its document: every signed-in user
    may (``TableRight`` is at least Select for everyone; only updates are the owner's)."""
    return True


def may_read(caller: Caller, doc: Mapping[str, Any] | None) -> bool:
    """Whether *caller* may read the task *doc*: see :func:`reads_everything`."""
    return reads_everything(caller)


def judged(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`may_read` reads of *doc*: nothing."""
    return {}


def rights(caller: Caller, doc: Mapping[str, Any]) -> dict[str, Any]:
    """``TableRight`` and ``FieldProperties`` of *doc* for *caller*."""
    if caller.is_admin and not caller.read_only:
        table = {"Mask": _ALL_RIGHTS, "Reason": ""}
    elif may_update(caller, doc):
        table = {"Mask": "Select, Update", "Reason": "only an administrator may create or delete batch tasks"}
    else:
        table = {"Mask": "Select", "Reason": _no_update_reason(caller, doc)}
    updatable = may_update(caller, doc)
    properties = {}
    for name, (dotnet, length) in FIELDS.items():
        if name in UPDATABLE and updatable:
            right = {"Mask": "Update", "Reason": ""}
        else:
            right = {"Mask": "Read", "Reason": READ_ONLY_REASON if name not in UPDATABLE else table["Reason"]}
        properties[name] = {"FieldRight": right, "FieldType": dotnet, "FieldLength": length}
    return {"TableRight": table, "FieldProperties": properties}


def _no_update_reason(caller: Caller, doc: Mapping[str, Any]) -> str:
    if caller.read_only:
        return "this token is read-only"
    return f"only the task's owner (associate {doc.get('AssociateId')}) or an administrator may update it"


# -- create -------------------------------------------------------------------------------
def new_batch_task(raw: Mapping[str, Any], task_id: int, now: str, *, zone: Zone,
                   owner: int | None) -> dict[str, Any]:
    """A complete stored BatchTaskInfo for a create; the id is the store's, not the body's."""
    given = load_fields(raw, zone)
    doc: dict[str, Any] = {
        "Id": task_id, "Name": "", "AssociateId": owner or 0, "DetailsTable": 0, "DetailsRecord": 0,
        "IsSystemTask": False, "IsInternalTask": False, "ParameterObject": {}, "LastStarted": None,
        "Created": now, "StartCount": 0, "DatabaseSerialNumber": "", "Context": "", "Result": "",
        "State": "New", "Description": "", "Response": "", "Request": "", "ProgressDescription": "",
        "ProgressPercent": 0, "FileName": "", "CancellationBehaviour": "CanCancel"}
    given.pop("Id", None)
    if given.get("Created") is None:
        given.pop("Created", None)
    if given.get("ParameterObject") is None:
        given.pop("ParameterObject", None)
    doc.update(given)
    return doc


# -- PUT ----------------------------------------------------------------------------------
def _changed(old: Mapping[str, Any], name: str, value: Any) -> bool:
    return not same_json(old.get(name), value)


def _changes_read_only(old: Mapping[str, Any], name: str, value: Any, task_id: int) -> bool:
    """Whether a read-only member's value differs from the stored one, at the precision
    clients are given (dates in whole seconds), so an echoed carrier changes nothing."""
    if name == "Id":
        return value != task_id
    if name in ("LastStarted", "Created"):
        utc = Zone(UTC)
        return format_date(old.get(name), utc) != format_date(value, utc)
    return _changed(old, name, value)


def put_mutation(kind: str, payload: Any, *, zone: Zone, strict: bool, caller: Caller, task_id: int) -> Mutate:
    """The store mutation for a PUT whose body was read as *kind*:

    * ``fields``: members given (partial carrier); absent members keep their values;
    * ``patch``: JSON Patch operations (from :func:`~gateway.apis.superoffice_carrier.normalize_patch`);
    * ``merge``: an RFC 7386 merge patch object.

    Patches apply to the carrier as the client sees it, so a ``test`` compares what the
    client read. Only :data:`UPDATABLE` members change; with *strict*, a body that would
    change any other member is refused, naming them.
    """
    def mutate(old: Doc | None) -> Doc:
        assert old is not None
        if not may_update(caller, old):
            raise errors.Forbidden(f"you may not update BatchTask {task_id}: {_no_update_reason(caller, old)}")
        if kind == "fields":
            raw = payload
        else:
            seen = view(old, zone)
            after = apply_json_patch(seen, payload) if kind == "patch" else apply_merge_patch(seen, canonical(payload))
            raw = {name: after.get(name) for name in FIELDS if name not in after or _changed(seen, name, after[name])}
        if not strict:  # members that are ignored are not checked either
            raw = {name: value for name, value in raw.items() if name in UPDATABLE}
        given = load_fields(raw, zone)
        if strict:
            refused = sorted(name for name, value in given.items()
                             if name not in UPDATABLE and _changes_read_only(old, name, value, task_id))
            if refused:
                raise errors.BadRequest(f"{READ_ONLY_REASON}; this body changes " + ", ".join(refused))
        new = dict(old)
        new.update({name: value for name, value in given.items() if name in UPDATABLE})
        return new
    return mutate


# -- Stop ---------------------------------------------------------------------------------
def stop_mutation(caller: Caller, task_id: int, outcome: list[bool]) -> Mutate:
    """Stop a task: one in a :data:`STOPPABLE` state that may be cancelled becomes Failed,
    its Response saying who stopped it. *outcome* receives whether it was stopped."""
    def mutate(old: Doc | None) -> Doc:
        assert old is not None
        if not may_update(caller, old):
            raise errors.Forbidden(f"you may not stop BatchTask {task_id}: {_no_update_reason(caller, old)}")
        if old["State"] not in STOPPABLE or old["CancellationBehaviour"] == "CannotCancel":
            outcome.append(False)
            return old
        outcome.append(True)
        return {**old, "State": "Failed", "Response": f"Stopped by {caller.name}"[:FIELDS["Response"][1]]}
    return mutate
