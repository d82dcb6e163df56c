"""SailPoint ``filters``/``sorters`` parsing: exact ASTs and exact error messages."""

from __future__ import annotations

import pytest

from gateway.apis.sailpoint_filters import MAX_DEPTH, MAX_IN_VALUES, MAX_LENGTH, parse_filters, parse_sorters
from gateway.errors import BadRequest
from gateway.query import And, Compare, Not, Or, Sort

A = Compare("id", "eq", ("a",))
B = Compare("id", "eq", ("b",))
C = Compare("id", "eq", ("c",))
PENDING = Compare("$.completionStatus", "isnull", ())


SA, SB, SC = 'id eq "a"', 'id eq "b"', 'id eq "c"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # vendor and SDK examples
        ('completionStatus isnull and type in ("QUARTZ","QPOC")',
         And((PENDING, Compare("$.type", "in", ("QUARTZ", "QPOC"))))),
        ('type eq "CLOUD_ACCOUNT_AGGREGATION" and completionStatus isnull',
         And((Compare("$.type", "eq", ("CLOUD_ACCOUNT_AGGREGATION",)), PENDING))),
        ('completionStatus eq "Success"', Compare("$.completionStatus", "eq", ("SUCCESS",))),
        ("completionStatus isnull", PENDING),
        # every field and operator
        ('id eq "2c9180835d2e5168015d32f890ca1581"', Compare("id", "eq", ("2c9180835d2e5168015d32f890ca1581",))),
        ('id in ("a")', Compare("id", "in", ("a",))),
        ('launcher eq "someone"', Compare("$.launcher", "eq", ("someone",))),
        ('launcher in ("x", "y")', Compare("$.launcher", "in", ("x", "y"))),
        ('type eq "IDENTITY_REFRESH"', Compare("$.type", "eq", ("IDENTITY_REFRESH",))),
        # sourceId is the task's target.id (the member that names the source it ran on)
        ('sourceId eq "2c91808a78efc63e0178fb8624b248c5"',
         Compare("$.target.id", "eq", ("2c91808a78efc63e0178fb8624b248c5",))),
        ('sourceId in ("a", "B")', Compare("$.target.id", "in", ("a", "B"))),  # ids keep their case
        ('sourceId eq "s" and completionStatus isnull', And((Compare("$.target.id", "eq", ("s",)), PENDING))),
        ('completionStatus in ("Error", "tempError", "nonsense")',
         Compare("$.completionStatus", "in", ("ERROR", "TEMPERROR", "NONSENSE"))),
        ('completionStatus eq ""', Compare("$.completionStatus", "eq", ("",))),
        ('type eq "mixedCase"', Compare("$.type", "eq", ("mixedCase",))),  # only completionStatus is upper-cased
        # precedence: not > and > or
        (f"{SA} or {SB} and not {SC}", Or((A, And((B, Not(C)))))),
        (f"{SA} and {SB} or {SC}", Or((And((A, B)), C))),
        (f"not {SA} and {SB}", And((Not(A), B))),
        (f"not not {SA}", Not(Not(A))),
        # flat chains
        (f"{SA} and {SB} and {SC}", And((A, B, C))),
        (f"{SA} or {SB} or {SC}", Or((A, B, C))),
        # parentheses
        (f"({SA} or {SB}) and {SC}", And((Or((A, B)), C))),
        (f"not ({SA} or {SB})", Not(Or((A, B)))),
        ('((id eq "a"))', A),
        (f"(({SA} and {SB}) and {SC})", And((A, B, C))),
        (f"({SA} or {SB}) or ({SC})", Or((A, B, C))),
        # whitespace
        ('\tid   eq\t"a"  ', A),
        ('(id eq"a")and(id in("b" ,"c"))', And((A, Compare("id", "in", ("b", "c"))))),
        ('id in ( "a" , "b" )', Compare("id", "in", ("a", "b"))),
        # strings and escapes
        (r'id eq "say \"hi\""', Compare("id", "eq", ('say "hi"',))),
        (r'id eq "back\\slash"', Compare("id", "eq", ("back\\slash",))),
        (r'id eq "\\"', Compare("id", "eq", ("\\",))),
        ('id eq "a and b or (c)"', Compare("id", "eq", ("a and b or (c)",))),
        ('id eq "ünïcode ✓"', Compare("id", "eq", ("ünïcode ✓",))),
    ],
)
def test_parse_filters(text: str, expected: object) -> None:
    assert parse_filters(text) == expected


