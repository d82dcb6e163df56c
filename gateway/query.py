"""A small, vendor-neutral query language for listing tasks.

Each API style parses its own filter syntax into these nodes; the store
compiles them to SQL. A field is either ``"id"`` (the task id column) or a JSON path
such as ``$.completionStatus`` into the stored document. Nodes are immutable data.

``has`` is array containment: true when the array at the field holds at least one of
the values (webMethods' ``assignedToList`` and ``acceptedByList``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Compare", "And", "Or", "Not", "Expr", "Sort", "Query", "OPS"]

OPS = ("eq", "ne", "in", "isnull", "gt", "ge", "lt", "le", "sw", "co", "has")


@dataclass(frozen=True)
class Compare:
    field: str
    op: Literal["eq", "ne", "in", "isnull", "gt", "ge", "lt", "le", "sw", "co", "has"]
    values: tuple[object, ...] = ()


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Compare | And | Or | Not


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool = False
    #: sort an enum by its declared order, not its name: values in order (others last)
    rank: tuple[str, ...] = ()


@dataclass(frozen=True)
class Query:
    where: Expr | None = None
    order: tuple[Sort, ...] = field(default_factory=tuple)
    limit: int | None = None
    offset: int = 0
    count: bool = False
