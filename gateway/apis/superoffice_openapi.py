"""SuperOffice BatchTask in the OpenAPI document: one entry per kind of route.

:mod:`gateway.openapi` looks each ``superoffice:<kind>[:tenant][:slash]`` route up here
by ``(kind, method)``; one entry describes a route with and without the tenant prefix and
the trailing slash. This module only describes: it must not register routes or decide
anything a handler does.
"""

from __future__ import annotations

from typing import Any

from gateway.apis import hooks_openapi
from gateway.apis.superoffice import BODY_TYPES
from gateway.apis.superoffice_agents import AGENTS
from gateway.apis.superoffice_odata import DATA_SERVICE_VERSION, MAX_PAGE, METADATA_TYPE
from gateway.apis.superoffice_rules import UPDATABLE, UPDATABLE_TEXT
from gateway.apis.superoffice_service import MAX_ID
from gateway.openapi import busy_response, json_body, param, responses
from gateway.quotas import document_limits
from schemas.superoffice import (
    CANCELLATION,
    STATES,
    AgentDescriptionSchema,
    AgentRequestSchema,
    BatchTaskInfoOutSchema,
    BatchTaskInfoSchema,
    LoginFormSchema,
    LoginSchema,
    ODataListSchema,
    SoErrorSchema,
    SoPatchOperationSchema,
)

__all__ = ["TAG", "TAG_DESCRIPTION", "SECURITY", "PATH_PARAMETERS", "OPERATIONS"]

TAG = "SuperOffice BatchTask"
TAG_DESCRIPTION = ("SuperOffice WebAPI's BatchTask and BatchAgent, also under a tenant prefix (/{tenant}/api/v1/…); "
                   "errors are {Error, ErrorType, ErrorMessage, ErrorSource} for every status.")
SECURITY: list[dict[str, list[str]]] = [{"soTicket": [], "soAppToken": []}, {"soTicket": []}, {"bearer": []},
                                        {"basic": []}, {"session": [], "xsrf": []}, {"oauth2": ["sp:scopes:all"]}]
ERRORS: dict[int, Any] = {0: SoErrorSchema}
_ANSWERS = ("application/json", "text/json", "application/xml", "text/xml")

PATH_PARAMETERS = {
    "tenant": param("tenant", "path", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                    "the customer id prefix of SuperOffice Online (Cust12345); any value works"),
    "id": param("id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "the BatchTask id"),
    "method": param("method", "path", {"type": "string", "enum": list(AGENTS)},
                    "the BatchAgent method (matched in any case)"),
}
_ID_OR_STATE = param("id", "path", {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID},
                                                {"type": "string", "enum": list(STATES)}]},
                     "a BatchTask id, or a BatchTaskState name (any case): the user tasks in that state")
_HEADERS = [
    param("SO-TimeZone", "header", {"type": "string"},
          "CODE[, includeTZOffset]: a SuperOffice zone code (NO), its numeric id or an IANA name"),
    param("SO-Language", "header", {"type": "string"}, "a language code; taskgate answers in English"),
]
#: a tenant that does not match the pattern matches no route: 404 (the other routes have a 404 anyway)
_NO_TENANT = 404
_ETAG = {"ETag": {"schema": {"type": "string"}},
         "Last-Modified": {"schema": {"type": "string"}}}
_CONDITIONS = [param("If-Match", "header", {"type": "string"}, "an ETag; another version → 412"),
               param("If-Unmodified-Since", "header", {"type": "string"}, "an HTTP date; changed since → 412")]


def _content(schema: Any) -> dict[str, Any]:
    return {t: {"schema": schema} for t in _ANSWERS}


