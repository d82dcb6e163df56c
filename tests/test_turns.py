"""Turns at lists and searches, and at writes with a large body: one user's many at once
wait for each other, not for everyone else.

The unit part drives :class:`~gateway.turns.Turns` itself: the limit, first come
first served, a waiter that gives up, and no memory left for a user with nothing in
flight. The app part holds both of alice's turns (as two long lists of hers would), then
sends each list and search route as alice and as root: root's answers at once, alice's
waits, counted by the turns and not by a clock, and once a turn is free it is the same
answer, byte for byte, that alice got before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from gateway.config import ServerConfig
from gateway.turns import LARGE_WRITE_BYTES, LIST_TURNS, WRITE_TURNS, Turns
from tests.conftest import Api
from tests.waiting import until_true


async def _holder(turns: Turns, user: str, release: asyncio.Event, order: list[str], name: str) -> None:
    async with turns.turn(user):
        order.append(name)
        await release.wait()


async def test_a_user_runs_at_most_its_turns_and_the_rest_go_in_order() -> None:
    turns = Turns(2)
    releases = [asyncio.Event() for _ in range(5)]
    order: list[str] = []
    tasks = [asyncio.create_task(_holder(turns, "alice", releases[i], order, f"a{i}")) for i in range(4)]
    tasks.append(asyncio.create_task(_holder(turns, "bob", releases[4], order, "b0")))
    await until_true(lambda: len(order) == 3)
    assert order == ["a0", "a1", "b0"]  # bob does not wait behind alice's queue
    assert (turns.running, turns.waiting, turns.waiting_for("alice"), turns.waiting_for("bob")) == (3, 2, 2, 0)
    releases[1].set()
    await until_true(lambda: len(order) == 4)
    assert order[-1] == "a2"  # the first to wait is the first to run
    releases[0].set()
    await until_true(lambda: len(order) == 5)
    assert order[-1] == "a3"
    for release in releases:
        release.set()
    await asyncio.gather(*tasks)
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)  # nothing kept for idle users


async def test_a_waiter_that_gives_up_leaves_no_trace() -> None:
    turns = Turns(1)
    release = asyncio.Event()
    order: list[str] = []
    first = asyncio.create_task(_holder(turns, "alice", release, order, "first"))
    await until_true(lambda: order == ["first"])
    gave_up = asyncio.create_task(_holder(turns, "alice", release, order, "gave up"))
    third = asyncio.create_task(_holder(turns, "alice", release, order, "third"))
    await until_true(lambda: turns.waiting_for("alice") == 2)
    gave_up.cancel()  # the client went away while it waited
    with pytest.raises(asyncio.CancelledError):
        await gave_up
    assert turns.waiting_for("alice") == 1
    release.set()
    await asyncio.gather(first, third)
    assert order == ["first", "third"]
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)


async def test_no_limit_is_no_waiting() -> None:
    turns = Turns(0)
    release = asyncio.Event()
    order: list[str] = []
    tasks = [asyncio.create_task(_holder(turns, "alice", release, order, str(i))) for i in range(20)]
    await until_true(lambda: len(order) == 20)
    assert turns.users() == 0
    release.set()
    await asyncio.gather(*tasks)


def test_the_default_is_two_per_user() -> None:
    assert ServerConfig().max_lists_per_user == 2


# -- on the app ------------------------------------------------------------------------------
ROUTES = [
    ("GET", "/task-status/v1?limit=250", None),
    ("GET", "/beta/task-status/pending-tasks", None),
    ("GET", "/api/v1/BatchTask", None),
    ("GET", "/api/v1/BatchTask/Started", None),
    ("POST", "/api/v1/Agents/Batch/GetBatchTaskInfosByState", {"state": "All"}),
    ("GET", "/rest/pub/opentask", None),
    ("GET", "/rest/pub/opentasksearch?taskName=Approve", None),
    ("POST", "/rest/pub/opentasksearch", {"taskSearchQuery": {"terms": []}}),
]


@pytest.fixture(name="seeded")
async def _seeded(api: Api) -> AsyncIterator[Api]:
    for n in range(3):  # SailPoint's and SuperOffice's tasks are an admin's to make; alice may read them
        status, doc, _ = await api.request("POST", "/task-status/v1", body={
            "id": f"sp{n}", "type": "QUARTZ", "uniqueName": f"Task {n}", "launcher": "alice"})
        assert status == 201, doc
        status, doc, _ = await api.request("POST", "/api/v1/BatchTask",
                                           body={"Name": f"Export {n}", "State": "Started"})
        assert status in (200, 201), doc
        status, doc, _ = await api.request("POST", "/rest/pub/opentask", token=api.user, body={
            "taskTypeID": "t", "taskQueueInfo": {"name": f"Approve {n}", "assignedToList": ["alice"]}})
        assert status == 200, doc
    yield api


async def _answer(api: Api, method: str, path: str, body: object, token: str) -> tuple[int, bytes]:
    resp = await api.client.request(method, path, json=body, headers=api.auth(token))
    return resp.status, await resp.read()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_users_list_waits_for_its_own_turn_and_nobody_elses(seeded: Api, method: str, path: str,
                                                                     body: object) -> None:
    api = seeded
    turns = api.client.app[LIST_TURNS]
    status, alone = await _answer(api, method, path, body, api.user)
    assert status == 200 and alone not in (b"", b"[]"), alone
    release = [asyncio.Event(), asyncio.Event()]
    held: list[str] = []
    holders = [asyncio.create_task(_holder(turns, "alice", release[i], held, str(i))) for i in range(2)]
    await until_true(lambda: len(held) == 2)  # alice's two turns are taken, as by two long lists
    waiting = asyncio.create_task(_answer(api, method, path, body, api.user))
    await until_true(lambda: turns.waiting_for("alice") == 1)
    status, root_answer = await _answer(api, method, path, body, api.admin)  # root's turn is its own
    assert status == 200 and root_answer
    assert not waiting.done() and turns.waiting_for("alice") == 1  # still waiting when root's came back
    resp = await api.client.get("/metrics", headers=api.auth())
    assert resp.status == 200
    text = await resp.text()
    assert 'taskgate_list_turns{state="running"} 2.0' in text and 'taskgate_list_turns{state="waiting"} 1.0' in text
    release[0].set()
    assert await waiting == (200, alone)
    release[1].set()
    await asyncio.gather(*holders)
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)


async def test_a_search_holds_no_turn_while_its_body_arrives(seeded: Api) -> None:
    """webMethods' POST search reads its TaskSearchQuery before it takes its caller's turn:
    a client that sends the body slowly (or never) holds none of alice's two."""
    from gateway.context import TRAFFIC

    api = seeded
    turns = api.client.app[LIST_TURNS]
    path, body = "/rest/pub/opentasksearch", {"taskSearchQuery": {"terms": []}}
    status, alone = await _answer(api, "POST", path, body, api.user)
    assert status == 200
    rest = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        yield b'{"taskSearchQuery": '
        await rest.wait()
        yield b'{"terms": []}}'
    headers = {**api.auth(api.user), "Content-Type": "application/json"}
    searching = asyncio.create_task(api.client.post(path, data=slowly(), headers=headers))
    await until_true(lambda: api.client.app[TRAFFIC].active == 1)  # in the handler, waiting for the body
    await asyncio.sleep(0.05)
    assert (turns.running, turns.waiting) == (0, 0)
    assert [await _answer(api, "POST", path, body, api.user) for _ in range(2)] == [(200, alone)] * 2
    rest.set()
    resp = await searching
    assert (resp.status, await resp.read()) == (200, alone)
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)


