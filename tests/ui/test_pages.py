"""The dashboard's pages without a browser, on the production app factory: sign-in, the
CSP, the list as each user may see it, a task's timeline, undo with what it stores (and a
refused undo storing nothing), the XSRF rule of forms, the files, and the live stream."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import errors
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR, Principal, hash_password
from gateway.config import Config
from gateway.context import STORE
from gateway.ui import pages, views
from gateway.ui.live import HUB, LiveHub, sse_event
from tests.conftest import Api

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SP = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(name="ui")
async def _ui(api: Api) -> Api:
    await api.store.add_user("ada", "admin", hash_password("ada-password"))
    return api


async def sign_in(client: TestClient, user: str, password: str) -> str:
    """Sign in through the form; returns the session's XSRF token (as the pages carry it)."""
    resp = await client.post("/ui/login", data={"user": user, "password": password, "next": "/ui/task?style=x"},
                             allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "task?style=x")
    return pages.xsrf_token(resp.cookies["taskgate_session"].value)


async def create_sailpoint(api: Api, task_id: str, **fields: Any) -> dict[str, Any]:
    status, doc, _ = await api.request("POST", "/task-status/v1", body={
        "id": task_id, "type": "QUARTZ", "uniqueName": f"Task {task_id}", "launcher": "alice", **fields})
    assert status == 201, doc
    return doc