_CARRIER = _content(BatchTaskInfoOutSchema)
_PATCH = {"type": "array", "items": SoPatchOperationSchema, "minItems": 1}
_PUT_BODY: dict[str, Any] = {
    "required": True,
    "description": f"Only {UPDATABLE_TEXT} change; other members are ignored. "
                   "A JSON array sent as application/json is a JSON Patch.",
    "content": {
        "application/json": {"schema": {"oneOf": [BatchTaskInfoSchema, _PATCH]}},
        "text/json": {"schema": BatchTaskInfoSchema},
        "application/xml": {"schema": BatchTaskInfoSchema},
        "text/xml": {"schema": BatchTaskInfoSchema},
        "application/x-www-form-urlencoded": {"schema": BatchTaskInfoSchema},
        "application/json-patch+json": {"schema": _PATCH},
        "application/merge-patch+json": {"schema": BatchTaskInfoSchema},
    },
}
assert set(_PUT_BODY["content"]) == set(BODY_TYPES)  # every body format the handler reads is described
_CREATE_BODY = {"required": True, "content": {t: {"schema": BatchTaskInfoSchema} for t in
                                              ("application/json", "text/json", "application/xml", "text/xml",
                                               "application/x-www-form-urlencoded")}}
_LINKS = {"GetBatchTask": {"x-target": "get", "parameters": {"id": "$response.body"}},
          "PutBatchTask": {"x-target": "put", "parameters": {"id": "$response.body"}},
          "StopBatchTask": {"x-target": "stop", "parameters": {"id": "$response.body"}},
          "DeleteBatchTask": {"x-target": "delete", "parameters": {"id": "$response.body"}}}
