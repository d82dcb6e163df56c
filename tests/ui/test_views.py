"""What the dashboard shows of each style and who may see it (gateway/ui/views.py): the
filters, the store query of each style, the merge across styles, the rows and the diff."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.apis.webmethods_rules import access_filter
from gateway.auth import Principal
from gateway.model import Change, Task
from gateway.query import And, Compare, Or, Query, Sort
from gateway.ui import views

ADMIN = Principal("ada", "admin")
BOB = Principal("bob", "user")


def test_the_filters_are_read_from_the_query_string() -> None:
    assert views.parse_filters({}) == views.Filters()
    assert views.parse_filters({"style": "webmethods", "status": "active", "owner": " bob ", "q": "order",
                                "sort": "name", "order": "asc", "page": "3"}) == \
        views.Filters("webmethods", "active", "bob", "order", "name", False, 3)
    assert views.Filters(text="x y", page=2).query_string() == "q=x+y&page=2"
    assert views.Filters(style="sailpoint").query_string(page=2) == "style=sailpoint&page=2"


@pytest.mark.parametrize(("query", "message"), [
    ({"style": "jira"}, "style must be one of sailpoint, superoffice, webmethods; got 'jira'"),
    ({"status": "done"}, "unknown status 'done'"),
    ({"sort": "doc"}, "sort must be one of created, name, status, id; got 'doc'"),
    ({"order": "up"}, "order must be asc or desc; got 'up'"),
    ({"page": "0"}, "page must be a positive integer; got '0'"),
    ({"page": "1e3"}, "page must be a positive integer; got '1e3'"),
    ({"q": "x" * 201}, "owner and q may be at most 200 characters"),
    ({"page": "101"}, "across all styles the list pages up to task 5000; choose a style (or narrow the filters) "
                      "to page further"),
])
def test_bad_filters_are_refused_with_the_reason(query: dict[str, str], message: str) -> None:
    with pytest.raises(errors.BadRequest) as refused:
        views.parse_filters(query)
    assert refused.value.message == message


def test_one_style_pages_beyond_the_merged_limit() -> None:
    assert views.parse_filters({"style": "sailpoint", "page": "2000"}).offset() == 99_950


def test_each_style_is_queried_on_its_own_members() -> None:
    filters = views.Filters(status="active", owner="bob", text="42", sort="created")
    assert views.style_query(views.VIEWS["webmethods"], filters, ADMIN, owner_associate=None, limit=50, offset=0) == \
        Query(And((Compare("$.TaskInfo.status", "eq", ("active",)),
                   Or((Compare("$.TaskInfo.createdBy", "eq", ("bob",)),
                       Compare("$.TaskInfo.assignedToList", "has", ("bob",)))),
                   Or((Compare("$.TaskInfo.name", "co", ("42",)), Compare("id", "co", ("42",)))))),
              (Sort("$.TaskInfo.createdDate", True), Sort("id", True)), 50, 0)
    # a status the style does not have, or an owner it cannot name: no query at all
    assert views.style_query(views.VIEWS["sailpoint"], filters, ADMIN, owner_associate=None, limit=50,
                             offset=0) is None
    assert views.style_query(views.VIEWS["superoffice"], views.Filters(owner="bob"), ADMIN, owner_associate=None,
                             limit=50, offset=0) is None
    assert views.style_query(views.VIEWS["superoffice"], views.Filters(owner="bob", sort="id", descending=False),
                             ADMIN, owner_associate=627, limit=10, offset=20) == \
        Query(Compare("$.AssociateId", "eq", (627,)), (Sort("id"),), 10, 20)
    assert views.style_query(views.VIEWS["sailpoint"], views.Filters(status="running"), ADMIN,
                             owner_associate=None, limit=50, offset=0).where == Compare("$.completionStatus", "isnull")


def test_a_user_sees_the_webmethods_tasks_the_style_lets_them_see() -> None:
    query = views.style_query(views.VIEWS["webmethods"], views.Filters(), BOB, owner_associate=None, limit=50,
                              offset=0)
    assert query is not None and query.where == access_filter("bob")  # the style's own rule, in SQL
    for style in ("sailpoint", "superoffice"):  # reads open to anyone signed in, as the vendors' lists are
        assert views.style_query(views.VIEWS[style], views.Filters(), BOB, owner_associate=None, limit=50,
                                 offset=0).where is None
    theirs = Task("webmethods", "7", 1, {"TaskInfo": {"createdBy": "ada", "assignedToList": ["carol"],
                                                      "acceptedByList": []}})
    assert (views.may_read(BOB, theirs), views.may_read(ADMIN, theirs)) == (False, True)
    assert views.may_read(Principal("carol", "user"), theirs)
    assert (views.may_read_style(BOB, "webmethods"), views.may_read_style(BOB, "sailpoint")) == (False, True)


def _task(style: str, task_id: str, created: str | None) -> Task:
    field = {"sailpoint": "created", "superoffice": "Created"}.get(style)
    doc = {field: created} if field else {"TaskInfo": {"createdDate": created}}
    return Task(style, task_id, 1, doc)


def test_the_merge_orders_the_styles_as_the_store_orders_each() -> None:
    tasks = [_task("sailpoint", "b", "2026-01-02"), _task("sailpoint", "a", "2026-01-02"),
             _task("webmethods", "1", "2026-01-03"), _task("superoffice", "9", None),
             _task("superoffice", "10", "2026-01-01")]
    newest = views.merge_page(tasks, views.Filters(), 0, 10)
    # descending: the newest first, ties by style then id, descending too (the store's "ORDER BY x DESC,
    # id DESC"), and null last (SQLite orders NULL first ascending)
    assert [(t.style, t.id) for t in newest] == [("webmethods", "1"), ("sailpoint", "b"), ("sailpoint", "a"),
                                                 ("superoffice", "10"), ("superoffice", "9")]
    oldest = views.merge_page(tasks, views.Filters(descending=False), 1, 2)
    assert [(t.style, t.id) for t in oldest] == [("superoffice", "10"), ("sailpoint", "a")]
    by_id = views.merge_page(tasks, views.Filters(sort="id", descending=False), 0, 10)
    assert [t.id for t in by_id] == ["1", "10", "9", "a", "b"]  # ids are text, as in the store


def test_a_row_is_the_same_columns_for_every_style() -> None:
    assert views.row_of(Task("sailpoint", "s1", 3, {"uniqueName": "Agg", "completionStatus": None,
                                                     "launcher": "ada", "created": "c", "percentComplete": 40})) == \
        views.Row("sailpoint", "SailPoint", "s1", 3, "Agg", "running", "ada", 40, "c")
    assert views.row_of(Task("superoffice", "5", 1, {"Name": "Export", "State": "Started", "AssociateId": 627,
                                                      "Created": "c", "ProgressPercent": 150})) == \
        views.Row("superoffice", "SuperOffice", "5", 1, "Export", "Started", "627", 100, "c")
    assert views.row_of(Task("webmethods", "2", 1, {"TaskInfo": {"name": None, "status": "active",
                                                                 "createdBy": "ada", "createdDate": "c"}})) == \
        views.Row("webmethods", "webMethods", "2", 1, "", "active", "ada", None, "c")


def test_the_diff_shows_each_member_old_and_new() -> None:
    change = Change(5, "at", "sailpoint", "s1", 2, "updated", "ada", "r", [
        {"op": "replace", "path": "/percentComplete", "value": 60},
        {"op": "add", "path": "/attributes/x", "value": "y"},
        {"op": "remove", "path": "/progress"}], [
        {"op": "replace", "path": "/percentComplete", "value": 10},
        {"op": "remove", "path": "/attributes/x"},
        {"op": "add", "path": "/progress", "value": None}])
    assert views.diff_lines(change) == [views.DiffLine("/percentComplete", "10", "60"),
                                        views.DiffLine("/attributes/x", None, '"y"'),
                                        views.DiffLine("/progress", "null", None)]
    created = Change(1, "at", "sailpoint", "s1", 1, "created", "ada", "r", [{"op": "add", "path": "", "value": {}}],
                     [{"op": "remove", "path": ""}])
    assert views.diff_lines(created) == [views.DiffLine("(the whole task)", None, "{}")]
