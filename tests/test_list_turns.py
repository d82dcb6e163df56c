"""Turns at lists and searches: one user's many at once wait for each other, not for
everyone else.

The unit part drives :class:`~gateway.list_turns.ListTurns` itself: the limit, first come
first served, a waiter that gives up, and no memory left for a user with nothing in
flight. The app part holds both of alice's turns (as two long lists of hers would), then
sends each list and search route as alice and as root: root's answers at once, alice's
waits, counted by the turns and not by a clock, and once a turn is free it is the same
answer, byte for byte, that alice got before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.config import ServerConfig
from gateway.list_turns import LIST_TURNS, ListTurns
from tests.conftest import Api
from tests.waiting import until_true


async def _holder(turns: ListTurns, user: str, release: asyncio.Event, order: list[str], name: str) -> None:
    async with turns.turn(user):
        order.append(name)
        await release.wait()


async def test_a_user_runs_at_most_its_turns_and_the_rest_go_in_order() -> None:
    turns = ListTurns(2)
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
    turns = ListTurns(1)
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
    turns = ListTurns(0)
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
    release[0].set()
    assert await waiting == (200, alone)
    release[1].set()
    await asyncio.gather(*holders)
    assert (turns.running, turns.waiting, turns.users()) == (0, 0, 0)


async def test_the_dashboard_list_takes_the_signed_in_users_turn(seeded: Api) -> None:
    from tests.ui.test_pages import sign_in

    api = seeded
    turns = api.client.app[LIST_TURNS]
    await sign_in(api.client, "alice", "alice-password")
    release = [asyncio.Event(), asyncio.Event()]
    held: list[str] = []
    holders = [asyncio.create_task(_holder(turns, "alice", release[i], held, str(i))) for i in range(2)]
    await until_true(lambda: len(held) == 2)
    page = asyncio.create_task(api.client.get("/ui/"))
    await until_true(lambda: turns.waiting_for("alice") == 1)
    release[0].set()
    resp = await page
    assert resp.status == 200 and "Approve 2" in await resp.text()
    release[1].set()
    await asyncio.gather(*holders)
