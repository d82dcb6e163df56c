"""``GET /events`` in process: events in commit order equal to the audit rows, resumption
by ``Last-Event-ID`` and ``since``, filters, per-event authorization by each style's read
rule, no event for a refused write, heartbeats, the end on shutdown, the metrics, and
every answer checked against the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR
from gateway.config import Config
from gateway.context import FEED, STORE, TRAFFIC
from gateway.events.feed import event_json
from gateway.events.published import deleted_document
from tests.conftest import Api
from tests.events.sse_client import Frame, SseReader
from tests.openapi_check import Document, answer

TAG = "taskgate events"
SP = "/task-status/v1"
WM = "/rest/pub/opentask"
SO = "/api/v1/BatchTask"


async def open_stream(api: Api, query: str = "", *, token: str | None = None,
                      headers: dict[str, str] | None = None) -> tuple[aiohttp.ClientResponse, SseReader]:
    resp = await api.client.get(f"/events{query}", headers={**api.auth(token), **(headers or {})})
    assert resp.status == 200, await resp.text()
    return resp, SseReader(resp)


async def audit_events(api: Api, after: int = 0) -> list[dict[str, Any]]:
    """The events the audit trail says there are, after *after*: what every stream must carry."""
    return [event_json(c) for c in await api.store.audit(after=after, newest_first=False)]


def data(frames: list[Frame]) -> list[dict[str, Any]]:
    for f in frames:
        assert f.id == str(f.json["id"]) and f.event == "message", f
    return [f.json for f in frames]


async def sailpoint_task(api: Api, **fields: Any) -> str:
    status, body, _ = await api.request("POST", SP, body={"type": "QUARTZ", "uniqueName": "u", **fields})
    assert status == 201, body
    return body["id"]


async def sailpoint_patch(api: Api, task_id: str, value: str, *, token: str | None = None,
                          headers: dict[str, str] | None = None) -> int:
    status, _, _ = await api.request("PATCH", f"{SP}/{task_id}", token=token, headers=headers,
                                     data=json.dumps([{"op": "replace", "path": "/completionStatus", "value": value}]),
                                     content_type="application/json-patch+json")
    return status


async def webmethods_task(api: Api, assigned: list[str]) -> str:
    status, body, _ = await api.request("POST", WM, body={"taskTypeID": "T",
                                                         "taskQueueInfo": {"assignedTaskList": assigned}})
    assert status == 200, body
    return body["taskID"]


async def test_events_come_in_commit_order_as_the_audit_rows_and_resume_by_id(api: Api):
    first = await sailpoint_task(api)
    resp, stream = await open_stream(api, "?since=0")
    assert (resp.headers["Content-Type"], resp.headers["Cache-Control"], resp.headers["X-Accel-Buffering"]) == \
        ("text/event-stream; charset=utf-8", "no-store", "no")
    opening = await stream.frame()
    assert opening == Frame(retry="2000")  # the comment that follows in the same block is ignored
    assert await sailpoint_patch(api, first, "Success") == 200
    await webmethods_task(api, ["alice"])
    status, _, _ = await api.request("POST", SO, body={"Name": "n", "State": "Started"})
    assert status == 200
    status, _, _ = await api.request("DELETE", f"{WM}/1")
    assert status == 200
    expected = await audit_events(api)
    assert [(e["style"], e["action"]) for e in expected] == [
        ("sailpoint", "created"), ("sailpoint", "updated"), ("webmethods", "created"), ("superoffice", "created"),
        ("webmethods", "deleted")]
    assert data(await stream.events(len(expected))) == expected
    resp.close()

    # an EventSource reconnecting sends Last-Event-ID, which wins over the since of its URL
    resp, stream = await open_stream(api, "?since=0", headers={"Last-Event-ID": "2"})
    assert data(await stream.events(3)) == expected[2:]
    resp.close()
    resp, stream = await open_stream(api, "?since=4")
    assert data(await stream.events(1)) == expected[4:]
    resp.close()

    # without a position, only changes to come
    resp, stream = await open_stream(api)
    assert (await stream.frame()).retry == "2000"
    assert await sailpoint_patch(api, first, "Error") == 200
    assert data(await stream.events(1)) == await audit_events(api, after=5)
    resp.close()


async def test_a_refused_or_failed_write_sends_no_event(api: Api):
    task = await sailpoint_task(api)
    resp, stream = await open_stream(api)
    await stream.frame()
    before = await api.snapshot()
    # a bad value (400), a stale If-Match (412), someone else's task (403), an unknown task (404)
    assert await sailpoint_patch(api, task, "Nonsense") == 400
    assert await sailpoint_patch(api, task, "Error", headers={"If-Match": '"7"'}) == 412
    assert await sailpoint_patch(api, task, "Error", token=api.user) == 403
    assert await sailpoint_patch(api, "0" * 32, "Error") == 404
    assert await api.snapshot() == before
    assert await sailpoint_patch(api, task, "Error") == 200
    # the first event after the refusals is the one committed change, the next audit row
    assert data(await stream.events(1)) == await audit_events(api, after=1)
    resp.close()


async def test_each_caller_sees_only_events_of_tasks_it_may_read(api: Api):
    resp_alice, alice = await open_stream(api, "?since=0", token=api.user)
    resp_root, root = await open_stream(api, "?since=0")
    hidden = await webmethods_task(api, [])  # root's, assigned to nobody: alice may not read it
    mine = await webmethods_task(api, ["alice"])
    sp = await sailpoint_task(api)  # SailPoint and SuperOffice tasks: anyone signed in reads them
    status, _, _ = await api.request("PUT", f"{WM}/{hidden}", body={"TaskInfo": {"name": "secret"}})
    assert status == 200
    status, _, _ = await api.request("PUT", f"{WM}/{mine}", token=api.user, body={"TaskInfo": {"name": "ok"}})
    assert status == 200
    status, _, _ = await api.request("DELETE", f"{WM}/{mine}")  # alice still sees its delete
    assert status == 200
    everything = await audit_events(api)
    assert [(e["task_id"], e["action"]) for e in everything] == [
        (hidden, "created"), (mine, "created"), (sp, "created"), (hidden, "updated"), (mine, "updated"),
        (mine, "deleted")]
    assert data(await root.events(6)) == everything
    assert data(await alice.events(4)) == [e for e in everything if e["task_id"] != hidden]
    resp_alice.close()
    # resumed from the start after the delete: the deleted task is judged by the document its delete removed
    resp_alice, alice = await open_stream(api, "?since=0", token=api.user)
    assert data(await alice.events(4)) == [e for e in everything if e["task_id"] != hidden]
    resp_alice.close()
    resp_root.close()


async def test_events_of_a_deleted_task_are_judged_by_that_task_not_by_the_one_holding_its_id_now(api: Api):
    """An import puts another task under a deleted task's id: alice, who could read the task
    that was, still gets its events from a resumed stream, and none of the new task's; bob,
    who may read only the new one ("reader", its assignee), gets none of the old one's."""
    mine = await webmethods_task(api, ["alice"])
    status, _, _ = await api.request("PUT", f"{WM}/{mine}", token=api.user, body={"TaskInfo": {"name": "alice's"}})
    assert status == 200
    status, _, _ = await api.request("DELETE", f"{WM}/{mine}")
    assert status == 200
    status, found, _ = await api.request("GET", f"{WM}/{mine}")
    assert status == 404, found
    removed = deleted_document((await api.store.audit(style="webmethods", task_id=mine, limit=1))[0])
    assert removed is not None and removed["TaskInfo"]["assignedToList"] == ["alice"]
    bobs = {**removed, "TaskInfo": {**removed["TaskInfo"], "name": "reader's", "assignedToList": ["reader"]}}
    await api.store.put("webmethods", mine, bobs, actor="cli:import", request_id="import:1")
    everything = await audit_events(api)
    assert [(e["task_id"], e["action"]) for e in everything] == [
        (mine, "created"), (mine, "updated"), (mine, "deleted"), (mine, "created")]
    for token, seen in ((api.user, everything[:3]), (api.read_only, everything[3:])):
        for _ in range(2):  # the second read finds each life already known
            resp, stream = await open_stream(api, "?since=0", token=token)
            assert data(await stream.events(len(seen))) == seen
            resp.close()
    # followed live: the events of a life already known come from the window, judged alike
    resp_alice, alice = await open_stream(api, "?since=0", token=api.user)
    assert data(await alice.events(3)) == everything[:3]
    status, _, _ = await api.request("PUT", f"{WM}/{mine}", body={"TaskInfo": {"name": "reader's, renamed"}})
    assert status == 200
    resp_bob, bob = await open_stream(api, "?since=3", token=api.read_only)
    assert data(await bob.events(2)) == (await audit_events(api))[3:]
    status, _, _ = await api.request("PUT", f"{WM}/{mine}", body={"TaskInfo": {"name": "reader's, again"}})
    assert status == 200
    assert data(await bob.events(1)) == (await audit_events(api))[5:]
    hers = await webmethods_task(api, ["alice"])  # her next event: none of the two changes before it
    assert data(await alice.events(1)) == (await audit_events(api))[6:]
    assert (await audit_events(api))[6]["task_id"] == hers
    resp_alice.close()
    resp_bob.close()


