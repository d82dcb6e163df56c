"""webMethods lists and searches: the inputs of ``GET /rest/pub/opentask``, the simple
``opentasksearch`` and a TaskSearchQuery, read into one store query.

This module owns which TaskSearchQueryTerm fields are searchable and with which operators,
what the simple search's flags mean, and how each term becomes a :mod:`gateway.query`
expression. Pure functions: no I/O, no HTTP; bad input raises ``BadRequest``. It must not
read the store or decide who may see a task: the caller adds the rules' access filter and
caps the number of answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway import errors
from gateway.apis import webmethods_rules as rules
from gateway.apis.webmethods_inputs import count, flag, one_of
from gateway.query import Compare, Expr, Or
from schemas.common import load_or_400
from schemas.webmethods import SEARCH_OPERATORS, STATUSES, SearchOp, TaskSearchQuerySchema
from schemas.webmethods_dates import parse_wm_date

__all__ = ["SEARCH_INPUTS", "DEFAULT_MAX_RESULTS", "SEARCHABLE", "Search", "list_search", "search"]

#: the inputs of ``opentasksearch`` (query or body)
SEARCH_INPUTS = frozenset({"includeTaskData", "maxRes", "nonActive", "notOthers", "searchUserTasks", "user",
                           "taskSearchQuery", "TaskSearchQuery"})
#: a TaskSearchQuery without maxResults returns this many, as IS documents
DEFAULT_MAX_RESULTS = 200
_TEXT_OPS: frozenset[SearchOp] = frozenset({"eq", "ne"})
#: TaskSearchQueryTerm fields taskgate searches, and the operators each allows
SEARCHABLE: Mapping[str, frozenset[SearchOp]] = {
    **{f: _TEXT_OPS for f in ("status", "priority", "taskTypeID", "taskID", "createdBy", "customTaskID",
                              "lastModifiedBy", "lastAcceptedBy", "processInstanceID")},
    **{f: _TEXT_OPS | {"co"} for f in ("name", "description")},
    **{f: frozenset({"eq", "co"}) for f in ("assignedToList", "acceptedByList")},
    **{f: frozenset({"eq", "ne", "gt", "ge", "lt", "le"}) for f in ("createdDate", "expireDate",
                                                                   "lastModifiedDate")},
}
_SEARCH_QUERY = TaskSearchQuerySchema()


@dataclass(frozen=True, slots=True)
class Search:
    """What a list or search asks for: the terms (AND-ed), whether TaskData is answered, and
    how many tasks at most (0: all)."""

    where: tuple[Expr, ...]
    include_data: bool
    limit: int


def _user_tasks(user: str) -> Expr:
    return Or((Compare("$.TaskInfo.assignedToList", "has", (user,)),
               Compare("$.TaskInfo.acceptedByList", "has", (user,))))


def _not_accepted_by_others(user: str) -> Expr:
    # lastAcceptedBy is null exactly when acceptedByList is empty (the rules keep them in step)
    return Or((Compare("$.TaskInfo.acceptedByList", "has", (user,)), Compare("$.TaskInfo.lastAcceptedBy", "isnull")))


def list_search(params: Mapping[str, Any], user: str) -> Search:
    """``GET /rest/pub/opentask``: every task, or with ``searchUserTasks`` the *user*'s own."""
    where = (_user_tasks(user),) if flag(params.get("searchUserTasks"), "searchUserTasks") else ()
    return Search(where, flag(params.get("includeTaskData"), "includeTaskData"), 0)


def search(params: Mapping[str, Any], user: str) -> Search:
    """``opentasksearch``: the simple search (active tasks unless ``nonActive``; ``notOthers``
    leaves out tasks others accepted; at most ``maxRes``), or a TaskSearchQuery."""
    include = flag(params.get("includeTaskData"), "includeTaskData")
    user_tasks = flag(params.get("searchUserTasks"), "searchUserTasks")
    where: list[Expr] = [_user_tasks(user)] if user_tasks else []
    raw_query = one_of(params, "taskSearchQuery", "TaskSearchQuery")
    if raw_query is None:
        if not flag(params.get("nonActive"), "nonActive"):
            where.append(Compare("$.TaskInfo.status", "eq", ("active",)))
        if flag(params.get("notOthers"), "notOthers"):
            where.append(_not_accepted_by_others(user))
        return Search(tuple(where), include, count(params.get("maxRes"), "maxRes", 0))
    if not isinstance(raw_query, dict):
        raise errors.BadRequest("taskSearchQuery must be a JSON object")
    tsq = load_or_400(_SEARCH_QUERY, raw_query, "taskSearchQuery")
    where.extend(_term(i, t) for i, t in enumerate(tsq.get("terms") or ()))
    if user_tasks and not flag(tsq.get("showNonActiveTasks"), "showNonActiveTasks"):
        where.append(Compare("$.TaskInfo.status", "eq", ("active",)))
    if flag(tsq.get("doNotShowAcceptedByOthers"), "doNotShowAcceptedByOthers"):
        where.append(_not_accepted_by_others(user))
    raw_max = tsq.get("maxResults") if tsq.get("maxResults") is not None else tsq.get("MaxResults")
    return Search(tuple(where), include, count(raw_max, "maxResults", DEFAULT_MAX_RESULTS))


def _term(index: int, term: Mapping[str, Any]) -> Expr:
    """One TaskSearchQueryTerm as a query: the fields are OR-ed, as the Task Engine does
    (a field named twice is searched once)."""
    names = list(dict.fromkeys(term.get("fields_") or term.get("Fields") or ()))
    operator = term.get("operator") or term.get("Operator") or "equals"
    value = term.get("value") if term.get("value") is not None else term.get("Value")
    where = f"terms[{index}]"
    if not names:
        raise errors.BadRequest(f"{where}.fields is required")
    op = SEARCH_OPERATORS.get(operator.strip().lower())
    if op is None:
        raise errors.BadRequest(f"{where}.operator {operator!r} is not supported; use "
                                + ", ".join(k for k in SEARCH_OPERATORS if k[0].isalpha()))
    if value is None:
        raise errors.BadRequest(f"{where}.value is required")
    items: list[Expr] = []
    for name in names:
        allowed = SEARCHABLE.get(name)
        if allowed is None:
            raise errors.BadRequest(f"{where}.fields: {name!r} is not searchable here; searchable: "
                                    + ", ".join(sorted(SEARCHABLE)))
        if op not in allowed:
            raise errors.BadRequest(f"{where}: operator {operator!r} does not apply to {name}")
        items.append(_compare(where, name, op, value))
    return items[0] if len(items) == 1 else Or(tuple(items))


def _compare(where: str, name: str, op: SearchOp, value: Any) -> Expr:
    path = f"$.TaskInfo.{name}"
    if name in rules.DATE_FIELDS:
        try:
            return Compare(path, op, (parse_wm_date(value),))
        except ValueError as exc:
            raise errors.BadRequest(f"{where}.value: {exc}") from None
    if not isinstance(value, str):
        raise errors.BadRequest(f"{where}.value must be a string for {name}")
    if name == "status" and value not in STATUSES:
        raise errors.BadRequest(f"{where}.value: {value!r} is not a status; use one of {', '.join(STATUSES)}")
    if name in ("assignedToList", "acceptedByList"):
        return Compare(path, "has", (value,))
    return Compare(path, op, (value,))