async def test_the_dashboard_list_takes_the_signed_in_users_turn(seeded: Api) -> None:
    from tests.ui.test_pages import sign_in

    api = seeded
    turns = api.client.app[LIST_TURNS]
    await sign_in(api.client, "alice", "alice-password")
    resp = await api.client.get("/ui/")
    assert resp.status == 200
    alone = await resp.text()
    assert "Approve 2" in alone
    release = [asyncio.Event(), asyncio.Event()]
    held: list[str] = []
    holders = [asyncio.create_task(_holder(turns, "alice", release[i], held, str(i))) for i in range(2)]
    await until_true(lambda: len(held) == 2)
    page = asyncio.create_task(api.client.get("/ui/"))
    await until_true(lambda: turns.waiting_for("alice") == 1)
    release[0].set()
    resp = await page
    assert (resp.status, await resp.text()) == (200, alone)  # the page it is when nobody waits
    release[1].set()
    await asyncio.gather(*holders)


async def test_a_list_whose_client_left_while_it_waited_leaves_the_queue_unrun(tmp_path, unused_tcp_port) -> None:
    """Served as `taskgate serve` serves (a request whose client left is not cancelled):
    five lists whose clients give up while waiting leave the queue within a look or two,
    free their connections and never run; a list that waits on does."""
    import aiohttp

    from gateway.app import create_app
    from gateway.auth import AUTHENTICATOR
    from gateway.config import Config
    from gateway.context import STORE
    from tests.served import served

    app = create_app(Config(base_dir=str(tmp_path)))
    async with served(app, unused_tcp_port, max_connections=20) as runner:
        store, turns = app[STORE], app[LIST_TURNS]
        await store.add_user("alice", "user", None)
        token = await app[AUTHENTICATOR].create_token("alice")
        runs: list[str] = []
        find_ids = store.find_ids

        async def counted(style, query):  # the real lookup, counted: did a list run?
            runs.append(style)
            return await find_ids(style, query)
        store.find_ids = counted
        release, held = [asyncio.Event(), asyncio.Event()], []
        holders = [asyncio.create_task(_holder(turns, "alice", release[i], held, str(i))) for i in range(2)]
        await until_true(lambda: len(held) == 2)
        url = f"http://127.0.0.1:{unused_tcp_port}/task-status/v1"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            patient = asyncio.create_task(http.get(url, headers=headers))
            await until_true(lambda: turns.waiting_for("alice") == 1)
            async with aiohttp.ClientSession() as impatient:
                for _ in range(5):  # as an SDK with a timeout would
                    with pytest.raises(asyncio.TimeoutError):
                        async with impatient.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=0.2)):
                            pass
            await until_true(lambda: turns.waiting_for("alice") == 1)  # only the patient one waits on
            assert runner.limit is not None
            await until_true(lambda: runner.limit.open == 1)
            release[0].set()
            resp = await patient
            assert (resp.status, await resp.json()) == (200, [])
        release[1].set()
        await asyncio.gather(*holders)
        assert runs.count("sailpoint") == 1 and turns.users() == 0  # (the webMethods sweeper looks up too)


