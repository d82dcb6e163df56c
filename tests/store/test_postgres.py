"""What the PostgreSQL store promises beyond the contract tests both backends run: several
stores (gateways, as far as the database can tell) on one database serialize on the row,
hand out ids and audit seqs in commit order, and share leases; documents keep their text;
owners and webhooks follow every gateway's writes. Real PostgreSQL (the test cluster), real pools."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from gateway import errors
from gateway.apis.webmethods_clock import SWEEP_LEASE, Sweeper
from gateway.clock import Clock
from gateway.model import QUOTA, Delivery, Quota, Task
from gateway.query import Compare, Query, Sort
from gateway.store import StoreError
from gateway.store.postgres import SCHEMA_VERSION, PostgreSQLStore
from gateway.store.postgres import accounts as pg_accounts
from gateway.store.sqlite import SQLiteStore
from tests.store.helpers import bump, give_lease_back, take_lease_away
from tests.waiting import until_true

FIELDS = ["$.status", "$.owner", "$.info.created", "$.rank"]


@pytest.fixture(name="two")
async def _two(pg_url: str):
    """Two stores on one database: two gateways."""
    first = await PostgreSQLStore.open(pg_url)
    second = await PostgreSQLStore.open(pg_url)
    yield first, second
    await first.close()
    await second.close()


async def test_concurrent_changes_to_one_task_from_two_gateways_serialize_on_the_row(two):
    first, second = two
    await first.create("s", "a", {"n": 0}, actor="t", request_id="r")
    results = await asyncio.gather(*(store.update("s", "a", bump("n"), actor=f"g{k}", request_id=str(i))
                                     for i in range(40) for k, store in enumerate(two)))
    assert sorted(t.version for t in results) == list(range(2, 82))  # none lost, none applied to a stale version
    task = await second.get("s", "a")
    assert (task.version, task.doc) == (81, {"n": 80})
    trail = await first.audit(style="s", task_id="a", newest_first=False)
    # seqs in commit order: consecutive, and each change's version one above the last
    assert [c.seq for c in trail] == list(range(1, 82)) and [c.version for c in trail] == list(range(1, 82))
    assert [c.patch for c in trail[1:]] == [[{"op": "replace", "path": "/n", "value": n}] for n in range(1, 81)]


async def test_ids_are_allocated_by_the_database_across_gateways(two):
    first, second = two
    made = await asyncio.gather(*(store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="r")
                                  for _ in range(15) for store in two))
    assert sorted(int(t.id) for t in made) == list(range(1, 31))
    assert all(t.doc == {"Id": int(t.id)} for t in made)
    assert await first.read_sql("SELECT last FROM counters WHERE style = ?", ("so",)) == [(30,)]


async def test_a_create_racing_another_gateway_s_create_of_the_same_id_is_a_conflict(two):
    results = await asyncio.gather(*(store.create("s", f"t{i}", {"by": k}, actor="t", request_id="r")
                                     for i in range(10) for k, store in enumerate(two)), return_exceptions=True)
    outcomes = [type(r).__name__ if isinstance(r, Exception) else "created" for r in results]
    assert [outcomes[i:i + 2].count("created") for i in range(0, 20, 2)] == [1] * 10
    assert set(outcomes) == {"created", "Conflict"}
    assert await two[0].count_tasks("s") == 10 and len(await two[1].audit()) == 10


async def test_documents_keep_their_text_member_order_and_numbers(store_pg: PostgreSQLStore):
    doc = {"zeta": 1, "alpha": {"b": 2.50, "a": [3, 1e30]}, "ü": "ß"}
    await store_pg.create("s", "a", doc, actor="t", request_id="r")
    (text,), = await store_pg.read_sql("SELECT doc FROM tasks")
    assert text == '{"zeta":1,"alpha":{"b":2.5,"a":[3,1e+30]},"ü":"ß"}'
    assert list((await store_pg.get("s", "a")).doc) == ["zeta", "alpha", "ü"]
    assert await store_pg.read_sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                   "WHERE attrelid = 'tasks'::regclass AND attname = 'doc'") == [("json",)]


async def test_keyed_fields_are_kept_in_the_keys_column_with_a_partial_index_each(store_pg: PostgreSQLStore):
    store = store_pg
    await store.ensure_indexes("s", FIELDS, then="$.rank")
    for n in range(6):
        await store.create("s", f"t{n}", {"status": "open" if n % 2 else "done", "owner": f"u{n % 3}",
                                          "info": {"created": f"2026-01-0{n + 1}"}, "rank": n, "progress": 0},
                           actor="t", request_id="r")
    await store.create("s", "odd", {"status": None, "info": "flat"}, actor="t", request_id="r")
    await store.create("other", "x", {"status": "open"}, actor="t", request_id="r")
    assert await store.read_sql("SELECT keys::text FROM tasks WHERE id IN ('t1', 'odd') ORDER BY id") == [
        ('{"rank": null, "owner": null, "status": null, "info.created": null}',),
        ('{"rank": 1, "owner": "u1", "status": "open", "info.created": "2026-01-02"}',)]
    assert await store.read_sql("SELECT keys FROM tasks WHERE style = 'other'") == [(None,)]
    indexes = await store.read_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks' "
                                   "AND indexname LIKE 'tasks_by_%' ORDER BY indexname")
    assert [name for name, _ in indexes] == ["tasks_by_s_info_created", "tasks_by_s_owner", "tasks_by_s_rank",
                                             "tasks_by_s_status"]
    assert all(definition.endswith("WHERE (style = 's'::text)") for _, definition in indexes)

    async def ids(where, order=()) -> list[str]:
        return [t.id for t in (await store.find("s", Query(where, tuple(order))))[0]]

    assert await ids(Compare("$.status", "eq", ("open",)), [Sort("$.rank", descending=True)]) == ["t5", "t3", "t1"]
    assert await ids(Compare("$.status", "isnull")) == ["odd"]
    assert await ids(Compare("$.info.created", "ge", ("2026-01-05",))) == ["t4", "t5"]
    assert await ids(None, [Sort("$.owner"), Sort("$.rank", descending=True)]) == ["odd", "t3", "t0", "t4", "t1",
                                                                                  "t5", "t2"]
    # a progress update leaves the keys as they were; a status change rewrites them
    await store.update("s", "t1", lambda old: {**old, "progress": 5}, actor="t", request_id="r")
    await store.update("s", "t3", lambda old: {**old, "status": "done"}, actor="t", request_id="r")
    assert await ids(Compare("$.status", "eq", ("open",))) == ["t1", "t5"]
    # keying other fields rekeys the style's rows
    await store.ensure_indexes("s", ["$.progress"])
    assert await store.read_sql("SELECT keys::text FROM tasks WHERE id = 't1'") == [('{"progress": 5}',)]
    assert await ids(Compare("$.progress", "gt", (1,))) == ["t1"]


async def test_a_lease_is_held_by_one_gateway_and_taken_over_when_it_goes(two):
    first, second = two
    assert first.hold("sweeper") is False  # asked: taken in the background
    for _ in range(200):
        if first.hold("sweeper"):
            break
        await asyncio.sleep(0.01)
    assert first.hold("sweeper") is True
    for _ in range(20):
        assert second.hold("sweeper") is False
        await asyncio.sleep(0.01)
    await first.close()
    for _ in range(200):
        if second.hold("sweeper"):
            break
        await asyncio.sleep(0.01)
    assert second.hold("sweeper") is True and first.hold("sweeper") is False


async def test_a_sweeper_whose_lease_session_ends_stops_sweeping_and_one_takes_over(two, pg_url: str):
    """A lease can be lost while its gateway lives: a database restart ends every session,
    the lease's too. The sweeper that held it must stop, or two sweep once another takes it."""
    sweepers = [Sweeper(store, Clock(), 0.02) for store in two]
    for sweeper in sweepers:
        sweeper.start()
    blocker: asyncpg.Connection | None = None
    try:
        await until_true(lambda: any(s.sweeping for s in sweepers))
        holder = next(s for s in sweepers if s.sweeping)
        assert sum(s.sweeping for s in sweepers) == 1
        # end the holder's lease session, and take the lease here before either gateway can
        blocker = await take_lease_away(pg_url, SWEEP_LEASE)
        await until_true(lambda: not holder.sweeping)  # it noticed: nobody sweeps while the lease is elsewhere
        passes = [s.passes for s in sweepers]
        await asyncio.sleep(0.2)
        assert [s.passes for s in sweepers] == passes and not any(s.sweeping for s in sweepers)
        await give_lease_back(blocker, SWEEP_LEASE)
        await until_true(lambda: any(s.sweeping for s in sweepers))
        for _ in range(40):  # and never two at once
            assert sum(s.sweeping for s in sweepers) == 1
            await asyncio.sleep(0.005)
        await next(s for s in sweepers if s.sweeping).next_pass()
    finally:
        if blocker is not None:
            await blocker.close()
        for sweeper in sweepers:
            await sweeper.stop()


