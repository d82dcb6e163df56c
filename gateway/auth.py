"""Who is calling: users, passwords, tokens, sessions, and the OAuth2 token endpoint.

Schemes: ``Bearer`` and ``SOTicket`` (a taskgate token either way; SOTicket also needs an
``SO-AppToken`` when ``superoffice.app_tokens`` is set), ``Basic``, and, without an
``Authorization`` header, a session cookie from ``POST /login`` whose requests must echo
the ``XSRF-TOKEN`` cookie in an ``X-XSRF-TOKEN`` header (SuperOffice's browser rule).

Passwords are hashed with scrypt (standard library); tokens, sessions and client secrets
are random and stored only as SHA-256 hashes, compared in constant time. The
:func:`auth_middleware` puts a :class:`Principal` on every request to a route that is
not marked :func:`public`, and refuses changes made with a read-only token. What a
principal may do to a given task is each API style's business, not this module's.

Failed password and client-secret checks (Basic, ``/login``, ``/oauth/token``) are counted
per client address (``request.remote``, so a trusted-proxy rewrite of it composes) by a
:class:`FailureLimiter`; an address over ``auth.max_failures`` in a window gets 429 with
``Retry-After`` on those until the window ends. Unknown tokens are not counted: a 256-bit
random token cannot be guessed, and counting them would let one client with a stale token
lock out everyone behind its address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from gateway import errors
from gateway.codecs import body_timeout, decode_form, read_body
from gateway.model import User
from gateway.store import Store

__all__ = ["Principal", "Authenticator", "hash_password", "verify_password", "new_secret",
           "secret_hash", "auth_middleware", "public", "reads_by_post", "PRINCIPAL", "oauth_token", "login", "logout",
           "SESSION_COOKIE", "XSRF_COOKIE", "xsrf_token", "FailureLimiter"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
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


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + base64.b64encode(salt).decode() + "$" + \
        base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                  p=int(p), dklen=len(base64.b64decode(digest)))
    except ValueError:  # includes binascii.Error
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def new_secret(prefix: str = "tg_") -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    # surrogatepass: a header carrying undecodable bytes hashes to something unknown, not a crash
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def xsrf_token(session: str) -> str:
    """The XSRF token that goes with *session*: derived from it, so nothing more is stored,
    and a cookie planted by another site cannot match it."""
    return hmac.new(session.encode("utf-8", "surrogatepass"), b"xsrf", hashlib.sha256).hexdigest()


class FailureLimiter:
    """Failed credential checks per client address, counted in fixed windows that start at
    an address's first failure. In memory, one process; at most *max_clients* addresses are
    remembered (the one that failed least recently is forgotten first), so a flood from
    many addresses costs bounded memory. *max_failures* 0 turns the limit off."""

    def __init__(self, max_failures: int, window_seconds: float, max_clients: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window, self.max_clients = max_failures, window_seconds, max_clients
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window end, failures), oldest first
        self._running: dict[str, int] = {}  # address -> password checks under way (entries live while > 0)

    def __len__(self) -> int:
        return len(self._failures)

    def _window(self, address: str) -> tuple[float, int]:
        """(end, failures) of *address*'s current window; (0, 0) when it has none, and an
        ended window is forgotten."""
        entry = self._failures.get(address)
        if entry is not None and self._clock() >= entry[0]:
            del self._failures[address]
            entry = None
        return entry or (0.0, 0)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until *address* may try again, or None when it may now."""
        end, count = self._window(address)
        if not self.max_failures or count < self.max_failures:
            return None
        return max(1, math.ceil(end - self._clock()))

    def check(self, address: str) -> None:
        """TooManyRequests (with Retry-After) when *address* is over its limit."""
        wait = self.retry_after(address)
        if wait is not None:
            raise errors.TooManyRequests(f"too many failed sign-ins from this address; try again in {wait} s",
                                         headers={"Retry-After": str(wait)})

    @contextlib.contextmanager
    def running(self, address: str) -> Iterator[None]:
        """One password check by *address* while it runs. Refused (429) when the address's
        failures plus its checks still under way would reach the limit: failures are known
        only once scrypt answers, so a burst of concurrent guesses would otherwise all pass
        :meth:`check` before the first of them counted."""
        if not self.max_failures:
            yield
            return
        _end, failures = self._window(address)
        if failures + self._running.get(address, 0) >= self.max_failures:
            raise errors.TooManyRequests("too many sign-ins under way from this address; try again in 1 s",
                                         headers={"Retry-After": "1"})
        self._running[address] = self._running.get(address, 0) + 1
        try:
            yield
        finally:
            left = self._running.pop(address) - 1
            if left:
                self._running[address] = left

    def failed(self, address: str) -> None:
        if not self.max_failures:
            return
        now = self._clock()
        end, count = self._failures.pop(address, (0.0, 0))
        if now >= end:
            end, count = now + self.window, 0
        self._failures[address] = (end, count + 1)  # re-inserted: the dict stays in order of last failure
        while len(self._failures) > self.max_clients:
            del self._failures[next(iter(self._failures))]


