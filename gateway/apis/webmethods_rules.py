"""The Task Engine's rules as data and pure functions: which members a call may set,
which status may follow which, who may see a task, what the clock does to a task, and
what a rollback restores.

Nothing here does I/O or knows HTTP: every function takes documents and facts and returns
a new document, or the ordered steps of one store write (or raises a domain error from
:mod:`gateway.errors`). The HTTP module hands what these build to the store; the tests
exercise them directly. The schemas (:mod:`schemas.webmethods`) say what a member's value
must look like; whether a call may set the member is decided here, and only here.

A stored task is ``{"TaskInfo": {…}, "TaskData": {…}}`` with dates in taskgate's
canonical UTC text, so that they compare as text in SQL.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from gateway import errors
from gateway.model import Change, Doc, Mutate, Step
from gateway.patching import replay, same_json
from gateway.query import Compare, Expr, Or
from schemas.webmethods import STATUSES

__all__ = ["STYLE", "OWNER_FIELD", "STATUSES", "UPDATABLE_STATUSES",
           "WRITABLE", "READ_ONLY", "CREATE_ONLY", "CREATE_SETTABLE",
           "PUT_INPUTS", "CREATE_INPUTS", "DATE_FIELDS", "SYSTEM", "Actor", "put_changes", "create_values",
           "check_status_change", "check_update", "merge_task_info", "new_task", "update_mutation",
           "delete_mutation", "due_status", "time_step", "time_mutation", "time_changes_due", "catch_up",
           "after_clock", "stamp", "may_access", "may_read", "reads_everything", "access_filter", "not_found",
           "Replay", "state_before",
           "rollback_mutation", "operation_code", "version_of", "ROLLBACK_MARK", "KEEP_TASK_DATA",
           "TASK_INFO_DEFAULTS"]

#: the store's name for this style's tasks
STYLE = "webmethods"
#: the member naming a task's owner for the quotas: its creator (:func:`may_access` also lets
#: the users it is assigned to or accepted by see it, but a task counts once, for who made it)
OWNER_FIELD = "$.TaskInfo.createdBy"
#: statuses a PUT applies to by default (IS: Active, Error, Suspended; taskgate adds scheduled)
UPDATABLE_STATUSES = frozenset({"active", "error", "suspended", "scheduled"})
#: new statuses refused from a given status, whatever the setting
FORBIDDEN_NEXT: Mapping[str, frozenset[str]] = {
    "suspended": frozenset({"completed", "expired"}),
}
#: the only new status allowed from a given status
ONLY_NEXT: Mapping[str, frozenset[str]] = {
    "error": frozenset({"completed"}),
}
DATE_FIELDS = ("expireDate", "taskScheduleDate", "createdDate", "lastModifiedDate", "lastAcceptedDate")
#: every TaskInfo a create makes has these members, null until set (as IS serialises unset fields)
TASK_INFO_DEFAULTS: Mapping[str, Any] = {
    "taskID": None, "taskTypeID": None, "name": None, "description": None, "customTaskID": None,
    "status": "active", "priority": "none", "expireDate": None, "taskScheduleDate": None,
    "assignedToList": [], "acceptedByList": [], "lastAcceptedBy": None, "lastAcceptedDate": None,
    "createdDate": None, "createdBy": None, "lastModifiedDate": None, "lastModifiedBy": None,
    "errorCode": None, "errorMessage": None, "processInstanceID": None, "rootProcessInstanceID": None,
    "processModelID": None, "processModelVersion": None, "stepID": None, "delegatedFromList": [],
    "delegatedToList": [], "taskVersionNumber": 1,
}
#: the actor of changes the clock makes
SYSTEM = "system"
#: appended to the request id of a rollback's audit row, so the audit view can name it
ROLLBACK_MARK = "#rollback:"
#: pub.task:TaskAudit ``operation`` codes (ITaskConstants.TASK_OPERATION_*)
OP_CREATED, OP_RESUME, OP_SUSPEND, OP_UPDATE, OP_ERROR = 0, 1, 2, 3, 5
OP_SCHEDULE_RULE, OP_REVERTED, OP_ACCEPTED = 11, 14, 16


@dataclass(frozen=True, slots=True)
class Actor:
    """The effective user of a request (after impersonation) and whether it is an admin."""

    name: str
    is_admin: bool


# -- which members may change ------------------------------------------------------------
#: TaskInfo members a PUT may change
WRITABLE = frozenset({"name", "description", "customTaskID", "status", "priority", "expireDate",
                      "taskScheduleDate", "assignedToList", "acceptedByList", "errorCode", "errorMessage",
                      "delegatedFromList", "delegatedToList", "delegationMap"})
#: read-only TaskInfo members: a PUT (or a create) that names them is not refused, the values
#: are ignored, as IS does
READ_ONLY = frozenset({"taskID", "taskTypeID", "lastAcceptedBy", "lastAcceptedDate", "createdDate",
                       "createdBy", "lastModifiedDate", "lastModifiedBy", "processInstanceID",
                       "rootProcessInstanceID", "processModelID", "processModelVersion", "stepID",
                       "processIteration", "stepIteration", "auditContext", "collaborationProcessID",
                       "collaborationStepID", "taskUrl", "taskVersionNumber", "isMandatory",
                       "currentUserAccepted", "delegatedFrom", "attributes", "parentTaskID"})
#: read-only members a create may set all the same: the process linkage a Process Engine gives its tasks
CREATE_ONLY = frozenset({"processInstanceID", "rootProcessInstanceID", "processModelID", "processModelVersion",
                         "stepID"})
#: what a create's TaskQueueInfo may set: the writable members, the process linkage, and
#: ``assignedTaskList`` [sic], TaskQueueInfo's name for assignedToList
CREATE_SETTABLE = WRITABLE | CREATE_ONLY | {"assignedTaskList"}
#: members a create ignores: the read-only ones it may not set, and status (it follows from the schedule)
_CREATE_IGNORED = (READ_ONLY - CREATE_ONLY) | {"status"}
#: the inputs of ``pub.task.taskclient:updateTask`` (PUT) as IS names them; a body naming
#: anything else is refused
PUT_INPUTS = frozenset({"taskID", "TaskInfo", "taskInfo", "TaskData", "taskData", "user",
                        "retryOnFailureCount", "retryDelay"})
#: the inputs of a create; CallbackServiceName, CallbackData and ruleSet are accepted and ignored
CREATE_INPUTS = frozenset({"taskTypeID", "taskQueueInfo", "TaskQueueInfo", "taskInfo", "TaskInfo", "taskData",
                           "TaskData", "user", "CallbackServiceName", "CallbackData", "ruleSet"})


def put_changes(info: Mapping[str, Any]) -> dict[str, Any]:
    """The members of a PUT's TaskInfo for the schema to judge: all but the read-only ones,
    which are dropped unread (any other member the schema does not know is refused)."""
    return {k: v for k, v in info.items() if k not in READ_ONLY}


def create_values(info: Mapping[str, Any]) -> dict[str, Any]:
    """The members of a create's TaskQueueInfo for the schema to judge: as :func:`put_changes`,
    but the process linkage (:data:`CREATE_ONLY`) stays, and status is dropped."""
    return {k: v for k, v in info.items() if k not in _CREATE_IGNORED}


def not_found(task_id: str) -> errors.NotFound:
    """One answer for "absent" and "not yours", so that existence does not leak."""
    return errors.NotFound(f"Task {task_id} not found or access denied")


# -- access -----------------------------------------------------------------------------
def may_access(info: Mapping[str, Any], actor: Actor) -> bool:
    """Admins see every task; a user sees tasks assigned to, accepted by or created by them."""
    if actor.is_admin:
        return True
    return (actor.name in (info.get("assignedToList") or ()) or actor.name in (info.get("acceptedByList") or ())
            or info.get("createdBy") == actor.name)


def reads_everything(actor: Actor) -> bool:
    """Whether *actor* may read every task whatever its document: admins only."""
    return actor.is_admin


def may_read(actor: Actor, doc: Mapping[str, Any] | None) -> bool:
    """Whether *actor* may read the stored task *doc* (None: no such task): :func:`may_access`
    on its TaskInfo. The handlers and the event stream both ask this."""
    if reads_everything(actor):
        return True
    return doc is not None and may_access(doc.get("TaskInfo") or {}, actor)


#: the TaskInfo members :func:`may_access` reads
_ACCESS_MEMBERS = ("assignedToList", "acceptedByList", "createdBy")


def judged(doc: Mapping[str, Any]) -> Doc:
    """What :func:`may_read` reads of *doc*, and it answers the same for it: the event
    stream keeps this, not a task's megabyte TaskData, for every recent task."""
    info = doc.get("TaskInfo") or {}
    return {"TaskInfo": {key: info[key] for key in _ACCESS_MEMBERS if key in info}}