#: OpenAPI 3.0 has no null type, and nullable admits null only beside a type (3.0.3), not beside oneOf:
#: null is an alternative of its own
_NULL = {"type": "object", "nullable": True, "enum": [None], "description": "null: there is no such task"}
_AGENTS_DOC = "\n".join(f"- {name}: {{{members}}} → {returns}" for name, (_call, members, returns) in AGENTS.items())

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("login", "POST"): {
        "summary": "Start a browser session (sets the session and XSRF-TOKEN cookies)",
        "security": [],
        "requestBody": json_body(LoginFormSchema, types=("application/x-www-form-urlencoded",)),
        "responses": responses({200: {"description": "the session's XSRF token",
                                      "content": {"application/json": {"schema": LoginSchema}}}},
                               ERRORS, (400, 401, 413, 415, 429)),
    },
    ("logout", "POST"): {
        "summary": "End the session of the cookie",
        "responses": responses({204: {"description": "ended"}}, ERRORS, (401,)),
    },
    ("list", "GET"): {
        "summary": "List BatchTasks (OData)",
        "description": "$filter on State, Name, AssociateId with eq, ne and and.",
        "parameters": [param("$filter", "query", {"type": "string"}, "e.g. State eq 'Failed'"),
                       param("$orderBy", "query", {"type": "string"}, "members with asc or desc, comma-separated"),
                       param("$select", "query", {"type": "string"}, "members, comma-separated"),
                       param("$top", "query", {"type": "integer", "minimum": 0, "maximum": MAX_PAGE}),
                       param("$skip", "query", {"type": "integer", "minimum": 0}),
                       param("$format", "query", {"type": "string", "enum": ["json", "xml"]}, "any case"),
                       *_HEADERS],
        "responses": responses({200: {"description": "one page", "content": _content(ODataListSchema)}},
                               ERRORS, (400, 401, _NO_TENANT)),
    },
    ("metadata", "GET"): {
        "summary": "The OData metadata document (CSDL) that the list's odata.metadata names",
        "description": "OData 3 (EDMX 1.0): the entity set BatchTask of BatchTaskInfo rows and the two enums. "
                       "Always XML, whatever the Accept header says.",
        "responses": responses({200: {"description": "the CSDL document",
                                      "headers": {"DataServiceVersion": {"schema": {"type": "string",
                                                                                    "enum": [DATA_SERVICE_VERSION]}}},
                                      "content": {METADATA_TYPE: {"schema": {"type": "string"}}}}},
                               ERRORS, (401, _NO_TENANT)),
    },
    ("create", "POST"): {
        "summary": "Create a BatchTask (admins only); answers its integer id",
        "parameters": list(_HEADERS),
        "requestBody": _CREATE_BODY,
        "responses": responses({200: {"description": "the new id",
                                      "content": _content({"type": "integer", "minimum": 1, "maximum": MAX_ID}),
                                      "links": _LINKS}}, ERRORS, (400, 401, 403, 413, 415, _NO_TENANT)),
    },
    ("get", "GET"): {
        "summary": "Get a BatchTask by id, or the user tasks in a state",
        "parameters": [_ID_OR_STATE, *_HEADERS,
                       param("$select", "query", {"type": "string"}, "members, comma-separated"),
                       param("If-Modified-Since", "header", {"type": "string"}, "an HTTP date; unchanged → 304")],
        "responses": responses({200: {"description": "the BatchTaskInfo with the caller's rights, or (for a state) "
                                                     "an array of them", "headers": _ETAG,
                                      "content": _content({"oneOf": [
                                          BatchTaskInfoOutSchema,
                                          {"type": "array", "items": BatchTaskInfoOutSchema}]})},
                                304: {"description": "not modified since If-Modified-Since", "headers": _ETAG}},
                               ERRORS, (400, 401, 404)),
    },
    ("put", "PUT"): {
        "summary": "Update a BatchTask: " + ", ".join(UPDATABLE),
        "parameters": [*_HEADERS, *_CONDITIONS],
        "requestBody": _PUT_BODY,
        "responses": responses({200: {"description": "the updated BatchTaskInfo", "headers": _ETAG,
                                      "content": _CARRIER}},
                               ERRORS, (400, 401, 403, 404, 409, 412, 413, 415)),
    },
    ("delete", "DELETE"): {
        "summary": "Delete a BatchTask (admins only)",
        "parameters": [*_HEADERS, *_CONDITIONS],
        "responses": responses({204: {"description": "deleted"}}, ERRORS, (400, 401, 403, 404, 412)),
    },
    ("stop", "POST"): {
        "summary": "Stop a BatchTask: New, Aquired or Started and cancellable → Failed",
        "parameters": list(_HEADERS),
        "responses": responses({200: {"description": "true if stopped, false if it could not be",
                                      "content": _content({"type": "boolean"})}},
                               ERRORS, (400, 401, 403, 404)),
    },
    ("agent", "POST"): {
        "summary": "Call a BatchAgent method",
        "description": "Every call takes a JSON object; member names match in any case. Reads answer a read-only "
                       "token too.\n\n" + _AGENTS_DOC,
        "parameters": [*_HEADERS, param("$select", "query", {"type": "string"}, "members of answered carriers")],
        "requestBody": json_body(AgentRequestSchema, types=("application/json", "text/json")),
        "responses": responses({200: {"description": "the method's result (null when the task does not exist)",
                                      "content": _content({"oneOf": [
                                          BatchTaskInfoOutSchema, {"type": "array", "items": BatchTaskInfoOutSchema},
                                          {"type": "integer"}, {"type": "boolean"}, _NULL]})},
                                204: {"description": "deleted"}},
                               ERRORS, (400, 401, 403, 404, 413, 415)),
    },
    ("describe", "GET"): {
        "summary": "Describe a BatchAgent method",
        "responses": responses({200: {"description": "what it takes and returns",
                                      "content": {"application/json": {"schema": AgentDescriptionSchema}}}},
                               ERRORS, (401, 404)),
    },
}
# the enums the carrier's two enum members take, for readers of the document
OPERATIONS[("put", "PUT")]["description"] = (f"State: {', '.join(STATES)} (or their numbers). "
                                              f"CancellationBehaviour: {', '.join(CANCELLATION)}.")


for _key in (("create", "POST"), ("put", "PUT"), ("delete", "DELETE"), ("stop", "POST"),
             ("agent", "POST"), ("login", "POST"), ("logout", "POST")):  # the operations that write tasks or tokens
    OPERATIONS[_key]["responses"]["503"] = busy_response(ERRORS)
for _key in (("put", "PUT"), ("stop", "POST"), ("agent", "POST")):  # what an ordinary user may write
    document_limits(OPERATIONS[_key], ERRORS)

OPERATIONS.update(hooks_openapi.SUPEROFFICE)  # the style's webhook routes (tag Webhooks)
for _key in hooks_openapi.SUPEROFFICE:  # under a tenant that does not match its pattern: no route
    OPERATIONS[_key]["responses"].setdefault(str(_NO_TENANT), responses({}, ERRORS, (_NO_TENANT,))[str(_NO_TENANT)])
