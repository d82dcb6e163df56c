"""The error of a database that cannot be used, shared by every store implementation.

It lives apart from the contract in ``gateway/store/__init__.py`` so that an
implementation can raise it without importing the package that imports the
implementation. Domain errors of a write (NotFound, Conflict, …) are
:mod:`gateway.errors` types, not this one.
"""

from __future__ import annotations

__all__ = ["StoreError", "RowRefused"]


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a taskgate file, …)."""


class RowRefused(StoreError):
    """A copied row that the target database cannot keep (``taskgate copy``), named."""
