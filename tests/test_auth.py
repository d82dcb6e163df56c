"""Passwords, tokens and the OAuth2 client-credentials endpoint."""

from __future__ import annotations

import asyncio
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
    await api.store.write_sql("UPDATE tokens SET expires = 1 WHERE hash = ?", (secret_hash(token),))
    api.store.forget_tokens()  # a change behind the store's back is otherwise seen within TOKEN_CACHE_SECONDS
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


# -- failed sign-ins are rate-limited per client address ------------------------------------
from gateway.app import create_app  # noqa: E402
from gateway.auth import AUTHENTICATOR, FailureLimiter  # noqa: E402
from gateway.context import STORE  # noqa: E402


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_failure_limiter_counts_per_address_in_windows_and_forgets_the_oldest():
    clock = FakeClock()
    limiter = FailureLimiter(3, 60, 4, clock=clock)
    for _ in range(2):
        limiter.failed("a")
    assert limiter.retry_after("a") is None  # 2 of 3
    limiter.failed("a")
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") is None
    clock.now += 59.5
    assert limiter.retry_after("a") == 1  # rounded up, never 0
    with pytest.raises(Exception) as raised:
        limiter.check("a")
    assert (raised.value.status, raised.value.headers) == (429, {"Retry-After": "1"})
    clock.now += 0.5  # the window is over: a clean slate
    assert limiter.retry_after("a") is None and len(limiter) == 0
    limiter.failed("a")
    assert limiter.retry_after("a") is None
    # bounded memory: a fifth address pushes out the one that failed least recently
    for address in ("b", "c", "d", "e"):
        for _ in range(3):
            limiter.failed(address)
    assert len(limiter) == 4 and limiter.retry_after("a") is None
    assert all(limiter.retry_after(x) == 60 for x in "bcde")
    for _ in range(10_000):
        limiter.failed(f"10.0.{_ // 256}.{_ % 256}")
    assert len(limiter) == 4
    off = FailureLimiter(0, 60, 4, clock=clock)
    for _ in range(100):
        off.failed("a")
    assert off.retry_after("a") is None and len(off) == 0


@pytest.fixture(name="limited")
async def _limited(aiohttp_client, config):
    """An app that allows 3 failed password checks per address and minute, on a clock the test moves."""
    client = await aiohttp_client(create_app(config.replace("auth", max_failures=3, failure_window_seconds=60)))
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    await store.add_user("alice", "user", hash_password("alice-password"))
    await store.add_user("root", "admin", hash_password("root-password"))
    await store.add_oauth_client("cid", secret_hash("csecret"), "alice")
    clock = FakeClock()
    auth.limiter._clock = clock
    return client, clock, await auth.create_token("root")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


SO_429 = {"Error": True, "ErrorType": "TooManyRequestsException", "ErrorSource": "SuperOffice.Services.Implementation",
          "ErrorMessage": "too many failed sign-ins from this address; try again in 60 s"}
WM_429_MESSAGE = "too many failed sign-ins from this address; try again in 60 s"


@pytest.mark.parametrize("path, blocked_body", [
    ("/task-status/v1", {"message": " Rate Limit Exceeded "}),
    ("/api/v1/BatchTask", SO_429),
    ("/rest/pub/opentask", None),  # the webMethods envelope, checked below
])
async def test_wrong_passwords_are_rate_limited_per_address_in_each_style(limited, path, blocked_body):
    client, clock, admin = limited
    for _ in range(3):
        resp = await client.get(path, headers=_basic("alice", "wrong"))
        assert resp.status == 401
    # asking without credentials (for the challenge) and unknown tokens are not counted
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "SOTicket wrong"}):
        assert (await client.get(path, headers=headers)).status == 401
    # tokens are not blocked either: they cannot be guessed
    assert (await client.get(path, headers={"Authorization": f"Bearer {admin}"})).status == 200
    for headers in (_basic("alice", "wrong"), _basic("alice", "alice-password"), {"Authorization": "Basic %%%"}):
        resp = await client.get(path, headers=headers)
        body = await resp.json()
        assert (resp.status, resp.headers["Retry-After"]) == (429, "60"), body
        if blocked_body is not None:
            assert body == blocked_body
        else:
            assert body["$error"] == WM_429_MESSAGE and body["$errorType"] == "com.wm.app.b2b.server.ServiceException"
    # another address is not affected: the limit is keyed on request.remote
    clock.now += 30
    resp = await client.get(path, headers=_basic("alice", "wrong"))
    assert resp.headers["Retry-After"] == "30"
    clock.now += 30
    resp = await client.get(path, headers=_basic("alice", "alice-password"))
    assert resp.status == 200, await resp.text()


