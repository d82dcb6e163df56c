"""SailPoint ISC task-status documents: TaskStatus and its parts, JsonPatchOperation,
ErrorResponseDto. Field names, enums and nullability follow the vendor's OpenAPI
(``idn/apis/task-management``); loading a TaskStatus validates it and yields the
canonical stored form (upper-case enums, UTC millisecond timestamps). The ``…Schema``
classes are the shapes stored and served (the OpenAPI document's answers); an
``…InputSchema`` loads what a client may send, filling the members it may leave out.

Owns the members of these documents, their types, enums and nullability. Must not decide
which members a PATCH may change (that is the SailPoint rules module, ``sailpoint_rules``), import
anything from the styles' modules, do I/O or know HTTP.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.common import EnumName, StrictInteger, UtcDateTime

__all__ = ["TaskStatusSchema", "TaskStatusInputSchema", "JsonPatchOperationSchema", "ErrorResponseDtoSchema",
           "UnauthorizedSchema", "RateLimitSchema", "TaskStatusCreateSchema", "COMPLETION_STATUSES", "TASK_TYPES",
           "ID_PATTERN"]

COMPLETION_STATUSES = ("SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR")
TASK_TYPES = ("QUARTZ", "QPOC", "QUEUED_TASK")
MESSAGE_TYPES = ("INFO", "WARN", "ERROR")
TARGET_TYPES = ("APPLICATION", "IDENTITY")
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"  # \Z: "$" would admit a trailing newline


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class LocalizedMessageSchema(_Strict):
    locale = fields.String(required=True)
    message = fields.String(required=True)


class _Parameter(fields.Field):
    """A message parameter: an object or a string (the SDK refuses anything else)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, (str, dict)):
            return value
        raise ValidationError("Must be an object or a string.")


class TaskStatusMessageSchema(_Strict):
    """A message as stored and served: every member present, ``localizedText`` and
    ``parameters`` possibly null (the vendor's schema requires all four)."""

    type = EnumName(MESSAGE_TYPES, required=True)
    localizedText = fields.Nested(LocalizedMessageSchema, required=True, allow_none=True)
    key = fields.String(required=True)
    parameters = fields.List(_Parameter(allow_none=True), required=True, allow_none=True)


class TaskStatusMessageInputSchema(TaskStatusMessageSchema):
    """A message as a client may send it: without ``localizedText`` or ``parameters``,
    which then load as null, so that what is stored is a :class:`TaskStatusMessageSchema`."""

    localizedText = fields.Nested(LocalizedMessageSchema, allow_none=True, load_default=None)
    parameters = fields.List(_Parameter(allow_none=True), allow_none=True, load_default=None)


class TaskReturnDetailsSchema(_Strict):
    name = fields.String(required=True)
    attributeName = fields.String(required=True)


class TargetSchema(_Strict):
    id = fields.String()
    type = EnumName(TARGET_TYPES, allow_none=True)
    name = fields.String()


class TaskDefinitionSummarySchema(_Strict):
    """A task definition summary as stored and served: ``description`` and ``executor``
    always present, possibly null."""

    id = fields.String(required=True)
    uniqueName = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    parentName = fields.String(required=True)
    executor = fields.String(required=True, allow_none=True)
    arguments = fields.Dict(keys=fields.String(), required=True)


class TaskDefinitionSummaryInputSchema(TaskDefinitionSummarySchema):
    """A task definition summary as a client may send it: ``description`` and ``executor``
    may be left out, and load as null."""

    description = fields.String(allow_none=True, load_default=None)
    executor = fields.String(allow_none=True, load_default=None)


