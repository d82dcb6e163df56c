"""Who is calling: credentials in, a :class:`Principal` out, on every request.

Schemes: ``Bearer`` and ``SOTicket`` (a taskgate token either way; SOTicket also needs an
``SO-AppToken`` when ``superoffice.app_tokens`` is set), ``Basic``, and, without an
``Authorization`` header, a session cookie from ``POST /login`` whose requests must echo
the ``XSRF-TOKEN`` cookie in an ``X-XSRF-TOKEN`` header (SuperOffice's browser rule).

Owns :class:`Authenticator` (header or session cookie → principal, token issue), the
:func:`auth_middleware` that puts a principal on every request to a route not marked
:func:`public` and refuses changes made with a read-only token, the route marks, and the
names of the session and XSRF cookies with the rule that ties them together.

Must not decide what a principal may do to a given task (each API style's business),
issue or end sessions (:mod:`gateway.auth.sessions`), or hold SQL: accounts are read
and written through the small :class:`Accounts` part of the store.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import errors
from gateway.auth.hashing import hash_password, new_secret, secret_hash, verify_password
from gateway.auth.limiter import FailureLimiter, client_address
from gateway.model import OAuthClient, TokenRow, User

__all__ = ["Principal", "PRINCIPAL", "REQUEST_CLOCK", "TokenClock", "Accounts", "Authenticator", "AUTHENTICATOR",
           "Handler", "public", "reads_by_post", "auth_middleware", "authorize", "SESSION_COOKIE", "XSRF_COOKIE",
           "XSRF_HEADER", "xsrf_token"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BASIC_CACHE_SECONDS = 60.0
_BASIC_CACHE_SIZE = 1024
SESSION_COOKIE = "taskgate_session"
XSRF_COOKIE = "XSRF-TOKEN"
XSRF_HEADER = "X-XSRF-TOKEN"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str  # admin | user
    read_only: bool = False
    associate_id: int | None = None  # the SuperOffice associate this user is, if any

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


PRINCIPAL = web.RequestKey("principal", Principal)


class Accounts(Protocol):
    """What authentication needs of the store: users, token hashes and OAuth clients."""

    async def get_user(self, name: str) -> User | None: ...

    async def find_token(self, token_hash: str) -> TokenRow | None: ...

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None: ...

    async def delete_token(self, token_hash: str) -> None: ...

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None: ...


def xsrf_token(session: str) -> str:
    """The XSRF token that goes with *session*: derived from it, so nothing more is stored,
    and a cookie planted by another site cannot match it."""
    return hmac.new(session.encode("utf-8", "surrogatepass"), b"xsrf", hashlib.sha256).hexdigest()


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or raises Unauthorized."""

    def __init__(self, store: Accounts, *, token_ttl_seconds: int,
                 app_tokens: frozenset[str] = frozenset(), limiter: FailureLimiter | None = None) -> None:
        self.store = store
        self.token_ttl_seconds = token_ttl_seconds
        self.app_tokens = app_tokens
        self.limiter = limiter if limiter is not None else FailureLimiter(0, 1, 1)
        # scrypt is slow by design; remember recent successes so that a client sending
        # Basic on every request pays it once a minute, not every time.
        # Each hit still reads the user's row (a point lookup, not scrypt), so the cache
        # never outlives a password change, a disable or a delete.
        self._basic_ok: dict[str, tuple[float, Principal, str]] = {}
        self._basic_pending: dict[str, asyncio.Future[Principal]] = {}
        # a token's hash -> the row the store found and the principal made of it
        self._principals: dict[str, tuple[TokenRow, Principal]] = {}

    async def authenticate_request(self, request: web.Request) -> Principal:
        """The caller of *request*: its Authorization header, else its session cookie."""
        header = request.headers.get("Authorization")
        if header:
            # the app token first, so an answer never tells whether the ticket was valid
            if header.lstrip()[:9].lower() == "soticket " and self.app_tokens:
                app_token = request.headers.get("SO-AppToken", "")
                if not any(hmac.compare_digest(app_token.encode("utf-8", "surrogatepass"), t.encode())
                           for t in self.app_tokens):
                    raise errors.Unauthorized("SOTicket needs a known SO-AppToken header")
            if header.lstrip()[:6].lower() == "basic " and request.method not in _SAFE_METHODS \
                    and _cross_site(request):
                # a browser sends the Basic credentials it was given at a 401's prompt with
                # any site's form too: only cookies and Basic ride along so, and the
                # cookie's requests carry the XSRF token; no API client sends these headers
                raise errors.Forbidden("a browser's request from another site may not change anything with "
                                       "Basic credentials")
            return await self.authenticate(header, client_address(request), clock=request.get(REQUEST_CLOCK))
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            expected = xsrf_token(session)
            sent = request.headers.get(XSRF_HEADER, "")
            cookie = request.cookies.get(XSRF_COOKIE, "")
            if not (hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())
                    and hmac.compare_digest(cookie.encode("utf-8", "surrogatepass"), expected.encode())):
                raise errors.Unauthorized(f"a session needs an {XSRF_HEADER} header equal to the {XSRF_COOKIE} cookie")
            return await self.by_token(session, clock=request.get(REQUEST_CLOCK))
        raise errors.Unauthorized("no authorization header")

    async def authenticate(self, header: str | None, address: str = "", *,
                           clock: TokenClock | None = None) -> Principal:
        if not header:
            raise errors.Unauthorized("no authorization header")
        scheme, _, value = header.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme in ("bearer", "soticket") and value:
            return await self.by_token(value, clock=clock)
        if scheme == "basic" and value:
            try:
                name, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
                self.limiter.failed(address)
                raise errors.Unauthorized("malformed Basic credentials") from None
            if not sep:
                self.limiter.failed(address)
                raise errors.Unauthorized("malformed Basic credentials")
            return await self.by_password(name, password, address)
        raise errors.Unauthorized("unsupported authorization scheme")

    async def by_token(self, token: str, *, clock: TokenClock | None = None) -> Principal:
        """The token's user; expired once the system's time reaches its expiry, or, with a
        test namespace's *clock*, once that clock's time for it does, whichever comes
        first: a namespace's clock can bring a token's end forward, never put it off."""
        key = secret_hash(token)
        row = await self.store.find_token(key)
        if row is None:
            raise errors.Unauthorized("invalid token")
        if row.expires is not None and (row.expires <= time.time()
                                        or (clock is not None and row.expires <= clock.token_time(key))):
            raise errors.Unauthorized("token expired")
        if row.user.disabled:
            raise errors.Unauthorized("user disabled")
        # the store hands out the same row while it remembers it (within its revocation
        # bound, and until an account change of its own): the same row, the same principal
        cached = self._principals.get(key)
        if cached is not None and cached[0] is row:
            return cached[1]
        principal = Principal(row.user.name, row.user.role, row.read_only, row.user.associate_id)
        if len(self._principals) >= _BASIC_CACHE_SIZE:
            self._principals.clear()
        self._principals[key] = (row, principal)
        return principal

    async def by_password(self, name: str, password: str, address: str = "") -> Principal:
        key = hashlib.sha256(f"{name}\0{password}".encode("utf-8", "surrogatepass")).hexdigest()
        cached = self._basic_ok.get(key)
        if cached and cached[0] > time.monotonic():
            # the remembered success spares scrypt, not the user's row: a password changed,
            # a user disabled or deleted, in any process, ends it at the next request
            user = await self.store.get_user(name)
            if user is not None and not user.disabled and user.password_hash == cached[2]:
                return cached[1]
            self._basic_ok.pop(key, None)
        # Concurrent requests with the same credentials share one check: a client opening
        # 32 connections at once pays scrypt (and its 16 MiB of memory) once, not 32 times.
        pending = self._basic_pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._check_password(key, name, password, address))
            self._basic_pending[key] = pending
            pending.add_done_callback(lambda _done: self._basic_pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _check_password(self, key: str, name: str, password: str, address: str) -> Principal:
        async with self.limiter.admit(address):  # a wrong password counts before the slot is freed
            return await self._verify(key, name, password)

    async def by_client_secret(self, client_id: str, client_secret: str, address: str = "") -> OAuthClient:
        """The OAuth client *client_id* if *client_secret* is its secret; else Unauthorized,
        counted as a failure of *address*. Admitted by the limiter like a password check."""
        async with self.limiter.admit(address):
            client = await self.store.get_oauth_client(client_id)
            if client is None or not hmac.compare_digest(client.secret_hash, secret_hash(client_secret)):
                raise errors.Unauthorized("unknown client or wrong secret")
        user = await self.store.get_user(client.user)
        if user is None or user.disabled:  # a client acts as its user, and no more than the user may
            raise errors.Unauthorized("the client's user is disabled")
        return client

    async def _verify(self, key: str, name: str, password: str) -> Principal:
        user = await self.store.get_user(name)
        # Unknown users and users without a password are checked against a dummy hash, so
        # timing does not tell which names exist. scrypt releases the GIL: run it off the loop.
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, password, stored)
        if not ok or user is None or stored is _DUMMY_HASH:
            raise errors.Unauthorized("invalid user name or password")
        if user.disabled:  # told only to whom knows the password
            raise errors.Unauthorized("user disabled")
        principal = Principal(user.name, user.role, associate_id=user.associate_id)
        if len(self._basic_ok) >= _BASIC_CACHE_SIZE:
            self._basic_ok.clear()
        self._basic_ok[key] = (time.monotonic() + _BASIC_CACHE_SECONDS, principal, stored)
        return principal

    async def create_token(self, user: User | str, *, read_only: bool = False,
                           expires_in: int | None = None, source: str = "cli", clock: TokenClock | None = None) -> str:
        """A new token for *user*; only its hash is stored. Returns the token, once. Its
        expiry counts from the system's time, which also purges the tokens that expired
        (a test namespace's *clock*, which any test may move, decides neither: it is told
        of the token, so that it counts the token's life on its own time too)."""
        name = user.name if isinstance(user, User) else user
        token = new_secret()
        key = secret_hash(token)
        now = int(time.time())
        await self.store.add_token(name, key, read_only=read_only,
                                   expires=None if expires_in is None else now + expires_in,
                                   source=source, purge_before=now if expires_in is not None else None)
        if clock is not None:
            clock.minted(key)
        return token


