"""SQL compiled from gateway.query nodes and keyed fields, without a database: the exact
text and parameters, and the refusal of anything that would be spliced in unsafely."""

from __future__ import annotations

import pytest

from gateway.query import And, Compare, Not, Or, Query, Sort
from gateway.store.sqlite import sql
from gateway.store.sqlite.keyed import keys_text


def where(expr, keyed: tuple[str, ...] = ()) -> tuple[str, list]:
    params: list = []
    return sql.compile_where(expr, params, keyed), params


@pytest.mark.parametrize("op, values, text, params", [
    ("eq", ("A",), "json_extract(doc, '$.s') = ?", ["A"]),
    ("ne", ("A",), "json_extract(doc, '$.s') IS NOT ?", ["A"]),
    ("gt", (1,), "json_extract(doc, '$.s') > ?", [1]),
    ("ge", (1,), "json_extract(doc, '$.s') >= ?", [1]),
    ("lt", (1,), "json_extract(doc, '$.s') < ?", [1]),
    ("le", (1,), "json_extract(doc, '$.s') <= ?", [1]),
    ("in", ("A", "B", "C"), "json_extract(doc, '$.s') IN (?, ?, ?)", ["A", "B", "C"]),
    ("isnull", (), "json_extract(doc, '$.s') IS NULL", []),
    ("sw", ("ab",), "json_extract(doc, '$.s') LIKE ? ESCAPE '\\'", ["ab%"]),
    ("co", ("ab",), "json_extract(doc, '$.s') LIKE ? ESCAPE '\\'", ["%ab%"]),
    ("has", ("x", "y"), "EXISTS (SELECT 1 FROM json_each(tasks.doc, '$.s') AS e "
                        "WHERE e.type = 'text' AND e.value IN (?, ?))", ["x", "y"]),
])
def test_each_comparison_compiles_to_one_expression_with_its_values_as_parameters(op, values, text, params):
    assert where(Compare("$.s", op, values)) == (text, params)


def test_like_patterns_escape_their_wildcards_and_the_escape_itself():
    assert where(Compare("$.s", "sw", ("50%_off\\",)))[1] == ["50\\%\\_off\\\\%"]
    assert where(Compare("$.s", "co", ("%",)))[1] == ["%\\%%"]
    assert where(Compare("$.s", "sw", (7,)))[1] == ["7%"]  # a number matches its text


def test_and_or_not_nest_in_parentheses_and_not_keeps_rows_whose_field_is_null():
    expr = Or((Compare("id", "eq", ("t3",)),
               And((Compare("$.k", "ge", (2,)), Not(Compare("$.s", "in", ("A", "B")))))))
    assert where(expr) == (
        "(id = ? OR (json_extract(doc, '$.k') >= ? AND ((json_extract(doc, '$.s') IN (?, ?)) IS NOT 1)))",
        ["t3", 2, "A", "B"])
    # SQL's NOT of NULL is NULL: "IS NOT 1" is true for false and for null alike
    assert where(Not(Compare("$.s", "eq", ("A",))))[0] == "((json_extract(doc, '$.s') = ?) IS NOT 1)"


def test_a_keyed_field_is_read_from_the_keys_column_and_the_others_from_the_document():
    keyed = ("$.status", "$.info.created")
    assert sql.column("$.status", keyed) == "json_extract(keys, '$.\"status\"')"
    assert sql.column("$.info.created", keyed) == "json_extract(keys, '$.\"info.created\"')"
    assert sql.column("$.owner", keyed) == "json_extract(doc, '$.owner')"
    assert sql.column("id", keyed) == "id"
    assert where(And((Compare("$.status", "eq", ("open",)), Compare("$.owner", "isnull"))), keyed) == (
        "(json_extract(keys, '$.\"status\"') = ? AND json_extract(doc, '$.owner') IS NULL)", ["open"])
    # containment walks the document's array, keyed or not
    assert "json_each(tasks.doc, '$.status')" in where(Compare("$.status", "has", ("a",)), keyed)[0]


