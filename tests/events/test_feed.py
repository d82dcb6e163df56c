"""The change feed on a real SQLite file: the window and the subscriber that falls behind
it, catching up from before the window, the feed following commits of another store on
the same file (and of another gateway on PostgreSQL, heard through its notification), the
end on shutdown, and the styles' read rules it applies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.apis import sailpoint_rules, superoffice_rules, webmethods_rules
from gateway.auth import Principal
from gateway.events import feed as feed_module
from gateway.events.access import STYLE_NAMES, access_for, judged
from gateway.events.feed import (
    END_BEHIND,
    END_SHUTDOWN,
    READ_PAGE,
    TAKE_BYTES,
    Ended,
    Feed,
    Selection,
    Subscription,
    event_json,
    frame,
)
from gateway.store.postgres import PostgreSQLStore
from gateway.store.sqlite import SQLiteStore

EVERYTHING = Selection(access=access_for(Principal("root", "admin"), STYLE_NAMES))


@pytest.fixture(name="store")
async def _store(tmp_path: Path):
    store = await SQLiteStore.open(tmp_path / "t.db")
    yield store
    await store.close()


async def started(store: SQLiteStore, **options: Any) -> Feed:
    feed = Feed(store, **{"poll_seconds": 0.05, "buffer_events": 4, "buffer_bytes": 1 << 20, **options})
    await feed.start()
    return feed


async def take(sub: Subscription, count: int) -> list[dict[str, Any]]:
    """The next *count* events of *sub*, decoded from their frames."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(found) < count:
            for raw in await sub.next(5):
                head, data = raw.decode().rstrip("\n").split("\n")
                event = json.loads(data.removeprefix("data: "))
                assert head == f"id: {event['id']}"
                found.append(event)
    return found


async def test_a_subscriber_the_window_passes_is_ended_with_its_last_id(store: SQLiteStore):
    await store.create("sailpoint", "t0", {"n": 0}, actor="a", request_id="r")
    feed = await started(store)
    idle = feed.subscribe(None, EVERYTHING)  # after event 1, then never takes
    busy = feed.subscribe(None, EVERYTHING)
    got = []
    for i in range(1, 7):
        await store.create("sailpoint", f"t{i}", {"n": i}, actor="a", request_id="r")
        got += await take(busy, 1)
    assert [e["id"] for e in got] == [2, 3, 4, 5, 6, 7]
    assert (idle.ended, busy.ended, feed.cut_off) == (END_BEHIND, None, 1)
    with pytest.raises(Ended) as ended:
        await idle.next(1)
    assert (ended.value.reason, ended.value.last_id) == (END_BEHIND, 1)
    # resumed from its last id, it reads the trail up to the window, then the window: nothing missed
    again = feed.subscribe(ended.value.last_id, EVERYTHING)
    assert await take(again, 6) == [event_json(c) for c in await store.audit(after=1, newest_first=False)]
    await feed.close()


async def test_a_subscriber_from_the_start_catches_up_through_pages_of_the_trail(store: SQLiteStore):
    await store.bulk_create("webmethods", [(str(i), {"TaskInfo": {"createdBy": "alice"}, "TaskData": {}})
                                           for i in range(250)], actor="import", request_id="r")
    feed = await started(store)
    alice = Selection(access=access_for(Principal("alice", "user"), STYLE_NAMES))
    sub = feed.subscribe(0, alice)
    await store.create("webmethods", "late", {"TaskInfo": {"createdBy": "bob"}, "TaskData": {}},
                       actor="bob", request_id="r")
    await store.create("webmethods", "mine", {"TaskInfo": {"createdBy": "alice"}, "TaskData": {}},
                       actor="alice", request_id="r")
    got = await take(sub, 251)  # 250 from the trail (past a window of 4), then bob's is not hers
    assert [e["task_id"] for e in got] == [*map(str, range(250)), "mine"]
    assert got == [event_json(c) for c in await store.audit(newest_first=False) if c.task_id != "late"]
    await feed.close()