class TaskStatusSchema(_Strict):
    """A whole TaskStatus as stored and served; every required key of the vendor's schema.

    ``modified`` is never null here, although the vendor's spec allows it since 2026-05-19:
    the SDKs before that (``sailpoint`` 1.4.2, ``sailpoint-api-client`` 1.x) fail on a null,
    and taskgate always knows when it last wrote a task. This is the shape the OpenAPI
    document gives every answer; :class:`TaskStatusInputSchema` loads one."""

    id = fields.String(required=True, validate=validate.Regexp(ID_PATTERN))
    type = EnumName(TASK_TYPES, required=True)
    uniqueName = fields.String(required=True)
    description = fields.String(required=True)
    parentName = fields.String(required=True, allow_none=True)
    launcher = fields.String(required=True)
    target = fields.Nested(TargetSchema, allow_none=True)
    created = UtcDateTime(required=True)
    modified = UtcDateTime(required=True)
    launched = UtcDateTime(required=True, allow_none=True)
    completed = UtcDateTime(required=True, allow_none=True)
    completionStatus = EnumName(COMPLETION_STATUSES, required=True, allow_none=True)
    messages = fields.List(fields.Nested(TaskStatusMessageSchema), required=True)
    returns = fields.List(fields.Nested(TaskReturnDetailsSchema), required=True)
    attributes = fields.Dict(keys=fields.String(), required=True)
    progress = fields.String(required=True, allow_none=True)
    percentComplete = StrictInteger(required=True, validate=validate.Range(0, 100))
    taskDefinitionSummary = fields.Nested(TaskDefinitionSummarySchema)


class TaskStatusInputSchema(TaskStatusSchema):
    """A whole TaskStatus as the rules load it (after a create or a patch): a
    :class:`TaskStatusSchema` whose messages and task definition summary may leave out
    the members that then load as null."""

    messages = fields.List(fields.Nested(TaskStatusMessageInputSchema), required=True)
    taskDefinitionSummary = fields.Nested(TaskDefinitionSummaryInputSchema)


class TaskStatusCreateSchema(TaskStatusInputSchema):
    """The body of taskgate's ``POST /task-status/v1``: what a new task may start with.

    Only ``type`` and ``uniqueName`` are required; ``id`` is generated when absent and the
    server sets ``created`` and ``modified`` when they are absent or null.
    """

    id = fields.String(validate=validate.Regexp(ID_PATTERN))
    description = fields.String(load_default="")
    parentName = fields.String(allow_none=True, load_default=None)
    launcher = fields.String()
    created = UtcDateTime()
    modified = UtcDateTime(allow_none=True)
    launched = UtcDateTime(allow_none=True, load_default=None)
    completed = UtcDateTime(allow_none=True, load_default=None)
    completionStatus = EnumName(COMPLETION_STATUSES, allow_none=True, load_default=None)
    messages = fields.List(fields.Nested(TaskStatusMessageInputSchema), load_default=list)
    returns = fields.List(fields.Nested(TaskReturnDetailsSchema), load_default=list)
    attributes = fields.Dict(keys=fields.String(), load_default=dict)
    progress = fields.String(allow_none=True, load_default=None)
    percentComplete = StrictInteger(validate=validate.Range(0, 100), load_default=0)


class JsonPatchOperationSchema(Schema):
    """One RFC 6902 operation; members an operation does not define are ignored (§4)."""

    class Meta:
        unknown = EXCLUDE

    op = fields.String(required=True, validate=validate.OneOf(("add", "remove", "replace", "move", "copy", "test")))
    path = fields.String(required=True)
    value = fields.Raw(allow_none=True)
    from_ = fields.Raw(data_key="from", attribute="from", allow_none=True)

    @validates_schema
    def _members(self, data: dict[str, Any], **_: Any) -> None:
        op = data.get("op")
        if op in ("add", "replace", "test") and "value" not in data:
            raise ValidationError(f"'{op}' needs a value.", "value")
        if op in ("move", "copy"):
            if "from" not in data:
                raise ValidationError(f"'{op}' needs 'from'.", "from")
            if not isinstance(data["from"], str):
                raise ValidationError("Not a valid string.", "from")
        else:
            data.pop("from", None)  # RFC 6902 §4: members an operation does not define are ignored
            if op == "remove":
                data.pop("value", None)


class ErrorMessageDtoSchema(Schema):
    locale = fields.String(allow_none=True)
    localeOrigin = fields.String(allow_none=True, validate=validate.OneOf(("DEFAULT", "REQUEST")))
    text = fields.String()


class ErrorResponseDtoSchema(Schema):
    detailCode = fields.String()
    trackingId = fields.String()
    messages = fields.List(fields.Nested(ErrorMessageDtoSchema))
    causes = fields.List(fields.Nested(ErrorMessageDtoSchema))


class UnauthorizedSchema(Schema):
    """SailPoint's 401 body."""

    error = fields.String(required=True)


class RateLimitSchema(Schema):
    """SailPoint's 429 body (``" Rate Limit Exceeded "``, spaces included)."""

    message = fields.String(required=True)
