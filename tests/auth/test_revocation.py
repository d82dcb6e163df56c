"""Revocation on the real app: a revoked token, a disabled or deleted user and a changed
password stop working at the next request in the process that made the change, and a
change made by another process (behind this store's back) within the stated bounds: at
once for passwords (a remembered Basic success still reads the user's row), within
TOKEN_CACHE_SECONDS for tokens."""

from __future__ import annotations

import asyncio
import base64
import time

from gateway.auth import hash_password, secret_hash
from gateway.store.sqlite import TOKEN_CACHE_SECONDS

_TASKS = "/task-status/v1"


def _basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


async def _status(api, headers: dict[str, str], cookies: dict[str, str] | None = None) -> int:
    resp = await api.client.get(_TASKS, headers=headers, cookies=cookies)
    await resp.read()
    return resp.status


async def _login(api, name: str, password: str) -> tuple[int, dict[str, str]]:
    resp = await api.client.post("/login", data={"user": name, "password": password})
    body = await resp.json()
    if resp.status != 200:
        return resp.status, {}
    return 200, {"X-XSRF-TOKEN": body["xsrf_token"]}


async def _oauth(api, client_id: str, secret: str) -> tuple[int, str]:
    resp = await api.client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                      "client_secret": secret})
    body = await resp.json()
    return resp.status, body.get("access_token", "")


async def test_a_revoked_token_is_refused_at_once(api):
    assert await _status(api, api.auth(api.user)) == 200  # remembered by the token cache now
    await api.store.delete_token(secret_hash(api.user))
    assert await _status(api, api.auth(api.user)) == 401


async def test_a_disabled_user_signs_in_by_no_means_and_keeps_its_tasks(api):
    await api.store.add_oauth_client("cid", secret_hash("csecret"), "alice")
    status, oauth_token = await _oauth(api, "cid", "csecret")
    assert status == 200
    status, xsrf = await _login(api, "alice", "alice-password")
    assert status == 200  # the client's cookie jar now holds the session
    assert await _status(api, xsrf) == 200
    assert await _status(api, _basic("alice", "alice-password")) == 200  # a remembered Basic success now
    assert await _status(api, api.auth(api.user)) == 200
    assert await _status(api, api.auth(oauth_token)) == 200
    await api.store.write_sql("INSERT INTO audit (at, style, task_id, version, action, actor, request_id, patch, "
                              "undo) VALUES ('t', 'sailpoint', 'x', 1, 'created', 'alice', 'r', '[]', '[]')")

    assert await api.store.set_disabled("alice", True)
    assert await _status(api, api.auth(api.user)) == 401
    assert await _status(api, api.auth(oauth_token)) == 401
    assert await _status(api, _basic("alice", "alice-password")) == 401
    assert await _status(api, xsrf) == 401
    assert (await _login(api, "alice", "alice-password"))[0] == 401
    assert (await _oauth(api, "cid", "csecret"))[0] == 401
    assert await api.db_rows("SELECT actor FROM audit") == [("alice",)]

    assert await api.store.set_disabled("alice", False)
    assert await _status(api, api.auth(api.user)) == 200
    assert await _status(api, _basic("alice", "alice-password")) == 200
    assert (await _oauth(api, "cid", "csecret"))[0] == 200


async def test_a_deleted_user_loses_its_tokens_clients_and_password(api):
    await api.store.add_oauth_client("cid", secret_hash("csecret"), "alice")
    assert await _status(api, _basic("alice", "alice-password")) == 200
    assert await _status(api, api.auth(api.user)) == 200
    assert await api.store.delete_user("alice")
    assert not await api.store.delete_user("alice")
    assert await _status(api, api.auth(api.user)) == 401
    assert await _status(api, _basic("alice", "alice-password")) == 401
    assert (await _oauth(api, "cid", "csecret"))[0] == 401
    assert await api.db_rows("SELECT count(*) FROM tokens WHERE user = 'alice'") == [(0,)]


async def test_a_changed_password_ends_remembered_basic_successes_and_sessions(api):
    status, xsrf = await _login(api, "alice", "alice-password")
    assert status == 200 and await _status(api, xsrf) == 200
    assert await _status(api, _basic("alice", "alice-password")) == 200
    assert await api.store.set_password("alice", hash_password("new-password"))
    assert await _status(api, _basic("alice", "alice-password")) == 401
    assert await _status(api, xsrf) == 401  # the session won with the old password ended
    assert await _status(api, _basic("alice", "new-password")) == 200
    assert await _status(api, api.auth(api.user)) == 200  # API tokens are credentials of their own: they stay
    assert not await api.store.set_password("ghost", None)


async def test_another_process_s_changes_show_within_the_stated_bounds(api):
    """Changes made behind this store's back, as the command line in another process makes
    them: passwords and disables at the next Basic request, tokens within TOKEN_CACHE_SECONDS."""
    assert await _status(api, _basic("alice", "alice-password")) == 200
    await api.store.write_sql("UPDATE users SET password_hash = ? WHERE name = 'alice'",
                              (hash_password("elsewhere"),))
    assert await _status(api, _basic("alice", "alice-password")) == 401  # at once: the row is read on every hit
    assert await _status(api, _basic("alice", "elsewhere")) == 200
    await api.store.write_sql("UPDATE users SET disabled = 1 WHERE name = 'alice'")
    assert await _status(api, _basic("alice", "elsewhere")) == 401

    assert await _status(api, api.auth(api.admin)) == 200  # remembered by the token cache
    await api.store.write_sql("DELETE FROM tokens WHERE hash = ?", (secret_hash(api.admin),))
    deadline = time.monotonic() + TOKEN_CACHE_SECONDS + 2
    while await _status(api, api.auth(api.admin)) == 200:
        assert time.monotonic() < deadline, f"a revoked token still worked after {TOKEN_CACHE_SECONDS} s"
        await asyncio.sleep(0.05)
