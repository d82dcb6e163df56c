"""Running it for real, in process: health, readiness, metrics and their exposure, the
client behind a trusted proxy (logs, audit rows, Secure cookies, absolute links),
``server.base_path``, and the header and body limits in each style's error shape."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.auth import Authenticator, hash_password
from gateway.config import Config, ConfigError
from gateway.metrics import READY_REASONS
from gateway.store import SCHEMA_VERSION
from gateway.store.sqlite import SQLiteStore
from tests.e2e.server import decoded

SP_ID = "00eebcf881994e419d72e757fd30dc0e"


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    config = Config(base_dir=str(tmp_path))
    for name, values in sections.items():
        config = config.replace(name, **values)
    return config


async def seed_admin(config: Config) -> str:
    """An admin token, written straight to the database before the app starts."""
    store = await SQLiteStore.open(config.db_path)
    try:
        await store.add_user("root", "admin", None)
        return await Authenticator(store, token_ttl_seconds=3600).create_token("root")
    finally:
        await store.close()


class Client:
    def __init__(self, client, token: str, prefix: str = "") -> None:
        self.client, self.token, self.prefix = client, token, prefix

    async def call(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                   content_type: str = "application/json", auth: bool = True) -> tuple[int, Any, Any]:
        hdrs = {"Authorization": f"Bearer {self.token}"} if auth else {}
        hdrs.update(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            hdrs.setdefault("Content-Type", content_type)
        resp = await self.client.request(method, self.prefix + path, data=data, headers=hdrs)
        return resp.status, decoded(await resp.text()), resp.headers

    async def one_update_per_style(self, headers: dict[str, str] | None = None) -> None:
        """Create and update one task of each style; every answer must be a success."""
        calls = [
            ("POST", "/task-status/v1", {"id": SP_ID, "type": "QUARTZ", "uniqueName": "u"}, "application/json", 201),
            ("PATCH", f"/task-status/v1/{SP_ID}", [{"op": "replace", "path": "/completionStatus", "value": "Success"}],
             "application/json-patch+json", 200),
            ("POST", "/api/v1/BatchTask", {"Name": "n", "State": "Started"}, "application/json", 200),
            ("PUT", "/api/v1/BatchTask/1", {"State": "Failed"}, "application/json", 200),
            ("POST", "/rest/pub/opentask", {"taskTypeID": "T"}, "application/json", 200),
            ("PUT", "/rest/pub/opentask/1", {"TaskData": {"n": 1}}, "application/json", 200),
        ]
        for method, path, body, ctype, want in calls:
            status, got, _ = await self.call(method, path, body, content_type=ctype, headers=headers)
            assert status == want, (method, path, got)


async def start(aiohttp_client, tmp_path: Path, **sections: dict[str, Any]) -> Client:
    config = make_config(tmp_path, **sections)
    token = await seed_admin(config)
    return Client(await aiohttp_client(create_app(config)), token, config.server.base_path)


def audit_clients(config_dir: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(config_dir / "taskgate.db") as conn:
        return conn.execute("SELECT style, action, client FROM audit ORDER BY seq").fetchall()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- health and readiness --------------------------------------------------------------------------
async def test_healthz_and_readyz_answer_without_credentials(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path)
    assert (await c.call("GET", "/healthz", auth=False))[:2] == (200, {"status": "ok"})
    status, body, headers = await c.call("GET", "/readyz", auth=False)
    assert (status, body) == (200, {"status": "ready", "schema": SCHEMA_VERSION})
    assert headers["Cache-Control"] == "no-store"
    assert (await c.call("HEAD", "/healthz", auth=False))[0] == 200
    # the probe goes through the write path but changes nothing
    assert audit_clients(tmp_path) == []


async def test_readyz_is_503_while_another_process_holds_the_write_lock(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, storage={"busy_timeout_ms": 50})
    other = sqlite3.connect(tmp_path / "taskgate.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        status, body, _ = await c.call("GET", "/readyz", auth=False)
        assert (status, body) == (503, {"status": "unavailable", "reason": "database busy"})
        assert body["reason"] in READY_REASONS  # the words the OpenAPI document lists
        assert (await c.call("GET", "/healthz", auth=False))[0] == 200  # alive all the same
        other.execute("ROLLBACK")
        assert (await c.call("GET", "/readyz", auth=False))[0] == 200
    finally:
        other.close()


async def test_readyz_is_503_when_the_schema_is_not_this_taskgate_s(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path)
    with sqlite3.connect(tmp_path / "taskgate.db") as other:  # as a newer taskgate's migration would
        other.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with capture_logs() as logs:
        status, body, _ = await c.call("GET", "/readyz", auth=False)
    assert (status, body) == (503, {"status": "unavailable", "reason": "database schema mismatch"})
    assert [(e["log_level"], e["detail"]) for e in logs if e["event"] == "readyz.unready"] == [
        ("warning", f"database schema {SCHEMA_VERSION + 1}, this taskgate needs {SCHEMA_VERSION}")]


# -- metrics ------------------------------------------------------------------------------------------
async def test_metrics_count_requests_commits_audit_events_and_tasks(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path)
    await c.one_update_per_style()
    assert (await c.call("GET", "/task-status/v1/nope"))[0] == 404
    assert (await c.call("GET", "/rest/pub/opentask/1/nothing/here"))[0] == 404
    status, text, headers = await c.call("GET", "/metrics", auth=False)
    assert status == 200 and headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    got = samples(text)

    def req(route: str, style: str, code: str) -> float:
        return got[("taskgate_http_requests_total", (("route", route), ("status", code), ("style", style)))]

    assert req("sailpoint:create:v1", "sailpoint", "201") == 1
    assert req("sailpoint:patch:v1", "sailpoint", "200") == 1
    assert req("sailpoint:get:v1", "sailpoint", "404") == 1
    assert req("superoffice:create", "superoffice", "200") == 1
    assert req("superoffice:put", "superoffice", "200") == 1
    assert req("webmethods:put", "webmethods", "200") == 1
    assert req("unmatched", "webmethods", "404") == 1
    latency = ("taskgate_http_request_duration_seconds_count",
               (("route", "sailpoint:patch:v1"), ("style", "sailpoint")))
    assert got[latency] == 1
    for style in ("sailpoint", "superoffice", "webmethods"):
        assert got[("taskgate_tasks", (("style", style),))] == 1
        for action in ("created", "updated"):
            assert got[("taskgate_audit_events_total", (("action", action), ("style", style)))] == 1
    # six writes, each alone in its batch (the requests were sequential)
    assert got[("taskgate_store_batch_size_count", ())] == 6
    assert got[("taskgate_store_batch_size_sum", ())] == 6
    assert got[("taskgate_store_commit_duration_seconds_count", ())] == 6
    assert got[("taskgate_store_commit_duration_seconds_sum", ())] > 0
    assert got[("taskgate_http_requests_in_progress", ())] == 1  # the scrape itself
    # each application has its own registry: a second one starts from zero
    other = await start(aiohttp_client, tmp_path / "other")
    again = samples((await other.call("GET", "/metrics", auth=False))[1])
    assert not any(name == "taskgate_http_requests_total" for name, _ in again)
    assert again[("taskgate_tasks", (("style", "sailpoint"),))] == 0


async def test_metrics_off_has_no_route(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, metrics={"expose": "off"})
    assert (await c.call("GET", "/metrics"))[:2] == (404, {"error": "no resource at /metrics"})


async def test_metrics_by_token_compare_the_bearer(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, metrics={"expose": "token", "token": "s3cret-metrics"})
    refused = {"error": "metrics need the bearer token of metrics.token"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LW1ldHJpY3M="},
                    {"Authorization": f"Bearer {c.token}"}):  # a taskgate token is not the metrics token
        status, body, hdrs = await c.call("GET", "/metrics", headers=headers, auth=False)
        assert (status, body) == (401, refused)
        assert hdrs["WWW-Authenticate"] == 'Bearer realm="taskgate metrics"'
    status, text, _ = await c.call("GET", "/metrics", headers={"Authorization": "Bearer s3cret-metrics"}, auth=False)
    assert status == 200 and "taskgate_tasks" in text


async def test_a_metrics_bearer_that_is_not_utf8_is_refused_not_a_fault(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, metrics={"expose": "token", "token": "s3cret-metrics"})
    reader, writer = await asyncio.open_connection("127.0.0.1", c.client.server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ") and json.loads(body) == {
        "error": "metrics need the bearer token of metrics.token"}, answer


async def test_metrics_on_loopback_refuse_a_client_forwarded_from_elsewhere(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, server={"trusted_proxies": "127.0.0.1"})
    assert (await c.call("GET", "/metrics", auth=False))[0] == 200
    status, body, _ = await c.call("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, auth=False)
    assert (status, body) == (403, {"error": "metrics are served to loopback clients only"})


def test_metrics_token_is_required_for_token_exposure(tmp_path: Path):
    with pytest.raises(ConfigError, match="metrics.token: must be set when metrics.expose is token"):
        make_config(tmp_path, metrics={"expose": "token"})


# -- behind a proxy --------------------------------------------------------------------------------------
async def test_a_trusted_proxy_s_client_is_in_logs_and_audit_rows(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, server={"trusted_proxies": "127.0.0.1, 10.0.0.0/8"})
    with capture_logs() as logs:
        # nginx's $proxy_add_x_forwarded_for: the client, then a proxy of ours in between
        await c.one_update_per_style(headers={"X-Forwarded-For": "203.0.113.7, 10.1.2.3"})
    assert {entry["remote"] for entry in logs if entry["event"] == "request"} == {"203.0.113.7"}
    assert {entry["client"] for entry in logs if entry["event"].startswith("task.")} == {"203.0.113.7"}
    assert audit_clients(tmp_path) == [(style, action, "203.0.113.7") for style in ("sailpoint", "superoffice",
                                                                                    "webmethods")
                                       for action in ("created", "updated")]


@pytest.mark.parametrize("trusted, family, headers, client", [
    ("", "x-forwarded", {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1"),  # nobody trusted: ignored
    ("10.0.0.0/8", "x-forwarded", {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1"),  # the peer is not a trusted proxy
    ("127.0.0.1", "x-forwarded", {"X-Forwarded-For": "198.51.100.2, 203.0.113.7"}, "203.0.113.7"),  # prepended lies
    ("127.0.0.1", "forwarded", {"Forwarded": 'for="[2001:db8::5]:4711";proto=https, for=10.0.0.1'}, "10.0.0.1"),
    ("127.0.0.0/8, 10.0.0.0/8", "forwarded", {"Forwarded": 'for="[2001:db8::5]:4711";proto=https, for=10.0.0.1'},
     "2001:db8::5"),
    ("127.0.0.1", "forwarded", {"Forwarded": "for=unknown"}, "127.0.0.1"),  # unreadable: the peer stays
    ("127.0.0.1", "x-forwarded", {"X-Forwarded-For": "not-an-address"}, "127.0.0.1"),
    # only the family the proxy sets is read: it passes the other through as the client wrote it
    ("127.0.0.1", "x-forwarded", {"Forwarded": "for=192.0.2.60", "X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
    ("127.0.0.1", "x-forwarded", {"Forwarded": "for=192.0.2.60"}, "127.0.0.1"),
    ("127.0.0.1", "forwarded", {"Forwarded": "for=192.0.2.60", "X-Forwarded-For": "203.0.113.7"}, "192.0.2.60"),
    ("127.0.0.1", "forwarded", {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1"),
])
async def test_forwarding_headers_count_only_from_trusted_proxies(aiohttp_client, tmp_path: Path, trusted, family,
                                                                   headers, client):
    c = await start(aiohttp_client, tmp_path, server={"trusted_proxies": trusted, "forwarded_headers": family})
    status, _, _ = await c.call("POST", "/task-status/v1", {"id": SP_ID, "type": "QUARTZ", "uniqueName": "u"},
                                headers=headers)
    assert status == 201
    assert audit_clients(tmp_path) == [("sailpoint", "created", client)]


async def test_forwarded_https_makes_cookies_secure_and_links_use_the_client_s_url(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, server={"trusted_proxies": "127.0.0.1"})
    store = await SQLiteStore.open(tmp_path / "taskgate.db")
    try:
        await store.add_user("tje0", "user", hash_password("Tje0"), associate_id=627)
    finally:
        await store.close()
    proxied = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "tasks.example.com"}
    for headers, secure in (({}, False), (proxied, True)):
        resp = await c.client.post("/login", data={"user": "tje0", "password": "Tje0"}, headers=headers)
        assert resp.status == 200
        cookies = resp.headers.getall("Set-Cookie")
        assert len(cookies) == 2 and all(("; Secure" in cookie) is secure for cookie in cookies), cookies
    await c.one_update_per_style()
    _, listed, _ = await c.call("GET", "/api/v1/BatchTask?$top=0", headers=proxied)
    assert listed["odata.metadata"] == "https://tasks.example.com/api/v1/$metadata#BatchTask"
    status, listed, _ = await c.call("GET", "/Cust1/api/v1/BatchTask?$top=1", headers={**proxied, "Forwarded": ""})
    assert status == 200, listed
    # a malformed host is not taken
    for host in ("evil/../x", "tasks.example.com:99999", "[zz]:80", "a b"):
        status, listed, _ = await c.call("GET", "/api/v1/BatchTask?$top=0",
                                         headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": host})
        assert status == 200 and listed["odata.metadata"].startswith("http://127.0.0.1:"), (host, listed)
    _, listed, _ = await c.call("GET", "/api/v1/BatchTask?$top=0",
                                headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Host": "[::1]:8443"})
    assert listed["odata.metadata"] == "http://[::1]:8443/api/v1/$metadata#BatchTask"


def test_trusted_proxies_must_be_addresses_networks_or_unix(tmp_path: Path):
    with pytest.raises(ConfigError, match="server.trusted_proxies: 'proxy.lan' is neither"):
        make_config(tmp_path, server={"trusted_proxies": "unix, proxy.lan"})
    assert make_config(tmp_path, server={"trusted_proxies": "unix, ::1, 10.0.0.0/8"}).server.trusted_proxies


# -- base path --------------------------------------------------------------------------------------------
async def test_base_path_prefixes_every_route_and_errors_keep_their_style(aiohttp_client, tmp_path: Path):
    c = await start(aiohttp_client, tmp_path, server={"base_path": "/tg"})
    await c.one_update_per_style()
    status, body, headers = await c.call("POST", "/task-status/v1",
                                         {"id": "11eebcf881994e419d72e757fd30dc0e", "type": "QUARTZ",
                                          "uniqueName": "u"})
    assert status == 201 and headers["Location"] == "/tg/task-status/v1/11eebcf881994e419d72e757fd30dc0e"
    assert (await c.call("GET", "/healthz", auth=False))[:2] == (200, {"status": "ok"})
    assert (await c.call("GET", "/readyz", auth=False))[0] == 200
    assert (await c.call("GET", "/metrics", auth=False))[0] == 200
    _, listed, _ = await c.call("GET", "/api/v1/BatchTask?$top=0")
    assert listed["odata.metadata"].endswith("/tg/api/v1/$metadata#BatchTask")
    # the session cookies are scoped to the prefix, and work under it
    store = await SQLiteStore.open(tmp_path / "taskgate.db")
    try:
        await store.add_user("tje0", "user", hash_password("Tje0"), associate_id=627)
    finally:
        await store.close()
    resp = await c.client.post("/tg/login", data={"user": "tje0", "password": "Tje0"})
    assert resp.status == 200
    cookies = resp.headers.getall("Set-Cookie")
    assert len(cookies) == 2 and all("; Path=/tg;" in cookie for cookie in cookies), cookies
    xsrf = (await resp.json())["xsrf_token"]
    got = await c.client.get("/tg/api/v1/BatchTask/1", headers={"X-XSRF-TOKEN": xsrf, "Accept": "application/json"})
    assert got.status == 200 and (await got.json())["Id"] == 1
    resp = await c.client.post("/tg/logout", headers={"X-XSRF-TOKEN": xsrf})
    assert resp.status == 204
    assert all("; Path=/tg" in cookie and "Max-Age=0" in cookie for cookie in resp.headers.getall("Set-Cookie"))
    # unmatched paths under the prefix answer in their style's shape
    status, body, _ = await c.call("GET", "/task-status/v1/x/y")
    assert status == 404 and body["messages"][0]["text"] == "no resource at /tg/task-status/v1/x/y"
    status, body, _ = await c.call("GET", "/api/v1/Nothing")
    assert status == 404 and body["ErrorType"] == "SoNotFoundException"
    status, body, _ = await c.call("DELETE", "/rest/pub/opentasksearch")
    assert status == 405 and body["$errorInfo"]["$errorType"] == "com.wm.app.b2b.server.ServiceException"
    # outside the prefix nothing is served, whatever the path looks like
    c.prefix = ""
    for path in ("/task-status/v1", "/healthz", "/tgx/healthz", "/"):
        assert (await c.call("GET", path))[:2] == (404, {"error": f"no resource at {path}"}), path


@pytest.mark.parametrize("value", ["tg", "/tg/", "/t g", "//tg", "/tg/../x"])
def test_base_path_must_be_a_clean_prefix(tmp_path: Path, value: str):
    with pytest.raises(ConfigError, match="server.base_path: must be empty or like /taskgate"):
        make_config(tmp_path, server={"base_path": value})


# -- limits ---------------------------------------------------------------------------------------------------
SHAPES = {
    "sailpoint": ("PATCH", f"/task-status/v1/{SP_ID}", "application/json-patch+json"),
    "superoffice": ("PUT", "/api/v1/BatchTask/1", "application/json"),
    "webmethods": ("PUT", "/rest/pub/opentask/1", "application/json"),
}


def expected_error(style: str, status: int, message: str, body: Any) -> Any:
    """The whole error body each style gives for *status*; volatile members copied from *body*."""
    if style == "sailpoint":
        codes = {413: "413 Payload Too Large", 431: "431 Request Header Fields Too Large"}
        return {"detailCode": codes[status], "trackingId": body["trackingId"],
                "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": message}], "causes": []}
    if style == "superoffice":
        kind = {413: "RequestEntityTooLargeException", 431: "SoException"}[status]
        return {"Error": True, "ErrorType": kind, "ErrorMessage": message,
                "ErrorSource": "SuperOffice.Services.Implementation"}
    info = body["$errorInfo"]
    user = "root" if status == 413 else ""  # 431 is refused before the caller is known
    return {"$errorDump": "",
            "$errorInfo": {"$error": message, "$localizedError": message,
                           "$errorType": "com.wm.app.b2b.server.ServiceException", "$user": user,
                           "$time": info["$time"], "$details": "", "$errorMsgId": "", "$errorDump": ""},
            "$error": message, "$errorType": "com.wm.app.b2b.server.ServiceException"}


@pytest.mark.parametrize("style", SHAPES)
async def test_limits_answer_413_and_431_in_each_style_s_shape(aiohttp_client, tmp_path: Path, style: str):
    c = await start(aiohttp_client, tmp_path, server={"max_body_bytes": 2000, "max_headers": 12,
                                                      "max_header_bytes": 300})
    await c.one_update_per_style()
    before = audit_clients(tmp_path)
    method, path, ctype = SHAPES[style]
    big = json.dumps({"pad": "x" * 2000})
    cases = [
        ({"Content-Type": ctype}, big, 413,
         "the request body is larger than 2000 bytes"),
        # with the 7 that aiohttp's client sends (Host, Accept, Accept-Encoding, User-Agent,
        # Authorization, Content-Type, Content-Length)
        ({f"X-Extra-{i}": "1" for i in range(12)}, "{}", 431,
         "the request has 19 header fields; at most 12 are accepted"),
        ({"X-Long": "y" * 301}, "{}", 431, "the header 'X-Long' is longer than 300 bytes"),
    ]
    for headers, data, status, message in cases:
        got_status, body, _ = await c.call(method, path, data, headers=headers, content_type=ctype)
        assert got_status == status, body
        assert body == expected_error(style, status, message, body)
    assert audit_clients(tmp_path) == before


def test_default_limits(tmp_path: Path):
    server = make_config(tmp_path).server
    assert (server.max_body_bytes, server.max_request_line, server.max_header_bytes, server.max_headers) == \
        (1_048_576, 8190, 8190, 100)
    assert dataclasses.asdict(make_config(tmp_path).metrics) == {"expose": "loopback", "token": ""}


def test_request_latency_buckets_are_cumulative_and_include_their_bound():
    from prometheus_client import generate_latest

    from gateway.metrics import Metrics
    metrics = Metrics(["sailpoint"])
    for seconds in (0.001, 0.003, 0.003, 20.0):
        metrics.observe_request("sailpoint:get:v1", "sailpoint", 200, seconds)
    metrics.observe_request("sailpoint:get:v1", "sailpoint", 404, 0.0001)
    got = samples(generate_latest(metrics.registry).decode())
    labels = (("route", "sailpoint:get:v1"), ("style", "sailpoint"))
    bucket = {dict(key)["le"]: value for (name, key), value in got.items()
              if name == "taskgate_http_request_duration_seconds_bucket"}
    assert bucket == {"0.0005": 1, "0.001": 2, "0.0025": 2, "0.005": 4, "0.01": 4, "0.025": 4, "0.05": 4, "0.1": 4,
                      "0.25": 4, "0.5": 4, "1.0": 4, "2.5": 4, "5.0": 4, "10.0": 4, "+Inf": 5}
    assert got[("taskgate_http_request_duration_seconds_count", labels)] == 5
    assert got[("taskgate_http_request_duration_seconds_sum", labels)] == pytest.approx(20.0071)
    assert got[("taskgate_http_requests_total", (*labels[:1], ("status", "200"), labels[1]))] == 4
    assert got[("taskgate_http_requests_total", (*labels[:1], ("status", "404"), labels[1]))] == 1


_PIECES = st.sampled_from(["for=203.0.113.7", 'for="[2001:db8::1]:4711"', "for=127.0.0.1", "for=unknown",
                           "for=_hidden", "proto=https", "proto=ftp", 'host="x.example:8443"', "host=x:99999",
                           'host="[zz]"', "by=10.0.0.1", "203.0.113.9", "127.0.0.2", "::1", "[::1]:80", "1.2.3.4:5",
                           "https", "http", "tasks.example.com", "", " ", ";", ",", "=", '"'])
_HEADER = st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=6).map(lambda parts: ";".join(parts)),
                    st.lists(_PIECES, max_size=6).map(lambda parts: ", ".join(parts)))


@settings(max_examples=200, deadline=None)
@given(forwarded=_HEADER, xff=_HEADER, proto=_HEADER, host=_HEADER)
def test_any_forwarding_headers_from_a_trusted_proxy_give_a_usable_request(forwarded, xff, proto, host):
    from aiohttp.test_utils import make_mocked_request

    from gateway.proxy import TrustedProxies, client_view
    headers = {"Host": "taskgate.local"}
    for name, value in (("Forwarded", forwarded), ("X-Forwarded-For", xff), ("X-Forwarded-Proto", proto),
                        ("X-Forwarded-Host", host)):
        if value and value.isprintable() and value.isascii():
            headers[name] = value
    request = make_mocked_request("GET", "/api/v1/BatchTask", headers=headers)
    for family in ("x-forwarded", "forwarded"):
        view = client_view(TrustedProxies("127.0.0.0/8", family), request)
        assert set(view) <= {"remote", "scheme", "host"}
        clone = request.clone(**view)
        assert clone.url.scheme in ("http", "https") and clone.url.path == "/api/v1/BatchTask"
        if "remote" in view:
            ipaddress.ip_address(view["remote"])