@pytest.mark.parametrize("text", ["", " ", "\t \n"])
def test_empty_filters_mean_no_filter(text: str) -> None:
    assert parse_filters(text) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unsupported fields and operators
        ('sourceid eq "x"', "filters: unsupported field 'sourceid'"),
        ('targetId eq "x"', "filters: unsupported field 'targetId'"),
        ('sourceId isnull', "filters: operator 'isnull' is not supported for 'sourceId'"),
        ('sourceId co "x"', "filters: operator 'co' is not supported for 'sourceId'"),
        ('completionstatus isnull', "filters: unsupported field 'completionstatus'"),
        ('created gt "2018-12-18T23:05:55Z"', "filters: unsupported field 'created'"),
        ('type co "CLOUD"', "filters: operator 'co' is not supported for 'type'"),
        ('id ne "a"', "filters: operator 'ne' is not supported for 'id'"),
        ("type isnull", "filters: operator 'isnull' is not supported for 'type'"),
        ("launcher pr", "filters: operator 'pr' is not supported for 'launcher'"),
        ('id like "a"', "filters: expected an operator after 'id' at position 3"),
        ("id", "filters: expected an operator after 'id' at end of input"),
        # lowercase only
        ('id EQ "a"', "filters: unknown operator 'EQ' at position 3 (operators are lowercase)"),
        ('id eq "a" AND id eq "b"', "filters: unexpected 'AND' at position 10 (keywords and operators are lowercase)"),
        ('NOT id eq "a"', "filters: unsupported field 'NOT'"),
        # values
        ("completionStatus eq Success", "filters: expected a quoted string at position 20"),
        ("id eq 'a'", "filters: expected a quoted string at position 6"),
        ("id eq", "filters: expected a quoted string at end of input"),
        ('id in "a"', "filters: expected '(' at position 6"),
        ("id in ()", "filters: expected a quoted string at position 7"),
        ('id in ("a",)', "filters: expected a quoted string at position 11"),
        ('id in ("a" "b")', "filters: expected ',' or ')' at position 11"),
        ('id eq "abc', "filters: unterminated string at position 6"),
        ('id eq "abc\\"', "filters: unterminated string at position 6"),
        (r'id eq "a\nb"', r"filters: invalid escape '\n' at position 8"),
        # structure
        ('id eq "a" xyz', "filters: unexpected 'xyz' at position 10"),
        ('id eq "a" and', "filters: unexpected end of input"),
        ('id eq "a" or or id eq "b"', "filters: unexpected 'or' at position 13"),
        ('and id eq "a"', "filters: unexpected 'and' at position 0"),
        ("not", "filters: unexpected end of input"),
        ('"a"', "filters: unexpected '\"a\"' at position 0"),
        ('id eq "a" "b"', "filters: unexpected '\"b\"' at position 10"),
        (",", "filters: unexpected ',' at position 0"),
        ("()", "filters: unexpected ')' at position 1"),
        ('(id eq "a" id eq "b")', "filters: unexpected 'id' at position 11"),
        ('(id eq "a"', "filters: unbalanced parenthesis: '(' at position 0 is never closed"),
        ('id eq "a")', "filters: unbalanced parenthesis at position 9"),
        ('id in ("a"', "filters: unbalanced parenthesis: '(' at position 6 is never closed"),
        ('((id eq "a")', "filters: unbalanced parenthesis"),
        # long values are shortened in messages
        ("x" * 100 + ' eq "a"', f"filters: unsupported field '{'x' * 40}...'"),
    ],
)
def test_filter_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_filters(text)
    assert str(info.value).startswith(message)
    assert info.value.status == 400


