"""The value types every layer shares, and the two contracts: the mutation and the store.

A change, in every style, is a pure function from the stored document to the new one
(:data:`Mutate`); the store runs it inside one write transaction. The rules of the styles,
the audit log, ``audit verify`` and authentication read and build these types; the store
fills them from its rows. :class:`Store` is what every store implementation
(``gateway/store/``) offers the rest of taskgate. This module does no I/O and imports
nothing of taskgate's but the vendor-neutral query nodes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from gateway.query import Query

__all__ = ["Doc", "Mutate", "Step", "Expect", "Task", "Chunk", "Change", "User", "TokenRow", "TokenInfo", "OAuthClient",
           "Quota", "Hook", "Delivery", "CLIENT", "QUOTA", "IMPERSONATION", "Store"]

Doc = dict[str, Any]
#: a pure function from the stored document (None when absent) to the new one (None
#: deletes); it raises a :mod:`gateway.errors` type to refuse the change
Mutate = Callable[[Doc | None], Doc | None]
#: one audited step of a write: who makes it, and what it does
Step = tuple[str, Mutate]

#: where the current change comes from (a client's address, set per request by the HTTP
#: layer; empty for the command line and background jobs); each write records it at submit
CLIENT: ContextVar[str] = ContextVar("taskgate_client", default="")


@dataclass(frozen=True, slots=True)
class Quota:
    """What one owner may hold in one style: at most *tasks* tasks and *bytes* bytes (their
    stored documents and the audit rows of their changes). *owner* is the owner as the
    style's owner field names it (a user name, or a SuperOffice associate id as text)."""

    owner: str
    tasks: int
    bytes: int
    #: the configuration keys of the limits, for the refusal's message
    names: tuple[str, str] = ("quota.tasks_per_user", "quota.mib_per_user")


#: the quota the current change is held to (set per request by a style for an ordinary
#: user's write; None for admins, the command line and background jobs); each write
#: records it at submit, as it does :data:`CLIENT`
QUOTA: ContextVar[Quota | None] = ContextVar("taskgate_quota", default=None)
#: ``(actor, real caller)`` while an admin acts as another user (webMethods' ``user`` input):
#: a change whose actor is the first records the second as its impersonator
IMPERSONATION: ContextVar[tuple[str, str] | None] = ContextVar("taskgate_impersonation", default=None)


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
    #: when this life of the task began (its latest creation): a task deleted and created
    #: again under its id has a new one (empty where a read does not say, as in exports)
    created: str = ""
    #: *doc* as the store holds it (the compact JSON text of :func:`gateway.limits.dumps`)
    #: when the store had it at hand, as after a write that stored it; empty when not. An
    #: answer that is the stored document sends these bytes instead of writing *doc* again
    text: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Some of the tasks a list answers (:meth:`Store.read_chunks`), in order, and what
    their stored documents weigh: roughly what encoding them costs."""

    tasks: list[Task]
    stored_bytes: int


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
    #: who really made the change when an admin made it as *actor* (impersonation); empty
    #: when the actor made it
    impersonator: str = ""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    password_hash: str | None
    associate_id: int | None = None  # the SuperOffice associate this user is
    disabled: bool = False  # signs in by no means; keeps its tasks and audit trail


@dataclass(frozen=True, slots=True)
class TokenRow:
    user: User
    read_only: bool
    expires: int | None  # unix seconds


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token as ``token list`` shows it: never the secret, only its hash."""

    hash: str
    user: str
    read_only: bool
    expires: int | None  # unix seconds
    source: str  # cli | bootstrap | oauth | session
    created: str


@dataclass(frozen=True, slots=True)
class OAuthClient:
    client_id: str
    secret_hash: str
    user: str


