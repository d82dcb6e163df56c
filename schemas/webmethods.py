"""webMethods Task Engine documents: the writable part of TaskInfo, TaskQueueInfo for
create, and the TaskSearchQuery subset taskgate evaluates.

Each schema validates and normalises in one ``load``: dates become taskgate's canonical
UTC text, unknown members are refused (a misspelt field must not be dropped silently).
Which fields are read-only, and what a change may do to a task, is decided in
``gateway/apis/webmethods_rules.py``, not here.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from gateway.apis.webmethods_dates import parse_wm_date

__all__ = ["STATUSES", "PRIORITIES", "WmDate", "TaskInfoChangesSchema", "TaskQueueInfoSchema",
           "SearchTermSchema", "TaskSearchQuerySchema", "SEARCH_OPERATORS"]

#: status values on the wire, lower-case as IS and its clients spell them
STATUSES = ("active", "completed", "cancelled", "expired", "error", "suspended", "scheduled")
#: TaskQueueInfo priorities, case-sensitive
PRIORITIES = ("none", "low", "medium", "high", "critical")
#: TaskSearchQueryTerm operators taskgate understands, with their symbolic spellings
SEARCH_OPERATORS = {"equals": "eq", "=": "eq", "==": "eq", "not_equals": "ne", "!=": "ne",
                    "contains": "co", "greater_than": "gt", ">": "gt", "greater_than_or_equals": "ge",
                    ">=": "ge", "less_than": "lt", "<": "lt", "less_than_or_equals": "le", "<=": "le"}


class WmDate(fields.Field):
    """ISO 8601, epoch milliseconds or ``Date.toString()`` in; canonical UTC text out."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return parse_wm_date(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def _names(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(1, 255)), validate=validate.Length(max=1000),
                       allow_none=True, **kwargs)


def _status(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(STATUSES, error="Must be one of: " + ", ".join(STATUSES) + "."),
                         allow_none=True, **kwargs)


def _priority(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(PRIORITIES, error="Must be one of: " + ", ".join(PRIORITIES)
                                                 + " (case-sensitive)."), allow_none=True, **kwargs)


class TaskInfoChangesSchema(Schema):
    """The TaskInfo fields a client may change; ``null`` means "leave as it is"."""

    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(max=255), allow_none=True)
    description = fields.String(validate=validate.Length(max=4000), allow_none=True)
    customTaskID = fields.String(validate=validate.Length(max=255), allow_none=True)
    status = _status()
    priority = _priority()
    expireDate = WmDate(allow_none=True)
    taskScheduleDate = WmDate(allow_none=True)
    assignedToList = _names()
    acceptedByList = _names()
    errorCode = fields.String(validate=validate.Length(max=255), allow_none=True)
    errorMessage = fields.String(validate=validate.Length(max=4000), allow_none=True)
    delegatedFromList = _names()
    delegatedToList = _names()
    delegationMap = fields.Dict(keys=fields.String(validate=validate.Length(1, 255)),
                                values=fields.String(validate=validate.Length(1, 255)), allow_none=True)


class TaskQueueInfoSchema(TaskInfoChangesSchema):
    """What a create may set: the changeable fields, TaskQueueInfo's spelling of the
    assignee list, and the process linkage that the Process Engine gives its tasks."""

    assignedTaskList = _names()  # [sic] TaskQueueInfo's name for assignedToList
    processInstanceID = fields.String(validate=validate.Length(max=255), allow_none=True)
    rootProcessInstanceID = fields.String(validate=validate.Length(max=255), allow_none=True)
    processModelID = fields.String(validate=validate.Length(max=255), allow_none=True)
    processModelVersion = fields.String(validate=validate.Length(max=255), allow_none=True)
    stepID = fields.String(validate=validate.Length(max=255), allow_none=True)


class SearchTermSchema(Schema):
    """One TaskSearchQueryTerm; IS built-in services spell the keys with a capital."""

    class Meta:
        unknown = RAISE

    fields_ = fields.List(fields.String(), data_key="fields", validate=validate.Length(1, 20))
    Fields = fields.List(fields.String(), validate=validate.Length(1, 20))
    operator = fields.String()
    Operator = fields.String()
    value = fields.Raw(allow_none=True)
    Value = fields.Raw(allow_none=True)


class TaskSearchQuerySchema(Schema):
    """The TaskSearchQuery members taskgate reads; the terms' meaning is checked by the handler."""

    class Meta:
        unknown = RAISE

    terms = fields.List(fields.Nested(SearchTermSchema), validate=validate.Length(max=50))
    maxResults = fields.Raw()
    MaxResults = fields.Raw()
    doNotShowAcceptedByOthers = fields.Raw()
    showNonActiveTasks = fields.Raw()