async def test_filters_by_style_task_and_action(api: Api):
    a = await sailpoint_task(api)
    b = await sailpoint_task(api)
    await webmethods_task(api, [])
    for task, value in ((a, "Success"), (b, "Success"), (a, "Error")):
        assert await sailpoint_patch(api, task, value) == 200
    everything = await audit_events(api)

    async def seen(query: str, count: int) -> list[dict[str, Any]]:
        resp, stream = await open_stream(api, query)
        got = data(await stream.events(count))
        resp.close()
        return got

    assert await seen("?since=0&style=webmethods", 1) == [e for e in everything if e["style"] == "webmethods"]
    assert await seen("?since=0&style=webmethods,sailpoint&action=updated", 3) == \
        [e for e in everything if e["action"] == "updated"]
    assert await seen(f"?since=0&task={a}&action=updated&action=created", 3) == \
        [e for e in everything if e["task_id"] == a]
    # the filter applies to live events too: b's next change is not for a's stream
    resp, stream = await open_stream(api, f"?task={a}")
    await stream.frame()
    assert await sailpoint_patch(api, b, "Error") == 200
    assert await sailpoint_patch(api, a, "Warning") == 200
    assert data(await stream.events(1)) == [e for e in await audit_events(api) if e["task_id"] == a][-1:]
    resp.close()


