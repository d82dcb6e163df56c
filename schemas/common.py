"""Fields every style shares: UTC date-times, strict integers, enums by name, and
flattening marshmallow's nested error messages into readable lines.

Fields deserialize straight to the canonical JSON value that is stored and served, so
``schema.load(doc)`` both validates and normalises a document.

Owns what more than one style's schemas use, and the documentation-only shapes of
taskgate's own routes (OAuth token, health). Must not know any one vendor, import
anything from the styles' modules, or do I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields

from gateway.clock import iso_utc, parse_iso
from gateway.errors import BadRequest

__all__ = ["UtcDateTime", "StrictInteger", "EnumName", "flatten_errors", "load_or_400"]


class UtcDateTime(fields.Field):
    """An RFC 3339 date-time in, ``YYYY-MM-DDTHH:MM:SS.sssZ`` (UTC) out."""

    default_error_messages = {"invalid": "Not a valid date-time; use RFC 3339, e.g. 2024-05-17T19:33:16.470Z."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return iso_utc(parse_iso(value))
        except (TypeError, ValueError, OverflowError):
            raise self.make_error("invalid") from None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class StrictInteger(fields.Integer):
    """A JSON integer: not a boolean, not a float (``50.0`` included), not a string."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._validated(value)


class EnumName(fields.String):
    """One of a fixed set of names, matched case-insensitively, stored as spelled in *names*."""

    def __init__(self, names: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = tuple(names)
        self._folded = {n.casefold(): n for n in self.names}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return self._folded[text.casefold()]
        except KeyError:
            raise ValidationError(f"Must be one of: {', '.join(self.names)}.") from None


def flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    """``{"a": {"0": {"b": ["x"]}}}`` → ``["a[0].b: x"]``."""
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                name = f"{prefix}[{key}]"
            elif key == "_schema":
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(flatten_errors(value, name))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in flatten_errors(m, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def load_or_400(schema: Schema, data: Any, what: str, *, partial: bool | tuple[str, ...] = False) -> Any:
    """``schema.load(data)``, or BadRequest ``"invalid WHAT: a: …; b[0].c: …"`` naming every field.
    *partial* is marshmallow's: the required fields that may be missing (True: all)."""
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        raise BadRequest(f"invalid {what}: " + "; ".join(flatten_errors(exc.messages))) from None


# -- documentation-only shapes (the OpenAPI document; see gateway/openapi.py) ---------------
class OAuthTokenSchema(Schema):
    """``POST /oauth/token`` success (RFC 6749 §5.1)."""

    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["bearer"]})
    expires_in = fields.Integer(required=True)
    scope = fields.String(required=True)


class OAuthErrorSchema(Schema):
    """``POST /oauth/token`` failure (RFC 6749 §5.2; ``slow_down``, RFC 8628's code for a
    client asking too fast, comes with a 429 when the sign-in limiter refuses;
    ``temporarily_unavailable``, RFC 6749 §4.1.2.1's, with a 503 when the token cannot be
    stored now)."""

    error = fields.String(required=True, metadata={"enum": ["invalid_request", "invalid_client",
                                                            "unsupported_grant_type", "slow_down",
                                                            "temporarily_unavailable"]})
    error_description = fields.String(required=True)


class OAuthTokenRequestSchema(Schema):
    """The client-credentials form; id and secret may come as HTTP Basic instead."""

    grant_type = fields.String(required=True, metadata={"enum": ["client_credentials"]})
    client_id = fields.String()
    client_secret = fields.String()


class PlainErrorSchema(Schema):
    """``{"error": …}``: taskgate's own routes (not any vendor's) answer failures so."""

    error = fields.String(required=True)


class HealthSchema(Schema):
    """``GET /healthz``: the process answers."""

    status = fields.String(required=True, metadata={"enum": ["ok"]})


class ReadySchema(Schema):
    """``GET /readyz``: ready (200), or unavailable and why (503)."""

    status = fields.String(required=True, metadata={"enum": ["ready", "unavailable"]})
    schema = fields.Integer(metadata={"description": "the database schema version (when ready)"})
    reason = fields.String(metadata={"description": "why not (when unavailable)"})