def access_filter(user: str) -> Expr:
    """:func:`may_access` for a non-admin, as a query the store runs in SQL."""
    return Or((Compare("$.TaskInfo.assignedToList", "has", (user,)),
               Compare("$.TaskInfo.acceptedByList", "has", (user,)),
               Compare("$.TaskInfo.createdBy", "eq", (user,))))


# -- status rules -----------------------------------------------------------------------
def check_status_change(current: str, new: str | None, *, update_completed_task: bool,
                        in_process: bool) -> None:
    """Conflict unless a PUT may touch a task in *current* and move it to *new*.

    *new* is None (or equal to *current*) when the status does not change. The order is
    the Task Engine's: an error task of a process instance is never updatable; terminal
    tasks only with the setting; then the per-status limits, which the setting does not
    lift (the docs do not say it does).
    """
    if current == "error" and in_process:
        raise errors.Conflict("a task in status error that belongs to a process instance cannot be updated")
    if current not in UPDATABLE_STATUSES and not update_completed_task:
        raise errors.Conflict(f"a task in status {current} cannot be updated; only tasks in status "
                              + ", ".join(sorted(UPDATABLE_STATUSES))
                              + " can (webmethods.update_completed_task is false)")
    if new is None or new == current:
        return
    if current in ONLY_NEXT and new not in ONLY_NEXT[current]:
        raise errors.Conflict(f"a task in status {current} can only be changed to "
                              + ", ".join(sorted(ONLY_NEXT[current])) + f", not {new}")
    if new in FORBIDDEN_NEXT.get(current, ()):
        raise errors.Conflict(f"a task in status {current} cannot be changed to {new}")