@pytest.mark.parametrize(("query", "headers", "message"), [
    ("?since=x", {}, "since must be an event id (a whole number, 0 for the start); got 'x'"),
    ("?since=-1", {}, "since must be an event id (a whole number, 0 for the start); got '-1'"),
    ("", {"Last-Event-ID": "abc"}, "Last-Event-ID must be an event id (a whole number, 0 for the start); got 'abc'"),
    ("?style=jira", {}, "style must be one of sailpoint, superoffice, webmethods; got 'jira'"),
    ("?action=renamed", {}, "action must be one of created, updated, deleted; got 'renamed'"),
    ("?task=a&task=b", {}, "task names one task id, once"),
    ("?task=", {}, "task names one task id, once"),
    ("?limit=3", {}, "unknown parameter 'limit'; GET /events takes action, since, style, task"),
])
async def test_bad_parameters_are_400_and_open_no_stream(api: Api, query: str, headers: dict[str, str], message: str):
    status, body, _ = await api.request("GET", f"/events{query}", headers=headers)
    assert (status, body) == (400, {"error": message})
    assert api.client.app[FEED].subscribers == 0


async def test_head_answers_the_headers_and_opens_no_stream(api: Api):
    resp = await api.client.head("/events?since=0", headers=api.auth())
    assert (resp.status, resp.headers["Content-Type"], await resp.read()) == \
        (200, "text/event-stream; charset=utf-8", b"")
    assert api.client.app[FEED].subscribers == 0


async def test_heartbeats_keep_an_idle_stream_busy(aiohttp_client, config: Config):
    client = await aiohttp_client(create_app(config.replace("events", heartbeat_seconds=0.05)))
    await client.app[STORE].add_user("root", "admin", None)
    token = await client.app[AUTHENTICATOR].create_token("root")
    resp = await client.get("/events", headers={"Authorization": f"Bearer {token}"})
    stream = SseReader(resp)
    assert (await stream.frame()).retry == "2000"
    assert [await stream.frame() for _ in range(3)] == [Frame(comment="heartbeat")] * 3
    resp.close()


async def test_a_drain_ends_every_stream_at_once_with_the_id_to_resume_from(api: Api):
    await sailpoint_task(api)
    streams = [await open_stream(api, "?since=0"), await open_stream(api, "?style=webmethods", token=api.user)]
    for _resp, stream in streams:
        await stream.frame()
    assert data(await streams[0][1].events(1)) == await audit_events(api)
    traffic = api.client.app[TRAFFIC]
    started = asyncio.get_running_loop().time()
    left = await traffic.drain(10)
    assert left == 0 and asyncio.get_running_loop().time() - started < 2
    for _resp, stream in streams:
        rest = await stream.rest()
        assert [(f.event, f.json) for f in rest] == [("end", {"reason": "shutdown", "last_id": 1})]


async def test_metrics_count_streams_and_events(api: Api):
    resp, stream = await open_stream(api, "?since=0")
    await sailpoint_task(api)
    await sailpoint_task(api)
    await stream.events(2)
    metrics = await (await api.client.get("/metrics")).text()
    assert "taskgate_events_streams 1.0" in metrics
    assert "taskgate_events_sent_total 2.0" in metrics
    assert "taskgate_events_cut_off_total 0.0" in metrics
    resp.close()
    # each of them is in the metrics table of docs/operations.md
    table = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    names = {line.split()[0] for line in metrics.splitlines() if line.startswith("taskgate_events_")}
    assert names == {"taskgate_events_streams", "taskgate_events_sent_total", "taskgate_events_cut_off_total"}
    assert all(f"| `{name}` |" in table for name in names)


