"""The OAuth2 token endpoint: ``POST /oauth/token``, client credentials (RFC 6749 §4.4).

Owns the handler, its RFC 6749 error body (``{"error": …, "error_description": …}``,
never a vendor's), and :func:`add_routes`, which registers it as ``oauth:token``. An
access token it issues is an ordinary taskgate token (``source`` "oauth") that expires
after ``auth.token_ttl_seconds``.

Must not accept any grant but client credentials, store a client secret (only its hash
is kept), or let a caller find out a secret faster than the failure limiter allows:
every wrong secret counts as a failed sign-in of the client's address, and every check
of a secret is admitted by the limiter when it happens (after the body is read).
"""

from __future__ import annotations

import base64

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway import errors
from gateway.auth.authenticator import AUTHENTICATOR, REQUEST_CLOCK, public
from gateway.auth.limiter import client_address
from gateway.codecs import BODY_ABANDONED, body_timeout

__all__ = ["oauth_token", "add_routes"]


@public
async def oauth_token(request: web.Request) -> web.Response:
    """``POST /oauth/token``: OAuth2 client credentials (RFC 6749 §4.4).

    Parameters come from a form body, the query string, or (client id and secret) HTTP
    Basic, as SailPoint's tenants accept. Errors use RFC 6749's ``{"error": …}`` shape.
    """
    authenticator = request.app[AUTHENTICATOR]
    try:  # a locked address is refused before its body is read; the check itself is admitted below
        authenticator.limiter.check(client_address(request))
    except errors.TooManyRequests as exc:
        return _oauth_error(429, "slow_down", exc.message, exc.headers)
    params: dict[str, str] = dict(request.query)
    if request.can_read_body:
        ctype = request.content_type
        if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return _oauth_error(400, "invalid_request", "send the parameters as a form or in the query")
        try:
            async with body_timeout(request):
                form = await request.post()
        except TimeoutError:
            request[BODY_ABANDONED] = True
            return _oauth_error(408, "invalid_request", "the request body did not arrive in time")
        except web.HTTPRequestEntityTooLarge:
            return _oauth_error(413, "invalid_request", "the form is too large")
        except (HttpProcessingError, web.RequestPayloadError):  # a Content-Encoding the body does not match
            request[BODY_ABANDONED] = True
            return _oauth_error(400, "invalid_request", "malformed form body")
        except (ValueError, LookupError):  # encoding, charset, multipart
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
    # admitted by the limiter at the moment of the check, after the body: a wait for the
    # body does not let a burst of requests past the limit
    try:
        client = await authenticator.by_client_secret(client_id, client_secret, client_address(request))
    except errors.Unauthorized as exc:
        return _oauth_error(401, "invalid_client", exc.message)
    except errors.TooManyRequests as exc:
        return _oauth_error(429, "slow_down", exc.message, exc.headers)
    ttl = authenticator.token_ttl_seconds
    try:
        token = await authenticator.create_token(client.user, expires_in=ttl, source="oauth",
                                                   clock=request.get(REQUEST_CLOCK))
    except errors.ServiceUnavailable as exc:  # the token could not be stored now (a held write lock, the disk)
        return _oauth_error(503, "temporarily_unavailable", exc.message, exc.headers)
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


def add_routes(router: web.UrlDispatcher) -> None:
    """``POST /oauth/token`` on *router*, named ``oauth:token`` (its OpenAPI entry is
    :mod:`gateway.openapi`'s own)."""
    router.add_post("/oauth/token", oauth_token, name="oauth:token")
