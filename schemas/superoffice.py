"""SuperOffice WebAPI carriers: BatchTaskInfo, TableRight, FieldProperty, and the error body.

:class:`BatchTaskInfoSchema` loads what a client sends, in any body format, into the
stored form: names for the two enums, UTC ISO 8601 for dates, ``None`` for SuperOffice's
empty date. Like the vendor's JSON binder it takes numbers and booleans as text too
(XML and form bodies carry nothing else).

Owns the carrier's members, their types, lengths and enums. Must not decide which
members a caller may change (that is the SuperOffice rules module, ``superoffice_rules``), import
anything from the styles' modules, do I/O or know HTTP.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from gateway.clock import iso_utc

__all__ = ["STATES", "STATE_VALUES", "CANCELLATION", "FIELDS", "FIELD_TYPES", "EMPTY_DATE", "batch_task_schema",
           "RightSchema", "FieldPropertySchema", "BatchTaskInfoOutSchema", "SoErrorSchema", "ODataListSchema",
           "SoPatchOperationSchema", "AgentRequestSchema", "AgentDescriptionSchema", "LoginFormSchema", "LoginSchema"]

#: BatchTaskState names and values, spelled as the vendor does ("Aquired" included)
STATE_VALUES = {"Unknown": 0, "New": 1, "Aquired": 2, "Started": 3, "Succeeded": 4, "Failed": 5,
                "SucceededManualCleanup": 6, "All": 99999}
STATES = tuple(STATE_VALUES)
CANCELLATION_VALUES = {"CanCancel": 0, "CancelWithWarning": 1, "CannotCancel": 2}
CANCELLATION = tuple(CANCELLATION_VALUES)
#: how SuperOffice writes a date that has no value
EMPTY_DATE = "0001-01-01T00:00:00"

_INT32 = validate.Range(-2**31, 2**31 - 1)
#: the empty date, with whatever fraction or offset a client's serializer adds
_EMPTY = re.compile(re.escape(EMPTY_DATE) + r"(\.0+)?(Z|[+-]\d\d:?\d\d)?")
_INT16 = validate.Range(-2**15, 2**15 - 1)

#: every BatchTaskInfo member in the vendor's order: (.NET type, FieldLength, string limit)
FIELDS: dict[str, tuple[str, int]] = {
    "Id": ("System.Int32", 4),
    "Name": ("System.String", 0),
    "AssociateId": ("System.Int32", 4),
    "DetailsTable": ("System.Int16", 2),
    "DetailsRecord": ("System.Int32", 4),
    "IsSystemTask": ("System.Boolean", 1),
    "IsInternalTask": ("System.Boolean", 1),
    "ParameterObject": ("SuperOffice.Util.StringDictionary", 0),
    "LastStarted": ("System.DateTime", 16),
    "Created": ("System.DateTime", 16),
    "StartCount": ("System.Int32", 4),
    "DatabaseSerialNumber": ("System.String", 39),
    "Context": ("System.String", 0),
    "Result": ("System.String", 0),
    "State": ("SuperOffice.Data.BatchTaskState", 4),
    "Description": ("System.String", 254),
    "Response": ("System.String", 254),
    "Request": ("System.String", 254),
    "ProgressDescription": ("System.String", 254),
    "ProgressPercent": ("System.Int16", 2),
    "FileName": ("System.String", 260),
    "CancellationBehaviour": ("SuperOffice.Data.BatchTaskCancellationBehaviour", 4),
}
FIELD_TYPES = {name: spec[0] for name, spec in FIELDS.items()}


class _Enum(fields.Field):
    """A name (any case) or its number, as text or a JSON integer; loaded as the name."""

    def __init__(self, values: dict[str, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values = values
        self._by_key: dict[str, str] = {n.casefold(): n for n in values}
        self._by_key.update({str(v): n for n, v in values.items()})

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError("Must be a name or number of " + ", ".join(
                f"{n} ({v})" for n, v in self.values.items()) + ".")
        found = self._by_key.get(str(value).strip().casefold())
        if found is None:
            raise ValidationError(f"{str(value)[:40]!r} is not one of " + ", ".join(
                f"{n} ({v})" for n, v in self.values.items()) + ".")
        return found


#: what XML 1.0 cannot hold, even as a character reference: answers are XML too, and a
#: task holding U+0007 made every XML answer that carried it one no parser reads
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: str) -> None:
    found = _NOT_XML.search(value)
    if found is not None:
        raise ValidationError(f"holds U+{ord(found.group()):04X}, which XML cannot carry (answers may be XML).")


def _text(length: int) -> list[Any]:
    return [validate.Length(max=length), _xml_text]


class _Text(fields.String):
    """A string of at most the column's length, of characters XML can carry; ``null`` is
    SuperOffice's empty string."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(allow_none=True, validate=_text(length) if length else _xml_text, **kwargs)

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        return super().deserialize("" if value is None else value, attr, data, **kwargs)