@dataclass(frozen=True, slots=True)
class Hook:
    """A webhook subscription: its style's own document (secrets included), whether the
    dispatcher delivers to it, and how far it has got through the audit trail."""

    num: int  # the store's own key, never reused
    style: str
    id: str  # the id the style's API names it by
    doc: Doc
    active: bool
    cursor: int  # the audit seq of the last event delivered (or passed over)
    failures: int  # consecutive failed attempts at the event after the cursor
    created: str
    updated: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt at delivering one event to one hook: a row of the delivery log."""

    seq: int  # the log's own order (0 before it is stored)
    hook: int  # Hook.num
    event: int  # the audit seq delivered (0 for a test invocation)
    at: str
    attempt: int
    status: int | None  # the receiver's HTTP status; None when there was no answer
    outcome: str  # delivered | failed | disabled
    error: str
    ms: float


class Store(Protocol):
    """What the application, the command line and the tools may ask of a store.

    What every implementation promises:

    * **One write path.** Every task change is a pure function ``mutate(old_doc) -> new_doc``
      (:data:`Mutate`; None deletes) run inside one write transaction, against
      the stored document as it is at that moment. Each change that alters the document bumps
      ``version`` and appends one audit row (:class:`Change`, an RFC 6902
      patch and its inverse) in the same transaction. A mutation that raises a
      :mod:`gateway.errors` type refuses its write alone; any other exception is an
      InternalError for its write alone. A write submitted under a :data:`QUOTA` that would
      take the quota's owner past a limit is a PayloadTooLarge, alone. Callers are answered only after the commit, and
      commit listeners (:meth:`Store.on_commit`) hear every committed change, in commit order.
    * **Reads run beside writes** and see committed data only.
    * **Errors**: domain errors are :mod:`gateway.errors` types (NotFound, Conflict,
      PreconditionFailed, BadRequest, PayloadTooLarge, InternalError when the database fails);
      a database that cannot be used at all raises ``gateway.store.StoreError``.
    """

    # -- task writes ------------------------------------------------------------------
    async def write(self, style: str, task_id: str, steps: Sequence[Step], *, request_id: str,
                    expect: Expect = Expect.PRESENT, if_match: frozenset[int] | None = None,
                    unmodified_since: datetime | None = None, created: str | None = None) -> Task | None:
        """Run *steps* ``(actor, mutate)`` in order on the task, in one transaction: each
        step's mutation gets the document the step before left, and each step that changes
        it is its own audit row (and version). *expect*, *if_match* (versions),
        *unmodified_since* (HTTP's whole seconds) and *created* (:attr:`Task.created`: the
        same life of the task, not one created again under its id since) are checked
        against the stored task before the first step; each failed check is a
        PreconditionFailed. When any step raises, nothing of the write is stored. Returns
        the task after the last step (None when deleted or absent)."""
        ...

    async def create(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        """Insert a new task; Conflict if the id is taken."""
        ...

    async def create_numbered(self, style: str, build: Callable[[int], Doc], *, actor: str,
                              request_id: str, max_id: int = 2**63 - 1) -> Task:
        """Insert a new task under the next integer id of *style*; ``build(id)`` makes its
        document. Ids are allocated inside the write transaction, in order with the other
        writes committed with it, never reused, and always above every integer id created
        in the style; past *max_id* the create is a Conflict."""
        ...

    async def put(self, style: str, task_id: str, doc: Doc, *, actor: str, request_id: str) -> Task:
        """Create the task or replace its document (used by import)."""
        ...

    async def update(self, style: str, task_id: str, mutate: Mutate, *, actor: str,
                     request_id: str, if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> Task:
        """Apply ``mutate(old_doc) -> new_doc`` atomically; NotFound, PreconditionFailed,
        or whatever domain error *mutate* raises. An unchanged document writes nothing."""
        ...

    async def delete(self, style: str, task_id: str, *, actor: str, request_id: str,
                     if_match: frozenset[int] | None = None,
                     unmodified_since: datetime | None = None) -> None:
        """Delete the task (a ``deleted`` audit row); NotFound, PreconditionFailed."""
        ...

    async def bulk_create(self, style: str, tasks: Iterable[tuple[str, Doc]], *, actor: str,
                          request_id: str, chunk: int = 20_000) -> int:
        """Insert many new tasks, each with the ``created`` audit row :meth:`create` would
        write, *chunk* tasks per transaction; returns how many. For loading large sets fast:
        documents are stored as given, so callers pass documents their style made. An id
        that exists → Conflict; the chunks committed before it stay. Integer ids raise the
        style's id counter, as creates do. No commit listener hears these changes."""
        ...

    # -- task reads -------------------------------------------------------------------
    async def get(self, style: str, task_id: str) -> Task | None:
        ...

    async def get_text(self, style: str, task_id: str) -> tuple[int, str] | None:
        """The version and the stored text of a task (what :attr:`Task.text` holds), None
        when there is none: for an answer that is the stored document as it is, which
        then needs neither reading the text into values nor writing them out again."""
        ...

    async def find(self, style: str, query: Query) -> tuple[list[Task], int | None]:
        """Tasks of *style* matching *query*, and the total ignoring limit/offset when
        ``query.count`` is set. ValueError for a field or enum that cannot be queried."""
        ...

    async def find_ids(self, style: str, query: Query) -> tuple[list[str], int | None]:
        """What :meth:`find` would answer without the documents: the ids of the page, in
        order, and the total when ``query.count`` is set. With :meth:`read_chunks` a list
        of large tasks is read a few at a time."""
        ...

    def read_chunks(self, style: str, ids: Sequence[str], *,
                    chunk_bytes: int = 1_048_576) -> AsyncIterator[Chunk]:
        """The tasks *ids* name, in that order, in chunks whose stored documents add up to
        about *chunk_bytes* (at least one task a chunk). Each chunk is read when the one
        before has been taken, so memory stays about a chunk whatever the page; a task
        deleted since the ids were read is left out."""
        ...

    def export(self, style: str | None = None, *, chunk: int = 500) -> AsyncIterator[Task]:
        """Every task, ordered by style and id, read in chunks (constant memory)."""
        ...

    def trails(self, *, chunk: int = 500) -> AsyncIterator[tuple[str, str, Task | None, list[Change]]]:
        """``(style, id, stored task or None, its audit rows oldest first)`` for every task
        that is stored or has audit rows (deleted tasks too), ordered by style and id, all
        from one snapshot. Meant for one-shot tools (``audit verify``)."""
        ...

    def read_snapshot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one read transaction: every read inside sees the database as it was when
        the first one ran, whatever is committed meanwhile; writers are not blocked. For
        one-shot tools (export, audit verify): the server's reads would all see the same
        stale snapshot. Nested, the outer snapshot holds."""
        ...

    async def audit(self, *, style: str | None = None, task_id: str | None = None,
                    limit: int | None = None, newest_first: bool = True,
                    after: int | None = None, before: int | None = None,
                    action: str | None = None, max_bytes: int | None = None) -> list[Change]:
        """Audit rows, optionally of one style and task, by sequence number; *after* and
        *before* bound the sequence numbers (exclusive), for reading the trail in pages
        and for following it from a known point (the event feed); *action* keeps only
        rows of that action (``created``: where each life of a task began). With
        *max_bytes*, the rows stop before the first whose patch and undo would take those
        of the rows before it to *max_bytes* bytes (the first row always comes): a page
        that ends early is not the end of the trail, only an empty one is."""
        ...

    async def count_tasks(self, style: str | None = None) -> int:
        ...

    async def count_by_style(self) -> dict[str, int]:
        ...

    async def count_audited_tasks(self) -> int:
        """How many tasks have an audit trail (deleted ones too): what :meth:`trails`
        walks, unless tasks were stored behind the store's back."""
        ...

    async def ensure_indexes(self, style: str, fields: Sequence[str], *, then: str | None = None) -> None:
        """Indexes serving filters and sorts on each of *fields* of *style*'s documents,
        each over that style's rows only; with *then*, ordered by that field next, so that
        ``field = x ORDER BY then`` reads one page of the answer. Idempotent: a restart
        changes nothing. ValueError for a style or field that is not a plain name."""
        ...

    async def purge_deleted(self, before: str) -> tuple[int, int]:
        """Drop the audit rows of every life of a task deleted before *before* (an audit
        time, as :func:`gateway.clock.now_iso` writes them), with its grave, giving its bytes
        back to its owner: how many lives and rows went. A life no active webhook has been
        given yet stays (its events are still owed), a live task keeps its present life,
        and the trail keeps its newest row (the next change is numbered after it). A few
        hundred lives per transaction, so that writers wait little."""
        ...

    async def ensure_owner(self, style: str, field: str) -> None:
        """Name the field of *style*'s documents that holds a task's owner (a member path
        such as ``$.launcher``; a text value, or an integer taken as its digits): what
        :attr:`Quota.owner` is compared with. The store counts each owner's tasks and their
        bytes (documents and audit rows) in every write's transaction from then on; naming
        another field than before recounts the style once. Idempotent."""
        ...

    async def usage(self, style: str, owner: str) -> tuple[int, int]:
        """What *owner* holds in *style*: its tasks, and the bytes of their documents and
        audit rows (what a :class:`Quota` limits)."""
        ...

    # -- users, tokens, OAuth clients -------------------------------------------------
    async def count_users(self) -> int:
        ...

    async def add_user(self, name: str, role: str, password_hash: str | None,
                       token: tuple[str, bool, int | None, str] | None = None, *,
                       associate_id: int | None = None) -> None:
        """Add a user, and optionally its first token ``(hash, read_only, expires, source)``;
        Conflict when the name is taken."""
        ...

    async def get_user(self, name: str) -> User | None:
        ...

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None:
        """Store a token hash (Conflict for an unknown user); with *purge_before*, also drop
        tokens expired before then."""
        ...

    async def find_token(self, token_hash: str) -> TokenRow | None:
        """The token with this hash and its user. A change made through this store shows at
        once; one made by another process may take up to about a second. Callers check
        ``expires`` themselves, so expiry is exact."""
        ...

    async def delete_token(self, token_hash: str) -> None:
        ...

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        """Every stored token (of *user*), oldest first."""
        ...

    async def set_password(self, name: str, password_hash: str | None) -> bool:
        """Replace the user's password hash and end its browser sessions; False for an unknown user."""
        ...

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disable (or enable) the user; False for an unknown user. :meth:`find_token` and
        :meth:`get_user` answer a disabled user with ``User.disabled`` set."""
        ...

    async def delete_user(self, name: str) -> bool:
        """Delete the user with its tokens and OAuth clients (its tasks and audit rows stay);
        False for an unknown user."""
        ...

    async def add_oauth_client(self, client_id: str, secret_hash: str, user: str) -> None:
        ...

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        ...

    async def list_oauth_clients(self) -> list[OAuthClient]:
        """Every OAuth client, by client id."""
        ...

    async def delete_oauth_client(self, client_id: str) -> bool:
        """False for an unknown client. Tokens it was issued stay until they expire or are revoked."""
        ...

    # -- webhooks: subscriptions, their cursors and the delivery log -----------------------
    async def create_hook(self, style: str, hook_id: str | None, build: Callable[[str], Doc], *,
                          active: bool) -> Hook:
        """Store a new subscription, ``build(id)`` its document, its cursor the newest audit
        seq (it hears what commits from now on). *hook_id* None: the hook's own number,
        never reused, is its id. Conflict when the id is taken."""
        ...

    async def list_hooks(self, style: str | None = None) -> list[Hook]:
        """Every subscription (of *style*), oldest first."""
        ...

    async def get_hook(self, style: str, hook_id: str) -> Hook | None:
        ...

    async def hook_by_num(self, num: int) -> Hook | None:
        ...

    async def replace_hook(self, style: str, hook_id: str, doc: Doc, *, active: bool) -> Hook | None:
        """Replace the document; a hook made active again starts from the newest audit seq
        with no failures (what it missed while stopped is not sent). None when absent."""
        ...

    async def delete_hook(self, style: str, hook_id: str) -> bool:
        """Delete the subscription and its delivery log rows; False when absent."""
        ...

    async def advance_hook(self, num: int, *, expected_cursor: int, cursor: int, failures: int,
                           log: Sequence[Delivery], disable: Doc | None = None, keep_log: int = 10_000) -> bool:
        """The dispatcher's progress in one transaction: the cursor and failure count
        (only when the cursor is still *expected_cursor*: an admin's change meanwhile wins),
        the log rows (the log keeps its newest *keep_log* rows), and with *disable* the
        hook's new document, inactive. False when the hook moved or is gone."""
        ...

    async def delivery_log(self, *, hook: int | None = None, limit: int = 100) -> list[Delivery]:
        """The newest delivery log rows (of one hook), newest first."""
        ...

    async def last_seq(self) -> int:
        """The newest audit seq (0 for an empty trail)."""
        ...

    def lock_dispatcher(self) -> bool:
        """Try to become this database's one webhook dispatcher, across processes; True
        while held (asking again is cheap). The lock goes with the process, however it ends."""
        ...

    # -- the store itself ---------------------------------------------------------------
    def on_commit(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """Call *listener* with the changes of every commit, after the commit. A listener
        that raises is logged; the others still hear the commit."""
        ...

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        """Call *listener(writes, seconds)* after every committed batch of task writes."""
        ...

    def on_other_commit(self, listener: Callable[[], None]) -> None:
        """Call *listener* when another gateway may have committed task writes, as soon as
        the store hears of it, so that a follower of the trail reads it at once rather than
        at its next poll. PostgreSQL hears every batch (a notification at its commit);
        SQLite hears nothing (a file tells no one), and its followers poll."""
        ...

    async def probe_write(self) -> None:
        """A write through the task write path that changes nothing: it proves the writer
        runs and can take the database's write lock."""
        ...

    async def schema_version(self) -> int:
        ...

    def hold(self, name: str) -> bool:
        """Whether this store now holds the lease *name*, of which at most one store on the
        database (in any process) holds each at a time: for work that must run once per
        service, such as a sweeper. Held until the store closes or its process ends;
        asking again while held is True."""
        ...

    async def close(self) -> None:
        """Finish every queued write, then release the database; later writes are
        InternalError. Closing twice is allowed."""
        ...
