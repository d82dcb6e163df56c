"""Who is calling: passwords, tokens, sessions, and the OAuth2 token endpoint.

One concept per module:

- :mod:`~gateway.auth.hashing`: scrypt password hashes; random secrets, stored as SHA-256.
- :mod:`~gateway.auth.limiter`: secret checks admitted per client address (an IPv6 /64),
  failures and checks under way counted, and a ceiling on checks at once (429 beyond).
- :mod:`~gateway.auth.authenticator`: credentials → :class:`Principal`, and the middleware
  that puts one on every request to a route not marked :func:`public`.
- :mod:`~gateway.auth.sessions`: ``POST /login`` and ``POST /logout`` and their routes.
- :mod:`~gateway.auth.oauth`: ``POST /oauth/token`` (client credentials) and its route.

This package re-exports what the rest of taskgate imports, so callers write
``from gateway.auth import …``. It must not decide what a principal may do to a given
task (each API style's business), and it reaches the store only through
:class:`~gateway.auth.authenticator.Accounts`, never through ``gateway.store``.
"""

from gateway.auth.authenticator import (
    AUTHENTICATOR,
    PRINCIPAL,
    REQUEST_CLOCK,
    SESSION_COOKIE,
    XSRF_COOKIE,
    XSRF_HEADER,
    Accounts,
    Authenticator,
    Principal,
    TokenClock,
    auth_middleware,
    authorize,
    public,
    reads_by_post,
    xsrf_token,
)
from gateway.auth.hashing import hash_password, new_secret, secret_hash, verify_password
from gateway.auth.limiter import FailureLimiter, client_address
from gateway.auth.oauth import oauth_token
from gateway.auth.sessions import login, logout

__all__ = ["Principal", "PRINCIPAL", "Accounts", "Authenticator", "AUTHENTICATOR", "auth_middleware", "authorize",
           "public",
           "reads_by_post", "hash_password", "verify_password", "new_secret", "secret_hash", "FailureLimiter",
           "client_address", "oauth_token", "login", "logout", "SESSION_COOKIE", "XSRF_COOKIE", "XSRF_HEADER",
           "xsrf_token", "REQUEST_CLOCK", "TokenClock"]
