"""Fault rules (matching, count, seeded chance, each kind in the vendor's shape) and the
namespace clock (stamps, freeze/set/advance, token expiry, webMethods' rules, progress)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import errors
from gateway.apis.superoffice import ERROR_SOURCE, ERROR_TYPES
from gateway.testing.api import NAMESPACES
from gateway.testing.clock import NamespaceClock
from gateway.testing.faults import FaultRule, Faults
from tests.conftest import Api

NS = "/_taskgate/namespaces"


def test_a_rule_with_a_seeded_probability_fires_on_the_same_requests_every_run() -> None:
    def run() -> list[bool]:
        faults = Faults()
        faults.add(FaultRule.parse({"status": 500, "probability": 0.3, "seed": 42}))
        return [faults.decide("sailpoint", "sailpoint:get:v1", "/task-status/v1/x", "GET") is not None
                for _ in range(200)]
    first = run()
    assert first == run()
    assert 30 < sum(first) < 90  # about 60 of 200
    other = Faults()
    other.add(FaultRule.parse({"status": 500, "probability": 0.3, "seed": 43}))
    assert [other.decide("sailpoint", "r", "/p", "GET") is not None for _ in range(200)] != first


def test_a_rule_matches_by_style_route_path_and_method_and_fires_count_times() -> None:
    faults = Faults()
    rule = faults.add(FaultRule.parse({"style": "webmethods", "route": "webmethods:get*", "path": "/rest/*",
                                       "method": "get", "status": 429, "count": 2}))
    assert faults.decide("sailpoint", "webmethods:get", "/rest/x", "GET") is None
    assert faults.decide("webmethods", "webmethods:put", "/rest/x", "GET") is None
    assert faults.decide("webmethods", "webmethods:get", "/other", "GET") is None
    assert faults.decide("webmethods", "webmethods:get", "/rest/x", "PUT") is None
    decisions = [faults.decide("webmethods", "webmethods:get", "/rest/x", "GET") for _ in range(3)]
    assert [d is not None for d in decisions] == [True, True, False]
    first = decisions[0]
    assert first is not None and first.error is not None
    assert (first.error.status, first.error.headers, first.error.message) == (
        429, {"Retry-After": "1"}, f"fault injected by taskgate testing (rule {rule.id})")
    assert rule.describe()["fired"] == 2 and rule.describe()["count"] == 0


@pytest.mark.parametrize(("rule", "message"), [
    ([], "a fault rule is a JSON object"),
    ({"colour": 1, "status": 500}, "fault rule: unknown members ['colour']; known: ['count', 'delay_ms', 'drop', "
                                   "'jitter_ms', 'method', 'path', 'probability', 'retry_after', 'route', 'seed', "
                                   "'status', 'style']"),
    ({}, "a fault rule needs a status, a delay_ms or jitter_ms, or drop"),
    ({"status": 418}, "fault status: one of [400, 401, 403, 404, 408, 409, 412, 429, 500, 503]"),
    ({"status": True}, "fault status: an integer from 400 to 599"),
    ({"status": 500, "drop": True}, "a fault rule answers a status or drops the connection, not both"),
    ({"delay_ms": 20_000, "jitter_ms": 20_000}, "fault delay_ms + jitter_ms: at most 30000"),
    ({"drop": True, "probability": 2}, "fault probability: a number from 0 to 1"),
    ({"drop": True, "count": 0}, "fault count: an integer from 1 to 1000000"),
    ({"drop": "yes"}, "fault drop: true or false"),
])
def test_a_bad_rule_is_refused_with_a_reason(rule: Any, message: str) -> None:
    with pytest.raises(errors.BadRequest) as refused:
        FaultRule.parse(rule)
    assert refused.value.message == message


async def test_an_injected_status_is_in_each_vendors_error_shape(tapi: Api) -> None:
    rules = {}
    for style in ("sailpoint", "superoffice", "webmethods"):
        status, rule, _ = await tapi.request("POST", f"{NS}/f/faults", body={"style": style, "status": 500, "count": 1})
        assert status == 201
        rules[style] = rule["id"]
    status, body, headers = await tapi.request("GET", "/_ns/f/v2025/task-status/x")
    assert status == 500 and body["detailCode"] == "500.0 Internal Fault"
    assert body["trackingId"] == headers["X-Request-ID"]
    status, body, _ = await tapi.request("GET", "/_ns/f/api/v1/BatchTask/1")
    assert (status, body) == (500, {
        "Error": True, "ErrorType": ERROR_TYPES.get(500, "SoException"), "ErrorSource": ERROR_SOURCE,
        "ErrorMessage": f"fault injected by taskgate testing (rule {rules['superoffice']})"})
    status, body, _ = await tapi.request("GET", "/_ns/f/rest/pub/opentask/x")
    assert status == 500 and body["$error"].startswith("fault injected by taskgate testing")
    status, body, _ = await tapi.request("POST", f"{NS}/f/journal/count", body={"fault": True, "status": 500})
    assert (status, body) == (200, {"count": 3})
    # spent: the same calls reach the handlers again
    status, _, _ = await tapi.request("GET", "/_ns/f/v2025/task-status/x")
    assert status == 404


async def test_added_latency_is_marked_in_the_journal(tapi: Api) -> None:
    status, rule, _ = await tapi.request("POST", f"{NS}/l/faults", body={"delay_ms": 50, "jitter_ms": 10,
                                                                         "count": 1, "seed": 7})
    assert status == 201
    status, _, _ = await tapi.request("GET", "/_ns/l/task-status/v1")
    assert status == 200
    status, body, _ = await tapi.request("GET", f"{NS}/l/journal")
    entry, = body["entries"]
    assert entry["status"] == 200 and entry["fault"]["rule"] == rule["id"] and entry["fault"]["status"] is None
    assert 50 <= entry["fault"]["delay_ms"] <= 60


def test_the_clock_freezes_sets_and_advances() -> None:
    from datetime import UTC, datetime, timedelta
    clock = NamespaceClock()
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.now() - datetime(2030, 1, 1, tzinfo=UTC) < timedelta(seconds=5)  # running on from there
    clock.freeze()
    frozen = clock.now()
    assert clock.now() == frozen and clock.frozen
    clock.advance(90)
    assert clock.now() == frozen + timedelta(seconds=90)
    assert clock.now_iso().endswith("Z")
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.unfreeze()
    assert not clock.frozen and clock.now() >= frozen + timedelta(seconds=90)
    clock.reset()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


async def test_the_namespace_clock_stamps_documents_and_stored_rows(tapi: Api) -> None:
    status, body, _ = await tapi.request("PUT", f"{NS}/t/clock", body={"frozen": True, "now": "2031-02-03T04:05:06Z"})
    assert (status, body) == (200, {"now": "2031-02-03T04:05:06.000Z", "frozen": True, "swept": 0, "progressed": 0})
    status, task, _ = await tapi.request("POST", "/_ns/t/task-status/v1", body={"type": "QUARTZ", "uniqueName": "u"})
    assert (task["created"], task["modified"]) == ("2031-02-03T04:05:06.000Z", "2031-02-03T04:05:06.000Z")
    namespace = tapi.client.app[NAMESPACES].find("t")
    assert namespace is not None
    rows = await namespace.store.read_sql("SELECT created, modified FROM tasks")  # type: ignore[attr-defined]
    audit = await namespace.store.read_sql("SELECT at FROM audit")  # type: ignore[attr-defined]
    assert rows == [("2031-02-03T04:05:06.000Z", "2031-02-03T04:05:06.000Z")]
    assert audit == [("2031-02-03T04:05:06.000Z",)]
    status, body, _ = await tapi.request("PUT", f"{NS}/t/clock", body={"now": "yesterday"})
    assert (status, body) == (400, {"error": "now: an RFC 3339 date-time"})


async def test_a_token_from_a_namespace_expires_by_its_clock(tapi: Api) -> None:
    from gateway.auth import secret_hash
    await tapi.store.add_oauth_client("c", secret_hash("s"), "root")
    assert (await tapi.request("PUT", f"{NS}/o"))[0] == 201  # a token call signs in no user: it cannot make one
    resp = await tapi.client.post("/_ns/o/oauth/token", data={"grant_type": "client_credentials",
                                                               "client_id": "c", "client_secret": "s"})
    token = (await resp.json())["access_token"]
    status, _, _ = await tapi.request("GET", "/_ns/o/task-status/v1", token=token)
    assert status == 200
    await tapi.request("PUT", f"{NS}/o/clock", body={"advance_seconds": 3599})
    assert (await tapi.request("GET", "/_ns/o/task-status/v1", token=token))[0] == 200
    await tapi.request("PUT", f"{NS}/o/clock", body={"advance_seconds": 1})
    status, body, _ = await tapi.request("GET", "/_ns/o/task-status/v1", token=token)
    assert (status, body) == (401, {"error": "token expired"})
    assert (await tapi.request("GET", "/task-status/v1", token=token))[0] == 200  # the system's clock: still valid


OUTSIDE = {"error": "the clock would stand outside 1900 to 9000"}


@pytest.mark.parametrize(("start", "body", "error"), [
    ("2030-06-01T00:00:00Z", {"now": "9999-12-31T23:59:59.999Z"}, OUTSIDE),
    ("8999-12-31T23:59:59Z", {"advance_seconds": 10}, OUTSIDE),
    ("2030-06-01T00:00:00Z", {"now": "0001-01-01T00:00:00+01:00"}, OUTSIDE),
    ("2030-06-01T00:00:00Z", {"now": "1899-12-31T23:59:59Z"}, OUTSIDE),
    ("2030-06-01T00:00:00Z", {"frozen": False, "now": "2031-01-01T00:00:00Z", "advance_seconds": "x"},
     {"error": "advance_seconds: a number from 0 to 1e9"}),
    ("2030-06-01T00:00:00Z", {"now": "2031-01-01T00:00:00Z", "frozen": "yes"}, {"error": "frozen: true or false"}),
])
async def test_a_clock_body_refused_in_any_member_leaves_the_clock_as_it_was(
        tapi: Api, start: str, body: dict[str, Any], error: dict[str, str]) -> None:
    """Each was applied before: a clock past 9999 (or before year 1) then failed every
    request of the namespace with a 500, and a body with one bad member kept the others."""
    await tapi.request("PUT", f"{NS}/c/clock", body={"frozen": True, "now": start})
    assert (await tapi.request("PUT", f"{NS}/c/clock", body=body))[:2] == (400, error)
    status, clock, _ = await tapi.request("GET", f"{NS}/c/clock")
    assert (status, clock) == (200, {"now": start.replace("Z", ".000Z"), "frozen": True})
    assert (await tapi.request("GET", "/_ns/c/task-status/v1"))[0] == 200


async def _namespace_token(tapi: Api, namespace: str) -> str:
    resp = await tapi.client.post(f"/_ns/{namespace}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "c", "client_secret": "s"})
    assert resp.status == 200
    return str((await resp.json())["access_token"])


async def test_a_namespace_s_clock_moves_no_token_of_the_server(tapi: Api) -> None:
    """A clock set forward and a token minted by it: the server's purge of expired tokens
    and the new token's stored expiry count in the system's time, so no other token goes
    (the purge once ran on the namespace's time, and deleted every token of the server)
    and the new one lasts auth.token_ttl_seconds everywhere but where its clock moves."""
    import time

    from gateway.auth import secret_hash
    await tapi.store.add_oauth_client("c", secret_hash("s"), "root")
    before = await tapi.store.list_tokens()
    assert (await tapi.request("PUT", f"{NS}/f"))[0] == 201
    await tapi.request("PUT", f"{NS}/f/clock", body={"advance_seconds": 1_000_000_000})
    minted = int(time.time())
    token = await _namespace_token(tapi, "f")
    after = await tapi.store.list_tokens()
    assert [t.hash for t in after] == [t.hash for t in before] + [secret_hash(token)]
    for other in (tapi.admin, tapi.user, tapi.read_only):
        assert (await tapi.request("GET", "/task-status/v1", token=other))[0] == 200
    expires = after[-1].expires
    assert expires is not None and minted + 3600 <= expires <= int(time.time()) + 3600
    assert (await tapi.request("GET", "/_ns/f/task-status/v1", token=token))[0] == 200
    await tapi.request("PUT", f"{NS}/f/clock", body={"advance_seconds": 3600})
    status, body, _ = await tapi.request("GET", "/_ns/f/task-status/v1", token=token)
    assert (status, body) == (401, {"error": "token expired"})
    assert (await tapi.request("GET", "/task-status/v1", token=token))[0] == 200


async def test_a_namespace_s_clock_brings_a_token_s_end_forward_never_puts_it_off(tapi: Api) -> None:
    from gateway.auth import secret_hash
    await tapi.store.add_oauth_client("c", secret_hash("s"), "root")
    await tapi.request("PUT", f"{NS}/b/clock", body={"frozen": True, "now": "2020-01-01T00:00:00Z"})
    token = await _namespace_token(tapi, "b")  # minted by a clock years behind the system's
    assert (await tapi.request("GET", "/_ns/b/task-status/v1", token=token))[0] == 200
    await tapi.request("PUT", f"{NS}/b/clock", body={"advance_seconds": 3600})
    status, body, _ = await tapi.request("GET", "/_ns/b/task-status/v1", token=token)
    assert (status, body) == (401, {"error": "token expired"})
    import time
    # expired by the system's time a moment ago, years after the namespace's time: expired everywhere
    await tapi.store.add_token("root", secret_hash("old"), read_only=False, expires=int(time.time()) - 10,
                               source="oauth")
    for path in ("/_ns/b/task-status/v1", "/task-status/v1"):
        status, body, _ = await tapi.request("GET", path, token="old")
        assert (status, body) == (401, {"error": "token expired"})


async def test_a_scheduled_webmethods_task_starts_when_the_clock_reaches_it(tapi: Api) -> None:
    await tapi.request("PUT", f"{NS}/w/clock", body={"frozen": True, "now": "2030-01-01T00:00:00Z"})
    status, created, _ = await tapi.request("POST", "/_ns/w/rest/pub/opentask", body={
        "taskTypeID": "T", "taskInfo": {"taskScheduleDate": "2030-01-02T00:00:00Z"}})
    assert status == 200, created
    status, body, _ = await tapi.request("GET", f"/_ns/w/rest/pub/opentask/{created['taskID']}")
    assert body["TaskInfo"]["status"] == "scheduled"
    status, body, _ = await tapi.request("PUT", f"{NS}/w/clock", body={"advance_seconds": 86400})
    assert body["swept"] == 1
    status, body, _ = await tapi.request("GET", f"/_ns/w/rest/pub/opentask/{created['taskID']}")
    assert body["TaskInfo"]["status"] == "active"


async def test_scripted_progress_of_a_superoffice_task(tapi: Api) -> None:
    await tapi.request("PUT", f"{NS}/p/clock", body={"frozen": True})
    status, task_id, _ = await tapi.request("POST", "/_ns/p/api/v1/BatchTask", body={"Name": "import"})
    assert status == 200
    status, script, _ = await tapi.request("POST", f"{NS}/p/progress", body={
        "style": "superoffice", "id": task_id, "seconds": 100, "status": "Failed"})
    assert status == 201 and script["percent"] == 0
    seen = []
    for _ in range(5):
        status, body, _ = await tapi.request("GET", f"/_ns/p/api/v1/BatchTask/{task_id}")
        seen.append((body["ProgressPercent"], body["State"]))
        await tapi.request("PUT", f"{NS}/p/clock", body={"advance_seconds": 30})
    assert seen == [(0, "Started"), (30, "Started"), (60, "Started"), (90, "Started"), (100, "Failed")]
    status, body, _ = await tapi.request("GET", f"{NS}/p")
    assert body["progress"] == 0  # finished scripts end
    status, body, _ = await tapi.request("POST", f"{NS}/p/progress", body={
        "style": "superoffice", "id": task_id, "seconds": 10, "status": "Done"})
    assert (status, body) == (400, {"error": "progress status for superoffice: one of ['Succeeded', 'Failed']"})