async def test_catching_up_hands_over_a_bounded_number_of_bytes_at_a_time(store: SQLiteStore):
    big = "x" * 100_000
    for i in range(12):
        await store.create("sailpoint", f"t{i}", {"blob": big}, actor="a", request_id="r")
    feed = await started(store, buffer_events=1)
    sub = feed.subscribe(0, EVERYTHING)
    batches = []
    async with asyncio.timeout(10):
        while sum(len(b) for b in batches) < 12:
            batches.append(await sub.next(5))
    largest = max(len(f) for b in batches for f in b)
    assert all(sum(map(len, b)) < TAKE_BYTES + largest for b in batches)
    assert len(batches) >= 12 * largest // (TAKE_BYTES + largest)
    ids = [int(f.split(b"\n", 1)[0].removeprefix(b"id: ")) for b in batches for f in b]
    assert ids == list(range(1, 13))
    await feed.close()


async def test_the_feed_follows_commits_of_another_store_on_the_same_file(store: SQLiteStore, tmp_path: Path):
    feed = await started(store, buffer_events=100)
    sub = feed.subscribe(None, EVERYTHING)
    other = await SQLiteStore.open(tmp_path / "t.db")
    try:
        await store.create("sailpoint", "a", {"n": 1}, actor="here", request_id="r1")
        await other.create("sailpoint", "b", {"n": 2}, actor="there", request_id="r2")  # heard only by reading
        await store.create("sailpoint", "c", {"n": 3}, actor="here", request_id="r3")
        got = await take(sub, 3)
    finally:
        await other.close()
    assert [(e["id"], e["task_id"], e["actor"]) for e in got] == [(1, "a", "here"), (2, "b", "there"),
                                                                  (3, "c", "here")]
    assert got == [event_json(c) for c in await store.audit(newest_first=False)]
    await feed.close()


async def test_on_postgresql_another_gateway_s_commit_is_read_at_once_not_at_the_next_poll(pg_url: str):
    """Each batch's commit notifies every gateway: with a poll of a minute, only the
    notification can bring another store's change to this feed within the test's bound."""
    here, there = await PostgreSQLStore.open(pg_url), await PostgreSQLStore.open(pg_url)
    feed = await started(here, poll_seconds=60, buffer_events=100)
    try:
        sub = feed.subscribe(None, EVERYTHING)
        await there.create("sailpoint", "b", {"n": 2}, actor="there", request_id="r1")
        await there.create("sailpoint", "c", {"n": 3}, actor="there", request_id="r2")
        got = await take(sub, 2)
        assert got == [event_json(c) for c in await there.audit(newest_first=False)]
        assert [(e["id"], e["task_id"], e["actor"]) for e in got] == [(1, "b", "there"), (2, "c", "there")]
        # its own commits are published from the commit itself, not read again
        reads = []
        original = here.audit

        async def counted(**kw):
            reads.append(kw)
            return await original(**kw)
        here.audit = counted  # type: ignore[method-assign]
        await here.create("sailpoint", "d", {"n": 4}, actor="here", request_id="r3")
        assert [e["task_id"] for e in await take(sub, 1)] == ["d"]
        await asyncio.sleep(0.2)
        assert reads == []
    finally:
        await feed.close()
        await here.close()
        await there.close()


async def test_with_nobody_subscribed_nothing_is_read_or_kept_and_a_resume_reads_the_trail(store: SQLiteStore,
                                                                                           tmp_path: Path):
    feed = await started(store, buffer_events=100)
    reads: list[dict[str, Any]] = []
    original = store.audit

    async def counted(**kw: Any):
        reads.append(kw)
        return await original(**kw)
    store.audit = counted  # type: ignore[method-assign]
    other = await SQLiteStore.open(tmp_path / "t.db")
    try:
        await store.create("sailpoint", "a", {"n": 1}, actor="here", request_id="r1")
        await other.create("sailpoint", "b", {"n": 2}, actor="there", request_id="r2")
        await store.create("sailpoint", "c", {"n": 3}, actor="here", request_id="r3")
        await asyncio.sleep(0.3)  # six polls
        assert (reads, feed.after(0), feed.last) == ([], [], 3)  # the position moved on: nothing read or kept
        later, resumed = feed.subscribe(None, EVERYTHING), feed.subscribe(1, EVERYTHING)
        await other.create("sailpoint", "d", {"n": 4}, actor="there", request_id="r4")
        assert [e["task_id"] for e in await take(resumed, 3)] == ["b", "c", "d"]  # from the trail, then the feed
        assert await take(later, 1) == [event_json(c) for c in await original(after=3)]
    finally:
        await other.close()
        await feed.close()