@pytest.mark.parametrize("field", [
    "$.x') OR 1=1 --", "$", "doc", "$.", "$..a", "$.a-b", "$.1abc", "$.a b", "$.a.b.c.d.e", "$['a']",
    "$.a[0]", "$." + "a" * 65, "status",
])
def test_a_field_that_is_not_a_plain_member_path_is_refused_wherever_it_would_be_spliced(field):
    with pytest.raises(ValueError, match="not a filterable field"):
        sql.column(field)
    with pytest.raises(ValueError):
        where(Compare(field, "eq", ("a",)))
    with pytest.raises(ValueError):
        sql.page_sql("style = ?", ["s"], Query(order=(Sort(field),)), ())
    with pytest.raises(ValueError):
        sql.index_sql("tasks_by_x", "s", field, ())


def test_has_needs_an_array_member_and_a_value():
    with pytest.raises(ValueError, match="'has' needs"):
        where(Compare("id", "has", ("a",)))
    with pytest.raises(ValueError, match="'has' needs"):
        where(Compare("$.list", "has", ()))


def test_an_unknown_node_is_a_type_error():
    with pytest.raises(TypeError, match="unknown query node"):
        where("status eq 'x'")  # type: ignore[arg-type]


def test_the_page_reads_the_style_s_matches_in_order_then_by_id():
    text, params = sql.where_clause("sp", Query(Compare("$.s", "eq", ("A",))), ())
    assert (text, params) == ("style = ? AND json_extract(doc, '$.s') = ?", ["sp", "A"])
    query = Query(Compare("$.s", "eq", ("A",)), (Sort("$.k", descending=True), Sort("id")), limit=50, offset=100)
    assert sql.page_sql(text, params, query, ()) == (
        "SELECT id, version, doc, modified, created FROM tasks WHERE style = ? AND json_extract(doc, '$.s') = ? "
        "ORDER BY json_extract(doc, '$.k') DESC, id ASC LIMIT ? OFFSET ?", ["sp", "A", 50, 100])
    assert params == ["sp", "A"]  # the page's parameters are a copy: the count reuses these
    # a sort that does not name id is followed by id, ascending
    assert sql.page_sql(text, params, Query(order=(Sort("$.k", descending=True),)), ())[0].endswith(
        "ORDER BY json_extract(doc, '$.k') DESC, id LIMIT ? OFFSET ?")
    assert sql.page_sql("style = ?", ["sp"], Query(), ()) == (
        "SELECT id, version, doc, modified, created FROM tasks WHERE style = ? ORDER BY id LIMIT ? OFFSET ?",
        ["sp", -1, 0])  # no limit
    assert sql.count_sql(text) == "SELECT count(*) FROM tasks WHERE style = ? AND json_extract(doc, '$.s') = ?"
    assert sql.where_clause("sp", Query(), ()) == ("style = ?", ["sp"])


def test_an_enum_sorts_by_its_declared_rank_and_only_plain_names_are_spliced():
    sort = Sort("$.status", rank=("NEW", "ACTIVE", "DONE"))
    assert sql.sort_key(sort) == ("CASE json_extract(doc, '$.status') WHEN 'NEW' THEN 0 WHEN 'ACTIVE' THEN 1 "
                                  "WHEN 'DONE' THEN 2 ELSE 3 END")
    assert sql.sort_key(sort, ("$.status",)).startswith("CASE json_extract(keys, '$.\"status\"') ")
    for bad in ("it's", "A B", "", "x" * 65):
        with pytest.raises(ValueError, match="not a sortable enum"):
            sql.sort_key(Sort("$.status", rank=("NEW", bad)))