def check_update(info: Mapping[str, Any], changes: Mapping[str, Any], *, update_completed_task: bool) -> None:
    """Every rule a PUT's TaskInfo *changes* must pass against the stored *info*."""
    current = info.get("status") or "active"
    check_status_change(current, changes.get("status"), update_completed_task=update_completed_task,
                        in_process=bool(info.get("processInstanceID")))
    schedule = changes.get("taskScheduleDate")
    if schedule is not None and schedule != info.get("taskScheduleDate") and current != "scheduled":
        raise errors.Conflict(f"taskScheduleDate can only be changed while the task is scheduled; "
                              f"this task is {current}")


# -- changes ----------------------------------------------------------------------------
def stamp(info: dict[str, Any], *, user: str, now: str) -> None:
    """The bookkeeping of every change to *info*: the next taskVersionNumber, who and when."""
    info["taskVersionNumber"] = int(info.get("taskVersionNumber") or 0) + 1
    info["lastModifiedDate"] = now
    info["lastModifiedBy"] = user


def merge_task_info(info: Mapping[str, Any], changes: Mapping[str, Any], *, user: str, now: str) -> dict[str, Any]:
    """*info* with every non-null member of *changes* set, and the bookkeeping of an update.

    *changes* holds writable fields only (the schema made sure of it). Setting
    ``acceptedByList`` records who accepted and when; an empty list clears both. When no
    field takes a new value, *info* comes back as it is, unstamped: an empty update is
    no new version.
    """
    new = _merged(info, changes, now=now)
    if new is not None:
        stamp(new, user=user, now=now)
    return new if new is not None else dict(info)


def _merged(info: Mapping[str, Any], changes: Mapping[str, Any], *, now: str) -> dict[str, Any] | None:
    """*info* with the members of *changes* that differ from it, unstamped; None if none does."""
    changed = {key: value for key, value in changes.items()
               if key in WRITABLE and value is not None and not same_json(info.get(key), value)}
    if not changed:
        return None
    new = dict(info)
    for key, value in changed.items():
        new[key] = copy.deepcopy(value)
    if "acceptedByList" in changed:
        accepted = changed["acceptedByList"]
        new["lastAcceptedBy"] = accepted[-1] if accepted else None
        new["lastAcceptedDate"] = now if accepted else None
    return new


def new_task(task_id: str, task_type_id: str, queue_info: Mapping[str, Any], task_data: Mapping[str, Any],
             *, user: str, now: str) -> dict[str, Any]:
    """A stored task for a create: ``scheduled`` when its schedule date lies ahead of *now*."""
    info = dict(TASK_INFO_DEFAULTS)
    for key, value in queue_info.items():
        if value is not None:
            info["assignedToList" if key == "assignedTaskList" else key] = copy.deepcopy(value)
    if info.get("acceptedByList"):
        info["lastAcceptedBy"], info["lastAcceptedDate"] = info["acceptedByList"][-1], now
    schedule = info.get("taskScheduleDate")
    info.update(taskID=task_id, taskTypeID=task_type_id, createdDate=now, createdBy=user,
                lastModifiedDate=now, lastModifiedBy=user, taskVersionNumber=1,
                status="scheduled" if schedule is not None and schedule > now else "active")
    return {"TaskInfo": info, "TaskData": dict(task_data)}  # the request's own: no rule changes TaskData in place