async def test_a_burst_of_concurrent_guesses_gets_no_more_checks_than_the_limit(limited):
    """Failures are known only when scrypt answers: checks still under way count too, or a
    burst sent at once would all pass before the first failure was recorded."""
    client, _clock, _admin = limited
    checked: list[str] = []
    auth = client.app[AUTHENTICATOR]
    verify = auth._verify

    async def counting(key, name, password):
        checked.append(password)
        return await verify(key, name, password)

    auth._verify = counting
    statuses = await asyncio.gather(*(client.get("/task-status/v1", headers=_basic("alice", f"guess{i}"))
                                      for i in range(40)))
    got = sorted(resp.status for resp in statuses)
    assert got == [401] * 3 + [429] * 37 and len(checked) == 3, (got, checked)
    # the same right credentials sent at once share one check and are never refused for it
    auth.limiter._failures.clear()
    statuses = await asyncio.gather(*(client.get("/task-status/v1", headers=_basic("alice", "alice-password"))
                                      for _ in range(40)))
    assert [resp.status for resp in statuses] == [200] * 40 and checked[3:] == ["alice-password"]


async def test_login_and_token_endpoint_share_the_limit(limited):
    client, clock, _admin = limited
    for _ in range(2):
        resp = await client.post("/login", data={"user": "alice", "password": "guess"})
        assert resp.status == 401
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "cid",
                                                    "client_secret": "guess"})
    assert resp.status == 401
    resp = await client.post("/login", data={"user": "alice", "password": "alice-password"})
    assert (resp.status, resp.headers["Retry-After"], await resp.json()) == (429, "60", SO_429)
    assert "Set-Cookie" not in resp.headers
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "cid",
                                                    "client_secret": "csecret"})
    assert (resp.status, resp.headers["Retry-After"], await resp.json()) == (429, "60", {
        "error": "slow_down", "error_description": "too many failed sign-ins from this address; try again in 60 s"})
    clock.now += 60
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "cid",
                                                    "client_secret": "csecret"})
    assert resp.status == 200
    resp = await client.post("/login", data={"user": "alice", "password": "alice-password"})
    assert resp.status == 200


async def test_concurrent_basic_logins_share_one_password_check(api, monkeypatch):
    """32 connections opening at once with the same credentials pay scrypt once, not 32 times."""
    import asyncio

    from gateway import auth
    from gateway.auth import authenticator as checks

    await api.store.add_user("bob", "user", hash_password("pw"))
    checked: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(checks, "verify_password",
                        lambda password, stored: checked.append(password) or real(password, stored))
    authenticator = auth.Authenticator(api.store, token_ttl_seconds=60)
    results = await asyncio.gather(*(authenticator.by_password("bob", "pw") for _ in range(8)),
                                   *(authenticator.by_password("bob", "wrong") for _ in range(4)),
                                   return_exceptions=True)
    assert [r.name if isinstance(r, auth.Principal) else f"{type(r).__name__}: {r.message}" for r in results] == \
        ["bob"] * 8 + ["Unauthorized: invalid user name or password"] * 4
    assert sorted(checked) == ["pw", "wrong"]
    await authenticator.by_password("bob", "pw")  # remembered now
    assert sorted(checked) == ["pw", "wrong"]


FORBIDDEN_CROSS_SITE = "a browser's request from another site may not change anything with Basic credentials"


@pytest.mark.parametrize("browser", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "https://evil.example"}, {"Origin": "null"}])
async def test_a_cross_site_browser_request_may_not_change_anything_with_basic_credentials(api, browser):
    """A browser re-sends Basic credentials it was given at a 401's prompt with any site's
    form (a second hostile-input hunt created a BatchTask and undid a change from another
    origin so). Such a request is a 403 in the style's shape and stores nothing; the same
    request from this host's pages, from an API client (no such headers), a read, or one
    with a token (which no browser adds by itself) is served as before."""
    await api.store.add_user("ada", "admin", hash_password("ada-password"))
    basic = _basic("ada", "ada-password")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    before = await api.snapshot()
    resp = await api.client.post("/api/v1/BatchTask", data="Name=csrf", headers={**basic, **form, **browser})
    assert resp.status == 403
    assert await resp.json() == {"Error": True, "ErrorType": "SoAccessDeniedException",
                                 "ErrorMessage": FORBIDDEN_CROSS_SITE,
                                 "ErrorSource": "SuperOffice.Services.Implementation"}
    resp = await api.client.patch("/task-status/v1/x", data="[]", headers={
        **basic, "Content-Type": "application/json-patch+json", **browser})
    assert resp.status == 403
    resp = await api.client.post("/ui/undo", data="style=sailpoint&id=x&seq=1&version=1",
                                 headers={**basic, **form, **browser}, allow_redirects=False)
    assert resp.status == 403 and FORBIDDEN_CROSS_SITE.replace("'", "&#39;") in await resp.text()  # its page
    assert await api.snapshot() == before
    host = api.client.server.host + ":" + str(api.client.server.port)
    for allowed in ({}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": f"http://{host}"}):
        resp = await api.client.post("/api/v1/BatchTask", data="Name=ours", headers={**basic, **form, **allowed})
        assert resp.status == 200, await resp.text()
    assert (await api.client.get("/api/v1/BatchTask", headers={**basic, **browser})).status == 200
    resp = await api.client.post("/api/v1/BatchTask", data="Name=token",
                                 headers={**api.auth(api.admin), **form, **browser})
    assert resp.status == 200
    stored = await api.db_rows("SELECT json_extract(doc, '$.Name') FROM tasks WHERE style = 'superoffice' "
                               "ORDER BY CAST(id AS INTEGER)")
    assert stored == [("ours",), ("ours",), ("ours",), ("token",)]  # what was served, and nothing else
