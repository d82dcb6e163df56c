"""What the PostgreSQL store promises beyond the contract tests both backends run: several
stores (gateways, as far as the database can tell) on one database serialize on the row,
hand out ids and audit seqs in commit order, and share leases; documents keep their text;
owners and webhooks follow every gateway's writes. Real PostgreSQL (the test cluster), real pools."""

from __future__ import annotations

import asyncio

import pytest

from gateway import errors
from gateway.model import QUOTA, Delivery, Quota
from gateway.query import Compare, Query, Sort
from gateway.store import StoreError
from gateway.store.postgres import SCHEMA_VERSION, PostgreSQLStore
from gateway.store.postgres import accounts as pg_accounts
from gateway.store.sqlite import SQLiteStore
from tests.store.helpers import bump

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
        await second.delete("s", "b", actor="ann", request_id="r")  # a delete gives its bytes back
    finally:
        QUOTA.reset(token)
    tasks, held = await first.usage("s", "ann")
    (size_now,), = await first.read_sql("SELECT size FROM tasks WHERE id = 'a'")
    assert (tasks, held) == (1, size_now) and size_now > size_a
    await first.write_sql("UPDATE tasks SET size = NULL")  # naming another field recounts from the rows
    await first.ensure_owner("s", "$.n")
    assert await first.usage("s", "ann") == (0, 0)


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