async def test_migrations_run_once_and_a_database_of_other_tables_is_refused(pg_url: str, store_pg: PostgreSQLStore):
    assert await store_pg.schema_version() == SCHEMA_VERSION
    again = await PostgreSQLStore.open(pg_url)  # a second gateway starting: nothing to migrate
    try:
        assert await again.schema_version() == SCHEMA_VERSION
    finally:
        await again.close()
    await store_pg.write_sql("DROP TABLE taskgate_schema")
    with pytest.raises(StoreError, match="not a taskgate database"):
        await PostgreSQLStore.open(pg_url)


async def test_an_unreachable_database_is_a_store_error_naming_it_without_its_password():
    with pytest.raises(StoreError, match=r"cannot connect to postgresql://ann:\*\*\*@/x\?host=/nonexistent"):
        await PostgreSQLStore.open("postgresql://ann:secret@/x?host=/nonexistent")


async def test_owners_usage_and_quotas_follow_the_write_path_across_gateways(two):
    first, second = two
    await first.ensure_owner("s", "$.owner")
    await second.ensure_owner("s", "$.owner")  # the second gateway's start: nothing to recount
    await first.create("s", "a", {"owner": "ann", "n": 0}, actor="t", request_id="r")
    await second.create("s", "b", {"owner": "ann", "n": 0}, actor="t", request_id="r")
    await first.create("s", "c", {"owner": 627, "n": 0}, actor="t", request_id="r")
    (size_a,), = await first.read_sql("SELECT size FROM tasks WHERE id = 'a'")
    (doc_a, patch_a, undo_a), = await first.read_sql(
        "SELECT octet_length(t.doc::text), octet_length(a.patch::text), octet_length(a.undo::text) "
        "FROM tasks t JOIN audit a ON a.task_id = t.id WHERE t.id = 'a'")
    assert size_a == doc_a + patch_a + undo_a
    (size_c,), = await first.read_sql("SELECT size FROM tasks WHERE id = 'c'")
    assert await second.usage("s", "ann") == (2, 2 * size_a) and await first.usage("s", "627") == (1, size_c)
    token = QUOTA.set(Quota("ann", tasks=2, bytes=10_000))
    try:
        with pytest.raises(errors.PayloadTooLarge, match="ann holds 2 s tasks: the quota is 2 tasks per user"):
            await second.create("s", "d", {"owner": "ann"}, actor="ann", request_id="r")
        await first.update("s", "a", bump("n"), actor="ann", request_id="r")  # growing within the bytes is fine
        await second.delete("s", "b", actor="ann", request_id="r")  # a delete gives back the task, not its trail
    finally:
        QUOTA.reset(token)
    tasks, held = await first.usage("s", "ann")
    (size_now,), = await first.read_sql("SELECT size FROM tasks WHERE id = 'a'")
    (trail_b,), = await first.read_sql("SELECT sum(octet_length(patch::text) + octet_length(undo::text)) "
                                       "FROM audit WHERE task_id = 'b'")
    assert await second.read_sql("SELECT task_id, owner, bytes FROM graves") == [("b", "ann", trail_b)]
    assert (tasks, held) == (1, size_now + trail_b) and size_now > size_a
    await first.write_sql("UPDATE tasks SET size = NULL")  # naming another field recounts from the rows
    await first.ensure_owner("s", "$.n")
    assert await first.usage("s", "ann") == (0, trail_b)  # the grave keeps the owner it was counted for
    assert await second.purge_deleted("9999-12-31T23:59:59Z") == (0, 0)  # the trail's newest row stays
    await first.create("s", "e", {"owner": "bob"}, actor="t", request_id="r")
    assert await second.purge_deleted("9999-12-31T23:59:59Z") == (1, 2)
    assert await first.usage("s", "ann") == (0, 0) and await first.read_sql("SELECT * FROM graves") == []
    assert [r[0] for r in await first.read_sql("SELECT task_id FROM audit ORDER BY seq")] == ["a", "c", "a", "e"]


