"""Browser sessions: ``POST /login`` and ``POST /logout``, and the routes that reach them.

Owns the two handlers and :func:`add_routes`, which registers them. A session is a
taskgate token (``source`` "session") carried in an HttpOnly cookie, next to the
``XSRF-TOKEN`` cookie derived from it; both are scoped to ``server.base_path``.

Must not check a session on later requests (:mod:`gateway.auth.authenticator` does,
with the XSRF rule), nor know which vendor's error body a failure gets: the caller
names the routes, and the route's name picks the style.
"""

from __future__ import annotations

from aiohttp import web

from gateway import errors
from gateway.auth.authenticator import AUTHENTICATOR, SESSION_COOKIE, XSRF_COOKIE, public, xsrf_token
from gateway.auth.hashing import secret_hash
from gateway.auth.limiter import client_address
from gateway.codecs import decode_form, read_body

__all__ = ["login", "logout", "add_routes", "open_session", "set_session_cookies", "end_session"]


async def open_session(request: web.Request, name: str, password: str) -> tuple[str, str]:
    """Check *name* and *password* as ``POST /login`` does (the sign-in limiter first) and
    start a session: ``(session token, its XSRF token)``. Unauthorized or TooManyRequests."""
    if not name or not password:
        raise errors.BadRequest("the form needs user and password")
    authenticator = request.app[AUTHENTICATOR]
    # a locked address is refused even with a remembered success; the check itself is
    # admitted by the limiter now, after the body, and a wrong password counted there
    authenticator.limiter.check(client_address(request))
    principal = await authenticator.by_password(name, password, client_address(request))
    session = await authenticator.create_token(principal.name, expires_in=authenticator.token_ttl_seconds,
                                               source="session")
    return session, xsrf_token(session)


def set_session_cookies(request: web.Request, response: web.StreamResponse, session: str, xsrf: str,
                        path: str) -> None:
    """The HttpOnly session cookie and the ``XSRF-TOKEN`` cookie on *response*, scoped to
    *path* (``server.base_path``, or ``/``)."""
    ttl = request.app[AUTHENTICATOR].token_ttl_seconds
    response.set_cookie(SESSION_COOKIE, session, httponly=True, path=path, samesite="Strict",
                        secure=request.secure, max_age=ttl)
    response.set_cookie(XSRF_COOKIE, xsrf, path=path, samesite="Strict", secure=request.secure, max_age=ttl)


async def end_session(request: web.Request, response: web.StreamResponse, path: str) -> None:
    """Forget the session of the request's cookie, and clear both cookies on *response*."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        await request.app[AUTHENTICATOR].store.delete_token(secret_hash(session))
    response.del_cookie(SESSION_COOKIE, path=path)
    response.del_cookie(XSRF_COOKIE, path=path)


@public
async def login(request: web.Request) -> web.Response:
    """``POST /login`` with form fields ``user`` and ``password``: starts a browser session.

    Sets the HttpOnly session cookie and the ``XSRF-TOKEN`` cookie that scripts read and
    echo as ``X-XSRF-TOKEN``; the token is also in the body, like SuperOffice's hidden input.
    """
    _ctype, body = await read_body(request, ("application/x-www-form-urlencoded",))
    fields = dict(decode_form(body))
    name = fields.get("user", "")
    session, xsrf = await open_session(request, name, fields.get("password", ""))
    response = web.json_response({"user": name, "xsrf_token": xsrf}, headers={"Cache-Control": "no-store"})
    # scoped to server.base_path (what precedes /login), so other sites on the host never get them
    set_session_cookies(request, response, session, xsrf, request.path[:-len("/login")] or "/")
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /logout``: ends the session of the cookie (the XSRF rule applies as usual)."""
    response = web.Response(status=204)
    await end_session(request, response, request.path[:-len("/logout")] or "/")
    return response


def add_routes(router: web.UrlDispatcher, *, name_prefix: str) -> None:
    """``POST /login`` and ``POST /logout`` on *router*, named ``<name_prefix>:login`` and
    ``<name_prefix>:logout``: the style of that prefix renders their errors and describes
    them in the OpenAPI document."""
    router.add_post("/login", login, name=f"{name_prefix}:login")
    router.add_post("/logout", logout, name=f"{name_prefix}:logout")