async def test_a_page_without_a_session_asks_for_one_and_comes_back(ui: Api) -> None:
    resp = await ui.client.get("/ui/task?style=sailpoint&id=x", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "login?next=%2Fui%2Ftask%3Fstyle%3Dsailpoint%26id%3Dx")
    resp = await ui.client.get("/ui/login?next=%2Fui%2Ftask%3Fstyle%3Dsailpoint%26id%3Dx")
    page = await resp.text()
    assert (resp.status, resp.headers["Content-Security-Policy"], resp.headers["Cache-Control"]) == \
        (200, CSP, "no-store")
    assert '<input type="hidden" name="next" value="/ui/task?style=sailpoint&amp;id=x">' in page
    assert "<script>" not in page and "style=" not in page.replace("?style=", "")  # nothing inline
    resp = await ui.client.get("/ui", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (301, "ui/")


@pytest.mark.parametrize(("given", "goes"), [("/ui/task?style=a&id=b", "task?style=a&id=b"), ("", "./"),
                                              ("/ui/", "./"), ("https://evil.example/", "./"), ("//evil", "./"),
                                              ("/ui/undo", "./"), ("/other/task", "task")])
async def test_after_signing_in_only_a_page_of_the_dashboard(ui: Api, given: str, goes: str) -> None:
    resp = await ui.client.post("/ui/login", data={"user": "alice", "password": "alice-password", "next": given},
                                allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, goes)


async def test_a_wrong_password_is_the_form_again(ui: Api) -> None:
    resp = await ui.client.post("/ui/login", data={"user": "alice", "password": "nope"})
    page = await resp.text()
    assert resp.status == 401 and '<p class="alert" role="alert">invalid user name or password</p>' in page
    assert "taskgate_session" not in resp.cookies


async def test_the_list_is_what_each_user_may_see(ui: Api) -> None:
    await create_sailpoint(ui, "s1", percentComplete=30)
    status, body, _ = await ui.request("POST", "/rest/pub/opentask", body={
        "taskTypeID": "t", "taskQueueInfo": {"name": "Approve order", "assignedToList": ["root"]}})
    assert status == 200, body
    await sign_in(ui.client, "alice", "alice-password")
    page = await (await ui.client.get("/ui/")).text()
    assert "Task s1" in page and "Approve order" not in page  # not assigned to alice
    assert re.search(r'<progress max="100" value="30" aria-label="30 percent complete">', page)
    assert f'sse-swap="{pages.live_key("sailpoint", "s1")}"' in page
    await sign_in(ui.client, "ada", "ada-password")
    page = await (await ui.client.get("/ui/")).text()
    assert "Task s1" in page and "Approve order" in page
    resp = await ui.client.get("/ui/?sort=nope")
    assert resp.status == 400 and "sort must be one of created, name, status, id; got &#39;nope&#39;" in \
        await resp.text()


async def test_the_first_page_reads_one_index_range_per_style(ui: Api) -> None:
    plans = {}
    for style in ("sailpoint", "superoffice", "webmethods"):
        query = views.style_query(views.VIEWS[style], views.Filters(), pages.Principal("ada", "admin"),
                                  owner_associate=None, limit=50, offset=0)
        plans[style] = await ui.store.explain(style, query)
    for style, plan in plans.items():
        # an index in the sort's order: at most the ties of a page's last value are sorted (the id after
        # a descending date), never every match
        assert "USING INDEX" in plan and "USE TEMP B-TREE FOR ORDER BY" not in plan, (style, plan)


async def test_digits_that_are_not_ascii_are_no_numbers(ui: Api) -> None:
    """str.isdigit takes "²", which int() refuses: each of these was a 500 in JSON, not the
    dashboard's page. "²" and "١٢" (Arabic-Indic digits, which int() reads as 12) are no
    owner's associate id and no position."""
    await create_sailpoint(ui, "s3")
    await sign_in(ui.client, "alice", "alice-password")
    unknown = await ui.client.get("/ui/?owner=nobody")
    assert unknown.status == 200
    unknown_page = await unknown.text()
    for owner, shown in (("%C2%B2", "²"), ("%D9%A1%D9%A2", "١٢")):
        resp = await ui.client.get(f"/ui/?owner={owner}")
        assert resp.status == 200
        # the page of an owner nobody is, the value shown as given
        page = (await resp.text()).replace(owner.replace("%", "%25"), "nobody")
        assert page.replace(owner, "nobody").replace(shown, "nobody") == unknown_page
    for path in ("/ui/task?style=sailpoint&id=s3&before=%C2%B2", "/ui/task-parts?style=sailpoint&id=s3&before=%C2%B2"):
        resp = await ui.client.get(path)
        assert resp.status == 400 and "before must be a positive integer; got &#39;²&#39;" in await resp.text()


async def test_a_tasks_page_shows_every_change_old_and_new(ui: Api) -> None:
    await create_sailpoint(ui, "s2", percentComplete=10)
    status, _, _ = await ui.request("PATCH", "/task-status/v1/s2", headers={**SP, "X-Request-ID": "rid-1"},
                                    data='[{"op": "replace", "path": "/percentComplete", "value": 60}]')
    assert status == 200
    await sign_in(ui.client, "alice", "alice-password")
    page = await (await ui.client.get("/ui/task?style=sailpoint&id=s2")).text()
    assert "request id <code>rid-1</code>" in page
    assert ('<tr><th scope="row"><code>/percentComplete</code></th><td class="old"><del>10</del></td>'
            '<td class="new"><ins>60</ins></td></tr>') in page
    assert "Undo change" not in page  # alice is not an admin
    parts = await (await ui.client.get("/ui/task-parts?style=sailpoint&id=s2")).text()
    assert parts.startswith('<section aria-labelledby="doc-h">') and "rid-1" in parts
    resp = await ui.client.get("/ui/task?style=sailpoint&id=nope")
    assert resp.status == 404 and "No SailPoint task &#39;nope&#39;, or you may not see it (access denied)." in \
        await resp.text()


async def test_undo_stores_the_inverse_as_a_new_change_and_a_refusal_stores_nothing(ui: Api) -> None:
    await create_sailpoint(ui, "s3")
    for path, value in (("/percentComplete", 50), ("/progress", "half"), ("/progress", "more")):
        status, _, _ = await ui.request("PATCH", "/task-status/v1/s3", headers=SP,
                                        data=f'[{{"op": "replace", "path": "{path}", "value": "{value}"}}]'
                                        if isinstance(value, str) else
                                        f'[{{"op": "replace", "path": "{path}", "value": {value}}}]')
        assert status == 200
    seqs = [c.seq for c in await ui.store.audit(style="sailpoint", task_id="s3", newest_first=False)]
    _created, first, second, _third = seqs
    xsrf = await sign_in(ui.client, "ada", "ada-password")
    form = {"xsrf": xsrf, "style": "sailpoint", "id": "s3", "seq": str(second), "version": "4"}
    before = await ui.snapshot()
    resp = await ui.client.post("/ui/undo", data=form)
    assert resp.status == 409 and f"change {second} cannot be undone: change {seqs[3]} by root at " in \
        await resp.text()
    resp = await ui.client.post("/ui/undo", data={**form, "seq": str(first), "version": "3"})  # a stale page
    assert resp.status == 409 and f"change {first} was not undone: the task changed after the page showed " \
        "version 3; look again and retry" in await resp.text()
    resp = await ui.client.post("/ui/undo", data={**form, "seq": str(first), "xsrf": "forged"})
    assert resp.status == 403
    assert await ui.snapshot() == before
    resp = await ui.client.post("/ui/undo", data={**form, "seq": str(first)}, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, f"task?style=sailpoint&id=s3&undone={first}")
    task = await ui.store.get("sailpoint", "s3")
    assert (task.version, task.doc["percentComplete"], task.doc["progress"]) == (5, 0, "more")
    undone = (await ui.store.audit(style="sailpoint", task_id="s3", limit=1))[0]
    assert (undone.actor, undone.request_id.endswith(f"#undo:{first}")) == ("ada", True)
    assert sorted(op["path"] for op in undone.patch) == ["/modified", "/percentComplete"]
    # a plain user may not undo, whatever the form says
    xsrf = await sign_in(ui.client, "alice", "alice-password")
    resp = await ui.client.post("/ui/undo", data={**form, "xsrf": xsrf, "seq": str(seqs[3]), "version": "5"})
    assert resp.status == 403 and "only an admin may undo a change" in await resp.text()


async def test_every_file_of_the_pages_is_in_the_package_and_nothing_else_is_served(ui: Api) -> None:
    templates = resources.files("gateway.ui").joinpath("templates")
    used = set()
    for template in templates.iterdir():
        used |= set(re.findall(r'\{\{ static \}\}([\w./-]+)', template.read_text()))
    assert used <= set(pages.ASSETS)
    for name, media in pages.ASSETS.items():
        resp = await ui.client.get(f"/ui/static/{name}")
        assert (resp.status, resp.content_type) == (200, media), name
        folder = ("static", "vendor") if name in pages.VENDORED else ("static",)
        assert await resp.read() == resources.files("gateway.ui").joinpath(*folder, name).read_bytes()
        assert ("immutable" in resp.headers["Cache-Control"]) is (name in pages.VENDORED)
    assert (await ui.client.get("/ui/static/../pages.py")).status == 404
    assert (await ui.client.get("/ui/static/vendor%2Fhtmx-2.0.11.min.js")).status == 404
    assert (await ui.client.get("/ui/static/nope.js")).status == 404


async def test_the_stream_sends_a_changed_row_to_whoever_may_read_it(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(create_app(config.replace("ui", max_live_streams=2)))
    store = client.app[STORE]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", hash_password("alice-password"))
    token = await client.app[AUTHENTICATOR].create_token("root")
    admin = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/rest/pub/opentask", json={"taskTypeID": "t", "taskQueueInfo": {"name": "n"}},
                             headers=admin)
    wm = (await resp.json())["taskID"]
    resp = await client.post("/task-status/v1", json={"id": "s9", "type": "QUARTZ", "uniqueName": "Live one"},
                             headers=admin)
    assert resp.status == 201
    await sign_in(client, "alice", "alice-password")
    keys = ",".join((pages.live_key("webmethods", wm), pages.live_key("sailpoint", "s9")))
    stream = await client.get(f"/ui/live?keys={keys}")
    assert (stream.status, stream.content_type) == (200, "text/event-stream")
    assert await stream.content.readuntil(b"\n\n") == b"retry: 1000\n: live\n\n"
    # the webMethods task alice may not see is not sent to her; the SailPoint one is, and a task
    # the page does not show is not
    for path, body in ((f"/rest/pub/opentask/{wm}", {"TaskInfo": {"description": "d"}}),):
        assert (await client.put(path, json=body, headers=admin)).status == 200
    resp = await client.post("/task-status/v1", json={"id": "s10", "type": "QUARTZ", "uniqueName": "Not shown"},
                             headers=admin)
    assert resp.status == 201
    resp = await client.patch("/task-status/v1/s9", data='[{"op": "replace", "path": "/percentComplete", "value": 7}]',
                              headers={**admin, "Content-Type": "application/json-patch+json"})
    assert resp.status == 200
    event = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
    task = await store.get("sailpoint", "s9")
    audit = await store.audit(style="sailpoint", task_id="s9", limit=1)
    assert event == sse_event(pages.live_key("sailpoint", "s9"), pages.render_row(views.row_of(task)), audit[0].seq)
    assert b'value="7"' in event
    for bad in ("nope", ",".join([pages.live_key("sailpoint", str(i)) for i in range(101)])):
        resp = await client.get(f"/ui/live?keys={bad}")
        assert resp.status == 400 and "keys must be at most 100 tasks&#39; live keys" in await resp.text()
    # one more stream is allowed, a third is not
    second = await client.get("/ui/live?keys=", headers=admin)
    assert second.status == 200
    third = await client.get("/ui/live", headers=admin)
    assert third.status == 503 and "2 live pages are open already" in await third.text()
    assert client.app[HUB].streams == 2
    stream.close()
    second.close()


async def test_one_user_cannot_take_every_live_page_s_place(aiohttp_client: Any, config: Config) -> None:
    """Beyond ui.max_live_streams_per_user a user's next stream is a 429 in the dashboard's
    error page, while another user still gets one; a closed stream frees its owner's place."""
    client = await aiohttp_client(create_app(config.replace("ui", max_live_streams=5, max_live_streams_per_user=2)))
    store = client.app[STORE]
    await store.add_user("alice", "user", hash_password("alice-password"))
    await store.add_user("bob", "user", hash_password("bob-password"))
    await sign_in(client, "alice", "alice-password")
    alice = [await client.get("/ui/live") for _ in range(2)]
    assert [resp.status for resp in alice] == [200, 200]
    third = await client.get("/ui/live")
    assert third.status == 429
    assert "you have 2 live pages open already, the most one user may; close one and try again" in await third.text()
    assert client.app[HUB].streams == 2
    client.session.cookie_jar.clear()  # another browser: bob's
    await sign_in(client, "bob", "bob-password")
    bob = await client.get("/ui/live")
    assert bob.status == 200 and client.app[HUB].streams == 3
    for resp in (*alice, third, bob):
        resp.close()


async def test_a_live_page_whose_tab_closed_gives_its_place_back_within_a_tick(
        tmp_path: Any, unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served as `taskgate serve` serves (a handler is not cancelled when its client
    leaves), with the keep-alive an hour away: a closed tab's stream leaves the hub within
    a tick (1 s), so a reload is not refused 429 until the next keep-alive's write would
    have failed."""
    import importlib

    from tests.served import assert_a_closed_stream_gives_its_seat_back, served

    monkeypatch.setattr(importlib.import_module("gateway.ui.live"), "KEEPALIVE_SECONDS", 3600.0)
    app = create_app(Config(base_dir=str(tmp_path)).replace("ui", max_live_streams_per_user=1))
    async with served(app, unused_tcp_port):
        await assert_a_closed_stream_gives_its_seat_back(app, unused_tcp_port, "/ui/live", lambda: app[HUB].streams)


def test_a_stream_that_leaves_frees_its_user_s_place() -> None:
    hub = LiveHub(None, 5, 2)  # type: ignore[arg-type]  # joining and leaving read no store
    alice, bob = Principal("alice", "user"), Principal("bob", "user")
    first, _second = hub.join(alice, frozenset()), hub.join(alice, frozenset())
    with pytest.raises(errors.TooManyRequests):
        hub.join(alice, frozenset())
    hub.join(bob, frozenset())
    hub.leave(first)
    hub.leave(first)  # leaving twice frees one place, not two
    hub.join(alice, frozenset())
    with pytest.raises(errors.TooManyRequests):
        hub.join(alice, frozenset())
    assert hub.streams == 3
    unbounded = LiveHub(None, 3, 0)  # type: ignore[arg-type]
    for _ in range(3):
        unbounded.join(alice, frozenset())
    with pytest.raises(errors.ServiceUnavailable):
        unbounded.join(bob, frozenset())


def test_an_event_carries_each_line_of_its_data() -> None:
    assert sse_event("t1", "<td>a</td>\n<td>b</td>", 7) == b"id: 7\nevent: t1\ndata: <td>a</td>\ndata: <td>b</td>\n\n"


async def test_a_timeline_page_shows_a_bounded_number_of_members_and_cuts_long_values(ui: Api) -> None:
    """Changes that replace 120 members each: a page shows 50 members of each, and 500 in
    all, says how many more each change touched, and links the older changes; a long value
    is cut. (A change of 40,000 members made a 65 MB page, built while every client waited.)"""
    created = await create_sailpoint(ui, "wide")
    doc = {**created, "attributes": {f"k{n:03}": 0 for n in range(120)}}
    for version in range(1, 13):  # changes 2 to 13 of the task (1 is its creation)
        doc = {**doc, "attributes": {k: version for k in doc["attributes"]}, "progress": "x" * 5_000 + f"{version:02}"}
        await ui.store.put("sailpoint", "wide", doc, actor="root", request_id=f"r{version}")
    await sign_in(ui.client, "ada", "ada-password")
    page = await (await ui.client.get("/ui/task?style=sailpoint&id=wide")).text()
    shown = re.findall(r'<li id="change-(\d+)">', page)
    assert shown == [str(seq) for seq in range(13, 3, -1)]  # 10 changes of 50 members: the page is full
    assert page.count('<tr><th scope="row">') == 500
    assert page.count("and 71 more members: the whole change is in") == 10  # 120 attributes and progress
    assert page.count("… (5,004 characters in all)") == 10 + 10  # each change's old and new progress
    older = re.search(r'<a href="\./task\?([^"]+)">Older changes</a>', page)
    assert older is not None and older.group(1) == "style=sailpoint&amp;id=wide&amp;before=4"
    page = await (await ui.client.get("/ui/task?style=sailpoint&id=wide&before=4")).text()
    assert re.findall(r'<li id="change-(\d+)">', page) == ["3", "2", "1"]
    assert "Older changes" not in page
