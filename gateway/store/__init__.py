"""The store: the only package that touches a database.

The rest of taskgate sees a store only through the contract :class:`gateway.model.Store`
(re-exported here), the methods its callers use and no more; a second backend
(PostgreSQL) implements the same methods and runs the same tests. :func:`open_store` is
the one way the server and the command line get one. The contract lives in
:mod:`gateway.model`, a pure module, so that the styles, auth and the tools can name it
without importing this package (and, through it, the database drivers).

It knows nothing of HTTP or of any vendor's rules: callers pass pure mutations and
vendor-neutral :mod:`gateway.query` filters.
"""

from __future__ import annotations

from gateway.config import Config
from gateway.model import CLIENT, Change, Mutate, OAuthClient, Store, Task, TokenRow, User
from gateway.store.errors import StoreError
from gateway.store.sqlite import MIGRATIONS, SCHEMA_VERSION, TOKEN_CACHE_SECONDS, BackupInfo, SQLiteStore, backup

__all__ = ["Store", "open_store", "StoreError", "backup", "BackupInfo", "SCHEMA_VERSION", "SQLiteStore",
           # kept importable from here for older imports; new code imports them from gateway.model
           # and gateway.store.sqlite
           "Task", "Change", "User", "TokenRow", "OAuthClient", "Mutate", "CLIENT", "MIGRATIONS",
           "TOKEN_CACHE_SECONDS"]


async def open_store(config: Config, *, allow_new: bool | None = None) -> Store:
    """The store *config* describes: the one way the server and the command line open it:
    a PostgreSQL store when ``storage.path`` is a ``postgresql://`` URL, else a SQLite one.
    *allow_new*: whether a missing or zero-length file becomes a new database (True), is
    refused (False), or, by default, a missing one is made and a zero-length one refused
    (see :meth:`SQLiteStore.open`; on PostgreSQL, whether a database without taskgate's
    tables gets them). StoreError, with a message for the operator, when the database
    cannot be used."""
    if (url := config.storage_url) is not None:
        from gateway.store.postgres import PostgreSQLStore  # asyncpg is loaded only for PostgreSQL

        return await PostgreSQLStore.open(url, allow_new=allow_new, max_batch=config.storage.max_batch)
    return await SQLiteStore.open(config.db_path, synchronous=config.storage.synchronous,
                                  busy_timeout_ms=config.storage.busy_timeout_ms,
                                  max_batch=config.storage.max_batch, allow_new=allow_new,
                                  max_db_mib=config.storage.max_db_mib)
