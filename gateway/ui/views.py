"""What the dashboard shows of each style's tasks, and which of them a user may read.

A :class:`StyleView` names, for one style, the document members behind the dashboard's
vendor-neutral columns (name, status, owner, progress, created) and its read rule. The
read rules are the styles' own: SailPoint and SuperOffice let anyone signed in read every
task (their list and GET answer any caller; only changes are restricted), and webMethods
shows a user the tasks assigned to, accepted by or created by them
(:func:`gateway.apis.webmethods_rules.may_access`, and its SQL twin
:func:`~gateway.apis.webmethods_rules.access_filter` for lists).

:class:`Filters` is the list's query string, checked; :func:`style_query` turns it into one
style's store :class:`~gateway.query.Query` (filters and sort on indexed members, so the
first page reads one index range); :func:`merge_page` orders the rows of several styles as
the store ordered each; :func:`matches` tells whether a task (one created after a page was
loaded) is among a list's matches, by the same expressions evaluated on its document.
Pure: no I/O, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from gateway import errors
from gateway.apis import webmethods_rules
from gateway.auth import Principal
from gateway.events.access import access_for
from gateway.limits import dumps
from gateway.model import Change, Doc, Task
from gateway.query import And, Compare, Expr, Not, Or, Query, Sort
from schemas.sailpoint import COMPLETION_STATUSES
from schemas.superoffice import STATES
from schemas.webmethods import STATUSES

__all__ = ["StyleView", "VIEWS", "SORTS", "PAGE_SIZE", "MAX_MERGED_OFFSET", "Filters", "Row", "row_of",
           "may_read", "may_read_style", "style_query",
           "matches", "holds", "adds_at_top", "merge_page", "parse_filters", "STATUS_CHOICES", "DiffLine",
           "diff_lines"]

PAGE_SIZE = 50
#: across all styles each style's rows up to the page are read and merged: pages end here
#: (one style pages as far as it has tasks)
MAX_MERGED_OFFSET = 5_000
_MAX_TEXT = 200
#: the sorts the list offers: their label, and the column (of :class:`StyleView`) they sort by
SORTS = {"created": "created", "name": "name", "status": "status", "id": "id"}


@dataclass(frozen=True, slots=True)
class StyleView:
    style: str
    label: str
    name: str  # the members behind each column, as query fields
    status: str
    owner: str
    created: str
    progress: str | None
    statuses: tuple[str, ...]
    read_filter: Callable[[Principal], Expr | None] = lambda _who: None
    #: the owner filter: the expression selecting tasks of the user named (None: no such task)
    owner_filter: Callable[[str, int | None], Expr | None] = lambda _name, _associate: None
    #: the members (pointers) the style stamps on every change, and how it stamps them
    stamps: frozenset[str] = frozenset()
    restamp: Callable[[Doc, str, str], Doc] = lambda doc, _actor, _now: doc

    def field(self, column: str) -> str:
        return "id" if column == "id" else str(getattr(self, column))


def _wm_read_filter(who: Principal) -> Expr | None:
    return None if who.is_admin else webmethods_rules.access_filter(who.name)


def _sp_restamp(doc: Doc, _actor: str, now: str) -> Doc:
    return {**doc, "modified": now}  # as every SailPoint PATCH stamps it (sailpoint_rules.patch_mutation)


def _wm_restamp(doc: Doc, actor: str, now: str) -> Doc:
    info = dict(doc["TaskInfo"])
    webmethods_rules.stamp(info, user=actor, now=now)
    return {**doc, "TaskInfo": info}


VIEWS: dict[str, StyleView] = {view.style: view for view in (
    StyleView("sailpoint", "SailPoint", "$.uniqueName", "$.completionStatus", "$.launcher", "$.created",
              "$.percentComplete", COMPLETION_STATUSES,
              owner_filter=lambda name, _a: Compare("$.launcher", "eq", (name,)),
              stamps=frozenset({"/modified"}), restamp=_sp_restamp),
    StyleView("superoffice", "SuperOffice", "$.Name", "$.State", "$.AssociateId", "$.Created",
              "$.ProgressPercent", tuple(s for s in STATES if s != "All"),
              owner_filter=lambda _n, associate: None if associate is None
              else Compare("$.AssociateId", "eq", (associate,))),
    StyleView("webmethods", "webMethods", "$.TaskInfo.name", "$.TaskInfo.status", "$.TaskInfo.createdBy",
              "$.TaskInfo.createdDate", None, STATUSES, read_filter=_wm_read_filter,
              owner_filter=lambda name, _a: Or((Compare("$.TaskInfo.createdBy", "eq", (name,)),
                                                 Compare("$.TaskInfo.assignedToList", "has", (name,)))),
              stamps=frozenset({"/TaskInfo/lastModifiedDate", "/TaskInfo/lastModifiedBy",
                                "/TaskInfo/taskVersionNumber"}), restamp=_wm_restamp),
)}
#: every status a filter may name, and the styles that have it
STATUS_CHOICES: dict[str, tuple[str, ...]] = {}
for _view in VIEWS.values():
    for _status in _view.statuses:
        STATUS_CHOICES[_status] = (*STATUS_CHOICES.get(_status, ()), _view.style)


def may_read(who: Principal, task: Task) -> bool:
    """Whether *who* may read *task*, by its style's rule (as the event feed applies it)."""
    check = access_for(who, (task.style,))[task.style]
    return check is None or check(task.doc)


