"""The ``/_taskgate/`` test-control API in the OpenAPI document (only when testing is on:
the routes exist only then). :mod:`gateway.openapi` looks each ``testing:<kind>`` route up
here by ``(kind, method)``. This module only describes; it must not register routes.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi import json_body, param, responses
from schemas.common import PlainErrorSchema

__all__ = ["TAG", "TAG_DESCRIPTION", "SECURITY", "ERRORS", "PATH_PARAMETERS", "OPERATIONS"]

TAG = "taskgate testing"
TAG_DESCRIPTION = ("The admin-only test-control API (testing.enabled, serve --testing): namespaces, reset, "
                   "checkpoints, seeding, the request journal, faults and the clock. Never on in production.")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
ERRORS: dict[int, Any] = {0: PlainErrorSchema}

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
PATH_PARAMETERS = {
    "ns": param("ns", "path", _NAME, "the namespace"),
    "checkpoint": param("checkpoint", "path", {"type": "string", "pattern": "^[0-9]+$"}),
    "rule": param("rule", "path", {"type": "string", "pattern": "^[0-9]+$"}),
    "style": param("style", "path", {"type": "string", "enum": ["sailpoint", "superoffice", "webmethods"]}),
    "id": param("id", "path", {"type": "string"}),
}

_CLOCK: dict[str, Any] = {"type": "object", "required": ["now", "frozen"],
          "properties": {"now": {"type": "string", "format": "date-time"}, "frozen": {"type": "boolean"}}}
_NAMESPACE = {"type": "object", "required": ["name", "clock", "journal", "faults", "progress", "checkpoints"],
              "properties": {"name": {"type": "string"}, "clock": _CLOCK, "journal": {"type": "object"},
                             "faults": {"type": "integer"}, "progress": {"type": "integer"},
                             "checkpoints": {"type": "array", "items": {"type": "integer"}}}}
_FAULT = {"type": "object", "properties": {
    "style": {"type": "string", "nullable": True}, "route": {"type": "string", "nullable": True},
    "path": {"type": "string", "nullable": True}, "method": {"type": "string", "nullable": True},
    "status": {"type": "integer", "nullable": True}, "retry_after": {"type": "integer", "nullable": True},
    "delay_ms": {"type": "integer"}, "jitter_ms": {"type": "integer"}, "drop": {"type": "boolean"},
    "count": {"type": "integer", "nullable": True}, "probability": {"type": "number"},
    "seed": {"type": "integer"}, "id": {"type": "integer"}, "fired": {"type": "integer"}}}
_FILTERS = {"type": "object", "properties": {
    "method": {"type": "string"}, "path": {"type": "string", "description": "a glob, e.g. /task-status/*"},
    "route": {"type": "string", "description": "a glob on the route name"}, "style": {"type": "string"},
    "status": {"type": "integer"}, "request_id": {"type": "string"}, "fault": {"type": "boolean"}}}
_QUERY_FILTERS = [param(name, "query", {"type": kind}) for name, kind in (
    ("method", "string"), ("path", "string"), ("route", "string"), ("style", "string"), ("status", "integer"),
    ("request_id", "string"), ("fault", "boolean"))]


def _ok(status: int, description: str, schema: Any | None = None) -> dict[int | str, Any]:
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _op(summary: str, ok: dict[int | str, Any], statuses: tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses(ok, ERRORS, (401, 403, *statuses)), **extra}


_NS_ERRORS = (400, 404)
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("namespaces", "GET"): _op("The open namespaces", _ok(200, "the namespaces", {
        "type": "object", "properties": {"namespaces": {"type": "array", "items": _NAMESPACE},
                                         "max_namespaces": {"type": "integer"}}})),
    ("namespace_put", "PUT"): _op("Create the namespace (or find it)", {
        **_ok(200, "it was open", _NAMESPACE), **_ok(201, "created", _NAMESPACE)}, (400, 503)),
    ("namespace", "GET"): _op("The namespace", _ok(200, "the namespace", _NAMESPACE), _NS_ERRORS),
    ("namespace_delete", "DELETE"): _op("Delete the namespace and its file", _ok(204, "deleted"), _NS_ERRORS),
    ("reset", "POST"): _op("Reset: no tasks, audit, journal, faults, scripts or checkpoints; the system's clock",
                           _ok(200, "the namespace", _NAMESPACE), _NS_ERRORS),
    ("checkpoint", "POST"): _op("Checkpoint every table in memory", _ok(201, "its number", {
        "type": "object", "properties": {"checkpoint": {"type": "integer"}}}), (*_NS_ERRORS, 409)),
    ("restore", "POST"): _op("Restore a checkpoint", _ok(200, "restored", {
        "type": "object", "properties": {"restored": {"type": "integer"}}}), _NS_ERRORS),
    ("checkpoint_delete", "DELETE"): _op("Forget a checkpoint", _ok(204, "forgotten"), _NS_ERRORS),
    ("export", "GET"): _op("Every task of the namespace, and the last audit sequence number", _ok(200, "tasks", {
        "type": "object", "properties": {"tasks": {"type": "array", "items": {"type": "object"}},
                                         "seq": {"type": "integer"}}}), _NS_ERRORS,
        parameters=[param("style", "query", {"type": "string"})]),
    ("task", "GET"): _op("A task as it was after audit row seq (now, without seq)", _ok(200, "the task", {
        "type": "object", "properties": {"style": {"type": "string"}, "id": {"type": "string"},
                                         "version": {"type": "integer"}, "doc": {"type": "object"}}}),
        _NS_ERRORS, parameters=[param("seq", "query", {"type": "integer", "minimum": 0})]),
    ("clock", "GET"): _op("The namespace's clock", _ok(200, "the clock", _CLOCK), _NS_ERRORS),
    ("clock_put", "PUT"): _op("Freeze, set or advance the clock; then its changes are applied", _ok(200, "the clock", {
        **_CLOCK, "properties": {**_CLOCK["properties"], "swept": {"type": "integer"},
                                 "progressed": {"type": "integer"}}}), (*_NS_ERRORS, 415),
        requestBody=json_body({"type": "object", "properties": {
            "frozen": {"type": "boolean"}, "now": {"type": "string", "format": "date-time"},
            "advance_seconds": {"type": "number", "minimum": 0}}})),
    ("progress", "POST"): _op("Script a task's progress from 0 to 100 % over clock seconds", _ok(201, "the script", {
        "type": "object"}), (*_NS_ERRORS, 409, 415), requestBody=json_body({"type": "object", "required": [
            "style", "id", "seconds"], "properties": {"style": {"type": "string", "enum": ["sailpoint", "superoffice"]},
                                                      "id": {"type": "string"}, "seconds": {"type": "number"},
                                                      "status": {"type": "string"}}})),
    ("journal", "GET"): _op("The journal's entries, oldest first, filtered", _ok(200, "entries", {
        "type": "object", "properties": {"entries": {"type": "array", "items": {"type": "object"}},
                                         "journal": {"type": "object"}}}), _NS_ERRORS,
        parameters=[*_QUERY_FILTERS, param("limit", "query", {"type": "integer", "minimum": 0})]),
    ("journal_count", "POST"): _op("How many entries match the filters (verify)", _ok(200, "the count", {
        "type": "object", "properties": {"count": {"type": "integer"}}}), (*_NS_ERRORS, 415),
        requestBody=json_body(_FILTERS, required=False)),
    ("journal_delete", "DELETE"): _op("Empty the journal", _ok(204, "emptied"), _NS_ERRORS),
    ("faults", "GET"): _op("The fault rules", _ok(200, "the rules", {
        "type": "object", "properties": {"faults": {"type": "array", "items": _FAULT}}}), _NS_ERRORS),
    ("fault_add", "POST"): _op("Add a fault rule", _ok(201, "the rule", _FAULT), (*_NS_ERRORS, 409, 415),
                               requestBody=json_body(_FAULT)),
    ("faults_delete", "DELETE"): _op("Delete every fault rule", _ok(204, "deleted"), _NS_ERRORS),
    ("fault_delete", "DELETE"): _op("Delete a fault rule", _ok(204, "deleted"), _NS_ERRORS),
    ("seed", "POST"): _op("Load documents in each vendor's shape: {style: [document, …]}", _ok(200, "how many", {
        "type": "object", "properties": {"loaded": {"type": "object",
                                                    "additionalProperties": {"type": "integer"}}}}),
        (*_NS_ERRORS, 415, 503), requestBody=json_body({"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "object"}}})),
}