def test_the_keys_column_in_sql_and_in_python_name_the_same_labels():
    keyed = ("$.status", "$.info.created")
    assert sql.keys_sql(keyed) == "json_object('status', doc -> '$.status', 'info.created', doc -> '$.info.created')"
    assert keys_text(keyed, {"status": "open", "info": {"created": "2026-01-02"}}) == \
        '{"status":"open","info.created":"2026-01-02"}'
    assert keys_text(keyed, {"info": "not an object"}) == '{"status":null,"info.created":null}'
    assert keys_text((), {"status": "open"}) is None  # a style that keys nothing has no keys column
    assert sql.key_parts("$.info.created") == ("info.created", ("info", "created"))


def test_the_keys_of_a_batch_are_a_values_table_joined_on_the_primary_key():
    assert sql.keys_table([("s", "a"), ("t", "b")]) == (
        "WITH k (style, id) AS (VALUES (?, ?), (?, ?)) ", ["s", "a", "t", "b"])


def test_an_index_holds_one_style_s_rows_and_its_name_says_its_field():
    keyed = ("$.status", "$.created")
    assert sql.index_name("$.info.created") == "tasks_by_info_created"
    assert sql.index_name("$.status", "webmethods") == "tasks_by_webmethods_status"
    assert sql.index_sql("tasks_by_status", "sp", "$.status", keyed, then="$.created") == (
        "CREATE INDEX tasks_by_status ON tasks (style, json_extract(keys, '$.\"status\"'), "
        "json_extract(keys, '$.\"created\"'), id) WHERE style = 'sp'")
    # ordered by itself next would only repeat it
    assert sql.index_sql("tasks_by_created", "sp", "$.created", keyed, then="$.created") == (
        "CREATE INDEX tasks_by_created ON tasks (style, json_extract(keys, '$.\"created\"'), id) WHERE style = 'sp'")
    for style in ("s'; DROP TABLE tasks; --", "Sailpoint", "1sp", "", "x" * 33):
        with pytest.raises(ValueError, match="not an indexable style"):
            sql.index_sql("tasks_by_status", style, "$.status", keyed)


@pytest.mark.parametrize("op, prefix", [("sw", 1), ("co", 0)])
def test_a_needle_like_cannot_take_is_matched_by_the_registered_function(op, prefix):
    """A value holding U+0000 (LIKE would stop at it) or longer than 64 bytes (LIKE's time
    can grow with the product of the lengths) is passed as it is to taskgate_like."""
    for needle in ("w\x00", "x" * 65, "é" * 33):
        assert where(Compare("$.s", op, (needle,))) == (
            f"taskgate_like(CAST(json_extract(doc, '$.s') AS TEXT), ?, {prefix})", [needle])
    for needle in ("x" * 64, "é" * 32):
        assert where(Compare("$.s", op, (needle,)))[0] == "json_extract(doc, '$.s') LIKE ? ESCAPE '\\'"


def test_the_registered_function_answers_as_like_does_for_the_needles_like_takes():
    """Case ignored for ASCII letters only, wildcards taken literally, NULL for NULL, numbers
    compared as their text: the same answers as SQLite's LIKE with the escaped pattern."""
    import sqlite3
    conn = sqlite3.connect(":memory:")
    conn.create_function(sql.LIKE_FUNCTION, 3, sql.like, deterministic=True)
    values = ["Abc", "aBC def", "ÄBC", "äbc", "x_y", "50%", "a\\b", "", None, 42, 1.5]
    needles = ["ab", "AB", "b", "c d", "Ä", "ä", "_", "%", "", "bc d", "\\", "4", "1.5"]
    for value in values:
        for needle in needles:
            for prefix in (1, 0):
                escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                pattern = ("" if prefix else "%") + escaped + "%"
                (by_like, by_function), = conn.execute(
                    f"SELECT CAST(? AS TEXT) LIKE ? ESCAPE '\\', {sql.LIKE_FUNCTION}(CAST(? AS TEXT), ?, ?)",
                    (value, pattern, value, needle, prefix)).fetchall()
                assert by_function == by_like, (value, needle, prefix)
