"""The webMethods search inputs read into store queries, as pure functions (no HTTP, no store)."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.apis.webmethods_search import DEFAULT_MAX_RESULTS, Search, list_search, search
from gateway.query import Compare, Or

MINE = Or((Compare("$.TaskInfo.assignedToList", "has", ("alice",)),
           Compare("$.TaskInfo.acceptedByList", "has", ("alice",))))
NOT_OTHERS = Or((Compare("$.TaskInfo.acceptedByList", "has", ("alice",)),
                 Compare("$.TaskInfo.lastAcceptedBy", "isnull")))
ACTIVE = Compare("$.TaskInfo.status", "eq", ("active",))


def test_a_list_is_every_task_or_the_users_own():
    assert list_search({}, "alice") == Search((), False, 0)
    assert list_search({"searchUserTasks": "TRUE", "includeTaskData": "true"}, "alice") == Search((MINE,), True, 0)


def test_the_simple_search():
    assert search({}, "alice") == Search((ACTIVE,), False, 0)
    assert search({"nonActive": True, "notOthers": "true", "maxRes": "7", "searchUserTasks": "true"}, "alice") == \
        Search((MINE, NOT_OTHERS), False, 7)


def test_a_task_search_query():
    query = {"terms": [{"fields": ["name", "description"], "operator": "contains", "value": "x"},
                       {"Fields": ["createdDate"], "Operator": ">=", "Value": 1715974396470},
                       {"fields": ["assignedToList"], "value": "bob"}],
             "doNotShowAcceptedByOthers": "true"}
    assert search({"taskSearchQuery": query, "searchUserTasks": True}, "alice") == Search((
        MINE,
        Or((Compare("$.TaskInfo.name", "co", ("x",)), Compare("$.TaskInfo.description", "co", ("x",)))),
        Compare("$.TaskInfo.createdDate", "ge", ("2024-05-17T19:33:16.470Z",)),
        Compare("$.TaskInfo.assignedToList", "has", ("bob",)),
        ACTIVE, NOT_OTHERS), False, DEFAULT_MAX_RESULTS)



def test_a_field_named_twice_in_a_term_is_searched_once():
    """Nineteen "description"s in one term are one comparison, not nineteen of the same
    (each a LIKE over every task the caller may see)."""
    term = {"fields": ["description"] * 18 + ["name", "description"], "operator": "contains", "value": "x"}
    assert search({"taskSearchQuery": {"terms": [term]}}, "alice") == Search((
        Or((Compare("$.TaskInfo.description", "co", ("x",)), Compare("$.TaskInfo.name", "co", ("x",)))),),
        False, DEFAULT_MAX_RESULTS)

@pytest.mark.parametrize("params, message", [
    ({"taskSearchQuery": {"terms": [{"fields": ["taskData"], "value": "x"}]}},
     "terms[0].fields: 'taskData' is not searchable here"),
    ({"taskSearchQuery": {"terms": [{"fields": ["status"], "operator": "contains", "value": "a"}]}},
     "terms[0]: operator 'contains' does not apply to status"),
    ({"taskSearchQuery": {"terms": [{"fields": ["status"], "value": "done"}]}},
     "terms[0].value: 'done' is not a status"),
    ({"taskSearchQuery": [], "TaskSearchQuery": {}}, "send only one of taskSearchQuery, TaskSearchQuery"),
    ({"maxRes": "-1"}, "maxRes must be a whole number of at least 0; got '-1'"),
])
def test_bad_searches_are_refused(params, message):
    with pytest.raises(errors.BadRequest) as caught:
        search(params, "alice")
    assert caught.value.message.startswith(message)
