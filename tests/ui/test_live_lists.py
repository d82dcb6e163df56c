"""New tasks in an open list (gateway/ui/live.py, views.matches): the matcher agrees with the
store's own query on real SQLite, and a list page's stream sends a new task's row to a page
sorted newest first, a notice to a page sorted otherwise, and nothing to a page whose user
may not read it or whose filters it does not match."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import pytest

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, Principal, hash_password
from gateway.config import Config
from gateway.context import STORE
from gateway.query import Query
from gateway.ui import pages, views
from gateway.ui.live import MAX_ADDED, NEW_PER_ROUND, sse_event
from tests.conftest import Api
from tests.ui.test_pages import sign_in

FILTERS = [views.Filters(), views.Filters(text="order"), views.Filters(text="ORDER"), views.Filters(text="s-1"),
           views.Filters(style="sailpoint", status="running"), views.Filters(status="ERROR"),
           views.Filters(owner="alice"), views.Filters(owner="7"), views.Filters(style="webmethods", owner="root"),
           views.Filters(status="active", text="approve")]


async def test_the_matcher_agrees_with_the_store(api: Api) -> None:
    for i, (name, status) in enumerate((("Nightly order", None), ("Export", "Error"), ("s-1 sync", "Success"))):
        body: dict[str, Any] = {"id": f"s-{i}", "type": "QUARTZ", "uniqueName": name, "launcher": "alice"}
        if status:
            body["completionStatus"] = status
        assert (await api.request("POST", "/task-status/v1", body=body))[0] == 201
    for name, associate in (("Order export", 7), ("Other", 8)):
        status, doc, _ = await api.request("POST", "/api/v1/BatchTask", body={"Name": name, "AssociateId": associate})
        assert status in (200, 201), doc
    for name, assigned in (("Approve order", ["alice"]), ("Approve invoice", ["bob"])):
        status, doc, _ = await api.request("POST", "/rest/pub/opentask", body={
            "taskTypeID": "t", "taskQueueInfo": {"name": name, "assignedToList": assigned}})
        assert status == 200, doc
    every = [t for style in views.VIEWS for t in (await api.store.find(style, Query()))[0]]
    assert len(every) == 7
    for who in (Principal("root", "admin"), Principal("alice", "user"), Principal("bob", "user")):
        for filters in FILTERS:
            associate = 7 if filters.owner == "7" else None
            found = set()
            for style in filters.styles():
                query = views.style_query(views.VIEWS[style], filters, who, owner_associate=associate, limit=100,
                                          offset=0)
                if query is not None:
                    found |= {(t.style, t.id) for t in (await api.store.find(style, query))[0]}
            matched = {(t.style, t.id) for t in every if views.matches(filters, who, t, owner_associate=associate)}
            assert matched == found, (who.name, filters)
            assert found or filters.owner == "root" or filters.status == "active"  # the cases are not all empty


def test_only_the_first_page_newest_first_takes_new_rows_at_the_top() -> None:
    assert [views.adds_at_top(f) for f in (views.Filters(), views.Filters(text="x"), views.Filters(page=2),
                                            views.Filters(sort="name"), views.Filters(descending=False))] == \
        [True, True, False, False, False]


async def _next_event(stream: Any) -> bytes:
    return bytes(await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5))


@pytest.mark.parametrize("list_query", ["", "q=Fresh"])
async def test_a_new_task_goes_to_the_top_or_the_notice(aiohttp_client: Any, config: Config,
                                                        list_query: str) -> None:
    client = await aiohttp_client(create_app(config))
    store = client.app[STORE]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", hash_password("alice-password"))
    admin = {"Authorization": f"Bearer {await client.app[AUTHENTICATOR].create_token('root')}"}
    await sign_in(client, "alice", "alice-password")
    top = await client.get("/ui/live", params={"keys": "", "list": list_query})
    other = await client.get("/ui/live", params={"keys": "", "list": "sort=name&" + list_query})
    for stream in (top, other):
        assert await _next_event(stream) == b"retry: 1000\n: live\n\n"
    # a webMethods task alice may not read, and one of a name the filter does not take: nothing
    resp = await client.post("/rest/pub/opentask", json={"taskTypeID": "t", "taskQueueInfo": {"name": "Fresh wm"}},
                             headers=admin)
    assert resp.status == 200
    if list_query:
        resp = await client.post("/task-status/v1", json={"id": "n0", "type": "QUARTZ", "uniqueName": "Stale"},
                                 headers=admin)
        assert resp.status == 201
    resp = await client.post("/task-status/v1", json={"id": "n1", "type": "QUARTZ", "uniqueName": "Fresh one"},
                             headers=admin)
    assert resp.status == 201
    task = await store.get("sailpoint", "n1")
    seq = (await store.audit(style="sailpoint", task_id="n1", limit=1))[0].seq
    row = pages.render_new_row(views.row_of(task))
    assert row.startswith(f'<tr id="row-{pages.live_key("sailpoint", "n1")}" sse-swap="'
                          f'{pages.live_key("sailpoint", "n1")}" hx-swap="innerHTML"><td data-label="Style">SailPoint')
    assert await _next_event(top) == sse_event("new-row", row, seq)
    filters = views.parse_filters(dict(p.split("=") for p in ("sort=name&" + list_query).split("&") if p))
    notice = pages.render_new_tasks(1, filters)
    assert notice == f'1 new task matches this list: <a href="./?{html.escape(filters.query_string())}">show them</a>'
    assert await _next_event(other) == sse_event("new-tasks", notice)
    # the page that took the row now follows the task; the other does not
    resp = await client.patch("/task-status/v1/n1", data='[{"op": "replace", "path": "/percentComplete", "value": 9}]',
                              headers={**admin, "Content-Type": "application/json-patch+json"})
    assert resp.status == 200
    task = await store.get("sailpoint", "n1")
    seq = (await store.audit(style="sailpoint", task_id="n1", limit=1))[0].seq
    assert await _next_event(top) == sse_event(pages.live_key("sailpoint", "n1"),
                                               pages.render_row(views.row_of(task)), seq)
    resp = await client.post("/task-status/v1", json={"id": "n2", "type": "QUARTZ", "uniqueName": "Fresh two"},
                             headers=admin)
    assert resp.status == 201
    assert await _next_event(other) == sse_event("new-tasks", pages.render_new_tasks(2, filters))
    top.close()
    other.close()


async def test_a_list_stream_with_bad_filters_is_refused(ui_client: Any) -> None:
    for bad, message in (("sort=nope", "sort must be one of created, name, status, id; got &#39;nope&#39;"),
                         ("q=" + "x" * 1000, "list must be a list page&#39;s query string, at most 1000 characters")):
        resp = await ui_client.get("/ui/live", params={"keys": "", "list": bad})
        assert resp.status == 400 and message in await resp.text()


@pytest.fixture(name="ui_client")
async def _ui_client(api: Api) -> Any:
    await sign_in(api.client, "alice", "alice-password")
    return api.client


async def test_more_new_tasks_at_once_than_a_round_reads_is_a_notice(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(create_app(config))
    store = client.app[STORE]
    await store.add_user("alice", "user", hash_password("alice-password"))
    await sign_in(client, "alice", "alice-password")
    top = await client.get("/ui/live", params={"keys": "", "list": ""})
    other = await client.get("/ui/live", params={"keys": "", "list": "sort=name"})
    for stream in (top, other):
        assert await _next_event(stream) == b"retry: 1000\n: live\n\n"
    count = NEW_PER_ROUND + 50
    docs = [(f"b{i:03}", {"id": f"b{i:03}", "type": "QUARTZ", "uniqueName": f"Bulk {i}", "launcher": "root",
                          "created": f"2026-01-01T00:00:{i % 60:02}.{i:03}Z", "completionStatus": None,
                          "percentComplete": 0}) for i in range(count)]
    assert await store.bulk_create("sailpoint", docs, actor="root", request_id="bulk") == count
    # the first page newest first takes rows up to its bound, then the notice says more may match
    rows = [await _next_event(top) for _ in range(MAX_ADDED)]
    assert all(row.startswith(b"id: ") and b"\nevent: new-row\n" in row for row in rows)
    assert b"Bulk 50<" in rows[0]  # the newest NEW_PER_ROUND are read: b050 … b149, in order
    notice = pages.render_new_tasks(NEW_PER_ROUND - MAX_ADDED, views.Filters(), True)
    assert notice.startswith("More new tasks than the page follows live may match this list: <a href=")
    assert await _next_event(top) == sse_event("new-tasks", notice)
    assert await _next_event(other) == sse_event("new-tasks", pages.render_new_tasks(
        NEW_PER_ROUND, views.Filters(sort="name"), True))
    top.close()
    other.close()
