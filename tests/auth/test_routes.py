"""The auth package's routes are registered by the modules that define them, and the
package keeps to its layer."""

from __future__ import annotations

import ast
from pathlib import Path

from aiohttp import web

import gateway.auth
from gateway.auth import oauth, sessions

PACKAGE = Path(gateway.auth.__file__).parent


def _routes(app: web.Application) -> list[tuple[str, str, str | None, object]]:
    return [(r.method, r.resource.canonical, r.name, r.handler) for r in app.router.routes() if r.resource]


def test_sessions_register_login_and_logout_under_the_caller_s_name():
    app = web.Application()
    sessions.add_routes(app.router, name_prefix="style")
    assert _routes(app) == [("POST", "/login", "style:login", sessions.login),
                            ("POST", "/logout", "style:logout", sessions.logout)]
    assert getattr(sessions.login, "taskgate_public", False)  # no credentials yet: that is what it takes
    assert not getattr(sessions.logout, "taskgate_public", False)  # the session (and its XSRF rule) is checked


def test_oauth_registers_the_token_endpoint():
    app = web.Application()
    oauth.add_routes(app.router)
    assert _routes(app) == [("POST", "/oauth/token", "oauth:token", oauth.oauth_token)]
    assert getattr(oauth.oauth_token, "taskgate_public", False)


def test_what_callers_import_from_gateway_auth_is_there():
    for name in gateway.auth.__all__:
        assert getattr(gateway.auth, name) is not None, name
    assert gateway.auth.login is sessions.login and gateway.auth.oauth_token is oauth.oauth_token


def test_the_auth_modules_import_neither_the_store_nor_an_api_style():
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        bad = {m for m in imported if m.startswith(("gateway.store", "gateway.apis", "sqlite3", "aiosqlite"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"
