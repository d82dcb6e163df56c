"""PostgreSQL's SQL built from :mod:`gateway.query` nodes: pure functions, and the one
place where this backend's dialect differs from SQLite's (:mod:`gateway.store.sqlite.sql`).

The same AST, compiled so that each filter and sort answers as it does on SQLite:

* a field is read as ``jsonb`` (``doc::jsonb #> '{a,b}'``, or from the ``keys`` column when
  the style keys the field, the expression its index is built on), with a JSON ``null``
  read as SQL NULL, as SQLite's ``json_extract`` reads it: ``isnull`` matches an absent
  member and a null one alike, and ``not`` keeps rows whose value is null (``IS NOT TRUE``);
* values go into parameters as JSON text cast to ``jsonb``, so a number compares as a
  number and a string as a string (by the database's collation, which the store only opens
  when it is ``C``: bytes, as SQLite; :func:`.schema.check_database`); ids compare as text,
  as SQLite's ``TEXT`` column;
* ``sw``/``co`` are ``ILIKE`` on the value's text, escaped: SQLite's ``LIKE`` ignores the
  case of ASCII letters, and so does ``ILIKE`` under the C ctype;
* ascending sorts put NULL first and descending ones last, as SQLite orders NULL lowest.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000, so nothing stored holds it (the
write path refuses a document holding one: :func:`holds_nul`): a filter value holding a NUL
is compiled to what it means against such values rather than sent (the driver would fail).
It equals nothing, contains nothing, and orders as the text before its first NUL does, but
just after it (no stored text lies between ``p`` and ``p + "\0" + rest``).

Where SQLite and PostgreSQL still differ, both are documented here: values of different
JSON types compared or sorted together (SQLite orders numbers before text, ``jsonb`` text
before numbers), and booleans, which SQLite reads as 0 and 1. Fields are plain member paths
only (checked before anything is spliced into SQL); nothing here touches a connection.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway import errors
from gateway.query import And, Compare, Expr, Not, Or, Query, Sort

__all__ = ["NUL_REFUSED", "storable", "holds_nul", "Params", "column", "value", "where_clause", "page_sql",
           "count_sql", "compile_where", "keys_value", "index_name", "index_sql", "check_style", "key_label",
           "TASK_COLUMNS", "MAX_KEYED_BYTES"]

_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,4}$")
_OPS = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
TASK_COLUMNS = "id, version, doc, modified, created"
#: the longest keyed value (its JSON, in UTF-8 bytes) a write may store: each keyed field has
#: a B-tree index (with the style's second field and the id), whose entries PostgreSQL caps
#: at 2704 bytes ("index row size exceeds btree maximum", a failed write) where SQLite has none
MAX_KEYED_BYTES = 2000
#: a write refused because its document holds U+0000 (BadRequest: the client's input)
NUL_REFUSED = "a string holds U+0000 (NUL), which the PostgreSQL store cannot keep"
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def storable(text: str | None) -> bool:
    """Whether PostgreSQL's ``text`` can hold *text* (not U+0000): a key that it cannot names
    nothing stored, and a lookup by it finds nothing without asking the database."""
    return text is None or "\x00" not in text


def holds_nul(text: str) -> bool:
    """Whether JSON *text* holds U+0000 in a string or a member name: JSON writes it as the
    escape ``\\u0000`` (not preceded by an odd run of backslashes, which would be a
    backslash and the letters u0000). ``jsonb`` refuses it, and ``doc::jsonb`` with it."""
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None


def _nul(field: str, item: Any) -> bool:
    """Whether the filter value *item* of *field* holds U+0000 (then matches nothing stored)."""
    if field == "id":
        return item is not None and "\x00" in str(item)
    return holds_nul(json.dumps(item))


_BEFORE_NUL = {"gt": ">", "ge": ">", "lt": "<=", "le": "<="}


class Params(list[Any]):
    """The parameters of one statement; :meth:`add` gives each its ``$n``."""

    def add(self, item: Any, cast: str = "") -> str:
        self.append(item)
        return f"${len(self)}{cast}"


def key_label(field: str) -> str:
    """The member of the ``keys`` column that holds *field* (its path without ``$.``)."""
    return field[2:]


def _check_field(field: str) -> None:
    if not _JSON_PATH.match(field):
        raise ValueError(f"not a filterable field: {field!r}")


#: a row's document as ``jsonb``, parsed once per row for every term that reads it: the
#: cast parses the whole text, and a term such as a user's webMethods list (two ``has`` and
#: an ``eq``) read it five times over (6.6 s instead of 1.3 s for 100 000 tasks); OFFSET 0
#: keeps the planner from folding the subquery back into each term
_PARSED = "parsed.j"
_PARSED_JOIN = " CROSS JOIN LATERAL (SELECT tasks.doc::jsonb AS j OFFSET 0) AS parsed"


def _document_path(field: str) -> str:
    return f"({_PARSED} #> '{{" + ",".join(key_label(field).split(".")) + "}')"


def _tasks(*sql_text: str) -> str:
    """The FROM of a statement whose clauses are *sql_text*: ``tasks``, joined to each row's
    parsed document when a clause reads one (a statement on keyed fields alone parses none)."""
    return "tasks" + (_PARSED_JOIN if any(_PARSED in text for text in sql_text) else "")


def value(field: str, keyed: tuple[str, ...] = ()) -> str:
    """The ``jsonb`` expression of *field* of a document, a JSON null read as SQL NULL;
    from the keys column when *keyed* holds it. ValueError unless a plain member path."""
    _check_field(field)
    if field in keyed:
        return f"nullif(keys -> '{key_label(field)}', 'null'::jsonb)"
    return f"nullif({_document_path(field)}, 'null'::jsonb)"


def column(field: str, keyed: tuple[str, ...] = ()) -> str:
    """SQL for *field*: ``id``, or :func:`value`."""
    return "id" if field == "id" else value(field, keyed)


def _param(field: str, item: Any, params: Params) -> str:
    if field == "id":
        return params.add(None if item is None else str(item))
    return params.add(json.dumps(item), "::jsonb")


def _text(field: str, keyed: tuple[str, ...]) -> str:
    return "id" if field == "id" else f"({value(field, keyed)} #>> '{{}}')"


def compile_where(expr: Expr, params: Params, keyed: tuple[str, ...] = ()) -> str:
    """SQL for a :mod:`gateway.query` expression; values are added to *params*."""
    if isinstance(expr, Compare):
        col = column(expr.field, keyed)
        if expr.op == "isnull":
            return f"{col} IS NULL"
        if expr.op == "in":
            values = [v for v in expr.values if not _nul(expr.field, v)]
            if not values:
                return "false"
            return f"{col} IN ({', '.join(_param(expr.field, v, params) for v in values)})"
        if expr.op == "has":
            if expr.field == "id" or not expr.values:
                raise ValueError(f"'has' needs a JSON array field and a value: {expr!r}")
            texts = [v for v in expr.values if isinstance(v, str) and "\x00" not in v]  # only strings are contained
            if not texts:
                return "false"
            array = _document_path(expr.field)
            return (f"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof({array}) WHEN 'array' "
                    f"THEN {array} ELSE '[]'::jsonb END) AS e (v) WHERE jsonb_typeof(e.v) = 'string' "
                    f"AND (e.v #>> '{{}}') IN ({', '.join(params.add(t) for t in texts)}))")
        if expr.values and _nul(expr.field, expr.values[0]):
            item = expr.values[0]
            if expr.op in _BEFORE_NUL and isinstance(item, str):
                return f"{col} {_BEFORE_NUL[expr.op]} {_param(expr.field, item[:item.index(chr(0))], params)}"
            return "true" if expr.op == "ne" else "false"
        if expr.op in ("sw", "co"):
            literal = str(expr.values[0]).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = params.add(("%" if expr.op == "co" else "") + literal + "%")
            return f"{_text(expr.field, keyed)} ILIKE {pattern} ESCAPE '\\'"
        return f"{col} {_OPS[expr.op]} {_param(expr.field, expr.values[0], params)}"
    if isinstance(expr, (And, Or)):
        joiner = " AND " if isinstance(expr, And) else " OR "
        return "(" + joiner.join(compile_where(item, params, keyed) for item in expr.items) + ")"
    if isinstance(expr, Not):
        return f"(({compile_where(expr.item, params, keyed)}) IS NOT TRUE)"
    raise TypeError(f"unknown query node {expr!r}")


def where_clause(style: str, query: Query, keyed: tuple[str, ...]) -> tuple[str, Params]:
    """The WHERE clause selecting *style*'s tasks that match *query*, and its parameters."""
    params = Params()
    where = f"style = {params.add(style)}"
    if query.where is not None:
        where += " AND " + compile_where(query.where, params, keyed)
    return where, params


