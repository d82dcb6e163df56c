"""What the webhook parts share: an event as a style renders it, the request it becomes,
the contract of a style's webhook shape, and the checks every subscription API makes.

An :class:`Event` is one committed change (an audit row, whose seq is the event's id)
with the task's document before and after it. A style's :class:`Shape` turns an event
into the :class:`Outgoing` request one of its hooks receives (or nothing, when the hook
does not want it), and says how a hook looks once disabled for too many failures. The
styles' subscription APIs (``gateway/apis/*_hooks.py``) call :func:`require_admin` and
:func:`check_target` before they store anything. Pure but for :func:`check_target`,
which resolves the target's host; it sends nothing and touches no storage.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from gateway import errors
from gateway.context import principal
from gateway.events.targets import TargetPolicy, TargetRefused
from gateway.model import Change, Doc, Hook

__all__ = ["Event", "Outgoing", "Shape", "SHAPES", "POLICY", "require_admin", "check_target",
           "event_uuid", "idempotency_key", "IDEMPOTENCY_HEADER", "check_headers"]

#: the header every delivery carries: the event id (the audit seq), the same on every retry
IDEMPOTENCY_HEADER = "Idempotency-Key"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
#: headers a subscription may not set: the transport's and the signature's own
_RESERVED = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection",
                       "authorization", "idempotency-key", "x-superoffice-signature", "x-superoffice-event",
                       "x-superoffice-eventid", "x-taskgate-signature", "x-taskgate-event"})


@dataclass(frozen=True, slots=True)
class Event:
    change: Change
    old: Doc | None  # the task before the change (None: it did not exist)
    new: Doc | None  # after it (None: deleted)
    #: where the event's id is unique, when not on the server: a test namespace's ids begin
    #: again at each reset (:mod:`gateway.events.scoped`), so its ids are qualified by this
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Outgoing:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Shape(Protocol):
    """A style's webhooks: what its hooks receive, and how a disabled one looks."""

    def render(self, hook: Hook, event: Event) -> Outgoing | None:
        ...

    def disabled(self, doc: Doc) -> Doc:
        ...


#: each style's shape, by the style name hooks are stored under
SHAPES = web.AppKey("webhook_shapes", dict)
POLICY = web.AppKey("webhook_target_policy", TargetPolicy)


def event_uuid(seq: int, hook: int, scope: str = "") -> str:
    """A GUID for a vendor's event id field: the same for every redelivery of one event to
    one hook, different across hooks and events (and, with *scope*, across test namespaces
    and their resets: :attr:`Event.scope`)."""
    where = f"{scope}:" if scope else ""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taskgate:{where}event:{seq}:hook:{hook}"))


def idempotency_key(seq: int, scope: str = "") -> str:
    """The ``Idempotency-Key`` of a delivery: the event id, qualified by *scope* in a test
    namespace (``{namespace}.{epoch}:{seq}``)."""
    return f"{scope}:{seq}" if scope else str(seq)


def require_admin(request: web.Request) -> None:
    """An admin may manage subscriptions (in a test namespace, the namespace's own:
    :mod:`gateway.events.scoped`); else Forbidden."""
    if not principal(request).is_admin:
        raise errors.Forbidden("only an admin may manage webhook subscriptions")


async def check_target(request: web.Request, url: object) -> None:
    """BadRequest with the reason when the guard refuses *url* (its host is resolved and
    every address checked)."""
    try:
        await request.app[POLICY].check(url)
    except TargetRefused as exc:
        raise errors.BadRequest(f"webhook target refused: {exc}") from None


def check_headers(headers: object, name: str) -> dict[str, str]:
    """Custom headers of a subscription: at most 20 string pairs, token names, no line
    breaks, none of the reserved ones."""
    if headers is None:
        return {}
    if not isinstance(headers, dict) or len(headers) > 20:
        raise errors.BadRequest(f"{name} must be an object of at most 20 string headers")
    for key, value in headers.items():
        if not _TOKEN.fullmatch(key) or key.lower() in _RESERVED:
            raise errors.BadRequest(f"{name}: {key[:64]!r} is not a header a subscription may set")
        if not isinstance(value, str) or len(value) > 1024 or any(c in value for c in "\r\n\0"):
            raise errors.BadRequest(f"{name}: the value of {key!r} must be one line of at most 1024 characters")
    return dict(headers)