#: passed as the TaskData of a PUT that sends none: the stored TaskData stays
KEEP_TASK_DATA: Any = object()


def update_mutation(task_id: str, changes: Mapping[str, Any], task_data: Any, *, actor: Actor, now: str,
                    update_completed_task: bool) -> Mutate:
    """The store mutation of a PUT: access, the rules, the merge.

    *task_data* is the replacement TaskData, or :data:`KEEP_TASK_DATA` to keep it. It runs
    after the clock's steps in the same write (:func:`after_clock`), so it judges the change
    against the task as the clock left it, and the clock's changes stay audited as ``system``.
    """
    def mutate(old: Doc | None) -> Doc:
        if old is None or not may_access(old["TaskInfo"], actor):
            raise not_found(task_id)
        check_update(old["TaskInfo"], changes, update_completed_task=update_completed_task)
        info = _merged(old["TaskInfo"], changes, now=now)
        # the request's own TaskData becomes the document's, uncopied: no rule changes a
        # document in place (a copy of a megabyte TaskData per PUT was most of its time)
        data = old["TaskData"] if task_data is KEEP_TASK_DATA else task_data
        if info is None and same_json(data, old["TaskData"]):
            return old  # nothing changes (an empty PUT): the store writes no version and no audit row
        info = info if info is not None else dict(old["TaskInfo"])
        stamp(info, user=actor.name, now=now)
        return {**old, "TaskInfo": info, "TaskData": data}
    return mutate


def delete_mutation(task_id: str, *, actor: Actor) -> Mutate:
    """The store mutation of a delete: the access check, then no document (any status may go)."""
    def mutate(old: Doc | None) -> None:
        if old is None or not may_access(old["TaskInfo"], actor):
            raise not_found(task_id)
        return None
    return mutate


# -- the clock ----------------------------------------------------------------------------
#: the most changes the clock owes a task at one moment: a scheduled task whose schedule
#: date and expiry date have both passed starts, then expires
MOST_TIME_CHANGES = 2


def due_status(info: Mapping[str, Any], now: str) -> str | None:
    """The status the clock moves *info* to at *now*, or None: a scheduled task starts at
    its ``taskScheduleDate``; an active task expires at its ``expireDate``."""
    status = info.get("status")
    if status == "scheduled" and info.get("taskScheduleDate") and info["taskScheduleDate"] <= now:
        return "active"
    if status == "active" and info.get("expireDate") and info["expireDate"] <= now:
        return "expired"
    return None


def time_step(doc: Mapping[str, Any], now: str) -> Doc | None:
    """*doc* after one change of the clock's, or None when none is due."""
    target = due_status(doc["TaskInfo"], now)
    if target is None:
        return None
    info = {**doc["TaskInfo"], "status": target}
    stamp(info, user=SYSTEM, now=now)
    return {**doc, "TaskInfo": info}


def time_mutation(now: str) -> Mutate:
    """The store mutation of one change of the clock's; the document itself when none is
    due (so the store writes nothing, and racing sweeps cannot apply one twice)."""
    def mutate(old: Doc | None) -> Doc | None:
        if old is None:
            return None
        return time_step(old, now) or old
    return mutate


def time_changes_due(doc: Mapping[str, Any], now: str) -> int:
    """How many changes the clock owes *doc* at *now* (each one audited row and version)."""
    count, step = 0, time_step(doc, now)
    while step is not None:
        count, step = count + 1, time_step(step, now)
    return count


def catch_up(now: str) -> list[Step]:
    """Every change the clock owes a task at *now*, as the steps of one store write: each
    change that is due is its own audited change by ``system``; the others write nothing."""
    return [(SYSTEM, time_mutation(now))] * MOST_TIME_CHANGES


def after_clock(now: str, actor: str, mutate: Mutate) -> list[Step]:
    """The steps of one write that makes a caller's change at *now*: the clock's catch-up
    first, then the change. They commit together or not at all: when the caller's change is
    refused, the clock's is not stored by this write either (the next read or sweep makes it)."""
    return [*catch_up(now), (actor, mutate)]


