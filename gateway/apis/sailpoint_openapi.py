"""SailPoint task-status in the OpenAPI document: one entry per kind of route.

:mod:`gateway.openapi` looks each ``sailpoint:<kind>:<version>`` route up here by
``(kind, method)``; the same entry describes the route under every version prefix. This
module only describes: it must not register routes or decide anything a handler does.
"""

from __future__ import annotations

from typing import Any

from gateway.apis import hooks_openapi
from gateway.apis.sailpoint import MAX_LIMIT, PATCH_TYPES
from gateway.apis.sailpoint_rules import UPDATABLE
from gateway.limits import MAX_OPERATIONS
from gateway.openapi import busy_response, json_body, param, responses
from gateway.quotas import document_limits
from schemas.sailpoint import (
    ErrorResponseDtoSchema,
    JsonPatchOperationSchema,
    RateLimitSchema,
    TaskStatusCreateSchema,
    TaskStatusSchema,
    UnauthorizedSchema,
)

__all__ = ["TAG", "TAG_DESCRIPTION", "SECURITY", "PATH_PARAMETERS", "OPERATIONS"]

TAG = "SailPoint task-status"
TAG_DESCRIPTION = ("SailPoint ISC's task-status API under /task-status/v1 and /{beta,v2024,v2025,v2026}/task-status; "
                   "errors are ErrorResponseDto, {\"error\"} for 401.")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"oauth2": ["sp:scopes:all"]}, {"basic": []}]
ERRORS: dict[int, Any] = {0: ErrorResponseDtoSchema, 401: UnauthorizedSchema, 429: RateLimitSchema}

PATH_PARAMETERS = {"id": param("id", "path", {"type": "string"}, "the TaskStatus id")}
#: what SailPoint once required (v2024/v2025 until 2025-07, v2026 until 2026-04) and SDKs
#: of that time still send: accepted on every vendor call, never required, without effect
_EXPERIMENTAL = param("X-SailPoint-Experimental", "header", {"type": "string", "default": "true"},
                      "accepted and ignored (SailPoint no longer requires it; sailpoint 1.4.2's v2026 "
                      "client and sailpoint-api-client 1.x's v2024 client send true)")
_ETAG = {"ETag": {"description": "the task's version, quoted", "schema": {"type": "string"}}}
_TASK = {"application/json": {"schema": TaskStatusSchema}}
_PAGE = [
    param("limit", "query", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "default": MAX_LIMIT}),
    param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}),
    param("count", "query", {"type": "boolean", "default": False}, "true: send X-Total-Count"),
]
_LIST_OK: dict[int | str, Any] = {200: {"description": "TaskStatus array, oldest first unless sorted otherwise",
                  "headers": {"X-Total-Count": {"description": "with count=true: all matching tasks",
                                                "schema": {"type": "integer"}}},
                  "content": {"application/json": {"schema": {"type": "array", "items": TaskStatusSchema}}}}}
#: an operation that writes names an updatable member (or below it); test reads any member
_PATCH_OPERATION = {"allOf": [JsonPatchOperationSchema, {"anyOf": [
    {"properties": {"op": {"type": "string", "enum": ["test"]}}},
    {"properties": {"path": {"type": "string",
                             "pattern": f"^/({'|'.join(sorted(UPDATABLE))})(/.*)?$"}}}]}]}
_LINKS = {"GetTaskStatus": {"x-target": "get", "parameters": {"id": "$response.body#/id"}},
          "PatchTaskStatus": {"x-target": "patch", "parameters": {"id": "$response.body#/id"}}}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("list", "GET"): {
        "summary": "List task statuses",
        "description": "filters: id, sourceId (the task's target.id), type, launcher (eq, in) and completionStatus "
                       "(eq, in, isnull) with and, or, not and parentheses; sorters: created or -created.",
        "parameters": [*_PAGE,
                       param("filters", "query", {"type": "string"}, 'e.g. completionStatus eq "ERROR"'),
                       param("sorters", "query", {"type": "string", "enum": ["created", "-created"]}),
                       _EXPERIMENTAL],
        "responses": responses(_LIST_OK, ERRORS, (400, 401, 406)),
    },
    ("pending", "GET"): {
        "summary": "List pending tasks (completionStatus null); deprecated by SailPoint",
        "description": "Deprecated: use the list with filters=completionStatus isnull (and count=true for the "
                       "total). SailPoint dropped it from v2026 in March 2026; served there for sailpoint 1.4.2.",
        "deprecated": True,
        "parameters": [*_PAGE, _EXPERIMENTAL],
        "responses": responses(_LIST_OK, ERRORS, (400, 401, 406)),
    },
    ("get", "GET"): {
        "summary": "Get a task status",
        "parameters": [_EXPERIMENTAL],
        "responses": responses({200: {"description": "the TaskStatus", "headers": _ETAG, "content": _TASK}},
                               ERRORS, (401, 404, 406)),
    },
    ("patch", "PATCH"): {
        "summary": "Update a task status with JSON Patch",
        "description": "Only /completionStatus, /completed, /launched, /progress, /percentComplete, /messages, "
                       f"/returns and /attributes (and below) may change; at most {MAX_OPERATIONS} operations; "
                       "all apply or none.",
        "parameters": [param("If-Match", "header", {"type": "string"}, 'an ETag such as "3"; another version → 412'),
                       _EXPERIMENTAL],
        "requestBody": json_body({"type": "array", "items": _PATCH_OPERATION, "minItems": 1,
                                  "maxItems": MAX_OPERATIONS}, types=PATCH_TYPES),
        "responses": {**responses({200: {"description": "the patched TaskStatus", "headers": _ETAG,
                                         "content": _TASK}},
                                  ERRORS, (400, 401, 403, 404, 406, 409, 412, 413, 415)),
                      "403": {"description": "Forbidden: the token is read-only, or the caller is neither "
                                             "an admin nor the user the task's launcher names",
                              "content": {"application/json": {"schema": ErrorResponseDtoSchema}}}},
    },
    ("create", "POST"): {
        "summary": "Create a task status (a taskgate extension; admins only)",
        "requestBody": json_body(TaskStatusCreateSchema),
        "responses": responses({201: {"description": "the new TaskStatus",
                                      "headers": {**_ETAG, "Location": {"schema": {"type": "string"}}},
                                      "content": _TASK, "links": _LINKS}},
                               ERRORS, (400, 401, 403, 406, 409, 413, 415)),
    },
}


for _key in (("patch", "PATCH"), ("create", "POST")):  # the operations that write tasks
    OPERATIONS[_key]["responses"]["503"] = busy_response(ERRORS)
document_limits(OPERATIONS[("patch", "PATCH")], ERRORS)  # what an ordinary user may write

OPERATIONS.update(hooks_openapi.SAILPOINT)  # the style's webhook routes (tag Webhooks)