def may_read_style(who: Principal, style: str) -> bool:
    """Whether *who* may read every task of *style* (as for a task that is gone)."""
    return access_for(who, (style,))[style] is None


def _member(doc: Mapping[str, Any], field: str | None) -> Any:
    if field is None:
        return None
    value: Any = doc
    for part in field[2:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass(frozen=True, slots=True)
class Row:
    """One task as the list shows it."""

    style: str
    label: str
    id: str
    version: int
    name: str
    status: str
    owner: str
    progress: int | None
    created: str


def row_of(task: Task) -> Row:
    view = VIEWS[task.style]
    doc = task.doc
    progress = _member(doc, view.progress)
    status = _member(doc, view.status)
    return Row(task.style, view.label, task.id, task.version, str(_member(doc, view.name) or ""),
               "running" if status is None and task.style == "sailpoint" else str(status or ""),
               str(_member(doc, view.owner) or ""),
               max(0, min(100, progress)) if isinstance(progress, int) and not isinstance(progress, bool) else None,
               str(_member(doc, view.created) or ""))


@dataclass(frozen=True, slots=True)
class Filters:
    style: str = ""  # "" is every style
    status: str = ""
    owner: str = ""
    text: str = ""
    sort: str = "created"
    descending: bool = True
    page: int = 1

    def styles(self) -> tuple[str, ...]:
        return (self.style,) if self.style else tuple(VIEWS)

    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def query_string(self, **changes: Any) -> str:
        """This list's query string with *changes*, defaults left out."""
        values = {"style": self.style, "status": self.status, "owner": self.owner, "q": self.text,
                  "sort": self.sort, "order": "desc" if self.descending else "asc", "page": self.page}
        values.update(changes)
        defaults = {"style": "", "status": "", "owner": "", "q": "", "sort": "created", "order": "desc", "page": 1}
        return urlencode({k: v for k, v in values.items() if v != defaults[k]})


def parse_filters(query: Mapping[str, str]) -> Filters:
    """The list's filters from its query string; BadRequest naming the first bad one."""
    style = query.get("style", "")
    if style and style not in VIEWS:
        raise errors.BadRequest(f"style must be one of {', '.join(VIEWS)}; got {style!r}")
    status = query.get("status", "")
    if status and status != "running" and status not in STATUS_CHOICES:
        raise errors.BadRequest(f"unknown status {status!r}")
    sort = query.get("sort", "created")
    if sort not in SORTS:
        raise errors.BadRequest(f"sort must be one of {', '.join(SORTS)}; got {sort!r}")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.BadRequest(f"order must be asc or desc; got {order!r}")
    raw_page = query.get("page", "1")
    if not re.fullmatch(r"[1-9][0-9]{0,6}", raw_page):
        raise errors.BadRequest(f"page must be a positive integer; got {raw_page!r}")
    owner, text = query.get("owner", "").strip(), query.get("q", "").strip()
    if len(owner) > _MAX_TEXT or len(text) > _MAX_TEXT:
        raise errors.BadRequest(f"owner and q may be at most {_MAX_TEXT} characters")
    filters = Filters(style, status, owner, text, sort, order == "desc", int(raw_page))
    if not style and filters.offset() >= MAX_MERGED_OFFSET:
        raise errors.BadRequest(f"across all styles the list pages up to task {MAX_MERGED_OFFSET}; "
                                "choose a style (or narrow the filters) to page further")
    return filters


def style_query(view: StyleView, filters: Filters, who: Principal, *, owner_associate: int | None,
                limit: int, offset: int) -> Query | None:
    """The store query of *view*'s style for *filters* as *who* may see them; None when no
    task of the style can match (a status it does not have, an owner it cannot name).
    It asks for no total: counting every match reads them all (a webMethods user's access
    rule, a text filter), while a page with an index reads only itself."""
    terms: list[Expr] = []
    read = view.read_filter(who)
    if read is not None:
        terms.append(read)
    if filters.status == "running":
        if view.style != "sailpoint":
            return None
        terms.append(Compare(view.status, "isnull"))
    elif filters.status:
        if filters.status not in view.statuses:
            return None
        terms.append(Compare(view.status, "eq", (filters.status,)))
    if filters.owner:
        owned = view.owner_filter(filters.owner, owner_associate)
        if owned is None:
            return None
        terms.append(owned)
    if filters.text:
        terms.append(Or((Compare(view.name, "co", (filters.text,)), Compare("id", "co", (filters.text,)))))
    where = None if not terms else terms[0] if len(terms) == 1 else And(tuple(terms))
    field = view.field(SORTS[filters.sort])
    # ties by id in the same direction, so that a descending page reads its index backwards
    order = (Sort(field, filters.descending),) if field == "id" else \
        (Sort(field, filters.descending), Sort("id", filters.descending))
    return Query(where, order, limit, offset)


def matches(filters: Filters, who: Principal, task: Task, *, owner_associate: int | None) -> bool:
    """Whether *task* is one of the list's matches for *who*: its style's :func:`style_query`
    (the read rule, status, owner and text filters) evaluated on its document, as the store
    would run it."""
    if task.style not in filters.styles():
        return False
    query = style_query(VIEWS[task.style], filters, who, owner_associate=owner_associate, limit=1, offset=0)
    return query is not None and (query.where is None or holds(query.where, task))


def adds_at_top(filters: Filters) -> bool:
    """Whether a new task that matches belongs at the top of the page: the first page,
    newest first (the list's default)."""
    return filters.page == 1 and filters.sort == "created" and filters.descending


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _text_of(value: Any) -> str | None:
    """A member as SQLite's LIKE reads it: text, a number as its digits; None for null,
    an object or an array (which LIKE never matches here)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def holds(expr: Expr, task: Task) -> bool:
    """*expr* (of the operators the list uses: eq, isnull, co, sw, has, And, Or, Not) on
    *task*, with the store's meaning: ``co``/``sw`` as SQLite's LIKE (ASCII case folded),
    ``has`` as array containment of text, ``eq`` as equality of JSON values."""
    if isinstance(expr, And):
        return all(holds(item, task) for item in expr.items)
    if isinstance(expr, Or):
        return any(holds(item, task) for item in expr.items)
    if isinstance(expr, Not):
        return not holds(expr.item, task)
    value = task.id if expr.field == "id" else _member(task.doc, expr.field)
    if expr.op == "isnull":
        return value is None
    if expr.op == "eq":
        wanted = expr.values[0]
        return value == wanted and isinstance(value, bool) == isinstance(wanted, bool)
    if expr.op == "has":
        return isinstance(value, list) and any(isinstance(v, str) and v in expr.values for v in value)
    if expr.op in ("co", "sw"):
        text, part = _text_of(value), _ascii_lower(str(expr.values[0]))
        if text is None:
            return False
        text = _ascii_lower(text)
        return part in text if expr.op == "co" else text.startswith(part)
    raise ValueError(f"the list does not use the operator {expr.op!r}")


def _rank(value: Any) -> tuple[int, Any]:
    """SQLite's order of values: NULL, then numbers, then text."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def merge_page(tasks: Sequence[Task], filters: Filters, offset: int, limit: int) -> list[Task]:
    """One page of *tasks* (several styles' first pages) in the order the store orders each
    style's: the sort column, then style, then id, all ascending or all descending."""
    column = SORTS[filters.sort]

    def key(task: Task) -> tuple[Any, ...]:
        value = task.id if column == "id" else _member(task.doc, VIEWS[task.style].field(column))
        return (_rank(value), task.style, task.id)
    return sorted(tasks, key=key, reverse=filters.descending)[offset:offset + limit]


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One member a change touched: its pointer, and its JSON old and new (None: absent)."""

    path: str
    old: str | None
    new: str | None


#: characters of one old or new value a diff line shows; the rest is cut
VALUE_CHARS = 1_000


def _shown(value: Any) -> str:
    text = dumps(value)
    if len(text) <= VALUE_CHARS:
        return text
    return f"{text[:VALUE_CHARS]}… ({len(text):,} characters in all)"


def diff_lines(change: Change, most: int | None = None) -> list[DiffLine]:
    """The change as a readable diff, old → new, one line per member it touched (its patch
    and inverse touch the same paths: :func:`gateway.patching.diff`): the first *most* of
    them (None: all), each value cut at :data:`VALUE_CHARS`."""
    before = {op["path"]: op for op in change.undo}
    lines = []
    for op in change.patch[:most]:
        old_op = before.get(op["path"])
        old = _shown(old_op["value"]) if old_op is not None and old_op["op"] in ("add", "replace") else None
        new = _shown(op["value"]) if op["op"] in ("add", "replace") else None
        lines.append(DiffLine(op["path"] or "(the whole task)", old, new))
    return lines