# -- large writes ------------------------------------------------------------------------------
def test_the_default_is_two_large_writes_per_user() -> None:
    assert ServerConfig().max_large_writes_per_user == 2


async def _stored_blob(api: Api, task_id: str) -> str:
    status, doc, _ = await api.request("GET", f"/rest/pub/opentask/{task_id}?includeTaskData=true")
    assert status == 200, doc
    return doc["TaskData"]["blob"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_users_large_write_waits_for_its_own_turn_and_small_ones_do_not(api: Api, chunked: bool) -> None:
    """alice's two write turns are held (as by two large PUTs of hers still arriving): her
    next large PUT waits, counted by the turns, while root's large PUT and her own small
    one are answered; once a turn is free hers is stored and answered as it would have been."""
    turns = api.client.app[WRITE_TURNS]
    status, created, _ = await api.request("POST", "/rest/pub/opentask", token=api.user,
                                           body={"taskTypeID": "t", "TaskData": {"blob": "a"}})
    assert status == 200, created
    task_id = created["taskID"]
    path = f"/rest/pub/opentask/{task_id}"
    large = json.dumps({"TaskData": {"blob": "b" * (LARGE_WRITE_BYTES + 1)}}).encode()
    release = [asyncio.Event(), asyncio.Event()]
    held: list[str] = []
    holders = [asyncio.create_task(_holder(turns, "alice", release[i], held, str(i))) for i in range(2)]
    await until_true(lambda: len(held) == 2)

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: of unknown length, so large
        yield large
    headers = {**api.auth(api.user), "Content-Type": "application/json"}
    waiting = asyncio.create_task(api.client.put(path, data=body() if chunked else large, headers=headers))
    await until_true(lambda: turns.waiting_for("alice") == 1)
    # root's large write has a turn of its own; alice's small one needs none
    status, answer, _ = await api.request("PUT", path, body={"TaskData": {"blob": "c" * (LARGE_WRITE_BYTES + 1)}})
    assert (status, answer) == (200, {})
    assert await _stored_blob(api, task_id) == "c" * (LARGE_WRITE_BYTES + 1)
    status, answer, _ = await api.request("PUT", path, token=api.user, body={"TaskData": {"blob": "d"}})
    assert (status, answer) == (200, {})
    assert await _stored_blob(api, task_id) == "d"
    assert not waiting.done() and turns.waiting_for("alice") == 1
    resp = await api.client.get("/metrics", headers=api.auth())
    text = await resp.text()
    assert 'taskgate_write_turns{state="running"} 2.0' in text and 'taskgate_write_turns{state="waiting"} 1.0' in text
    release[0].set()
    resp = await waiting
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {}  # what webMethods answers a PUT
    assert await _stored_blob(api, task_id) == "b" * (LARGE_WRITE_BYTES + 1)
    release[1].set()
    await asyncio.gather(*holders)
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)


async def test_a_caller_not_signed_in_takes_its_addresss_turns_an_ipv6_64_as_one(aiohttp_client, tmp_path) -> None:
    """A large body to a public route (the OAuth token call) from a client that signs in as
    nobody: behind a trusted proxy its turns are the forwarded address's, and two addresses
    of one IPv6 /64 share them (as the sign-in limiter counts them); another /64 has its own."""
    from gateway.app import create_app
    from gateway.config import Config

    app = create_app(Config(base_dir=str(tmp_path)).replace("server", trusted_proxies="127.0.0.1"))
    client = await aiohttp_client(app)
    turns = app[WRITE_TURNS]
    release = [asyncio.Event(), asyncio.Event()]
    held: list[str] = []
    holders = [asyncio.create_task(_holder(turns, "@2001:db8:1:2::/64", release[i], held, str(i))) for i in range(2)]
    await until_true(lambda: len(held) == 2)
    body = "grant_type=client_credentials&client_id=nobody&client_secret=" + "s" * LARGE_WRITE_BYTES

    async def token(address: str) -> tuple[int, bytes]:
        resp = await client.post("/oauth/token", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": address})
        return resp.status, await resp.read()
    waiting = asyncio.create_task(token("2001:db8:1:2::77"))
    await until_true(lambda: turns.waiting_for("@2001:db8:1:2::/64") == 1)
    elsewhere = await token("2001:db8:1:3::77")  # another /64: answered while the first waits
    assert elsewhere[0] == 401, elsewhere
    assert not waiting.done()
    release[0].set()
    assert await waiting == elsewhere  # the same refusal, once it had a turn
    release[1].set()
    await asyncio.gather(*holders)
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)
