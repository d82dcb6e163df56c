"""The value types every layer shares, and the mutation contract.

A change, in every style, is a pure function from the stored document to the new one
(:data:`Mutate`); the store runs it inside one write transaction. The rules of the styles,
the audit log, ``audit verify`` and authentication read and build these types; the store
fills them from its rows. This module does no I/O and imports nothing of taskgate's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Doc", "Mutate", "Step", "Expect", "Task", "Change", "User", "TokenRow", "OAuthClient", "CLIENT"]

Doc = dict[str, Any]
#: a pure function from the stored document (None when absent) to the new one (None
#: deletes); it raises a :mod:`gateway.errors` type to refuse the change
Mutate = Callable[[Doc | None], Doc | None]
#: one audited step of a write: who makes it, and what it does
Step = tuple[str, Mutate]

#: where the current change comes from (a client's address, set per request by the HTTP
#: layer; empty for the command line and background jobs); each write records it at submit
CLIENT: ContextVar[str] = ContextVar("taskgate_client", default="")


class Expect(Enum):
    """What a write requires of the stored task before its first step."""

    PRESENT = "present"  # NotFound when there is no such task
    ABSENT = "absent"  # Conflict when the id is taken
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Task:
    style: str
    id: str
    version: int
    doc: Doc
    modified: str = ""  # when the document last changed (UTC, ISO 8601)


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change; what audit rows and audit log events are made of."""

    seq: int
    at: str
    style: str
    task_id: str
    version: int
    action: str  # created | updated | deleted
    actor: str
    request_id: str
    patch: list[dict[str, Any]]
    undo: list[dict[str, Any]]
    client: str = ""  # the client's address (CLIENT when the change was submitted)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password_hash: str | None
    associate_id: int | None = None  # the SuperOffice associate this user is


@dataclass(frozen=True, slots=True)
class TokenRow:
    user: User
    read_only: bool
    expires: int | None  # unix seconds


@dataclass(frozen=True, slots=True)
class OAuthClient:
    client_id: str
    secret_hash: str
    user: str
