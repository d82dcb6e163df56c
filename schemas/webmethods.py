"""webMethods Task Engine documents: the values a client may send in a TaskInfo (or a
create's TaskQueueInfo), the TaskSearchQuery subset taskgate evaluates, and the shapes of
the answers (for the OpenAPI document).

Each schema validates and normalises in one ``load``: dates become taskgate's canonical
UTC text, unknown members are refused (a misspelt field must not be dropped silently).
This module says what a member's value must look like. It must not decide which members a
call may set, or what a change may do to a task: the webMethods rules module
(``webmethods_rules``) does, and loads :class:`TaskInfoValuesSchema` with ``only=`` those
members. Nothing here imports from the styles' modules.
"""

from __future__ import annotations

from typing import Any, Literal

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from schemas.webmethods_dates import parse_wm_date

__all__ = ["STATUSES", "PRIORITIES", "WmDate", "TaskInfoValuesSchema", "SearchTermSchema",
           "TaskSearchQuerySchema", "SearchOp", "SEARCH_OPERATORS", "TaskInfoSchema", "OpenTaskSchema",
           "TaskListSchema", "TaskAuditListSchema", "CreatedSchema", "EmptySchema", "TaskDataSchema",
           "SearchRequestSchema", "IsErrorSchema"]

#: status values on the wire, lower-case as IS and its clients spell them
STATUSES = ("active", "completed", "cancelled", "expired", "error", "suspended", "scheduled")
#: TaskQueueInfo priorities, case-sensitive
PRIORITIES = ("none", "low", "medium", "high", "critical")
#: what a TaskSearchQueryTerm operator compares with (the store's query operators)
SearchOp = Literal["eq", "ne", "co", "gt", "ge", "lt", "le"]
#: TaskSearchQueryTerm operators taskgate understands, with their symbolic spellings
SEARCH_OPERATORS: dict[str, SearchOp] = {
    "equals": "eq", "=": "eq", "==": "eq", "not_equals": "ne", "!=": "ne", "contains": "co",
    "greater_than": "gt", ">": "gt", "greater_than_or_equals": "ge", ">=": "ge", "less_than": "lt", "<": "lt",
    "less_than_or_equals": "le", "<=": "le"}


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


class TaskInfoValuesSchema(Schema):
    """Every TaskInfo member a client may send a value for, and what the value must look
    like; ``null`` means "leave as it is". A PUT loads it with ``only=`` the writable
    members, a create with those and the process linkage (see the style's rules)."""

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


# -- documentation-only shapes (the OpenAPI document; see gateway/openapi.py) ---------------
_DATE_OUT = {"description": "a date in the requested jsonDateEncoding: text such as "
                            "'Fri May 17 19:33:16 UTC 2024' by default, epoch milliseconds (an integer) "
                            "with jsonDateEncoding=long"}


def _date_out() -> fields.Raw:
    return fields.Raw(allow_none=True, metadata=_DATE_OUT)


def _text_out() -> fields.String:
    return fields.String(allow_none=True)


def _names_out() -> fields.List:
    return fields.List(fields.String())


class TaskInfoSchema(Schema):
    """TaskInfo as answered: every member taskgate keeps, unset ones null."""

    taskID = fields.String(required=True)
    taskTypeID = fields.String(required=True)
    name = _text_out()
    description = _text_out()
    customTaskID = _text_out()
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    expireDate = _date_out()
    taskScheduleDate = _date_out()
    assignedToList = _names_out()
    acceptedByList = _names_out()
    lastAcceptedBy = _text_out()
    lastAcceptedDate = _date_out()
    createdDate = _date_out()
    createdBy = _text_out()
    lastModifiedDate = _date_out()
    lastModifiedBy = _text_out()
    errorCode = _text_out()
    errorMessage = _text_out()
    processInstanceID = _text_out()
    rootProcessInstanceID = _text_out()
    processModelID = _text_out()
    processModelVersion = _text_out()
    stepID = _text_out()
    delegatedFromList = _names_out()
    delegatedToList = _names_out()
    delegationMap = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    taskVersionNumber = fields.Integer(required=True)


class OpenTaskSchema(Schema):
    """``GET /rest/pub/opentask/{taskID}``: TaskData only with ``includeTaskData=true``."""

    TaskInfo = fields.Nested(TaskInfoSchema, required=True)
    TaskData = fields.Dict(keys=fields.String())


class ListedTaskSchema(OpenTaskSchema):
    TaskID = fields.String(required=True)


class TaskListSchema(Schema):
    Tasks = fields.List(fields.Nested(ListedTaskSchema), required=True)


class TaskAuditSchema(Schema):
    """One audit entry: a view of taskgate's audit row."""

    id = fields.Integer(required=True)
    createdDate = fields.Raw(required=True, metadata=_DATE_OUT)
    operation = fields.Integer(required=True, metadata={"description": "IS's TASK_OPERATION_* code"})
    difference = fields.List(fields.String(), required=True)
    sourceURI = fields.String(required=True)
    TaskURI = fields.String(required=True)
    taskVersionNumber = fields.Integer(required=True)
    userID = fields.String(required=True)


class TaskAuditListSchema(Schema):
    taskAudits = fields.List(fields.Nested(TaskAuditSchema), required=True)


class CreatedSchema(Schema):
    taskID = fields.String(required=True, metadata={"description": "numeric, made by taskgate"})


class EmptySchema(Schema):
    """``{}``: what a successful update, delete or rollback answers."""

    class Meta:
        unknown = RAISE


class TaskDataSchema(Schema):
    """TaskData: the task's business data, any JSON object."""

    class Meta:
        unknown = INCLUDE


class SearchRequestSchema(Schema):
    """``POST /rest/pub/opentasksearch``: the simple search, or a TaskSearchQuery."""

    class Meta:
        unknown = RAISE

    includeTaskData = fields.Boolean()
    maxRes = fields.Integer(validate=validate.Range(0, 999_999_999))
    nonActive = fields.Boolean()
    notOthers = fields.Boolean()
    searchUserTasks = fields.Boolean()
    user = fields.String(validate=validate.Length(1, 255))
    taskSearchQuery = fields.Nested(TaskSearchQuerySchema)
    TaskSearchQuery = fields.Nested(TaskSearchQuerySchema)


class ErrorInfoSchema(Schema):
    error = fields.String(required=True, data_key="$error")
    localizedError = fields.String(required=True, data_key="$localizedError")
    errorType = fields.String(required=True, data_key="$errorType")
    user = fields.String(required=True, data_key="$user")
    time = fields.String(required=True, data_key="$time")
    details = fields.String(required=True, data_key="$details")
    errorMsgId = fields.String(required=True, data_key="$errorMsgId")
    errorDump = fields.String(required=True, data_key="$errorDump")


class IsErrorSchema(Schema):
    """Integration Server's error envelope (``pub.event:exceptionInfo`` as JSON)."""

    error = fields.String(required=True, data_key="$error")
    errorType = fields.String(required=True, data_key="$errorType")
    errorDump = fields.String(required=True, data_key="$errorDump")
    errorInfo = fields.Nested(ErrorInfoSchema, required=True, data_key="$errorInfo")
