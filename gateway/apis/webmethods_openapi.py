"""webMethods opentask in the OpenAPI document: one entry per kind of route.

:mod:`gateway.openapi` looks each ``webmethods:<kind>[:variant]`` route up here by
``(kind, method)``; the path and query forms of a call share one entry. The request bodies
of a create and an update are described here, from the style's rules (which TaskInfo
members each may set), so that the document cannot drift from them. This module only
describes: it must not register routes or decide anything a handler does.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from gateway.apis import hooks_openapi
from gateway.apis import webmethods_rules as rules
from gateway.openapi import busy_response, json_body, param, responses
from gateway.quotas import document_limits
from schemas.webmethods import (
    CreatedSchema,
    EmptySchema,
    IsErrorSchema,
    OpenTaskSchema,
    SearchRequestSchema,
    TaskAuditListSchema,
    TaskDataSchema,
    TaskInfoValuesSchema,
    TaskListSchema,
)

__all__ = ["TAG", "TAG_DESCRIPTION", "SECURITY", "PATH_PARAMETERS", "OPERATIONS", "TaskInfoChangesSchema",
           "TaskQueueInfoSchema", "CreateRequestSchema", "UpdateRequestSchema"]

TAG = "webMethods opentask"
TAG_DESCRIPTION = ("Integration Server's WmTaskClient REST resources; errors are IS's $error envelope "
                   "(every service error is 500 with webmethods.service_errors_as_500).")
SECURITY: list[dict[str, list[str]]] = [{"basic": []}, {"bearer": []}, {"oauth2": ["sp:scopes:all"]},
                                        {"soTicket": []}, {"session": [], "xsrf": []}]
ERRORS: dict[int, Any] = {0: IsErrorSchema}

_MEMBERS = frozenset(TaskInfoValuesSchema().fields)


class TaskInfoChangesSchema(TaskInfoValuesSchema):
    """The TaskInfo members a PUT may change (:data:`rules.WRITABLE`)."""

    class Meta(TaskInfoValuesSchema.Meta):
        exclude = tuple(sorted(_MEMBERS - rules.WRITABLE))


class TaskQueueInfoSchema(TaskInfoValuesSchema):
    """What a create may set (:data:`rules.CREATE_SETTABLE`)."""

    class Meta(TaskInfoValuesSchema.Meta):
        exclude = tuple(sorted(_MEMBERS - rules.CREATE_SETTABLE))


class CreateRequestSchema(Schema):
    """``POST /rest/pub/opentask``. Send one of taskQueueInfo/TaskQueueInfo/taskInfo/TaskInfo
    and one of taskData/TaskData; CallbackServiceName, CallbackData and ruleSet are accepted and ignored.
    (null members mean absent too; the document leaves that out, as union types trip client generators.)"""

    class Meta:
        unknown = RAISE

    taskTypeID = fields.String(required=True, validate=validate.Length(1, 255))
    taskQueueInfo = fields.Nested(TaskQueueInfoSchema)
    TaskQueueInfo = fields.Nested(TaskQueueInfoSchema)
    taskInfo = fields.Nested(TaskQueueInfoSchema)
    TaskInfo = fields.Nested(TaskQueueInfoSchema)
    taskData = fields.Nested(TaskDataSchema)
    TaskData = fields.Nested(TaskDataSchema)
    user = fields.String(validate=validate.Length(1, 255))
    CallbackServiceName = fields.Raw()
    CallbackData = fields.Raw()
    ruleSet = fields.Raw()


class UpdateRequestSchema(Schema):
    """``PUT /rest/pub/opentask[/{taskID}]``: TaskInfo merged (read-only members ignored),
    TaskData replaced whole. Send one of TaskInfo/taskInfo and one of TaskData/taskData."""

    class Meta:
        unknown = RAISE

    taskID = fields.String(validate=validate.Length(1, 255))
    TaskInfo = fields.Nested(TaskInfoChangesSchema)
    taskInfo = fields.Nested(TaskInfoChangesSchema)
    TaskData = fields.Nested(TaskDataSchema)
    taskData = fields.Nested(TaskDataSchema)
    user = fields.String(validate=validate.Length(1, 255))
    retryOnFailureCount = fields.Integer(validate=validate.Range(0, 999_999_999))
    retryDelay = fields.Integer(validate=validate.Range(0, 999_999_999))


PATH_PARAMETERS = {
    "taskID": param("taskID", "path", {"type": "string", "minLength": 1, "maxLength": 255}),
    "auditEntryID": param("auditEntryID", "path", {"type": "integer", "minimum": 0}),
}
_FLAG = {"type": "string", "enum": ["true", "false"]}
_USER = param("user", "query", {"type": "string", "minLength": 1, "maxLength": 255},
              "act as this user (admins only; anyone else naming another user → 403)")
_DATES = param("jsonDateEncoding", "query", {"type": "string"},
               "long, ISO8601, or a SimpleDateFormat pattern (default: EEE MMM dd HH:mm:ss zzz yyyy)")
_TASK_ID = param("taskID", "query", {"type": "string", "minLength": 1, "maxLength": 255},
                 "the task, when the path does not name it")
_INCLUDE = param("includeTaskData", "query", _FLAG)
#: beyond IS, as on every style: the ETag of a GET; another version → 412
_IF_MATCH = param("If-Match", "header", {"type": "string"}, 'an ETag such as "3"; another version → 412')
_OK = {"application/json": {"schema": EmptySchema}}
_ETAG = {"ETag": {"schema": {"type": "string"}}}
_LINKS = {name: {"x-target": kind, "parameters": {"taskID": "$response.body#/taskID"}}
          for name, kind in (("GetTask", "get"), ("UpdateTask", "put"), ("DeleteTask", "delete"),
                             ("GetTaskAudit", "audit"))}
_LINKS["UpdateTaskByQuery"] = {"x-target": "put:query", "parameters": {"query.taskID": "$response.body#/taskID"}}
_ENTRY_LINKS = {name: {"x-target": kind, "parameters": {"taskID": "$request.path.taskID",
                                                         "auditEntryID": "$response.body#/taskAudits/0/id"}}
                for name, kind in (("GetAuditEntry", "audit:entry"), ("RollBack", "rollback"))}
_SEARCH_QUERY = [_INCLUDE, param("maxRes", "query", {"type": "integer", "minimum": 0, "maximum": 999_999_999}),
                 param("nonActive", "query", _FLAG), param("notOthers", "query", _FLAG),
                 param("searchUserTasks", "query", _FLAG), _USER, _DATES]
_TASKS: dict[int | str, Any] = {200: {"description": "the tasks the user may see, oldest first (at most 10,000)",
                "content": {"application/json": {"schema": TaskListSchema}}}}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("list", "GET"): {
        "summary": "List the tasks the user may see (one task with ?taskID=)",
        "parameters": [_TASK_ID, _INCLUDE, param("searchUserTasks", "query", _FLAG), _USER, _DATES],
        "responses": responses({200: {"description": "{Tasks: […]}, or with taskID {TaskInfo, TaskData}",
                                      "content": {"application/json": {"schema": {
                                          "oneOf": [TaskListSchema, OpenTaskSchema]}}}}},
                               ERRORS, (400, 401, 403, 404)),
    },
    ("create", "POST"): {
        "summary": "Create a task; a future taskScheduleDate creates it scheduled",
        "parameters": [_USER],
        "requestBody": json_body(CreateRequestSchema),
        "responses": responses({200: {"description": "the new task's id", "headers": _ETAG,
                                      "content": {"application/json": {"schema": CreatedSchema}}, "links": _LINKS}},
                               ERRORS, (400, 401, 403, 413, 415)),
    },
    ("get", "GET"): {
        "summary": "Get a task",
        "parameters": [_INCLUDE, _USER, _DATES],
        "responses": responses({200: {"description": "TaskInfo, and TaskData with includeTaskData=true",
                                      "headers": _ETAG, "content": {"application/json": {"schema": OpenTaskSchema}}}},
                               ERRORS, (400, 401, 403, 404)),
    },
    ("put", "PUT"): {
        "summary": "Update a task: TaskInfo merged, TaskData replaced",
        "description": "taskID comes from the path, else the query, else the body.",
        "parameters": [_TASK_ID, _USER, _DATES,
                       param("retryOnFailureCount", "query", {"type": "integer", "minimum": 0, "maximum": 999_999_999}),
                       param("retryDelay", "query", {"type": "integer", "minimum": 0, "maximum": 999_999_999}),
                       _IF_MATCH],
        "requestBody": json_body(UpdateRequestSchema),
        "responses": responses({200: {"description": "{}", "headers": _ETAG, "content": _OK}},
                               ERRORS, (400, 401, 403, 404, 409, 412, 413, 415)),
    },
    ("delete", "DELETE"): {
        "summary": "Delete a task (any status)",
        "parameters": [_TASK_ID, _USER, _IF_MATCH],
        "responses": responses({200: {"description": "{}", "content": _OK}}, ERRORS,
                               (400, 401, 403, 404, 409, 412)),
    },
    ("audit", "GET"): {
        "summary": "The task's audit trail (or one entry), oldest first, a page at a time",
        "description": ("The entries since the task's latest creation, oldest first: at most maxRes (default and "
                        "most 1000) after the entry afterAuditEntryID names. To read on, ask again with "
                        "afterAuditEntryID set to the last id received; a page shorter than maxRes is the last. "
                        "Both are ignored when the path names one entry. Long pages are streamed (chunked)."),
        "parameters": [_USER, _DATES,
                       param("maxRes", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
                             "most entries in the page (default 1000)"),
                       param("afterAuditEntryID", "query", {"type": "integer", "minimum": 0},
                             "only entries after this one (its id); default: from the first")],
        "responses": responses({200: {"description": "{taskAudits: […]}", "links": _ENTRY_LINKS,
                                      "content": {"application/json": {"schema": TaskAuditListSchema}}}},
                               ERRORS, (400, 401, 403, 404)),
    },
    ("rollback", "DELETE"): {
        "summary": "Roll the task back to before this audit entry (a new, audited change)",
        "parameters": [_USER],
        "responses": responses({200: {"description": "{}", "headers": _ETAG, "content": _OK}},
                               ERRORS, (400, 401, 403, 404, 409)),
    },
    ("search", "GET"): {
        "summary": "Simple search: active tasks unless nonActive=true",
        "parameters": list(_SEARCH_QUERY),
        "responses": responses(_TASKS, ERRORS, (400, 401, 403)),
    },
    ("search", "POST"): {
        "summary": "Search: the simple search, or a TaskSearchQuery",
        "parameters": list(_SEARCH_QUERY),
        "requestBody": json_body(SearchRequestSchema, required=False),
        "responses": responses(_TASKS, ERRORS, (400, 401, 403, 413, 415)),
    },
}


# every operation: a read too first writes the clock's changes the task is owed
for _key in OPERATIONS:
    OPERATIONS[_key]["responses"]["503"] = busy_response(ERRORS)
for _key in (("create", "POST"), ("put", "PUT"), ("rollback", "DELETE")):  # writes
    document_limits(OPERATIONS[_key], ERRORS)
document_limits(OPERATIONS[("delete", "DELETE")], ERRORS, grows=False)

OPERATIONS.update(hooks_openapi.WEBMETHODS)  # the style's webhook routes (tag Webhooks)
