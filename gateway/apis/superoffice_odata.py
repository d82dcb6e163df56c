"""The OData side of ``GET /api/v1/BatchTask``: its query options, parsed into
:mod:`gateway.query`, and the metadata document its envelope's ``odata.metadata`` names.

Supported: ``$filter`` on State, Name and AssociateId with ``eq``, ``ne`` and ``and``;
``$orderBy``, ``$select``, ``$top``, ``$skip`` and ``$format``. Anything else is refused
with a message naming it, so a client never gets an unfiltered list it did not ask for.

The envelope is OData 3 JSON (``odata.metadata``, ``odata.nextLink``; OData 4 says
``@odata.context``), so ``$metadata`` is an OData 3 CSDL document (EDMX 1.0): the entity
set ``BatchTask`` of ``BatchTaskInfo`` rows, built from the carrier's members in
:data:`schemas.superoffice.FIELDS`, so it cannot describe members the list does not have.

Owns the list's query grammar, its limits (:data:`MAX_PAGE`) and that document. Must not
do I/O, know aiohttp or hold SQL: it returns :mod:`gateway.query` nodes, which the store
compiles, and the document as bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from gateway import errors
from gateway.query import And, Compare, Expr, Sort
from schemas.superoffice import CANCELLATION, CANCELLATION_VALUES, FIELDS, STATE_VALUES, STATES

__all__ = ["ListOptions", "parse_list_options", "parse_select", "MAX_PAGE", "metadata_document",
           "METADATA_TYPE", "DATA_SERVICE_VERSION", "ENTITY_SET"]

MAX_PAGE = 1000
FILTERABLE = ("State", "Name", "AssociateId")
SORTABLE = tuple(name for name in FIELDS if name != "ParameterObject")
#: enums sort by their numbers, as the archive's integer columns do
ENUM_ORDER = {"State": STATES, "CancellationBehaviour": CANCELLATION}
_SUPPORTED = ("$filter", "$orderby", "$select", "$top", "$skip", "$format")
_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?[0-9]+)"
                    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>\S))")


@dataclass(frozen=True)
class ListOptions:
    where: Expr | None
    order: tuple[Sort, ...]
    select: tuple[str, ...] | None
    top: int
    skip: int
    format: str | None  # "json" | "xml" | None (use Accept)


def _fold(names: tuple[str, ...]) -> dict[str, str]:
    return {n.casefold(): n for n in names}


def _int_option(query: Mapping[str, str], name: str, default: int, hi: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()) or (hi is not None and int(raw) > hi):
        limit = f" at most {hi}" if hi is not None else ""
        raise errors.BadRequest(f"{name} must be a non-negative integer{limit}; got {raw[:40]!r}")
    return int(raw)


def parse_filter(text: str, state_name: Any) -> Expr | None:
    """``State eq 'Started' and AssociateId ne 5``; *state_name* normalises State values."""
    tokens: list[tuple[str, str]] = []  # (kind, text), kind the name of a _TOKEN group
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing blanks remain
            break
        kind = match.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    fields = _fold(FILTERABLE)
    terms: list[Expr] = []
    i = 0
    while True:
        if i + 3 > len(tokens):
            raise errors.BadRequest(f"$filter: expected 'Field eq|ne value' at the end of {text[:80]!r}")
        (k1, field), (k2, op), (k3, value) = tokens[i:i + 3]
        if k1 != "word" or field.casefold() not in fields:
            raise errors.BadRequest(f"$filter: {field[:40]!r} cannot be filtered on; use {', '.join(FILTERABLE)}")
        if k2 != "word" or op.lower() not in ("eq", "ne"):
            raise errors.BadRequest(f"$filter: operator {op[:40]!r} is not supported; use eq, ne and and")
        name = fields[field.casefold()]
        if k3 == "string":
            literal: Any = value[1:-1].replace("''", "'")
        elif k3 == "number":
            literal = int(value) if len(value) <= 12 else 2**63  # no int() of thousands of digits
            if not -2**31 <= literal < 2**31:  # every member filtered on is a 32-bit integer
                raise errors.BadRequest(f"$filter: {name} {value[:40]} is out of range")
        else:
            raise errors.BadRequest(f"$filter: {value[:40]!r} is not a value; quote text as 'text'")
        if name == "State":
            literal = state_name(literal)
            if literal == "All":  # the vendor's match-any value, as in GET /BatchTask/All
                if op.lower() == "ne":
                    raise errors.BadRequest("$filter: State ne 'All' matches no task")
                i += 3
                if i == len(tokens):
                    break
                i = _expect_and(tokens, i)
                continue
        elif name == "AssociateId" and not isinstance(literal, int):
            raise errors.BadRequest(f"$filter: AssociateId compares with an integer, not {value[:40]}")
        elif name == "Name" and not isinstance(literal, str):
            raise errors.BadRequest(f"$filter: Name compares with text in quotes, not {value[:40]}")
        terms.append(Compare(f"$.{name}", op.lower(), (literal,)))  # type: ignore[arg-type]
        i += 3
        if i == len(tokens):
            break
        i = _expect_and(tokens, i)
    return None if not terms else terms[0] if len(terms) == 1 else And(tuple(terms))


def _expect_and(tokens: list[tuple[str, str]], i: int) -> int:
    kind, word = tokens[i]
    if kind != "word" or word.lower() != "and":
        raise errors.BadRequest(f"$filter: {word[:40]!r} is not supported; terms are joined with and")
    return i + 1


def parse_select(raw: str, members: tuple[str, ...]) -> tuple[str, ...]:
    """``$select``: the *members* named (in any case), in the order given, once each."""
    known = _fold(members)
    names = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [n for n in names if n.casefold() not in known]
    if unknown or not names:
        raise errors.BadRequest(f"$select: unknown member {', '.join(unknown)[:80] or '(none)'}")
    return tuple(dict.fromkeys(known[n.casefold()] for n in names))


def parse_list_options(query: Mapping[str, str], state_name: Any) -> ListOptions:
    for key in query:
        if key.startswith("$") and key.casefold() not in _SUPPORTED:
            raise errors.BadRequest(f"{key[:40]} is not supported; use {', '.join(_SUPPORTED)}")
    options = {key.casefold(): value for key, value in query.items() if key.startswith("$")}
    text = options.get("$filter", "").strip()
    where = parse_filter(text, state_name) if text else None
    order: list[Sort] = []
    sortable = _fold(SORTABLE)
    for part in filter(None, (p.strip() for p in options.get("$orderby", "").split(","))):
        name, _, direction = part.partition(" ")
        direction = direction.strip().lower()
        if name.casefold() not in sortable or direction not in ("", "asc", "desc"):
            raise errors.BadRequest(f"$orderBy: cannot sort by {part[:60]!r}; use a member name and asc or desc")
        member = sortable[name.casefold()]
        if not any(s.field == f"$.{member}" for s in order):  # sorting again by a member changes nothing
            order.append(Sort(f"$.{member}", direction == "desc", ENUM_ORDER.get(member, ())))
    select = parse_select(options["$select"], tuple(FIELDS)) if "$select" in options else None
    fmt = options.get("$format")
    if fmt is not None and fmt.lower() not in ("json", "xml"):
        raise errors.BadRequest(f"$format must be JSON or XML; got {fmt[:40]!r}")
    if not any(s.field == "$.Id" for s in order):
        order.append(Sort("$.Id"))  # ties in id order, numerically (the id column is text)
    return ListOptions(where, tuple(order), select,
                       _int_option(options, "$top", MAX_PAGE, MAX_PAGE), _int_option(options, "$skip", 0, None),
                       fmt.lower() if fmt else None)


# -- $metadata --------------------------------------------------------------------------------
#: the media type and the OData version header of the metadata document
METADATA_TYPE = "application/xml"
DATA_SERVICE_VERSION = "3.0;"
#: the entity set the list is, named after ``#`` in ``odata.metadata``
ENTITY_SET = "BatchTask"
#: the schema's namespace: the enums' qualified names are then the FieldType the carrier reports
_NAMESPACE = "SuperOffice.Data"
_ENUMS = {"SuperOffice.Data.BatchTaskState": STATE_VALUES,
          "SuperOffice.Data.BatchTaskCancellationBehaviour": CANCELLATION_VALUES}
_EDM_TYPES = {"System.Int32": "Edm.Int32", "System.Int16": "Edm.Int16", "System.Boolean": "Edm.Boolean",
              "System.String": "Edm.String", "System.DateTime": "Edm.DateTime"}
#: CSDL 3 has no map type: this member is a dynamic property of the open entity type
_DYNAMIC = "SuperOffice.Util.StringDictionary"
_SUMMARY = ("A row of GET api/v1/BatchTask: a BatchTaskInfo without TableRight and FieldProperties, which "
            "only the single task's GET carries.")
_LONG = ("ParameterObject, an object of string values, is a dynamic property: CSDL has no map type. Dates "
         "are Edm.DateTime in the SO-TimeZone, whole seconds, 0001-01-01T00:00:00 when empty; with "
         "includeTZOffset they carry their offset. State and CancellationBehaviour are written as the "
         "names of their enum members.")


def _element(name: str, **attrs: str) -> str:
    return f"<{name}" + "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items()) + "/>"


def _property(name: str, net_type: str, length: int) -> str:
    if net_type in _ENUMS:
        return _element("Property", Name=name, Type=net_type, Nullable="false")
    edm = _EDM_TYPES[net_type]  # KeyError: a member of a type this document cannot describe
    extra = {"MaxLength": str(length)} if edm == "Edm.String" and length else \
        {"Precision": "0"} if edm == "Edm.DateTime" else {}
    return _element("Property", Name=name, Type=edm, Nullable="false", **extra)


@functools.cache
def metadata_document() -> bytes:
    """The CSDL document of ``$metadata``, the same for every request of the process."""
    properties = [_property(name, net_type, length) for name, (net_type, length) in FIELDS.items()
                  if net_type != _DYNAMIC]
    enums = []
    for qualified, members in _ENUMS.items():
        enums.append(f'<EnumType Name={quoteattr(qualified.rpartition(".")[2])} UnderlyingType="Edm.Int32">')
        enums += [f"  {_element('Member', Name=name, Value=str(value))}" for name, value in members.items()]
        enums.append("</EnumType>")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">',
        '<edmx:DataServices m:DataServiceVersion="3.0" m:MaxDataServiceVersion="3.0" '
        'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">',
        f'<Schema Namespace={quoteattr(_NAMESPACE)} xmlns="http://schemas.microsoft.com/ado/2009/11/edm">',
        '<EntityType Name="BatchTaskInfo" OpenType="true">',
        "  <Documentation>",
        f"    <Summary>{escape(_SUMMARY)}</Summary>",
        f"    <LongDescription>{escape(_LONG)}</LongDescription>",
        "  </Documentation>",
        '  <Key><PropertyRef Name="Id"/></Key>',
        *(f"  {p}" for p in properties),
        "</EntityType>",
        *enums,
        '<EntityContainer Name="BatchTasks" m:IsDefaultEntityContainer="true">',
        f'  <EntitySet Name={quoteattr(ENTITY_SET)} EntityType={quoteattr(_NAMESPACE + ".BatchTaskInfo")}/>',
        "</EntityContainer>",
        "</Schema>",
        "</edmx:DataServices>",
        "</edmx:Edmx>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