async def test_stopping_ends_every_subscription_and_refuses_new_ones(store: SQLiteStore):
    await store.create("sailpoint", "a", {"n": 1}, actor="a", request_id="r")
    feed = await started(store)
    sub = feed.subscribe(0, EVERYTHING)
    assert len(await take(sub, 1)) == 1
    feed.stop_streams()
    late = feed.subscribe(0, EVERYTHING)
    for s, last in ((sub, 1), (late, 0)):
        with pytest.raises(Ended) as ended:
            await s.next(1)
        assert (ended.value.reason, ended.value.last_id) == (END_SHUTDOWN, last)
    await feed.close()


async def test_a_heartbeat_is_due_while_only_others_events_flow(store: SQLiteStore):
    feed = await started(store, buffer_events=1000)
    only_a = Selection(task_id="a", access=EVERYTHING.access)
    sub = feed.subscribe(None, only_a)

    async def others() -> None:
        for i in range(200):
            await store.create("sailpoint", f"o{i}", {"n": i}, actor="x", request_id="r")

    writing = asyncio.ensure_future(others())
    assert await sub.next(0.05) == []  # the timeout passed: time for a heartbeat, though events came
    await writing
    await feed.close()


async def test_waiting_subscribers_are_written_to_directly_with_one_shared_chunk(store: SQLiteStore):
    """Subscribers that wait with every event taken get the events of the styles they read
    whole through their push, without being woken, the same bytes for the same selection;
    one whose push refuses (a connection holding too much) and one with an event whose
    read rule needs the task's document are woken, and their stream takes the rest."""
    feed = await started(store, buffer_events=1000)
    alice = Selection(access=access_for(Principal("alice", "user"), STYLE_NAMES))  # webMethods by its rule
    pushed: dict[str, list[bytes]] = {"a": [], "b": [], "alice": [], "full": []}

    def push_to(name: str):
        def push(data: bytes) -> bool:
            if name == "full":
                return False
            pushed[name].append(data)
            return True
        return push
    subs = {name: feed.subscribe(None, sel, push=push_to(name))
            for name, sel in (("a", EVERYTHING), ("b", EVERYTHING), ("alice", alice), ("full", EVERYTHING))}
    waiting = {name: asyncio.ensure_future(sub.next(30)) for name, sub in subs.items()}
    await asyncio.sleep(0.01)  # each is waiting now
    for i in range(3):
        await store.create("sailpoint", f"s{i}", {"n": i}, actor="a", request_id="r")
    sp = [frame(c) for c in await store.audit(newest_first=False)]
    full = await waiting["full"]  # refused: woken, its stream takes them
    async with asyncio.timeout(10):
        while subs["full"].cursor < 3:
            full += await subs["full"].next(5)
        while min(subs[name].cursor for name in ("a", "b", "alice")) < 3:
            await asyncio.sleep(0.005)
    assert full == sp and pushed["full"] == []
    assert b"".join(pushed["a"]) == b"".join(sp) and pushed["b"] == pushed["alice"] == pushed["a"]
    assert all(x is y for x, y in zip(pushed["a"], pushed["b"], strict=True))  # joined once for both
    assert [w.done() for w in (waiting["a"], waiting["b"], waiting["alice"])] == [False, False, False]
    assert feed.sent == 9  # three subscribers' pushes; the stream counts what it writes itself
    alice_before = list(pushed["alice"])
    # webMethods tasks, one assigned to alice and one not: her stream is woken for them and reads
    # the documents; the admins' pushes carry both
    await store.create("webmethods", "w1", {"TaskInfo": {"assignedToList": ["alice"]}, "TaskData": {}},
                       actor="root", request_id="r")
    await store.create("webmethods", "w2", {"TaskInfo": {}, "TaskData": {}}, actor="root", request_id="r")
    wm = [frame(c) for c in await store.audit(after=3, newest_first=False)]
    got = await waiting["alice"]
    async with asyncio.timeout(10):
        while subs["alice"].cursor < 5:
            got += await subs["alice"].next(5)
    assert got == wm[:1] and pushed["alice"] == alice_before
    async with asyncio.timeout(10):
        while subs["b"].cursor < 5:
            await asyncio.sleep(0.005)
    assert b"".join(pushed["a"]) == b"".join(pushed["b"]) == b"".join(sp + wm)
    for w in waiting.values():
        w.cancel()
    await feed.close()


