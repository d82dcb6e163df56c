"""What the PostgreSQL store promises beyond the contract tests both backends run: several
stores (gateways, as far as the database can tell) on one database serialize on the row,
hand out ids and audit seqs in commit order, and share leases; documents keep their text;
what is not offered yet says so. Real PostgreSQL (the test cluster), real pools."""

from __future__ import annotations

import asyncio

import pytest

from gateway import errors
from gateway.query import Compare, Query, Sort
from gateway.store import StoreError
from gateway.store.postgres import SCHEMA_VERSION, PostgreSQLStore
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


async def test_what_is_not_offered_yet_says_so(store_pg: PostgreSQLStore):
    with pytest.raises(StoreError, match=r"webhooks is not available on PostgreSQL yet"):
        await store_pg.list_hooks()
    with pytest.raises(StoreError, match=r"\(ensure_owner, the per-user quotas\) is not available on PostgreSQL"):
        await store_pg.ensure_owner("s", "$.owner")
    with pytest.raises(errors.NotFound):  # the rest goes on
        await store_pg.update("s", "nope", bump("n"), actor="t", request_id="r")