async def test_every_answer_matches_the_document(api: Api):
    document = Document(json.loads(await (await api.client.get("/openapi.json")).read()), TAG)
    await sailpoint_task(api)
    for query, headers, status in (("?since=x", {}, 400), ("", {"Accept": "application/json"}, 406),
                                   ("", {"Authorization": "Bearer nope"}, 401)):
        got = await answer(api.client, document, "GET", f"/events{query}", headers={**api.auth(), **headers})
        assert got.status == status, got.body
    # a whole stream: ended by the drain, so that the answer has an end to check
    pending = asyncio.ensure_future(answer(api.client, document, "GET", "/events?since=0", headers=api.auth()))
    while api.client.app[FEED].subscribers == 0:
        await asyncio.sleep(0.01)
    await api.client.app[TRAFFIC].drain(5)
    got = await pending
    assert got.status == 200 and got.body.startswith(b"retry: 2000\n: taskgate events after 0\n\nid: 1\ndata: {")
    assert got.body.endswith(b'event: end\ndata: {"reason":"shutdown","last_id":1}\n\n')
    assert document.unanswered() == []


async def test_a_stream_whose_trail_cannot_be_read_is_closed_and_logged(aiohttp_client, config: Config):
    client = await aiohttp_client(create_app(config.replace("events", buffer_events=1)))
    store = client.app[STORE]
    await store.add_user("root", "admin", None)
    token = await client.app[AUTHENTICATOR].create_token("root")
    big = "x" * 200_000
    for i in range(60):  # 12 MB of events: more than the sockets hold while the client does not read
        await store.create("sailpoint", f"t{i}", {"blob": big}, actor="root", request_id="r")
    with capture_logs() as logs:
        resp = await client.get("/events?since=0", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        reader = SseReader(resp)
        assert [f.id for f in await reader.events(1)] == ["1"]
        await store.close()  # every read fails from here on, the next page of the catch-up too
        with pytest.raises(aiohttp.ClientPayloadError):
            await reader.rest()
    failed = [e for e in logs if e["event"] == "events.stream_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error" and 1 <= failed[0]["last_id"] < 60
    assert client.app[FEED].subscribers == 0


async def test_streams_are_bounded_per_user_and_per_process(aiohttp_client, config: Config):
    """Every commit costs something per open stream, so one user holds at most
    events.max_streams_per_user of them (429 beyond) and the process events.max_streams
    (503 beyond); a refused request opens none, and a stream that ends gives its seat back."""
    client = await aiohttp_client(create_app(config.replace("events", max_streams=3, max_streams_per_user=2)))
    store, auth = client.app[STORE], client.app[AUTHENTICATOR]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", None)
    tokens = {name: await auth.create_token(name) for name in ("root", "alice")}
    feed = client.app[FEED]

    async def ask(who: str) -> tuple[int, Any, aiohttp.ClientResponse]:
        resp = await client.get("/events", headers={"Authorization": f"Bearer {tokens[who]}"})
        return resp.status, (await resp.json() if resp.status != 200 else None), resp

    alice = [await ask("alice") for _ in range(2)]
    assert [a[0] for a in alice] == [200, 200]
    status, body, _ = await ask("alice")
    assert (status, body) == (429, {"error": "you have 2 event streams open already, the most one user may; close "
                                             "one and try again"})
    status, _, root = await ask("root")  # another user's own seat
    assert status == 200
    status, body, _ = await ask("root")
    assert (status, body) == (503, {"error": "3 event streams are open already; try again later"})
    await until_subscribers(feed, 3)
    alice[0][2].close()  # a stream that ends gives its seat back
    await until_subscribers(feed, 2)
    status, _, again = await ask("alice")
    assert status == 200
    for resp in (alice[1][2], root, again):
        resp.close()
    await until_subscribers(feed, 0)


async def until_subscribers(feed, n: int) -> None:
    from tests.waiting import until_true
    await until_true(lambda: feed.subscribers == n)


async def test_a_stream_whose_client_left_gives_its_seat_back_without_waiting_for_a_heartbeat(
        tmp_path: Path, unused_tcp_port: int):
    """Served as `taskgate serve` serves (a handler is not cancelled when its client leaves),
    with a heartbeat an hour away: a closed stream's seat comes back within a look (1 s), so a
    reload is not refused 429 until the stream's next write would have failed."""
    from tests.served import assert_a_closed_stream_gives_its_seat_back, served

    app = create_app(Config(base_dir=str(tmp_path)).replace("events", max_streams_per_user=1,
                                                            heartbeat_seconds=3600))
    async with served(app, unused_tcp_port):
        await assert_a_closed_stream_gives_its_seat_back(app, unused_tcp_port, "/events",
                                                         lambda: app[FEED].subscribers)