def _sort_key(sort: Sort, keyed: tuple[str, ...]) -> str:
    if not sort.rank:
        return column(sort.field, keyed)
    if not all(re.fullmatch(r"[A-Za-z0-9_]{1,64}", v) for v in sort.rank):
        raise ValueError(f"not a sortable enum: {sort.rank!r}")  # spliced into SQL: names only
    cases = " ".join(f"WHEN '{v}' THEN {i}" for i, v in enumerate(sort.rank))
    return f"CASE {_text(sort.field, keyed)} {cases} ELSE {len(sort.rank)} END"


def page_sql(where: str, params: Params, query: Query, keyed: tuple[str, ...],
             columns: str = TASK_COLUMNS) -> tuple[str, Params]:
    """The statement reading one page of tasks (ordered by *query*, then by id unless it
    sorts by id itself) under *where*: their *columns*."""
    parts = [f"{_sort_key(s, keyed)} {'DESC NULLS LAST' if s.descending else 'ASC NULLS FIRST'}"
             for s in query.order]
    if not any(s.field == "id" for s in query.order):
        parts.append("id")
    page = Params(params)
    limit = page.add(query.limit)
    offset = page.add(query.offset)
    order = ", ".join(parts)
    return (f"SELECT {columns} FROM {_tasks(where, order)} WHERE {where} ORDER BY {order} LIMIT {limit} "
            f"OFFSET {offset}", page)


