"""The error of a database that cannot be used, and the time limit of a search, shared by
every store implementation.

It lives apart from the contract in ``gateway/store/__init__.py`` so that an
implementation can raise it without importing the package that imports the
implementation. Domain errors of a write (NotFound, Conflict, …) are
:mod:`gateway.errors` types, not StoreError.
"""

from __future__ import annotations

from gateway import errors

__all__ = ["StoreError", "RowRefused", "QUERY_SECONDS", "search_stopped"]

#: a list or search (``Store.find``, ``Store.find_ids``) that runs longer than this in the
#: database is stopped: SQLite has one reader connection, so one caller's costly search
#: (many long ``contains`` terms over large fields) would hold up every other list
QUERY_SECONDS = 3.0


def search_stopped() -> errors.BadRequest:
    """The 400 of a search stopped at :data:`QUERY_SECONDS`."""
    return errors.BadRequest(f"this search took more than {QUERY_SECONDS:g} s of the database's time and was "
                             "stopped; narrow it (fewer or shorter terms, a smaller page)")


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a taskgate file, …)."""


class RowRefused(StoreError):
    """A copied row that the target database cannot keep (``taskgate copy``), named."""