_DUMMY_HASH = hash_password(secrets.token_hex(8))


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without credentials."""
    handler.taskgate_public = True  # type: ignore[attr-defined]
    return handler


def reads_by_post(handler: Handler) -> Handler:
    """Mark a POST handler that read-only tokens may call because it refuses their
    writes itself (SuperOffice's Agents calls are all POST, most of them reads)."""
    handler.taskgate_reads_by_post = True  # type: ignore[attr-defined]
    return handler


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cross_site(request: web.Request) -> bool:
    """Whether a browser says the request comes from another site: ``Sec-Fetch-Site``
    (every current browser sends it), else an ``Origin`` that is not this host's."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("cross-site", "same-site")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin.strip().lower() == "null" or origin.partition("://")[2].lower() != request.host.lower()


class TokenClock(Protocol):
    """A test namespace's clock as token expiry reads it
    (:class:`gateway.testing.clock.NamespaceClock`)."""

    def minted(self, token_hash: str) -> None: ...

    def token_time(self, token_hash: str) -> float: ...


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
#: the clock of a request in a test namespace (:mod:`gateway.testing`): token expiry reads it
REQUEST_CLOCK = web.RequestKey("request_clock", TokenClock)


async def authorize(request: web.Request) -> None:
    """Put the caller's :class:`Principal` on *request*, unless its route is :func:`public`
    (or no route matched); Unauthorized or Forbidden otherwise. What
    :func:`auth_middleware` does before the handler, for a middleware that does more."""
    route_handler = request.match_info.handler
    if getattr(route_handler, "taskgate_public", False) or request.match_info.http_exception is not None:
        return
    authenticator = request.app[AUTHENTICATOR]
    # passwords can be guessed, tokens cannot: only Basic is limited and counted (a
    # locked address is refused here at once; the password check itself is admitted,
    # and its failure counted, by the limiter in by_password)
    if request.headers.get("Authorization", "").strip()[:6].lower() == "basic ":
        authenticator.limiter.check(client_address(request))
    principal = await authenticator.authenticate_request(request)
    request[PRINCIPAL] = principal
    if principal.read_only and request.method not in _SAFE_METHODS \
            and not getattr(route_handler, "taskgate_reads_by_post", False):
        raise errors.Forbidden("this token is read-only")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    await authorize(request)
    return await handler(request)
