"""The error of a database that cannot be used, and the time limit of a search, shared by
every store implementation.

It lives apart from the contract in ``gateway/store/__init__.py`` so that an
implementation can raise it without importing the package that imports the
implementation. Domain errors of a write (NotFound, Conflict, …) are
:mod:`gateway.errors` types, not StoreError.
"""

from __future__ import annotations

import contextlib

import structlog

from gateway import errors

__all__ = ["StoreError", "RowRefused", "QUERY_SECONDS", "search_stopped"]

#: a list or search statement (``Store.find``, ``Store.find_ids``: the page, and the count
#: when asked, each) that runs longer than this in the database is stopped: SQLite has one
#: reader connection, so one caller's costly search (many long ``contains`` terms over
#: large fields) would hold up every other list
QUERY_SECONDS = 3.0


def search_stopped(style: str) -> errors.BadRequest:
    """The 400 of a search of *style* stopped at :data:`QUERY_SECONDS`, logged (a warning:
    the operator learns which style's searches meet the limit)."""
    with contextlib.suppress(Exception):  # a failing log sink must not turn the 400 into a 500
        structlog.get_logger("taskgate.store").warning("store.search_stopped", style=style, seconds=QUERY_SECONDS)
    return errors.BadRequest(f"this search ran more than {QUERY_SECONDS:g} s in the database and was stopped; "
                             "narrow it (fewer or shorter terms, a smaller page)")


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a taskgate file, …)."""


class RowRefused(StoreError):
    """A copied row that the target database cannot keep (``taskgate copy``), named."""
