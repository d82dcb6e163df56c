"""What PostgreSQL cannot hold, asked of both backends: U+0000, and keyed values longer than
a B-tree entry.

PostgreSQL's ``text`` and ``jsonb`` cannot hold a NUL, so its store answers a lookup or a
filter value holding one itself (nothing stored can equal it) instead of sending it to a
database that fails on it, and refuses a document holding one (a documented difference:
SQLite keeps it). The answers here are the SQLite store's, which compares such values
byte for byte. A keyed value longer than ``MAX_KEYED_BYTES`` is refused on PostgreSQL
(its index could not hold it) and kept on SQLite.
"""

from __future__ import annotations

import json
import random
import string

import pytest

from gateway import errors
from gateway.query import Compare, Not, Query
from gateway.store.postgres import sql

NUL = "\x00"


@pytest.fixture(name="filled")
async def _filled(store):
    for task_id, name in (("a", "a"), ("ab", "ab"), ("b", "b")):
        await store.create("s", task_id, {"name": name, "tags": [name]}, actor="t", request_id="r")
    await store.ensure_indexes("s", ["$.name"])
    return store


@pytest.mark.parametrize("field", ["id", "$.name"])
@pytest.mark.parametrize("op, value, ids", [
    ("eq", "a" + NUL, []), ("ne", "a" + NUL, ["a", "ab", "b"]), ("in", ("a" + NUL, "b"), ["b"]),
    ("gt", "a" + NUL + "x", ["ab", "b"]), ("ge", "a" + NUL, ["ab", "b"]),
    ("lt", "a" + NUL + "x", ["a"]), ("le", "ab" + NUL, ["a", "ab"]), ("lt", NUL, []), ("ge", NUL, ["a", "ab", "b"]),
])
async def test_a_filter_value_holding_a_nul_compares_as_on_sqlite(filled, field, op, value, ids):
    values = value if isinstance(value, tuple) else (value,)
    tasks, _ = await filled.find("s", Query(Compare(field, op, values)))
    assert [t.id for t in tasks] == ids
    tasks, _ = await filled.find("s", Query(Not(Compare(field, op, values))))
    assert [t.id for t in tasks] == [i for i in ("a", "ab", "b") if i not in ids]


@pytest.mark.parametrize("op", ["sw", "co"])
async def test_a_pattern_holding_a_nul_matches_nothing_stored(filled, backend, op):
    tasks, _ = await filled.find("s", Query(Compare("$.name", op, ("a" + NUL,))))
    # SQLite's LIKE would read its pattern as a C string, up to the NUL, and take "a\0%"
    # (and "%a\0%") for "a" (and "%a"): such a needle goes to taskgate_like instead
    assert [t.id for t in tasks] == []
    tasks, _ = await filled.find("s", Query(Compare("$.tags", "has", ("a" + NUL,))))
    assert tasks == []


async def test_lookups_by_a_key_holding_a_nul_find_nothing(filled):
    assert await filled.get("s", "a" + NUL) is None
    assert await filled.audit(style="s", task_id="a" + NUL) == []
    assert await filled.get_user("root" + NUL) is None
    assert await filled.find_token("h" + NUL) is None
    assert await filled.get_oauth_client("c" + NUL) is None
    assert (await filled.set_password("u" + NUL, None), await filled.set_disabled("u" + NUL, True),
            await filled.delete_user("u" + NUL), await filled.delete_oauth_client("c" + NUL)) == (False,) * 4
    assert await filled.get_hook("s", "h" + NUL) is None
    assert await filled.replace_hook("s", "h" + NUL, {}, active=True) is None
    assert await filled.delete_hook("s", "h" + NUL) is False
    with pytest.raises(errors.NotFound):
        await filled.update("s", "a" + NUL, lambda doc: {**doc, "x": 1}, actor="t", request_id="r")


@pytest.mark.parametrize("doc", [{"name": "x" + NUL}, {"k": {"x" + NUL: 1}}, {"k": ["\\", NUL]}])
async def test_a_document_holding_a_nul_is_refused_on_postgresql_and_kept_on_sqlite(filled, backend, doc):
    before = [t.id for t in (await filled.find("s", Query()))[0]]
    if backend == "postgresql":
        for write in (lambda: filled.create("s", "n", doc, actor="t", request_id="r"),
                      lambda: filled.update("s", "a", lambda _old: doc, actor="t", request_id="r"),
                      lambda: filled.bulk_create("s", [("n", doc)], actor="t", request_id="r")):
            with pytest.raises(errors.BadRequest, match="U\\+0000"):
                await write()
        assert [t.id for t in (await filled.find("s", Query()))[0]] == before
        assert (await filled.get("s", "a")).version == 1
        tasks, _ = await filled.find("s", Query(Compare("$.k", "isnull")))  # doc::jsonb: every row still reads
        assert [t.id for t in tasks] == ["a", "ab", "b"]
    else:
        assert (await filled.create("s", "n", doc, actor="t", request_id="r")).doc == doc


@pytest.mark.parametrize("text, holds", [
    ('"a\\u0000"', True), ('{"\\u0000":1}', True), ('"\\\\u0000"', False), ('"\\\\\\u0000"', True),
    ('"\\\\\\\\u0000"', False), ('"u0000"', False), ('"\\u00000"', True), ('"\\u0001"', False),
])
def test_holds_nul_reads_json_escapes_as_json_does(text, holds):
    value = json.loads(text)
    assert (NUL in (value if isinstance(value, str) else "".join(value))) is holds
    assert sql.holds_nul(text) is holds


@pytest.mark.parametrize("size", [sql.MAX_KEYED_BYTES, sql.MAX_KEYED_BYTES + 1, 100_000])
async def test_a_keyed_value_longer_than_an_index_entry_is_refused_on_postgresql(filled, backend, size):
    text = "".join(random.Random(size).choice(string.ascii_letters) for _ in range(size - 2))  # its JSON: size bytes
    if backend == "sqlite" or size <= sql.MAX_KEYED_BYTES:
        await filled.create("s", "n", {"name": text}, actor="t", request_id="r")
        tasks, _ = await filled.find("s", Query(Compare("$.name", "eq", (text,))))
        assert [t.id for t in tasks] == ["n"]
        return
    with pytest.raises(errors.BadRequest, match=f"^name is {size} bytes long; the PostgreSQL store indexes at most "):
        await filled.create("s", "n", {"name": text}, actor="t", request_id="r")
    with pytest.raises(errors.BadRequest):
        await filled.bulk_create("s", [("n", {"name": text})], actor="t", request_id="r")
    assert await filled.get("s", "n") is None and await filled.count_tasks("s") == 3