async def test_a_quota_holds_exactly_when_two_gateways_batches_check_it_at_once(two):
    """Each batch checks quotas on the counts as last committed, unlocked, and again at its
    end on the locked row: the batch that commits second sees the first one's tasks and
    runs again with the row locked, so the owner ends with exactly the quota's tasks."""
    first, second = two
    for store in two:
        await store.ensure_owner("s", "$.owner")
    token = QUOTA.set(Quota("ann", tasks=5, bytes=10_000_000))
    try:
        results = await asyncio.gather(*(store.create("s", f"{name}{n}", {"owner": "ann", "n": n}, actor="ann",
                                                      request_id="r")
                                         for name, store in (("a", first), ("b", second)) for n in range(10)),
                                       return_exceptions=True)
    finally:
        QUOTA.reset(token)
    made = [r.id for r in results if not isinstance(r, BaseException)]
    refused = {f"{type(r).__name__}: {r.message}" for r in results if isinstance(r, BaseException)}
    assert len(made) == 5 and refused == {
        "PayloadTooLarge: ann holds 5 s tasks: the quota is 5 tasks per user (quota.tasks_per_user); "
        "delete some, or ask an administrator"}
    sizes = await first.read_sql("SELECT id, size FROM tasks ORDER BY id")
    assert [row[0] for row in sizes] == sorted(made)
    assert await second.usage("s", "ann") == (5, sum(row[1] for row in sizes))
    assert sorted((c.task_id, c.action) for c in await first.audit()) == [(i, "created") for i in sorted(made)]


