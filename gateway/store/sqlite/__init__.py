"""The SQLite implementation of the store contract (:mod:`gateway.store`), split by concept.

=====================  ==================================================================
``store``              :class:`SQLiteStore`: opens the connections, ties the parts together
``schema``             tables, ordered migrations, the PRAGMAs of every connection
``sql``                SQL built from :mod:`gateway.query` nodes (pure; no connection)
``keyed``              the keys column, the ``keyed`` table, the indexes built on them
``write_connection``   the one writing connection, its lock and its thread
``group_commit``       the queue of task writes and the batches that commit them
``batch``              a batch applied to the rows it read (no I/O)
``bulk``               loading many new tasks fast
``reads``              the reader and the point reader
``wal``                checkpoints beside the writer, and the WAL's rewind
``read_ahead``         threads reading ahead of the writer
``accounts``           users, tokens, OAuth clients and the token cache
``backup``             online backup of a file, without opening a store
``log``                faults the store survives, logged
=====================  ==================================================================

Only this package (and :mod:`gateway.store`, which picks it) imports ``sqlite3`` or
``aiosqlite``. Nothing outside :mod:`gateway.store` should import from here but the
tests, tools that open a file directly (``SQLiteStore.open``), and :func:`backup`.
"""

from gateway.store.sqlite.accounts import TOKEN_CACHE_SECONDS
from gateway.store.sqlite.backup import BackupInfo, backup
from gateway.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from gateway.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "BackupInfo", "backup", "MIGRATIONS", "SCHEMA_VERSION", "TOKEN_CACHE_SECONDS"]
