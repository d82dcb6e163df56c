"""SailPoint ISC standard collection parameters: ``filters`` and ``sorters``.

Owns: turning the ``filters`` and ``sorters`` query strings of ``GET /task-status/v1``
into :mod:`gateway.query` nodes, and rejecting anything unsupported with ``BadRequest``.
Must not: do I/O, know about HTTP frameworks or SQL, or raise anything but ``BadRequest``.

Grammar (precedence ``not`` > ``and`` > ``or``; keywords and operators are lowercase)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | primary
    primary := "(" expr ")" | FIELD "isnull" | FIELD "eq" STRING
             | FIELD "in" "(" STRING ("," STRING)* ")"

STRING is double-quoted with the escapes ``\\"`` and ``\\\\``. Positions in error
messages are 0-based character offsets into the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from gateway.errors import BadRequest
from gateway.query import And, Compare, Expr, Not, Or, Sort

__all__ = ["parse_filters", "parse_sorters", "FIELDS", "SORTERS", "MAX_LENGTH", "MAX_DEPTH", "MAX_IN_VALUES"]

MAX_LENGTH = 4096  # characters in one parameter
MAX_DEPTH = 32  # nested parentheses and nots
MAX_IN_VALUES = 250  # values in one ``in`` list

# SailPoint field -> (AST field, supported operators). Names are case-sensitive.
# ``sourceId`` has no TaskStatus member of its name: the member that names the source a
# task ran on is ``target`` (the vendor's example: type APPLICATION, name "Active Directory
# [source]"), so it compares ``target.id``; a task without a target matches no source.
FIELDS: dict[str, tuple[str, frozenset[str]]] = {
    "id": ("id", frozenset({"eq", "in"})),
    "sourceId": ("$.target.id", frozenset({"eq", "in"})),
    "completionStatus": ("$.completionStatus", frozenset({"eq", "in", "isnull"})),
    "type": ("$.type", frozenset({"eq", "in"})),
    "launcher": ("$.launcher", frozenset({"eq", "in"})),
}
_UPPER_CASED = frozenset({"completionStatus"})  # stored as upper-case enums (SUCCESS, ERROR, …)
_OPERATORS = frozenset("eq ne gt ge lt le co sw in ca pr isnull".split())  # SailPoint's full set
_KEYWORDS = frozenset({"and", "or", "not"})
SORTERS: dict[str, str] = {"created": "$.created"}

_SPACE = re.compile(r"[ \t\r\n]*")
_WORD = re.compile(r'[^ \t\r\n(),"]+')
_STRING = re.compile(r'"((?:[^"\\]|\\[\s\S])*)"')
_ESCAPE = re.compile(r"\\([\s\S])")


class _Token(NamedTuple):
    kind: str  # "(", ")", ",", "string", "word" or "end"
    text: str  # the source text
    pos: int
    value: str = ""  # the unescaped value of a string


def _show(text: str) -> str:
    return f"'{text[:40]}...'" if len(text) > 40 else f"'{text}'"


def _where(tok: _Token) -> str:
    return "at end of input" if tok.kind == "end" else f"at position {tok.pos}"


def _unexpected(tok: _Token) -> BadRequest:
    if tok.kind == "end":
        return BadRequest("filters: unexpected end of input")
    hint = " (keywords and operators are lowercase)" if tok.text.lower() in _KEYWORDS | _OPERATORS else ""
    return BadRequest(f"filters: unexpected {_show(tok.text)} at position {tok.pos}{hint}")


def _unescape(body: str, start: int) -> str:
    for m in _ESCAPE.finditer(body):
        if m.group(1) not in '"\\':
            raise BadRequest(f"filters: invalid escape {_show(m.group())} at position {start + m.start()}")
    return _ESCAPE.sub(r"\1", body)


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a match of *pattern* at *pos* ends; for _SPACE and _WORD, which match at every
    position the tokenizer tries them (_WORD only where no other token starts)."""
    m = pattern.match(text, pos)
    assert m is not None
    return m.end()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    opened: list[int] = []  # positions of unclosed "("
    pos = _end(_SPACE, text, 0)
    while pos < len(text):
        ch = text[pos]
        if ch in "(),":
            if ch == "(":
                opened.append(pos)
            elif ch == ")" and not opened:
                raise BadRequest(f"filters: unbalanced parenthesis at position {pos}")
            elif ch == ")":
                opened.pop()
            tokens.append(_Token(ch, ch, pos))
            end = pos + 1
        elif ch == '"':
            m = _STRING.match(text, pos)
            if m is None:
                raise BadRequest(f"filters: unterminated string at position {pos}")
            tokens.append(_Token("string", m.group(), pos, _unescape(m.group(1), pos + 1)))
            end = m.end()
        else:
            end = _end(_WORD, text, pos)
            tokens.append(_Token("word", text[pos:end], pos))
        pos = _end(_SPACE, text, end)
    if opened:
        raise BadRequest(f"filters: unbalanced parenthesis: '(' at position {opened[-1]} is never closed")
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over a token list; nesting is capped at MAX_DEPTH."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def accept(self, keyword: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text == keyword:
            self.i += 1
            return True
        return False

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise BadRequest(f"filters: nesting deeper than {MAX_DEPTH} at position {tok.pos}")

    def expr(self) -> Expr:
        return self.chain("or", Or, self.and_)

    def and_(self) -> Expr:
        return self.chain("and", And, self.not_)

    def chain(self, keyword: str, node: type[And] | type[Or], operand: Callable[[], Expr]) -> Expr:
        items: list[Expr] = []
        while True:
            item = operand()
            items.extend(item.items if isinstance(item, node) else (item,))  # flatten
            if not self.accept(keyword):
                return items[0] if len(items) == 1 else node(tuple(items))

    def not_(self) -> Expr:
        tok = self.peek()
        if not self.accept("not"):
            return self.primary()
        self.enter(tok)
        item = Not(self.not_())
        self.depth -= 1
        return item

    def primary(self) -> Expr:
        tok = self.next()
        if tok.kind == "(":
            self.enter(tok)
            item = self.expr()
            if (close := self.next()).kind != ")":
                raise _unexpected(close)
            self.depth -= 1
            return item
        if tok.kind != "word" or tok.text in _KEYWORDS:
            raise _unexpected(tok)
        if tok.text not in FIELDS:
            raise BadRequest(f"filters: unsupported field {_show(tok.text)}")
        field, supported = FIELDS[tok.text]
        op = self.next()
        if op.kind != "word" or op.text not in _OPERATORS:
            if op.kind == "word" and op.text.lower() in _OPERATORS:
                raise BadRequest(f"filters: unknown operator {_show(op.text)} at position {op.pos} "
                                 "(operators are lowercase)")
            raise BadRequest(f"filters: expected an operator after '{tok.text}' {_where(op)}")
        if op.text not in supported:
            raise BadRequest(f"filters: operator '{op.text}' is not supported for '{tok.text}'")
        values = () if op.text == "isnull" else (self.quoted(),) if op.text == "eq" else self.in_list()
        if tok.text in _UPPER_CASED:
            values = tuple(v.upper() for v in values)
        return Compare(field, op.text, values)  # type: ignore[arg-type]

    def quoted(self) -> str:
        tok = self.next()
        if tok.kind != "string":
            raise BadRequest(f"filters: expected a quoted string {_where(tok)}")
        return tok.value

    def in_list(self) -> tuple[str, ...]:
        tok = self.next()
        if tok.kind != "(":
            raise BadRequest(f"filters: expected '(' {_where(tok)}")
        values = [self.quoted()]
        while (tok := self.next()).kind == ",":
            if len(values) >= MAX_IN_VALUES:
                raise BadRequest(f"filters: more than {MAX_IN_VALUES} values in 'in' at position {tok.pos}")
            values.append(self.quoted())
        if tok.kind != ")":
            raise BadRequest(f"filters: expected ',' or ')' {_where(tok)}")
        return tuple(values)