@pytest.mark.parametrize("who", [Principal("root", "admin"), Principal("alice", "user"),
                                 Principal("reader", "user", read_only=True, associate_id=7)])
def test_read_rules_reading_everything_means_reading_every_document(who: Principal):
    docs = [None, {}, {"launcher": "bob", "AssociateId": 3, "TaskInfo": {"assignedToList": ["bob"]}},
            {"TaskInfo": {"assignedToList": [who.name], "createdBy": "x"}}]
    callers = {"sailpoint": (sailpoint_rules, sailpoint_rules.Caller(who.name, who.is_admin)),
               "superoffice": (superoffice_rules, superoffice_rules.Caller(who.name, who.is_admin, who.associate_id,
                                                                           who.read_only)),
               "webmethods": (webmethods_rules, webmethods_rules.Actor(who.name, who.is_admin))}
    access = access_for(who, STYLE_NAMES)
    for style, (rules, caller) in callers.items():
        if rules.reads_everything(caller):
            assert access[style] is None
            assert all(rules.may_read(caller, doc) for doc in docs)
        else:
            check = access[style]
            assert check is not None
            assert [check(doc) for doc in docs] == [rules.may_read(caller, doc) for doc in docs]
        # what the stream keeps of a document (what the rule reads) is judged as the document is
        big = [{**doc, "TaskData": {"blob": "x" * 10_000}} for doc in docs if doc is not None]
        kept = [judged(style, doc) for doc in big]
        assert all(len(json.dumps(part)) < 200 for part in kept)
        assert [rules.may_read(caller, part) for part in kept] == [rules.may_read(caller, doc) for doc in big]
    assert judged("webmethods", None) is None
    assert judged("webmethods", docs[3]) == {"TaskInfo": {"assignedToList": [who.name], "createdBy": "x"}}


def test_webmethods_reads_by_assignment_acceptance_or_creation():
    alice = webmethods_rules.Actor("alice", False)
    assert not webmethods_rules.reads_everything(alice)
    assert webmethods_rules.reads_everything(webmethods_rules.Actor("root", True))
    for info, readable in (({"assignedToList": ["alice"]}, True), ({"acceptedByList": ["alice"]}, True),
                           ({"createdBy": "alice"}, True), ({"assignedToList": ["bob"], "createdBy": "bob"}, False)):
        assert webmethods_rules.may_read(alice, {"TaskInfo": info, "TaskData": {}}) is readable
    assert webmethods_rules.may_read(alice, None) is False


async def test_a_wake_up_that_writes_much_goes_on_in_later_turns_of_the_loop(store: SQLiteStore, monkeypatch):
    """Writing to many streams at once is spread over turns of the event loop (about
    _WAKE_SLICE_BYTES a turn, here one subscriber a turn), so that whatever else the loop
    runs (requests) goes on between; every subscriber still gets every frame once."""
    monkeypatch.setattr(feed_module, "_WAKE_SLICE_BYTES", 1)
    feed = await started(store, buffer_events=1000)
    turns = 0
    running = True

    async def count_turns() -> None:
        nonlocal turns
        while running:
            turns += 1
            await asyncio.sleep(0)
    pushed: dict[int, list[bytes]] = {i: [] for i in range(6)}
    seen_at: list[int] = []

    def push_to(i: int):
        def push(data: bytes) -> bool:
            pushed[i].append(data)
            seen_at.append(turns)
            return True
        return push
    subs = [feed.subscribe(None, EVERYTHING, push=push_to(i)) for i in range(6)]
    waiting = [asyncio.ensure_future(sub.next(30)) for sub in subs]
    await asyncio.sleep(0.01)  # each is waiting now
    counter = asyncio.ensure_future(count_turns())
    for i in range(3):
        await store.create("sailpoint", f"s{i}", {"n": i}, actor="a", request_id="r")
    async with asyncio.timeout(10):
        while min(sub.cursor for sub in subs) < 3:
            await asyncio.sleep(0.005)
    running = False
    await counter
    everything = b"".join(frame(c) for c in await store.audit(newest_first=False))
    assert [b"".join(pushed[i]) for i in range(6)] == [everything] * 6
    assert len(seen_at) == len(set(seen_at))  # no two pushes in one turn of the loop
    assert not any(w.done() for w in waiting)  # written to, never woken
    for w in waiting:
        w.cancel()
    await feed.close()