# -- audit and rollback --------------------------------------------------------------------
class Replay:
    """:func:`state_before` fed one audit row at a time, oldest first, so that a long trail
    can be read in parts: :meth:`feed` answers the state once it meets *target_seq*."""

    def __init__(self, target_seq: int) -> None:
        self.target_seq = target_seq
        self._doc: Doc | None = None  # None until the creation is seen

    def feed(self, change: Change) -> Doc | None:
        """The state before *target_seq* when *change* is that entry, else None."""
        if self._doc is None and change.action != "created":
            self.end()
        if change.seq == self.target_seq:
            if change.action != "updated":
                raise errors.Conflict(f"audit entry {change.seq} is the task's creation; there is no earlier "
                                      f"state to roll back to (delete the task instead)")
            return self._doc
        try:  # in place: the document is this replay's own, and a copy per entry of a megabyte task took seconds
            self._doc = replay(self._doc if self._doc is not None else {}, change.patch)
        except errors.Conflict:
            self.end()  # a trail whose patches do not apply to the document they follow
        return None

    def end(self) -> NoReturn:
        """The trail ended (or started) without the entry: Conflict."""
        if self._doc is None:
            raise errors.Conflict(f"audit entry {self.target_seq} cannot be rolled back: the task's audit trail "
                                  "does not start at its creation")
        raise errors.Conflict(f"audit entry {self.target_seq} cannot be rolled back")


def state_before(trail: Iterable[Change], target_seq: int) -> Doc:
    """The task's document just before the audit entry *target_seq*, replayed from history.

    *trail* is the task's audit rows since its latest creation, oldest first. The state is
    the creation's document with the patch of every later entry before *target_seq* applied
    in order: fixed history, which no later change can alter, so it does not matter which
    version of the task the trail was read at. Conflict when the entry is the creation
    (nothing came before it), when the trail does not start at a creation, or when the entry
    is not in it.
    """
    replay = Replay(target_seq)
    for change in trail:
        if (state := replay.feed(change)) is not None:
            return state
    replay.end()


def rollback_mutation(task_id: str, restored: Mapping[str, Any], *, actor: Actor,
                      now: str, update_completed_task: bool) -> Mutate:
    """The store mutation of a rollback to *restored* (from :func:`state_before`): that
    TaskInfo and TaskData, as one new change by *actor*. It obeys a PUT's rules against the
    task as it is in the transaction (a rollback cannot do what a PUT could not), and
    ``taskVersionNumber`` keeps counting up. That the task is still the one whose trail was
    read (not deleted and created again under its id meanwhile) is the write's
    precondition, checked by the store: no member of the document tells, since an import
    brings back every member of an exported task."""
    def mutate(old: Doc | None) -> Doc:
        if old is None or not may_access(old["TaskInfo"], actor):
            raise not_found(task_id)
        check_update(old["TaskInfo"], {k: restored["TaskInfo"].get(k) for k in ("status", "taskScheduleDate")},
                     update_completed_task=update_completed_task)
        new = {**restored, "TaskInfo": copy.deepcopy(restored["TaskInfo"])}  # TaskData is the replay's own
        new["TaskInfo"]["taskVersionNumber"] = old["TaskInfo"].get("taskVersionNumber")
        stamp(new["TaskInfo"], user=actor.name, now=now)
        return new
    return mutate


def operation_code(change: Change) -> int:
    """The pub.task:TaskAudit ``operation`` of an audit row, read from its patch."""
    if change.action == "created":
        return OP_CREATED
    if ROLLBACK_MARK in change.request_id and change.actor != SYSTEM:  # not the clock's catch-up before it
        return OP_REVERTED
    new = {op["path"]: op.get("value") for op in change.patch if op["op"] in ("add", "replace")}
    old = {op["path"]: op.get("value") for op in change.undo if op["op"] in ("add", "replace")}
    status, before = new.get("/TaskInfo/status"), old.get("/TaskInfo/status")
    if change.actor == SYSTEM and before == "scheduled" and status == "active":
        return OP_SCHEDULE_RULE
    if status == "suspended":
        return OP_SUSPEND
    if before == "suspended" and status == "active":
        return OP_RESUME
    if status == "error":
        return OP_ERROR
    if new.get("/TaskInfo/acceptedByList"):
        return OP_ACCEPTED
    return OP_UPDATE


def version_of(change: Change) -> int:
    """The ``taskVersionNumber`` a change left the task at (the store's version when the
    patch does not say, e.g. for a task imported with its own numbering)."""
    for op in change.patch:
        if op["path"] == "/TaskInfo/taskVersionNumber" and isinstance(op.get("value"), int):
            return op["value"]
        if op["path"] in ("", "/TaskInfo") and isinstance(op.get("value"), dict):
            found = (op["value"].get("taskVersionNumber") if op["path"] == "/TaskInfo"
                     else (op["value"].get("TaskInfo") or {}).get("taskVersionNumber"))
            if isinstance(found, int):
                return found
    return change.version