async def test_a_create_that_loses_a_race_with_another_gateway_fails_alone_in_its_batch(two, pg_url):
    """The other gateway's insert of the same id commits while this batch waits on it: the
    write meets the primary key, its savepoint is rolled back and it runs again against the
    row that won (a Conflict); the rest of its batch commits."""
    import asyncpg

    first, _second = two
    await first.create("s", "before", {}, actor="t", request_id="r")
    other = await asyncpg.connect(pg_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("INSERT INTO tasks (style, id, version, created, modified, doc) VALUES "
                            "('s', 'x', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '{\"w\":1}')")
        batch = asyncio.gather(first.update("s", "before", lambda old: {"n": 1}, actor="t", request_id="1"),
                               first.create("s", "x", {"w": 2}, actor="t", request_id="2"),
                               first.create("s", "y", {}, actor="t", request_id="3"), return_exceptions=True)
        await asyncio.sleep(0.5)  # the batch waits on the uncommitted row of x
        await tx.commit()
        results = await asyncio.wait_for(batch, 30)
    finally:
        await other.close()
    assert [r.version if isinstance(r, Task) else f"{type(r).__name__}: {r.message}" for r in results] == [
        2, "Conflict: task 'x' already exists", 1]
    assert await first.read_sql("SELECT id, version, doc FROM tasks ORDER BY id") == [
        ("before", 2, '{"n":1}'), ("x", 1, '{"w":1}'), ("y", 1, "{}")]
    assert [(c.seq, c.task_id, c.version) for c in await first.audit(newest_first=False)] == [
        (1, "before", 1), (2, "before", 2), (3, "y", 1)]


async def test_webhook_rows_cursors_and_the_delivery_log(two):
    first, second = two
    await first.create("s", "a", {}, actor="t", request_id="r")
    hook = await first.create_hook("s", None, lambda given: {"id": given, "url": "http://127.0.0.1:9/"}, active=True)
    assert (hook.id, hook.doc, hook.cursor, hook.active) == (str(hook.num), {"id": str(hook.num),
                                                                            "url": "http://127.0.0.1:9/"}, 1, True)
    with pytest.raises(errors.Conflict, match="UNIQUE constraint failed: hooks.style, hooks.id"):
        await second.create_hook("s", hook.id, lambda given: {}, active=True)
    await second.create("s", "b", {}, actor="t", request_id="r")
    log = [Delivery(0, hook.num, 2, "2026-12-06T00:00:00.000Z", 1, 200, "delivered", "", 1.5)]
    assert await second.advance_hook(hook.num, expected_cursor=1, cursor=2, failures=0, log=log) is True
    assert await first.advance_hook(hook.num, expected_cursor=1, cursor=3, failures=0, log=[]) is False  # moved
    assert [(d.hook, d.event, d.outcome, d.ms) for d in await first.delivery_log()] == [(hook.num, 2, "delivered", 1.5)]
    stopped = await first.replace_hook("s", hook.id, {"url": "x"}, active=False)
    await first.create("s", "c", {}, actor="t", request_id="r")
    again = await second.replace_hook("s", hook.id, {"url": "y"}, active=True)
    assert (stopped.active, again.active, again.cursor, again.failures) == (False, True, 3, 0)
    assert [h.id for h in await second.list_hooks("s")] == [hook.id] and await first.last_seq() == 3
    assert await second.delete_hook("s", hook.id) is True and await first.get_hook("s", hook.id) is None
    assert await first.delivery_log(hook=hook.num) == [] and await first.delete_hook("s", hook.id) is False


async def test_the_same_writes_count_the_same_sizes_and_usage_on_both_backends(store_pg: PostgreSQLStore, tmp_path):
    sqlite = await SQLiteStore.open(tmp_path / "t.db")
    try:
        for store in (sqlite, store_pg):
            await store.ensure_owner("s", "$.owner")
            await store.create("s", "a", {"owner": "ann", "n": 0, "ü": "ß"}, actor="t", request_id="r")
            await store.update("s", "a", lambda old: {**old, "n": 1, "list": [1, 2]}, actor="t", request_id="r")
            await store.create("s", "b", {"owner": "ann"}, actor="t", request_id="r")
            await store.update("s", "b", lambda old: {**old, "owner": "bob"}, actor="t", request_id="r")
            await store.delete("s", "a", actor="t", request_id="r")
            await store.put("s", "a", {"owner": 7}, actor="t", request_id="r")
            await store.bulk_create("s", [("c", {"owner": "bob", "pad": "x" * 50})], actor="t", request_id="r")
        statement = "SELECT id, owner, size FROM tasks ORDER BY id"
        assert await store_pg.read_sql(statement) == await sqlite.read_sql(statement)
        statement = "SELECT style, owner, tasks, bytes FROM usage WHERE tasks > 0 OR bytes > 0 ORDER BY owner"
        assert await store_pg.read_sql(statement) == await sqlite.read_sql(statement)
        assert [(o, await store_pg.usage("s", o)) for o in ("ann", "bob", "7")] == \
            [(o, await sqlite.usage("s", o)) for o in ("ann", "bob", "7")]
        statement = "SELECT seq, style, task_id, owner, bytes FROM graves ORDER BY seq"
        assert await store_pg.read_sql(statement) == await sqlite.read_sql(statement) != []
        assert await store_pg.purge_deleted("9999-12-31T23:59:59Z") == await sqlite.purge_deleted(
            "9999-12-31T23:59:59Z") == (1, 3)
        statement = "SELECT seq, task_id FROM audit ORDER BY seq"
        assert await store_pg.read_sql(statement) == await sqlite.read_sql(statement)
        assert [(o, await store_pg.usage("s", o)) for o in ("ann", "bob", "7")] == \
            [(o, await sqlite.usage("s", o)) for o in ("ann", "bob", "7")]
    finally:
        await sqlite.close()


async def test_an_account_change_through_one_gateway_empties_the_other_s_token_cache_at_once(two, monkeypatch):
    monkeypatch.setattr(pg_accounts, "TOKEN_CACHE_SECONDS", 3600.0)  # the cache's age cannot explain it
    first, second = two
    await first.add_user("u", "user", None, ("h1", False, None, "cli"))
    assert (await second.find_token("h1")).user.disabled is False  # remembered by the second gateway
    await first.set_disabled("u", True)
    for _ in range(100):
        if (await second.find_token("h1")).user.disabled:
            break
        await asyncio.sleep(0.01)
    assert (await second.find_token("h1")).user.disabled is True
    await first.delete_token("h1")
    for _ in range(100):
        if await second.find_token("h1") is None:
            break
        await asyncio.sleep(0.01)
    assert await second.find_token("h1") is None


async def test_a_row_s_document_is_parsed_once_whatever_number_of_terms_read_it(store_pg: PostgreSQLStore):
    """A webMethods user's list (two ``has`` and an ``eq`` on fields that are not keyed) read
    ``doc::jsonb`` five times a row, each a parse of the whole text: 6.6 s instead of 1.3 s
    over 100 000 tasks (docs/performance.md), a delay any ordinary user could run up on
    every request. Now the document is parsed once a row, and not at all by a statement
    on keyed fields alone; the answers are the same."""
    from gateway.query import Or
    from gateway.store.postgres import sql
    await store_pg.ensure_indexes("s", ["$.status"])
    for n, doc in enumerate([{"status": "a", "to": ["u"], "by": "x"}, {"status": "b", "to": [], "by": "u"},
                             {"status": "a", "to": "u", "by": None}, {"status": "b"}]):
        await store_pg.create("s", f"t{n}", doc, actor="t", request_id="r")
    mine = Or((Compare("$.to", "has", ("u",)), Compare("$.from", "has", ("u",)), Compare("$.by", "eq", ("u",))))
    for where, ids in ((mine, ["t0", "t1"]), (Compare("$.status", "eq", ("a",)), ["t0", "t2"])):
        query = Query(where, (Sort("$.by", descending=True),) if where is mine else (), count=True)
        page, params = sql.page_sql(*sql.where_clause("s", query, store_pg._keyed["s"]), query, store_pg._keyed["s"])
        assert page.count("::jsonb AS j") == page.count("doc::jsonb") == (where is mine)
        tasks, total = await store_pg.find("s", query)
        assert (sorted(t.id for t in tasks), total) == (ids, 2)


async def test_failed_sign_ins_counted_through_two_stores_add_up_and_each_hears_the_other(two):
    """Each count answers the key's failures from every gateway and names its window; every
    store's subscriber hears each count (its own too), and one subscribing late reads the
    windows still open."""
    first, second = two
    heard: list[tuple[str, int, int]] = []
    second.signins.subscribe(lambda key, failures, left, window: heard.append((key, failures, window)), 10)
    answers = [await store.signins.failed("k1", 60) for store in (first, second, first)]
    assert [(key, failures) for key, failures, _left, _window in answers] == [("k1", 1), ("k1", 2), ("k1", 3)]
    assert len({window for *_rest, window in answers}) == 1 and all(0 < left <= 60 for _k, _f, left, _w in answers)
    window = answers[0][3]
    for _ in range(100):
        if len(set(heard)) == 3:
            break
        await asyncio.sleep(0.01)
    # the subscription's first read of the open windows may land among the notifications
    assert set(heard) == {("k1", 1, window), ("k1", 2, window), ("k1", 3, window)}
    late: list[tuple[str, int, int]] = []
    first.signins.subscribe(lambda key, failures, left, found: late.append((key, failures, found)), 10)
    for _ in range(100):
        if ("k1", 3, window) in late:
            break
        await asyncio.sleep(0.01)
    assert ("k1", 3, window) in late and set(late) <= set(heard)  # the first's notifications may land after
    # a window that ended starts again at one, under a new name
    await first.write_sql("UPDATE signin_failures SET window_end = clock_timestamp() - interval '1 second'")
    key, failures, _left, again = await second.signins.failed("k1", 60)
    assert (key, failures) == ("k1", 1) and again > window


@pytest.mark.parametrize("options, says", [
    ("ENCODING 'LATIN1' LOCALE 'C'", "in LATIN1 with the C locale (libc)"),
    ("ENCODING 'UTF8' LOCALE 'C.utf8'", "in UTF8 with the C.utf8 locale (libc)"),
    ("ENCODING 'UTF8' LOCALE 'C' LC_CTYPE 'C.utf8'", "in UTF8 with the C, ctype C.utf8 locale (libc)"),
    ("ENCODING 'UTF8' LOCALE 'C.utf8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'", "in UTF8 with the en-US locale (icu)"),
])
async def test_a_database_whose_text_would_answer_otherwise_than_sqlite_is_refused_at_open(pg_cluster, options, says):
    """In LATIN1 an emoji failed the write (a 500); under ICU's en-US a sort by name put 'a'
    before 'B', and under C.utf8 a 'contains É' found 'é', where SQLite answers by bytes.
    The store refuses such a database when it opens, saying how to make one it takes."""
    import uuid
    name = f"refused_{uuid.uuid4().hex[:12]}"
    pg_cluster.sql(f"CREATE DATABASE {name} TEMPLATE template0 {options}")
    try:
        with pytest.raises(StoreError) as caught:
            await PostgreSQLStore.open(pg_cluster.dsn(name))
        assert str(caught.value) == (
            f"the database holds text {says}; taskgate needs UTF8 and the C locale, by which text orders and folds "
            "case as on SQLite: make it with CREATE DATABASE name TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
    finally:
        pg_cluster.sql(f"DROP DATABASE {name}")


async def test_an_audit_read_bounded_in_bytes_stops_before_the_row_that_passes_the_bound(store_pg: PostgreSQLStore,
                                                                                         tmp_path):
    sqlite = await SQLiteStore.open(tmp_path / "t.db")
    try:
        for store in (sqlite, store_pg):
            for n, pad in enumerate((10, 3000, 10, 10, 5000, 10)):
                await store.create("s", f"t{n}", {"pad": "x" * pad}, actor="t", request_id="r")
            rows = await store.audit(newest_first=False)
            sizes = [len(json.dumps(c.patch, separators=(",", ":"))) + len(json.dumps(c.undo, separators=(",", ":")))
                     for c in rows]

            async def seqs(**bounds: Any) -> list[int]:
                return [c.seq for c in await store.audit(**bounds)]  # noqa: B023 (awaited at once)
            # the first row always comes; the rows stop before the one that would reach the bound
            assert await seqs(newest_first=False, max_bytes=1) == [1]
            assert await seqs(newest_first=False, max_bytes=sizes[0] + 1) == [1, 2]
            assert await seqs(newest_first=False, max_bytes=sum(sizes[:2]) + 1) == [1, 2, 3]
            assert await seqs(newest_first=False, max_bytes=sum(sizes[:2])) == [1, 2]
            assert await seqs(newest_first=False, after=2, max_bytes=sum(sizes[2:4]) + 1) == [3, 4, 5]
            assert await seqs(newest_first=False, after=2, limit=2, max_bytes=10**9) == [3, 4]
            assert await seqs(max_bytes=sizes[5] + 1) == [6, 5]  # newest first counts from the newest
            assert await seqs(after=6, max_bytes=100) == []
    finally:
        await sqlite.close()


async def test_a_purge_leaves_the_trail_s_newest_row_so_no_change_gets_a_number_twice(store_pg: PostgreSQLStore,
                                                                                     tmp_path):
    """A purge that took the newest rows made SQLite number the next change as an old one:
    a hook that had been sent it, and every stream past it, never heard of the new change
    (and a copy of a PostgreSQL database into SQLite did the same)."""
    sqlite = await SQLiteStore.open(tmp_path / "t.db")
    try:
        for store in (sqlite, store_pg):
            hook = await store.create_hook("s", "h", lambda hook_id: {"id": hook_id}, active=True)
            await store.create("s", "t1", {"n": 1}, actor="t", request_id="r")
            await store.delete("s", "t1", actor="t", request_id="r")
            assert await store.advance_hook(hook.num, expected_cursor=hook.cursor, cursor=2, failures=0, log=[])
            assert await store.purge_deleted("9999-12-31T23:59:59Z") == (0, 0)
            await store.create("s", "t2", {"n": 1}, actor="t", request_id="r")
            assert [c.seq for c in await store.audit(after=2, newest_first=False)] == [3]
            assert await store.purge_deleted("9999-12-31T23:59:59Z") == (1, 2)
            await store.create("s", "t3", {"n": 1}, actor="t", request_id="r")
            assert [(c.seq, c.task_id) for c in await store.audit(newest_first=False)] == [(3, "t2"), (4, "t3")]
    finally:
        await sqlite.close()