def client_address(request: web.Request) -> str:
    return request.remote or ""


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or raises Unauthorized."""

    def __init__(self, store: Store, *, token_ttl_seconds: int,
                 app_tokens: frozenset[str] = frozenset(), limiter: FailureLimiter | None = None) -> None:
        self.store = store
        self.token_ttl_seconds = token_ttl_seconds
        self.app_tokens = app_tokens
        self.limiter = limiter if limiter is not None else FailureLimiter(0, 1, 1)
        # scrypt costs tens of milliseconds by design; remember recent successes so that a
        # client sending Basic on every request pays it once a minute, not every time.
        self._basic_ok: dict[str, tuple[float, Principal]] = {}
        self._basic_pending: dict[str, asyncio.Future[Principal]] = {}

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
            return await self.authenticate(header, client_address(request))
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            expected = xsrf_token(session)
            sent = request.headers.get(XSRF_HEADER, "")
            cookie = request.cookies.get(XSRF_COOKIE, "")
            if not (hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode())
                    and hmac.compare_digest(cookie.encode("utf-8", "surrogatepass"), expected.encode())):
                raise errors.Unauthorized(f"a session needs an {XSRF_HEADER} header equal to the {XSRF_COOKIE} cookie")
            return await self.by_token(session)
        raise errors.Unauthorized("no authorization header")

    async def authenticate(self, header: str | None, address: str = "") -> Principal:
        if not header:
            raise errors.Unauthorized("no authorization header")
        scheme, _, value = header.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme in ("bearer", "soticket") and value:
            return await self.by_token(value)
        if scheme == "basic" and value:
            try:
                name, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
                raise errors.Unauthorized("malformed Basic credentials") from None
            if not sep:
                raise errors.Unauthorized("malformed Basic credentials")
            return await self.by_password(name, password, address)
        raise errors.Unauthorized("unsupported authorization scheme")

    async def by_token(self, token: str) -> Principal:
        row = await self.store.find_token(secret_hash(token))
        if row is None:
            raise errors.Unauthorized("invalid token")
        if row.expires is not None and row.expires <= time.time():
            raise errors.Unauthorized("token expired")
        return Principal(row.user.name, row.user.role, row.read_only, row.user.associate_id)

    async def by_password(self, name: str, password: str, address: str = "") -> Principal:
        key = hashlib.sha256(f"{name}\0{password}".encode("utf-8", "surrogatepass")).hexdigest()
        cached = self._basic_ok.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        # Concurrent requests with the same credentials share one check: a client opening
        # 32 connections at once pays scrypt (and its 16 MiB of memory) once, not 32 times.
        pending = self._basic_pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._check_password(key, name, password, address))
            self._basic_pending[key] = pending
            pending.add_done_callback(lambda _done: self._basic_pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _check_password(self, key: str, name: str, password: str, address: str) -> Principal:
        with self.limiter.running(address):
            return await self._verify(key, name, password)

    async def _verify(self, key: str, name: str, password: str) -> Principal:
        user = await self.store.get_user(name)
        # Unknown users and users without a password are checked against a dummy hash, so
        # timing does not tell which names exist. scrypt releases the GIL: run it off the loop.
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, password, stored)
        if not ok or user is None or stored is _DUMMY_HASH:
            raise errors.Unauthorized("invalid user name or password")
        principal = Principal(user.name, user.role, associate_id=user.associate_id)
        if len(self._basic_ok) >= _BASIC_CACHE_SIZE:
            self._basic_ok.clear()
        self._basic_ok[key] = (time.monotonic() + _BASIC_CACHE_SECONDS, principal)
        return principal

    async def create_token(self, user: User | str, *, read_only: bool = False,
                           expires_in: int | None = None, source: str = "cli") -> str:
        """A new token for *user*; only its hash is stored. Returns the token, once."""
        name = user.name if isinstance(user, User) else user
        token = new_secret()
        now = int(time.time())
        await self.store.add_token(name, secret_hash(token), read_only=read_only,
                                   expires=None if expires_in is None else now + expires_in,
                                   source=source, purge_before=now if expires_in is not None else None)
        return token


_DUMMY_HASH = hash_password(secrets.token_hex(8))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without credentials."""
    handler.taskgate_public = True  # type: ignore[attr-defined]
    return handler