def parse_filters(text: str) -> Expr | None:
    """Parse a ``filters`` value; ``None`` when it is empty or only whitespace."""
    if len(text) > MAX_LENGTH:
        raise BadRequest(f"filters: longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokenize(text))
    if parser.peek().kind == "end":
        return None
    expr = parser.expr()
    if (tok := parser.peek()).kind != "end":
        raise _unexpected(tok)
    return expr


def parse_sorters(text: str) -> tuple[Sort, ...]:
    """Parse a ``sorters`` value (``created`` or ``-created``); ``()`` when it is empty."""
    if len(text) > MAX_LENGTH:
        raise BadRequest(f"sorters: longer than {MAX_LENGTH} characters")
    if not text.strip(" \t\r\n"):
        return ()
    sorts: list[Sort] = []
    seen: set[str] = set()
    for item in text.split(","):
        name = item.strip(" \t\r\n")
        descending = name.startswith("-")
        name = name[1:] if descending else name
        if not name:
            raise BadRequest("sorters: empty sorter")
        if name not in SORTERS:
            raise BadRequest(f"sorters: unsupported sorter {_show(name)}")
        if name in seen:
            raise BadRequest(f"sorters: duplicate sorter {_show(name)}")
        seen.add(name)
        sorts.append(Sort(SORTERS[name], descending))
    return tuple(sorts)