class _Number(fields.Integer):
    """An integer, as JSON number or text (not a boolean, not a fraction)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=False, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float) or (
                isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
            raise self.make_error("invalid")
        return super()._validated(value)


class _Flag(fields.Boolean):
    truthy = {True, "true", "True", "TRUE", "1"}  # True also matches the JSON number 1
    falsy = {False, "false", "False", "FALSE", "0"}


class _LocalDateTime(fields.Field):
    """A date-time; without an offset it is read in the schema's zone. Loaded as UTC ISO."""

    default_error_messages = {"invalid": "Not a valid date-time; use ISO 8601, e.g. 2024-05-17T19:33:16."}

    def _zone(self) -> tzinfo:
        """The zone of the schema this field is bound to (BatchTaskInfoSchema's *zone*)."""
        schema = self.parent
        if not isinstance(schema, BatchTaskInfoSchema):
            raise TypeError(f"{type(self).__name__} belongs in a BatchTaskInfoSchema, not {type(schema).__name__}")
        return schema.zone

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        if value is None or value == "" or (isinstance(value, str) and _EMPTY.fullmatch(value)):
            return None
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            moment = datetime.fromisoformat(value.strip()) if len(value) <= 40 else None
            if moment is None or len(value.strip()) < 16:
                raise ValueError
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self._zone())
            return iso_utc(moment)
        except (ValueError, OverflowError):
            raise self.make_error("invalid") from None