def test_unbalanced_parenthesis_message_is_exact() -> None:
    with pytest.raises(BadRequest, match=r"^filters: unbalanced parenthesis: '\(' at position 16 is never closed$"):
        parse_filters('(id eq "a") and (id eq "b"')


@pytest.mark.parametrize("wrap", ["paren", "not", "both"])
def test_nesting_up_to_the_limit_is_allowed(wrap: str) -> None:
    text, expected = 'id eq "a"', A
    for level in range(MAX_DEPTH):
        if wrap == "paren" or (wrap == "both" and level % 2):
            text = f"({text})"
        else:
            text, expected = f"not {text}", Not(expected)
    assert parse_filters(text) == expected


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("(" * (MAX_DEPTH + 1) + 'id eq "a"' + ")" * (MAX_DEPTH + 1), MAX_DEPTH),
        ("not " * (MAX_DEPTH + 1) + 'id eq "a"', 4 * MAX_DEPTH),
        ("not (" * 17 + 'id eq "a"' + ")" * 17, 5 * 16),  # the 17th "not" is level 33
        ("not " * 1000 + 'id eq "a"', 4 * MAX_DEPTH),  # just under MAX_LENGTH
    ],
)
def test_nesting_beyond_the_limit_is_rejected(text: str, position: int) -> None:
    assert len(text) <= MAX_LENGTH
    with pytest.raises(BadRequest, match=rf"^filters: nesting deeper than {MAX_DEPTH} at position {position}$"):
        parse_filters(text)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + 'id eq "a"' + ")" * 10_000,
        "not " * 10_000 + 'id eq "a"',
        "(" * 10_000,
        ")" * 10_000,
    ],
)
def test_hostile_deep_nesting_is_a_bad_request(text: str) -> None:
    with pytest.raises(BadRequest):  # never RecursionError
        parse_filters(text)


def test_length_limit() -> None:
    padded = 'id eq "' + "a" * (MAX_LENGTH - 8) + '"'
    assert len(padded) == MAX_LENGTH
    assert parse_filters(padded) == Compare("id", "eq", ("a" * (MAX_LENGTH - 8),))
    with pytest.raises(BadRequest, match=rf"^filters: longer than {MAX_LENGTH} characters$"):
        parse_filters(padded + " ")
    with pytest.raises(BadRequest, match=r"^filters: longer than"):
        parse_filters(" or ".join(['id eq "a"'] * 1000))


def test_in_list_limit() -> None:
    values = [f"v{i}" for i in range(MAX_IN_VALUES)]
    text = "id in (" + ", ".join(f'"{v}"' for v in values) + ")"
    assert parse_filters(text) == Compare("id", "in", tuple(values))
    too_many = "id in (" + ",".join('"x"' for _ in range(MAX_IN_VALUES + 1)) + ")"
    last = 7 + 4 * MAX_IN_VALUES - 1  # where the value one too many starts
    with pytest.raises(BadRequest, match=rf"^filters: more than {MAX_IN_VALUES} values in 'in' at position {last}$"):
        parse_filters(too_many)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("  ", ()),
        ("created", (Sort("$.created", False),)),
        ("-created", (Sort("$.created", True),)),
        (" -created ", (Sort("$.created", True),)),
    ],
)
def test_parse_sorters(text: str, expected: tuple[Sort, ...]) -> None:
    assert parse_sorters(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name", "sorters: unsupported sorter 'name'"),
        ("-name", "sorters: unsupported sorter 'name'"),
        ("Created", "sorters: unsupported sorter 'Created'"),
        ("--created", "sorters: unsupported sorter '-created'"),
        ("created,name", "sorters: unsupported sorter 'name'"),
        ("created,-created", "sorters: duplicate sorter 'created'"),
        ("created,created", "sorters: duplicate sorter 'created'"),
        ("created,", "sorters: empty sorter"),
        ("-", "sorters: empty sorter"),
        (",created", "sorters: empty sorter"),
        ("created" * 600, f"sorters: longer than {MAX_LENGTH} characters"),
    ],
)
def test_sorter_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_sorters(text)
    assert str(info.value) == message
