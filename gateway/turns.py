"""Turns at the expensive requests, at most a few per user at a time: lists and searches,
and writes with a large body.

A list or search may scan every task of a style and send megabytes, on the event loop's
thread, the store's reader and the encoding threads that every client shares. One user
asking for fifty at once made another user's page of 250 wait 3.9 s instead of 7 ms.
So each user runs at most ``server.max_lists_per_user`` of them at a time in a process;
the user's others wait their turn, first come first served, costing nobody else anything
but their connection. Waiting is the answer rather than a 429: the vendors' clients list
in parallel in their users' tests, and none of them retries on its own.

A write whose body is larger than :data:`LARGE_WRITE_BYTES` (or of unknown length) is
decoded, validated, patched, diffed and stored on the same thread, in steps of
milliseconds each: one user's 32 concurrent 950 KB webMethods PUTs held ``/healthz`` for
0.3 s, their bodies all ready at once. So each caller runs at most
``server.max_large_writes_per_user`` of them at a time (:func:`_large_write_turn`, taken
by :func:`large_write_middleware` before the body is read, so that the bodies still to
come stay in their connections); small writes never wait.

Owns one semaphore per user with a request running or waiting, and nothing once the user
has none (the memory follows the requests in flight, not the users ever seen). It knows
nothing of routes or styles: handlers take a turn with :func:`takes_turns` or
:func:`caller_turn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway import errors
from gateway.auth import PRINCIPAL
from gateway.auth.limiter import client_key
from gateway.context import CONFIG, client_left, principal

__all__ = ["Turns", "LIST_TURNS", "WRITE_TURNS", "LARGE_WRITE_BYTES", "caller_turn", "takes_turns",
           "large_write_middleware"]


class _User:
    __slots__ = ("slots", "holders", "running")

    def __init__(self, per_user: int) -> None:
        self.slots = asyncio.Semaphore(per_user)  # first come, first served
        self.holders = 0  # requests running or waiting: the entry goes when none is left
        self.running = 0


class Turns:
    """*per_user* requests (lists and searches, or large writes) at once per user name (0: no limit)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._users: dict[str, _User] = {}
        #: lists running and waiting, over all users
        self.running = 0
        self.waiting = 0

    def users(self) -> int:
        """Users with a list running or waiting."""
        return len(self._users)

    def waiting_for(self, user: str) -> int:
        """How many of *user*'s lists wait for a turn."""
        entry = self._users.get(user)
        return 0 if entry is None else entry.holders - entry.running

    @contextlib.asynccontextmanager
    async def turn(self, user: str, gone: Callable[[], bool] | None = None) -> AsyncIterator[None]:
        """Hold one of *user*'s turns while the body runs (waiting for it first, in order).
        *gone*: whether the client has left, looked at every :data:`LOOK_SECONDS` while
        waiting and once the turn is had: ClientClosedRequest then, and the turn is not
        taken (a server does not cancel a request whose client left: without this, such a
        request would keep its place, its connection, and run its list for nobody)."""
        if self.per_user <= 0:
            yield
            return
        entry = self._users.get(user)
        if entry is None:
            entry = self._users[user] = _User(self.per_user)
        entry.holders += 1
        try:
            self.waiting += 1
            try:
                await _acquire(entry.slots, gone)
            finally:
                self.waiting -= 1
            self.running += 1
            entry.running += 1
            try:
                yield
            finally:
                self.running -= 1
                entry.running -= 1
                entry.slots.release()
        finally:
            entry.holders -= 1
            if entry.holders == 0:
                del self._users[user]


async def _acquire(slots: asyncio.Semaphore, gone: Callable[[], bool] | None) -> None:
    """*slots* acquired, in its order; ClientClosedRequest, holding nothing, once *gone*."""
    if gone is None or not slots.locked():
        await slots.acquire()
    else:
        waiter = asyncio.ensure_future(slots.acquire())
        try:
            while not (await asyncio.wait({waiter}, timeout=LOOK_SECONDS))[0]:
                if gone():
                    raise errors.ClientClosedRequest("the client left while its request waited for a turn")
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                slots.release()  # had just been given the turn
            else:
                waiter.cancel()
            raise
    if gone is not None and gone():
        slots.release()
        raise errors.ClientClosedRequest("the client left while its request waited for a turn")


LIST_TURNS = web.AppKey("list_turns", Turns)
WRITE_TURNS = web.AppKey("write_turns", Turns)
#: a write's body above this many bytes takes a turn (see the module's docstring)
LARGE_WRITE_BYTES = 64 * 1024
_WRITES = frozenset({"POST", "PUT", "PATCH"})
#: how often a waiting request looks whether its client is still there
LOOK_SECONDS = 0.5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def caller_turn(request: web.Request, user: str | None = None) -> AsyncIterator[None]:
    """One of the turns of *user* (default: the signed-in caller's name, whoever it acts
    for) held while the body runs."""
    turns = request.config_dict.get(LIST_TURNS)
    if turns is None:
        yield
        return
    async with turns.turn(principal(request).name if user is None else user, lambda: client_left(request)):
        yield


def takes_turns(handler: Handler) -> Handler:
    """*handler* run in one of its caller's turns, the streaming of its answer included."""
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        async with caller_turn(request):
            return await handler(request)
    return run


def _large_write_turn(request: web.Request) -> contextlib.AbstractAsyncContextManager[None] | None:
    """One of the caller's turns at large writes if *request* is a write with a body over
    :data:`LARGE_WRITE_BYTES` (or of unknown length: chunked, or compressed, which aiohttp
    inflates), else None: nothing to wait for. A body over ``server.max_body_bytes`` takes
    none: it is refused unread. Taken after authentication: the turns are the signed-in
    caller's; a caller signed in as nobody (a public route: the OAuth token call, the
    dashboard's sign-in) takes its address's, an IPv6 address's /64 as one."""
    if request.method not in _WRITES or not request.body_exists:
        return None
    length = request.content_length
    if length is not None and length <= LARGE_WRITE_BYTES and \
            request.headers.get("Content-Encoding", "identity").lower() == "identity":
        return None
    config = request.config_dict
    turns = config.get(WRITE_TURNS)
    if turns is None or (length is not None and length > config[CONFIG].server.max_body_bytes):
        return None
    who = request.get(PRINCIPAL)
    # as the sign-in limiter counts a client: an IPv6 /64 as one
    caller = who.name if who is not None else f"@{client_key(request.remote or '')}"
    return turns.turn(caller, lambda: client_left(request))


@web.middleware
async def large_write_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """*handler* in :func:`_large_write_turn`, if the request takes one: called by the one
    request middleware, and a middleware of its own in the stacks that do not have that
    one (a ``server.base_path``, testing on)."""
    turn = _large_write_turn(request)
    if turn is None:
        return await handler(request)
    async with turn:
        return await handler(request)