def count_sql(where: str) -> str:
    return f"SELECT count(*) FROM {_tasks(where)} WHERE {where}"


def keys_value(keyed: tuple[str, ...], doc: Any) -> str | None:
    """The ``keys`` column of *doc* (JSON text) for a style keying *keyed*: each field as
    :func:`value` reads it from the document (an absent member is null). BadRequest when a
    field's value is longer than :data:`MAX_KEYED_BYTES`, more than its index can hold."""
    if not keyed:
        return None
    out: dict[str, Any] = {}
    for field in keyed:
        found: Any = doc
        for part in key_label(field).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        out[key_label(field)] = found
        if isinstance(found, (str, list, dict)):
            size = len(json.dumps(found, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            if size > MAX_KEYED_BYTES:
                raise errors.BadRequest(f"{key_label(field)} is {size} bytes long; the PostgreSQL store indexes "
                                        f"at most {MAX_KEYED_BYTES} bytes of it")
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def check_style(style: str) -> None:
    """ValueError unless *style* is a name that may be spliced into an index's WHERE."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", style):
        raise ValueError(f"not an indexable style: {style!r}")


def index_name(style: str, field: str) -> str:
    """The index of *style* on *field* (PostgreSQL's names are case-sensitive when quoted)."""
    name = f"tasks_by_{style}_" + re.sub(r"\W", "_", key_label(field))
    return f'"{name[:63]}"'


def index_sql(style: str, field: str, keyed: tuple[str, ...], then: str | None = None) -> str:
    """``CREATE INDEX`` over *style*'s rows on *field* (then *then*, then id), read as
    :func:`column` reads them with the style keying *keyed*."""
    check_style(style)
    after = f"({column(then, keyed)}) NULLS FIRST, " if then is not None and then != field else ""
    return (f"CREATE INDEX IF NOT EXISTS {index_name(style, field)} ON tasks "
            f"(({column(field, keyed)}) NULLS FIRST, {after}id) WHERE style = '{style}'")
