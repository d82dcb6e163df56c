"""The webhook routes of every style in the OpenAPI document, under one tag, "Webhooks".

Each style's ``*_openapi`` table takes its part (:data:`SAILPOINT`, :data:`SUPEROFFICE`,
:data:`WEBMETHODS`) into its ``OPERATIONS``, so that a route named ``sailpoint:subscribe:v1``
is found where every ``sailpoint:`` route is, and the error bodies are the style's. The
bodies are described as JSON schemas. This module only describes.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi import json_body, param, responses
from schemas.sailpoint import ErrorResponseDtoSchema, UnauthorizedSchema
from schemas.superoffice import SoErrorSchema
from schemas.webmethods import IsErrorSchema

__all__ = ["TAG", "SAILPOINT", "SUPEROFFICE", "WEBMETHODS"]

TAG = "Webhooks"
_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_OBJ = {"type": "object"}
_SP_ERRORS: dict[int, Any] = {0: ErrorResponseDtoSchema, 401: UnauthorizedSchema}
_SO_ERRORS: dict[int, Any] = {0: SoErrorSchema}
_WM_ERRORS: dict[int, Any] = {0: IsErrorSchema}

_HTTP_CONFIG = {"type": "object", "required": ["url", "httpDispatchMode"], "properties": {
    "url": _STR, "httpDispatchMode": {"type": "string", "enum": ["SYNC", "ASYNC"]},
    "httpAuthenticationType": {"type": "string", "enum": ["NO_AUTH", "BASIC_AUTH", "BEARER_TOKEN"]},
    "basicAuthConfig": {"type": "object", "nullable": True,
                        "properties": {"userName": _STR, "password": _NSTR}},
    "bearerTokenAuthConfig": {"type": "object", "nullable": True, "properties": {"bearerToken": _NSTR}}}}
_SUBSCRIPTION_FIELDS = {
    "name": _STR, "description": _NSTR, "triggerId": {"type": "string", "enum": [
        "idn:account-aggregation-completed", "taskgate:task-status-changed"]},
    "type": {"type": "string", "enum": ["HTTP"]}, "responseDeadline": _STR, "httpConfig": _HTTP_CONFIG,
    "enabled": {"type": "boolean"}, "filter": {"type": "string", "nullable": True,
                                              "description": "a JSONPath expression on the trigger's payload"}}
SUBSCRIPTION = {"type": "object", "required": ["id", "name", "triggerId", "triggerName", "type", "enabled"],
                "properties": {"id": _STR, "triggerName": _STR, **_SUBSCRIPTION_FIELDS}}
_POST = {"type": "object", "required": ["name", "triggerId", "type", "httpConfig"], "properties": _SUBSCRIPTION_FIELDS}
_PUT = {"type": "object", "required": ["name", "type", "httpConfig"], "properties": _SUBSCRIPTION_FIELDS}
_PATCH = {"type": "array", "items": {"type": "object", "required": ["op", "path"], "properties": {
    "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]}, "path": _STR,
    "value": {}}}}
_TEST = {"type": "object", "required": ["triggerId", "contentJson"], "properties": {
    "triggerId": _STR, "input": _OBJ, "contentJson": _OBJ, "subscriptionIds": {"type": "array", "items": _STR}}}
_SUB_ID = param("id", "path", {"type": "string", "minLength": 1}, "the subscription id")


def _ok(status: int, schema: Any, description: str) -> dict[int | str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


_NONE: dict[int | str, Any] = {204: {"description": "done"}}

SAILPOINT: dict[tuple[str, str], dict[str, Any]] = {
    ("subscriptions", "GET"): {
        "summary": "List trigger subscriptions (admins)", "tags": [TAG],
        "parameters": [param("limit", "query", {"type": "integer", "minimum": 0, "maximum": 250}),
                       param("offset", "query", {"type": "integer", "minimum": 0}),
                       param("count", "query", {"type": "boolean"}),
                       param("filters", "query", _STR, 'id, triggerId, type with eq, e.g. type eq "HTTP"'),
                       param("sorters", "query", _STR, "triggerId, triggerName (- for descending)")],
        "responses": responses(_ok(200, {"type": "array", "items": SUBSCRIPTION}, "subscriptions"), _SP_ERRORS,
                               (400, 401, 403, 406)),
    },
    ("subscribe", "POST"): {
        "summary": "Create a trigger subscription (admins); the target is checked against webhooks.allow_*",
        "tags": [TAG], "requestBody": json_body(_POST),
        "responses": responses(_ok(201, SUBSCRIPTION, "the subscription"), _SP_ERRORS,
                               (400, 401, 403, 406, 415)),
    },
    ("subscription", "GET"): {
        "summary": "One trigger subscription (a taskgate extension; the vendor lists with filters)",
        "tags": [TAG], "parameters": [_SUB_ID],
        "responses": responses(_ok(200, SUBSCRIPTION, "the subscription"), _SP_ERRORS, (401, 403, 404, 406)),
    },
    ("subscription-put", "PUT"): {
        "summary": "Replace a trigger subscription (admins); a null secret keeps the stored one",
        "tags": [TAG], "parameters": [_SUB_ID], "requestBody": json_body(_PUT),
        "responses": responses(_ok(200, SUBSCRIPTION, "the subscription"), _SP_ERRORS,
                               (400, 401, 403, 404, 406, 415)),
    },
    ("subscription-patch", "PATCH"): {
        "summary": "Patch a trigger subscription with JSON Patch (name, description, enabled, type, filter, "
                   "responseDeadline, httpConfig)", "tags": [TAG], "parameters": [_SUB_ID],
        "requestBody": json_body(_PATCH, types=("application/json-patch+json", "application/json")),
        "responses": responses(_ok(200, SUBSCRIPTION, "the subscription"), _SP_ERRORS,
                               (400, 401, 403, 404, 406, 409, 415)),
    },
    ("subscription-delete", "DELETE"): {
        "summary": "Delete a trigger subscription (admins)", "tags": [TAG], "parameters": [_SUB_ID],
        "responses": responses(_NONE, _SP_ERRORS, (401, 403, 404)),
    },
    ("test-invocation", "POST"): {
        "summary": "Send a trigger's example (or input) to its subscriptions once, now", "tags": [TAG],
        "requestBody": json_body(_TEST),
        "responses": responses(_NONE, _SP_ERRORS, (400, 401, 403, 406, 415)),
    },
}

WEBHOOK = {"type": "object", "required": ["WebhookId", "Name", "Events", "TargetUrl", "State", "Type"],
           "properties": {"WebhookId": {"type": "integer"}, "Name": _NSTR,
                          "Events": {"type": "array", "items": _STR}, "TargetUrl": _NSTR, "Secret": _NSTR,
                          "State": {"type": "string", "enum": ["Active", "Stopped", "TooManyErrors"]},
                          "Type": _STR, "Headers": {"type": "object", "nullable": True,
                                                    "additionalProperties": _STR},
                          "Properties": {"type": "object", "nullable": True}, "Registered": _STR,
                          "RegisteredAssociate": {"type": "object", "nullable": True}, "Updated": _STR,
                          "UpdatedAssociate": {"type": "object", "nullable": True}, "ErrorsEmail": _NSTR}}
_WEBHOOK_IN = {"type": "object", "required": ["Name", "Events", "TargetUrl"], "properties": WEBHOOK["properties"]}
_HOOK_ID = param("id", "path", {"type": "integer", "minimum": 1, "maximum": 9_999_999_999}, "the WebhookId")
_RESULT = {"type": "object", "required": ["Success", "Message"], "properties": {
    "Success": {"type": "boolean"}, "Message": _STR, "TableRight": {"nullable": True}, "FieldProperties": _OBJ}}

SUPEROFFICE: dict[tuple[str, str], dict[str, Any]] = {
    ("webhooks", "GET"): {
        "summary": "All webhooks (admins)", "tags": [TAG],
        "responses": responses(_ok(200, {"type": "array", "items": WEBHOOK}, "the webhooks"), _SO_ERRORS,
                               (401, 403, 406)),
    },
    ("webhook-create", "POST"): {
        "summary": "Create a webhook; its TargetUrl must answer a test event with 2xx", "tags": [TAG],
        "requestBody": json_body(_WEBHOOK_IN, types=("application/json", "text/json")),
        "responses": responses(_ok(200, WEBHOOK, "the webhook"), _SO_ERRORS, (400, 401, 403, 406, 415)),
    },
    ("webhook-default", "GET"): {
        "summary": "A new webhook's defaults", "tags": [TAG],
        "responses": responses(_ok(200, WEBHOOK, "the defaults"), _SO_ERRORS, (401, 403, 406)),
    },
    ("webhook-test", "POST"): {
        "summary": "Check a webhook definition: its TargetUrl gets a test event", "tags": [TAG],
        "requestBody": json_body(_WEBHOOK_IN, types=("application/json", "text/json")),
        "responses": responses(_ok(200, _RESULT, "a WebhookResult"), _SO_ERRORS, (400, 401, 403, 406, 415)),
    },
    ("webhook", "GET"): {
        "summary": "One webhook", "tags": [TAG], "parameters": [_HOOK_ID],
        "responses": responses(_ok(200, WEBHOOK, "the webhook"), _SO_ERRORS, (400, 401, 403, 404, 406)),
    },
    ("webhook-put", "PUT"): {
        "summary": "Replace a webhook", "tags": [TAG], "parameters": [_HOOK_ID],
        "requestBody": json_body(_WEBHOOK_IN, types=("application/json", "text/json")),
        "responses": responses(_ok(200, WEBHOOK, "the webhook"), _SO_ERRORS, (400, 401, 403, 404, 406, 415)),
    },
    ("webhook-patch", "PATCH"): {
        "summary": "Patch a webhook (JSON Patch or merge patch)", "tags": [TAG], "parameters": [_HOOK_ID],
        "requestBody": {"required": True, "content": {
            "application/json-patch+json": {"schema": _PATCH}, "application/merge-patch+json": {"schema": _OBJ}}},
        "responses": responses(_ok(200, WEBHOOK, "the webhook"), _SO_ERRORS,
                               (400, 401, 403, 404, 406, 409, 415)),
    },
    ("webhook-delete", "DELETE"): {
        "summary": "Delete a webhook", "tags": [TAG], "parameters": [_HOOK_ID],
        "responses": responses(_NONE, _SO_ERRORS, (400, 401, 403, 404)),
    },
}

ENDPOINT = {"type": "object", "required": ["id", "url", "enabled", "status"], "properties": {
    "id": _STR, "url": _STR, "secret": {"nullable": True, "description": "never answered"},
    "enabled": {"type": "boolean"}, "status": {"type": "string", "enum": ["active", "stopped", "failed"]},
    "created": _STR, "updated": _STR}}
_ENDPOINT_IN = {"type": "object", "required": ["url"], "properties": {
    "url": _STR, "secret": {"type": "string", "nullable": True}, "enabled": {"type": "boolean"}}}
_ENDPOINT_ID = param("id", "path", {"type": "string", "minLength": 1}, "the endpoint id")

WEBMETHODS: dict[tuple[str, str], dict[str, Any]] = {
    ("event-endpoints", "GET"): {
        "summary": "Endpoints receiving Task Changed documents (a taskgate approximation of EDA over Universal "
                   "Messaging; admins)", "tags": [TAG],
        "responses": responses(_ok(200, {"type": "object", "required": ["endpoints"], "properties": {
            "endpoints": {"type": "array", "items": ENDPOINT}}}, "the endpoints"), _WM_ERRORS, (401, 403, 406)),
    },
    ("event-endpoint-create", "POST"): {
        "summary": "Add an endpoint", "tags": [TAG], "requestBody": json_body(_ENDPOINT_IN),
        "responses": responses(_ok(201, ENDPOINT, "the endpoint"), _WM_ERRORS, (400, 401, 403, 406, 415)),
    },
    ("event-endpoint", "GET"): {
        "summary": "One endpoint", "tags": [TAG], "parameters": [_ENDPOINT_ID],
        "responses": responses(_ok(200, ENDPOINT, "the endpoint"), _WM_ERRORS, (401, 403, 404, 406)),
    },
    ("event-endpoint-put", "PUT"): {
        "summary": "Replace an endpoint (enabled: true starts a failed one again)", "tags": [TAG],
        "parameters": [_ENDPOINT_ID], "requestBody": json_body(_ENDPOINT_IN),
        "responses": responses(_ok(200, ENDPOINT, "the endpoint"), _WM_ERRORS, (400, 401, 403, 404, 406, 415)),
    },
    ("event-endpoint-delete", "DELETE"): {
        "summary": "Remove an endpoint", "tags": [TAG], "parameters": [_ENDPOINT_ID],
        "responses": responses(_NONE, _WM_ERRORS, (401, 403, 404)),
    },
}