def reads_by_post(handler: Handler) -> Handler:
    """Mark a POST handler that read-only tokens may call because it refuses their
    writes itself (SuperOffice's Agents calls are all POST, most of them reads)."""
    handler.taskgate_reads_by_post = True  # type: ignore[attr-defined]
    return handler


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_handler = request.match_info.handler
    if getattr(route_handler, "taskgate_public", False) or request.match_info.http_exception is not None:
        return await handler(request)
    authenticator = request.app[AUTHENTICATOR]
    # passwords can be guessed, tokens cannot: only Basic is limited and counted
    by_password = request.headers.get("Authorization", "").strip()[:6].lower() == "basic "
    if by_password:
        authenticator.limiter.check(client_address(request))
    try:
        principal = await authenticator.authenticate_request(request)
    except errors.Unauthorized:
        if by_password:
            authenticator.limiter.failed(client_address(request))
        raise
    request[PRINCIPAL] = principal
    if principal.read_only and request.method not in _SAFE_METHODS \
            and not getattr(route_handler, "taskgate_reads_by_post", False):
        raise errors.Forbidden("this token is read-only")
    return await handler(request)


@public
async def login(request: web.Request) -> web.Response:
    """``POST /login`` with form fields ``user`` and ``password``: starts a browser session.

    Sets the HttpOnly session cookie and the ``XSRF-TOKEN`` cookie that scripts read and
    echo as ``X-XSRF-TOKEN``; the token is also in the body, like SuperOffice's hidden input.
    """
    _ctype, body = await read_body(request, ("application/x-www-form-urlencoded",))
    fields = dict(decode_form(body))
    name, password = fields.get("user", ""), fields.get("password", "")
    if not name or not password:
        raise errors.BadRequest("the form needs user and password")
    authenticator = request.app[AUTHENTICATOR]
    authenticator.limiter.check(client_address(request))
    try:
        principal = await authenticator.by_password(name, password, client_address(request))
    except errors.Unauthorized:
        authenticator.limiter.failed(client_address(request))
        raise
    session = await authenticator.create_token(principal.name, expires_in=authenticator.token_ttl_seconds,
                                               source="session")
    xsrf = xsrf_token(session)
    response = web.json_response({"user": principal.name, "xsrf_token": xsrf},
                                 headers={"Cache-Control": "no-store"})
    # scoped to server.base_path (what precedes /login), so other sites on the host never get them
    common = {"path": request.path[:-len("/login")] or "/", "samesite": "Strict", "secure": request.secure,
              "max_age": authenticator.token_ttl_seconds}
    response.set_cookie(SESSION_COOKIE, session, httponly=True, **common)
    response.set_cookie(XSRF_COOKIE, xsrf, **common)
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /logout``: ends the session of the cookie (the XSRF rule applies as usual)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        await request.app[AUTHENTICATOR].store.delete_token(secret_hash(session))
    response = web.Response(status=204)
    path = request.path[:-len("/logout")] or "/"
    response.del_cookie(SESSION_COOKIE, path=path)
    response.del_cookie(XSRF_COOKIE, path=path)
    return response


@public
async def oauth_token(request: web.Request) -> web.Response:
    """``POST /oauth/token``: OAuth2 client credentials (RFC 6749 §4.4).

    Parameters come from a form body, the query string, or (client id and secret) HTTP
    Basic, as SailPoint's tenants accept. Errors use RFC 6749's ``{"error": …}`` shape.
    """
    authenticator = request.app[AUTHENTICATOR]
    wait = authenticator.limiter.retry_after(client_address(request))
    if wait is not None:
        return _oauth_error(429, "slow_down", f"too many failed attempts from this address; try again in {wait} s",
                            {"Retry-After": str(wait)})
    params: dict[str, str] = dict(request.query)
    if request.can_read_body:
        ctype = request.content_type
        if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return _oauth_error(400, "invalid_request", "send the parameters as a form or in the query")
        try:
            async with body_timeout(request):
                form = await request.post()
        except TimeoutError:
            return _oauth_error(408, "invalid_request", "the request body did not arrive in time")
        except web.HTTPRequestEntityTooLarge:
            return _oauth_error(413, "invalid_request", "the form is too large")
        except (ValueError, LookupError, HttpProcessingError, RequestPayloadError):  # encoding, charset, multipart
            return _oauth_error(400, "invalid_request", "malformed form body")
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            cid, _, csecret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
            params.setdefault("client_id", cid)
            params.setdefault("client_secret", csecret)
        except ValueError:
            authenticator.limiter.failed(client_address(request))
            return _oauth_error(401, "invalid_client", "malformed Basic credentials")
    if params.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
    if not client_id or not client_secret:
        return _oauth_error(400, "invalid_request", "client_id and client_secret are required")
    client = await authenticator.store.get_oauth_client(client_id)
    if client is None or not hmac.compare_digest(client.secret_hash, secret_hash(client_secret)):
        authenticator.limiter.failed(client_address(request))
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    ttl = authenticator.token_ttl_seconds
    token = await authenticator.create_token(client.user, expires_in=ttl, source="oauth")
    return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": ttl,
                              "scope": "sp:scopes:all"},
                             headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _oauth_error(status: int, error: str, description: str,
                 extra: dict[str, str] | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store", **(extra or {})}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="taskgate"'
    return web.json_response({"error": error, "error_description": description}, status=status,
                             headers=headers)
