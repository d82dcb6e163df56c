"""Passwords, tokens and the OAuth2 client-credentials endpoint."""

from __future__ import annotations

import base64
import time

import pytest

from gateway.auth import hash_password, secret_hash, verify_password


def test_password_hashes_verify_and_are_salted():
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second and verify_password("pw", first) and verify_password("pw", second)
    assert not verify_password("pW", first)
    assert not verify_password("pw", None) and not verify_password("pw", "garbage")
    assert not verify_password("pw", "md5$1$1$1$AA==$AA==")


@pytest.fixture(name="client_secret")
async def _client_secret(api) -> str:
    await api.store.add_oauth_client("cid", secret_hash("csecret"), "alice")
    return "csecret"


async def token_call(api, *, data=None, query="", headers=None):
    resp = await api.client.post(f"/oauth/token{query}", data=data, headers=headers or {})
    return resp.status, await resp.json(), resp.headers


@pytest.mark.parametrize("how", ["form", "query", "basic"])
async def test_client_credentials_issue_an_expiring_token(api, client_secret, how):
    form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": client_secret}
    if how == "form":
        status, body, headers = await token_call(api, data=form)
    elif how == "query":
        status, body, headers = await token_call(
            api, query=f"?grant_type=client_credentials&client_id=cid&client_secret={client_secret}")
    else:
        basic = base64.b64encode(f"cid:{client_secret}".encode()).decode()
        status, body, headers = await token_call(api, data={"grant_type": "client_credentials"},
                                                 headers={"Authorization": f"Basic {basic}"})
    assert status == 200 and headers["Cache-Control"] == "no-store"
    token = body.pop("access_token")
    assert body == {"token_type": "bearer", "expires_in": 3600, "scope": "sp:scopes:all"}
    (expires, source, user), = await api.db_rows("SELECT expires, source, user FROM tokens WHERE hash = ?",
                                                 secret_hash(token))
    assert (source, user) == ("oauth", "alice") and abs(expires - (time.time() + 3600)) < 5
    resp = await api.client.get("/task-status/v1", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    # once expired, the same token is refused
    await api.store._writer.execute("UPDATE tokens SET expires = 1 WHERE hash = ?", (secret_hash(token),))
    resp = await api.client.get("/task-status/v1", headers={"Authorization": f"Bearer {token}"})
    assert (resp.status, await resp.json()) == (401, {"error": "token expired"})


@pytest.mark.parametrize("data, status, error, description", [
    ({"grant_type": "client_credentials", "client_id": "cid", "client_secret": "wrong"}, 401, "invalid_client",
     "unknown client or wrong secret"),
    ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, 401, "invalid_client",
     "unknown client or wrong secret"),
    ({"grant_type": "password", "client_id": "cid", "client_secret": "csecret"}, 400, "unsupported_grant_type",
     "only client_credentials is supported"),
    ({"grant_type": "client_credentials", "client_id": "cid"}, 400, "invalid_request",
     "client_id and client_secret are required"),
    ('{"grant_type": "client_credentials"}', 400, "invalid_request", "send the parameters as a form or in the query"),
])
async def test_token_endpoint_errors(api, client_secret, data, status, error, description):
    headers = {"Content-Type": "application/json"} if isinstance(data, str) else None
    got_status, body, _ = await token_call(api, data=data, headers=headers)
    assert (got_status, body) == (status, {"error": error, "error_description": description})
    assert await api.db_rows("SELECT count(*) FROM tokens WHERE source = 'oauth'") == [(0,)]


@pytest.mark.parametrize("data, headers", [
    (b"--xx\r\nclient_secret=tgs_SUPERSECRET\r\n\r\n--xx--\r\n", {"Content-Type": "multipart/form-data; boundary=xx"}),
    (b"grant_type=client_credentials", {"Content-Type": "application/x-www-form-urlencoded; charset=foo-bar"}),
    (b"grant_type=client_credentials", {"Content-Type": "application/x-www-form-urlencoded",
                                        "Content-Encoding": "gzip"}),
])
async def test_malformed_token_requests_are_400_and_not_logged(api, data, headers):
    from structlog.testing import capture_logs
    with capture_logs() as logs:
        status, body, _ = await token_call(api, data=data, headers=headers)
    assert (status, body) == (400, {"error": "invalid_request", "error_description": "malformed form body"})
    assert "SUPERSECRET" not in repr(logs)


async def test_malformed_basic_client_credentials_are_401(api):
    status, body, _ = await token_call(api, data={"grant_type": "client_credentials"},
                                       headers={"Authorization": "Basic \u00e9"})
    assert (status, body) == (401, {"error": "invalid_client", "error_description": "malformed Basic credentials"})
