"""Domain errors, one type per HTTP meaning.

Raised anywhere below the handlers; each API style renders them in its vendor's error
body (``gateway/apis/*``). This module knows no vendor and no HTTP framework.
"""

from __future__ import annotations

__all__ = [
    "TaskgateError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "NotAcceptable",
    "Conflict",
    "PreconditionFailed",
    "RequestTimeout",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "TooManyRequests",
    "RequestHeaderFieldsTooLarge",
    "InternalError",
    "ServiceUnavailable",
    "ClientClosedRequest",
]


class TaskgateError(Exception):
    """An error with an HTTP status and a message that is safe to show the client."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.title
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(TaskgateError):
    status, title = 400, "Bad Request"


class Unauthorized(TaskgateError):
    status, title = 401, "Unauthorized"


class Forbidden(TaskgateError):
    status, title = 403, "Forbidden"


class NotFound(TaskgateError):
    status, title = 404, "Not Found"


class MethodNotAllowed(TaskgateError):
    status, title = 405, "Method Not Allowed"


class NotAcceptable(TaskgateError):
    status, title = 406, "Not Acceptable"


class Conflict(TaskgateError):
    status, title = 409, "Conflict"


class PreconditionFailed(TaskgateError):
    status, title = 412, "Precondition Failed"


class RequestTimeout(TaskgateError):
    status, title = 408, "Request Timeout"


class PayloadTooLarge(TaskgateError):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaType(TaskgateError):
    status, title = 415, "Unsupported Media Type"


class TooManyRequests(TaskgateError):
    status, title = 429, "Too Many Requests"


class RequestHeaderFieldsTooLarge(TaskgateError):
    status, title = 431, "Request Header Fields Too Large"


class InternalError(TaskgateError):
    status, title = 500, "Internal Server Error"


class ServiceUnavailable(TaskgateError):
    """Refused for now, not for good: the headers should say when to retry (Retry-After).

    *summary* is the cause in a few words that may be shown to anyone (``/readyz`` answers
    callers it does not know); the message may name files and quote the database."""

    status, title = 503, "Service Unavailable"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None,
                 summary: str = "database not writable") -> None:
        super().__init__(message, headers=headers)
        self.summary = summary


class ClientClosedRequest(TaskgateError):
    """The client closed its connection before the request was read: nobody hears this
    answer, but the request log and the metrics record it (nginx's 499), not as a 500."""

    status, title = 499, "Client Closed Request"


_BY_STATUS = {cls.status: cls for cls in TaskgateError.__subclasses__()}


def from_status(status: int, message: str | None = None) -> TaskgateError:
    """The domain error for an HTTP status raised by the framework (405, 413, …)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = TaskgateError(message)
        err.status = status
        return err
    return cls(message)