async def test_subscribers_of_one_task_each_get_that_task_s_events_and_pass_the_others(store: SQLiteStore):
    feed = await started(store, buffer_events=1000)
    pushed: dict[str, list[bytes]] = {f"t{i}": [] for i in range(4)}

    def push_to(name: str):
        def push(data: bytes) -> bool:
            pushed[name].append(data)
            return True
        return push
    subs = {name: feed.subscribe(None, Selection(task_id=name, access=EVERYTHING.access), push=push_to(name))
            for name in pushed}
    waiting = [asyncio.ensure_future(sub.next(30)) for sub in subs.values()]
    await asyncio.sleep(0.01)
    for i in range(20):  # t0 and t2 are made, others' tasks before, between and after
        await store.create("sailpoint", f"o{i}", {"n": i}, actor="a", request_id="r")
        if i in (4, 11):
            await store.create("sailpoint", "t0" if i == 4 else "t2", {"n": i}, actor="a", request_id="r")
    trail = await store.audit(newest_first=False)
    last = trail[-1].seq
    async with asyncio.timeout(10):
        while min(sub.cursor for sub in subs.values()) < last:
            await asyncio.sleep(0.005)
    for name in pushed:
        assert b"".join(pushed[name]) == b"".join(frame(c) for c in trail if c.task_id == name)
    assert [len(pushed[name]) > 0 for name in pushed] == [True, False, True, False]
    assert not any(w.done() for w in waiting)
    for w in waiting:
        w.cancel()
    await feed.close()


class _CountedStore(SQLiteStore):
    """The real store, noting the bytes of the patches each catch-up read handed over."""

    reads: list[int]

    async def audit(self, **kwargs: Any):  # type: ignore[override]
        rows = await super().audit(**kwargs)
        if kwargs.get("newest_first") is False and kwargs.get("action") is None and kwargs.get("limit") != READ_PAGE:
            # not the feed's own reads, nor its read rules' lookups
            self.reads.append(sum(len(json.dumps(c.patch)) + len(json.dumps(c.undo)) for c in rows))
        return rows


async def test_catching_up_through_rows_it_does_not_want_reads_a_bounded_number_of_bytes_at_a_time(tmp_path: Path):
    """A hundred rows of megabyte patches, parsed at once, held gigabytes for one resuming
    stream, and rows it does not want fill no write: each catch-up read hands over rows of
    at most TAKE_BYTES of patches in all, and one more."""
    store = await _CountedStore.open(tmp_path / "t.db")
    store.reads = []
    try:
        await store.create("sailpoint", "big", {"a": ""}, actor="a", request_id="r")
        for version in range(1, 31):  # 30 updates of 100,000 characters each way: 6 MB of rows
            await store.put("sailpoint", "big", {"a": str(version % 10) * 100_000}, actor="a", request_id="r")
        for n in range(60):
            await store.create("sailpoint", f"small{n}", {"n": n}, actor="a", request_id="r")
        feed = await started(store, buffer_events=1)
        store.reads.clear()
        created = Selection(actions=frozenset({"created"}), access=EVERYTHING.access)
        sub = feed.subscribe(0, created)
        got = await take(sub, 61)
        reads, store.reads = store.reads, []
        assert got == [event_json(c) for c in await store.audit(newest_first=False, action="created")]
        # at most two rows of 200,000 bytes per read through the updates (the second starts below the
        # bound), then the small rows
        assert max(reads) <= TAKE_BYTES + 200_100 and sum(reads) >= 5_800_000 and len(reads) >= 16, reads
        await feed.close()
    finally:
        await store.close()
