"""SQL built from :mod:`gateway.query` nodes and from a style's keyed fields: pure functions.

Owns every piece of SQL that is put together from data rather than written out: the
WHERE clause of a filter, the ORDER BY of a sort, the page a list reads, the expression a
field is read through (from the keys column when the style keys it, so that it is the
expression its index is built on), the keys column computed in SQL, the ``CREATE INDEX``
of a keyed field, and the table of keys a batch joins to. Values always go into
parameters; what is spliced into SQL (field paths, enum names, style names) is refused
unless it is a plain name. Nothing here opens or touches a connection: the tests run
these functions without a database.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence
from typing import Any

from gateway.query import And, Compare, Expr, Not, Or, Query, Sort

__all__ = ["column", "key_parts", "keys_sql", "sort_key", "where_clause", "page_sql", "count_sql",
           "compile_where", "keys_table", "tasks_by_key_sql", "TASK_COLUMNS", "index_name", "index_sql", "check_style",
           "LIKE_FUNCTION", "like"]

# JSON paths are spliced into SQL (an expression index only serves a query that spells
# the same expression), so only plain member paths are allowed.
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,4}$")
_SQL_OPS = {"eq": "=", "ne": "IS NOT", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
#: the SQL function that every connection reading tasks registers as :func:`like`
LIKE_FUNCTION = "taskgate_like"
#: a ``sw``/``co`` value of more UTF-8 bytes goes to :func:`like`: SQLite's LIKE takes time
#: up to the product of the two lengths (a 2,000-byte needle in a 4,000-byte field that
#: almost matches everywhere: 2.4 ms a row), where Python's substring search stays linear
#: (8 µs); below this LIKE's worst is about 100 µs a row, which the search's time limit
#: bounds, and its usual cost (an email, a name: 1.4 µs) is a fifth of the function's,
#: which also takes the GIL for every row
_LIKE_BYTES = 64
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def like(value: str | None, needle: str, prefix: int) -> int | None:
    """What ``value LIKE 'needle%'`` (*prefix*) or ``LIKE '%needle%'`` answers, needle taken
    literally, for a needle SQLite's LIKE cannot take as it is: one holding U+0000 (LIKE
    reads its pattern, and the value, as C strings, up to the first NUL) or a long one.
    The case of ASCII letters is ignored, as LIKE ignores it; NULL for NULL. *value* is the
    field as text (the SQL casts it, as LIKE would)."""
    if value is None:
        return None
    text, sought = value.translate(_ASCII_LOWER), needle.translate(_ASCII_LOWER)
    return int(text.startswith(sought) if prefix else sought in text)


def column(field: str, keyed: tuple[str, ...] = ()) -> str:
    """SQL for *field* of a document; from the keys column when *keyed* (the style's keyed
    fields) holds it, so that the expression is the one its index is built on. ValueError
    unless *field* is ``id`` or a plain member path."""
    if field == "id":
        return "id"
    if not _JSON_PATH.match(field):
        raise ValueError(f"not a filterable field: {field!r}")
    if field in keyed:
        return f"json_extract(keys, '$.\"{key_parts(field)[0]}\"')"
    return f"json_extract(doc, '{field}')"


@functools.lru_cache(maxsize=64)
def key_parts(field: str) -> tuple[str, tuple[str, ...]]:
    """The label of *field* in the keys column, and the members its path walks."""
    return field[2:], tuple(field[2:].split("."))


def keys_sql(keyed: tuple[str, ...]) -> str:
    """SQL computing the keys column from ``doc``, as :func:`gateway.store.sqlite.keyed.keys_text`
    does in Python (``->`` keeps each value's JSON text, so numbers keep every digit)."""
    return "json_object(" + ", ".join(f"'{key_parts(field)[0]}', doc -> '{field}'" for field in keyed) + ")"


def sort_key(sort: Sort, keyed: tuple[str, ...] = ()) -> str:
    """The ORDER BY expression of *sort*: the field, or its rank among ``sort.rank``."""
    col = column(sort.field, keyed)
    if not sort.rank:
        return col
    if not all(re.fullmatch(r"[A-Za-z0-9_]{1,64}", value) for value in sort.rank):
        raise ValueError(f"not a sortable enum: {sort.rank!r}")  # spliced into SQL: names only
    cases = " ".join(f"WHEN '{value}' THEN {i}" for i, value in enumerate(sort.rank))
    return f"CASE {col} {cases} ELSE {len(sort.rank)} END"


def where_clause(style: str, query: Query, keyed: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The WHERE clause selecting *style*'s tasks that match *query*, and its parameters."""
    params: list[Any] = [style]
    where = "style = ?"
    if query.where is not None:
        where += " AND " + compile_where(query.where, params, keyed)
    return where, params


TASK_COLUMNS = "id, version, doc, modified, created"


def page_sql(where: str, params: list[Any], query: Query, keyed: tuple[str, ...],
             columns: str = TASK_COLUMNS) -> tuple[str, list[Any]]:
    """The statement reading one page of tasks (ordered by *query*, then by id unless it
    sorts by id itself) under *where*: their *columns* (all a :class:`~gateway.model.Task`
    needs, or ``id`` alone)."""
    order = ", ".join(f"{sort_key(s, keyed)} {'DESC' if s.descending else 'ASC'}" for s in query.order)
    # ties by id, unless the sort already names it (an index read backwards serves "x DESC, id DESC")
    if not any(s.field == "id" for s in query.order):
        order = f"{order}, id" if order else "id"
    limit = -1 if query.limit is None else query.limit
    return (f"SELECT {columns} FROM tasks WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, query.offset])


def count_sql(where: str) -> str:
    """The statement counting every task under *where*, ignoring limit and offset."""
    return f"SELECT count(*) FROM tasks WHERE {where}"


def compile_where(expr: Expr, params: list[Any], keyed: tuple[str, ...] = ()) -> str:
    """SQL for a :mod:`gateway.query` expression; values are appended to *params*.
    *keyed*: the fields the style keeps in its keys column."""
    if isinstance(expr, Compare):
        col = column(expr.field, keyed)
        if expr.op == "isnull":
            return f"{col} IS NULL"
        if expr.op == "in":
            params.extend(expr.values)
            return f"{col} IN ({', '.join('?' * len(expr.values))})"
        if expr.op == "has":
            if col == "id" or not expr.values:
                raise ValueError(f"'has' needs a JSON array field and a value: {expr!r}")
            params.extend(expr.values)
            # json_each over a null or absent member yields no matching row: not contained
            return (f"EXISTS (SELECT 1 FROM json_each(tasks.doc, '{expr.field}') AS e "
                    f"WHERE e.type = 'text' AND e.value IN ({', '.join('?' * len(expr.values))}))")
        if expr.op in ("sw", "co"):
            needle = str(expr.values[0])
            if "\x00" in needle or len(needle.encode("utf-8", "surrogatepass")) > _LIKE_BYTES:
                params.append(needle)
                return f"{LIKE_FUNCTION}(CAST({col} AS TEXT), ?, {int(expr.op == 'sw')})"
            literal = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(("%" if expr.op == "co" else "") + literal + "%")
            return f"{col} LIKE ? ESCAPE '\\'"
        params.append(expr.values[0])
        return f"{col} {_SQL_OPS[expr.op]} ?"
    if isinstance(expr, (And, Or)):
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(compile_where(item, params, keyed) for item in expr.items) + ")"
    if isinstance(expr, Not):
        # SQL's NOT of NULL is NULL (row dropped); "not (status eq X)" must keep null statuses.
        return f"(({compile_where(expr.item, params, keyed)}) IS NOT 1)"
    raise TypeError(f"unknown query node {expr!r}")


def tasks_by_key_sql(keys: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    """The statement reading the tasks of *keys* (``(style, id)``) as :data:`TASK_COLUMNS`
    by primary key, in no particular order, and its parameters."""
    head, params = keys_table(keys)
    columns = ", ".join(f"t.{c}" for c in TASK_COLUMNS.split(", "))
    return head + f"SELECT {columns} FROM k JOIN tasks t ON t.style = k.style AND t.id = k.id", params


def keys_table(keys: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    """``WITH k (style, id) AS (VALUES …)`` for *keys*, and its parameters. Joined to tasks
    on the primary key it is one index search a key; SQLite plans ``(style, id) IN (VALUES
    …)`` as a scan of every task instead."""
    return ("WITH k (style, id) AS (VALUES " + ", ".join("(?, ?)" for _ in keys) + ") ",
            [part for key in keys for part in key])


def check_style(style: str) -> None:
    """ValueError unless *style* is a name that may be spliced into an index's WHERE."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", style):
        raise ValueError(f"not an indexable style: {style!r}")


def index_name(field: str, style: str | None = None) -> str:
    """The name of the index on *field*; with *style*, the name used when another style
    already has an index of the plain name."""
    field_name = re.sub(r"\W", "_", field.lstrip("$."))
    return f"tasks_by_{style}_{field_name}" if style else f"tasks_by_{field_name}"


def index_sql(name: str, style: str, field: str, keyed: tuple[str, ...], then: str | None = None) -> str:
    """``CREATE INDEX`` *name* over *style*'s rows on *field* (then *then*, then id), read as
    :func:`column` reads them with the style keying *keyed*."""
    check_style(style)
    after = f"{column(then, keyed)}, " if then is not None and then != field else ""
    return f"CREATE INDEX {name} ON tasks (style, {column(field, keyed)}, {after}id) WHERE style = '{style}'"