class BatchTaskInfoSchema(Schema):
    """BatchTaskInfo in (``partial=True`` for PUT bodies); dates read in *zone*."""

    Id = _Number(validate=_INT32)
    Name = _Text(FIELDS["Name"][1])
    AssociateId = _Number(validate=_INT32)
    DetailsTable = _Number(validate=_INT16)
    DetailsRecord = _Number(validate=_INT32)
    IsSystemTask = _Flag()
    IsInternalTask = _Flag()
    ParameterObject = fields.Dict(keys=fields.String(validate=_text(254)),
                                  values=fields.String(validate=_text(4000)), allow_none=True)
    LastStarted = _LocalDateTime(allow_none=True)
    Created = _LocalDateTime(allow_none=True)
    StartCount = _Number(validate=_INT32)
    DatabaseSerialNumber = _Text(FIELDS["DatabaseSerialNumber"][1])
    Context = _Text(FIELDS["Context"][1])
    Result = _Text(FIELDS["Result"][1])
    State = _Enum(STATE_VALUES)
    Description = _Text(FIELDS["Description"][1])
    Response = _Text(FIELDS["Response"][1])
    Request = _Text(FIELDS["Request"][1])
    ProgressDescription = _Text(FIELDS["ProgressDescription"][1])
    ProgressPercent = _Number(validate=_INT16)
    FileName = _Text(FIELDS["FileName"][1])
    CancellationBehaviour = _Enum(CANCELLATION_VALUES)

    class Meta:
        unknown = "exclude"  # Newtonsoft ignores members the carrier does not have

    def __init__(self, *, zone: tzinfo = UTC, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.zone = zone


@lru_cache(maxsize=64)
def batch_task_schema(zone: tzinfo) -> BatchTaskInfoSchema:
    """The (cached) input schema for dates without offset in *zone*."""
    return BatchTaskInfoSchema(zone=zone)


# -- output shapes (documentation and OpenAPI; the carrier is built in the style module) --
class RightSchema(Schema):
    """TableRight and FieldRight: .NET flags as text (``"Select, Update"``, ``"Read"``) and why."""

    Mask = fields.String(required=True)
    Reason = fields.String(required=True, metadata={"description": "empty when every right is granted"})


class FieldPropertySchema(Schema):
    FieldRight = fields.Nested(RightSchema, required=True)
    FieldType = fields.String(required=True)
    FieldLength = fields.Integer(required=True)


class BatchTaskInfoOutSchema(Schema):
    Id = fields.Integer()
    Name = fields.String()
    AssociateId = fields.Integer()
    DetailsTable = fields.Integer()
    DetailsRecord = fields.Integer()
    IsSystemTask = fields.Boolean()
    IsInternalTask = fields.Boolean()
    ParameterObject = fields.Dict(keys=fields.String(), values=fields.String())
    LastStarted = fields.String(metadata={"description": "YYYY-MM-DDTHH:MM:SS in the SO-TimeZone"})
    Created = fields.String()
    StartCount = fields.Integer()
    DatabaseSerialNumber = fields.String()
    Context = fields.String()
    Result = fields.String()
    State = fields.String(validate=validate.OneOf(STATES))
    Description = fields.String()
    Response = fields.String()
    Request = fields.String()
    ProgressDescription = fields.String()
    ProgressPercent = fields.Integer()
    FileName = fields.String()
    CancellationBehaviour = fields.String(validate=validate.OneOf(CANCELLATION))
    TableRight = fields.Nested(RightSchema)
    FieldProperties = fields.Dict(keys=fields.String(), values=fields.Nested(FieldPropertySchema))


class SoErrorSchema(Schema):
    Error = fields.Boolean(required=True)
    ErrorType = fields.String(required=True)
    ErrorMessage = fields.String(required=True)
    ErrorSource = fields.String(required=True)


class ODataListSchema(Schema):
    """``GET /api/v1/BatchTask``: an OData page of archive rows (no rights on rows)."""

    odata_metadata = fields.String(required=True, data_key="odata.metadata")
    odata_nextLink = fields.String(required=True, allow_none=True, data_key="odata.nextLink",
                                   metadata={"description": "the next page, null on the last"})
    value = fields.List(fields.Nested(BatchTaskInfoOutSchema), required=True)


class SoPatchOperationSchema(Schema):
    """One JSON Patch operation as SuperOffice takes it: add, replace, remove or test;
    member names in any case, the leading slash optional."""

    op = fields.String(required=True, metadata={"enum": ["add", "replace", "remove", "test"]})
    path = fields.String(required=True, metadata={"example": "/State"})
    value = fields.Raw(allow_none=True)


class AgentRequestSchema(Schema):
    """The members the Agents calls read; which ones a call needs is in its description."""

    Id = fields.Integer()
    BatchTaskId = fields.Integer()
    BatchTaskIds = fields.List(fields.Integer())
    AssociateIds = fields.List(fields.Integer())
    BatchTaskInfo = fields.Nested(BatchTaskInfoSchema)
    State = fields.String(validate=validate.OneOf(STATES))
    Name = fields.String()
    TaskName = fields.String()


class AgentDescriptionSchema(Schema):
    """``GET /api/v1/Agents/Batch/{method}``: what the call takes and returns."""

    Method = fields.String(required=True)
    HttpMethod = fields.String(required=True, metadata={"enum": ["POST"]})
    Request = fields.String(required=True)
    Returns = fields.String(required=True)


class LoginFormSchema(Schema):
    user = fields.String(required=True)
    password = fields.String(required=True)


class LoginSchema(Schema):
    """``POST /login``: the session's user and its XSRF token (also set as a cookie)."""

    user = fields.String(required=True)
    xsrf_token = fields.String(required=True)
