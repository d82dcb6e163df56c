"""A test namespace's own change feed: ``GET /_ns/{name}/events`` (and the namespace
header) streams the namespace store's audit trail, not the server's, and the server's
stream carries none of the namespace's changes. A reset or a restore restarts the feed:
open streams end with ``reset`` and id 0, a resume from an id past the new head is a 409
that says why, and a resume from 0 gets the new trail exactly; deleting the namespace
ends its streams with ``deleted``. Webhooks under a namespace: tests/e2e/test_namespace_hooks.py."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.events.feed import event_json
from gateway.model import Store
from gateway.testing.api import NAMESPACES
from tests.conftest import Api
from tests.events.sse_client import Frame, SseReader

SO = "/api/v1/BatchTask"
NS = "/_taskgate/namespaces"


def _store(tapi: Api, name: str) -> Store:
    namespace = tapi.client.app[NAMESPACES].find(name)
    assert namespace is not None
    return namespace.store


async def _trail(store: Store, after: int = 0) -> list[dict[str, Any]]:
    return [event_json(c) for c in await store.audit(after=after, newest_first=False)]


async def _open(tapi: Api, path: str, headers: dict[str, str] | None = None) -> tuple[aiohttp.ClientResponse,
                                                                                        SseReader]:
    resp = await tapi.client.get(path, headers={**tapi.auth(None), **(headers or {})})
    assert resp.status == 200, await resp.text()
    stream = SseReader(resp)
    assert (await stream.frame()).retry == "2000"
    return resp, stream


def _data(frames: list[Frame]) -> list[dict[str, Any]]:
    for f in frames:
        assert f.id == str(f.json["id"]) and f.event == "message", f
    return [f.json for f in frames]


async def _batch_task(tapi: Api, prefix: str, name: str) -> None:
    status, body, _ = await tapi.request("POST", f"{prefix}{SO}", body={"Name": name})
    assert status == 200, body


async def _ended(stream: SseReader, reason: str) -> None:
    end = await stream.frame()
    assert end == Frame(event="end", id="0", data=[f'{{"reason":"{reason}","last_id":0}}']), end
    assert await stream.frame() is None  # and the body ends


async def test_a_namespace_streams_its_own_trail_and_the_server_none_of_it(tapi: Api) -> None:
    await _batch_task(tapi, "", "server")
    await _batch_task(tapi, "/_ns/a", "ns one")
    await _batch_task(tapi, "/_ns/a", "ns two")
    ns = _store(tapi, "a")
    ns_trail, server_trail = await _trail(ns), await _trail(tapi.store)
    assert [(e["id"], e["style"], e["action"], e["patch"][1:2]) for e in ns_trail] == [
        (1, "superoffice", "created", [{"op": "add", "path": "/Name", "value": "ns one"}]),
        (2, "superoffice", "created", [{"op": "add", "path": "/Name", "value": "ns two"}])]
    assert [e["id"] for e in server_trail] == [1]

    by_path, by_path_stream = await _open(tapi, "/_ns/a/events?since=0")
    by_header, by_header_stream = await _open(tapi, "/events?since=0", {"X-Taskgate-Namespace": "a"})
    server, server_stream = await _open(tapi, "/events?since=0")
    assert _data(await by_path_stream.events(2)) == ns_trail
    assert _data(await by_header_stream.events(2)) == ns_trail
    assert _data(await server_stream.events(1)) == server_trail

    # a change in the namespace goes to its streams; the server's next change is the server's next event
    await _batch_task(tapi, "/_ns/a", "ns three")
    await _batch_task(tapi, "", "server two")
    assert _data(await by_path_stream.events(1)) == await _trail(ns, after=2)
    assert _data(await by_header_stream.events(1)) == await _trail(ns, after=2)
    assert _data(await server_stream.events(1)) == await _trail(tapi.store, after=1)
    for resp in (by_path, by_header, server):
        resp.close()
    # another namespace has a feed of its own, empty
    other, other_stream = await _open(tapi, "/_ns/b/events?since=0")
    await _batch_task(tapi, "/_ns/b", "b's")
    assert _data(await other_stream.events(1)) == await _trail(_store(tapi, "b"))
    assert [e["id"] for e in await _trail(_store(tapi, "b"))] == [1]
    other.close()


async def test_a_reset_or_restore_restarts_the_feed_and_an_old_id_is_refused(tapi: Api) -> None:
    for n in range(3):
        await _batch_task(tapi, "/_ns/r", f"before {n}")
    ns = _store(tapi, "r")
    resp, stream = await _open(tapi, "/_ns/r/events?since=0")
    assert [e["id"] for e in _data(await stream.events(3))] == [1, 2, 3]

    status, _, _ = await tapi.request("POST", f"{NS}/r/reset")
    assert status == 200
    await _ended(stream, "reset")
    resp.close()
    assert await ns.audit() == []

    # the client resumes with the id it had: past the new head, so refused, saying why
    answer = await tapi.client.get("/_ns/r/events", headers={**tapi.auth(None), "Last-Event-ID": "3"})
    assert (answer.status, await answer.json()) == (409, {"error": (
        "event 3 is past the newest event (0) of test namespace 'r': the namespace was reset, restored or deleted "
        "after that id was sent, and its ids began again; resume from 0 (Last-Event-ID: 0 or since=0)")})
    # from 0 (what the end said), the new trail, whose ids begin again
    await _batch_task(tapi, "/_ns/r", "after")
    resp, stream = await _open(tapi, "/_ns/r/events", {"Last-Event-ID": "0"})
    after_reset = await _trail(ns)
    assert [e["id"] for e in after_reset] == [1]
    assert _data(await stream.events(1)) == after_reset

    # a restore: back to the checkpoint's trail, which a resume from 0 gets whole
    status, body, _ = await tapi.request("POST", f"{NS}/r/checkpoints")
    assert (status, body) == (201, {"checkpoint": 1})
    for n in range(2):
        await _batch_task(tapi, "/_ns/r", f"later {n}")
    assert [e["id"] for e in _data(await stream.events(2))] == [2, 3]
    status, body, _ = await tapi.request("POST", f"{NS}/r/checkpoints/1/restore")
    assert (status, body) == (200, {"restored": 1})
    await _ended(stream, "reset")
    resp.close()
    assert await _trail(ns) == after_reset
    answer = await tapi.client.get("/_ns/r/events?since=2", headers=tapi.auth(None))
    assert answer.status == 409
    assert (await answer.json())["error"].startswith("event 2 is past the newest event (1) of test namespace 'r'")
    resp, stream = await _open(tapi, "/_ns/r/events?since=0")
    await _batch_task(tapi, "/_ns/r", "after restore")
    got = _data(await stream.events(2))
    assert got == await _trail(ns)
    assert [(e["id"], e["patch"][1]["value"]) for e in got] == [(1, "after"), (2, "after restore")]
    resp.close()


async def test_deleting_a_namespace_ends_its_streams(tapi: Api) -> None:
    await _batch_task(tapi, "/_ns/d", "doomed")
    resp, stream = await _open(tapi, "/_ns/d/events?since=0")
    server, server_stream = await _open(tapi, "/events")
    assert [e["id"] for e in _data(await stream.events(1))] == [1]
    assert tapi.client.app[NAMESPACES].names() == ["d"]
    status, _, _ = await tapi.request("DELETE", f"{NS}/d")
    assert status == 204
    await _ended(stream, "deleted")
    resp.close()
    assert tapi.client.app[NAMESPACES].names() == []
    # the server's stream goes on
    await _batch_task(tapi, "", "server")
    assert _data(await server_stream.events(1)) == await _trail(tapi.store)
    server.close()
