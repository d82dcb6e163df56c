"""The PostgreSQL implementation of the store contract (:mod:`gateway.store`), split by concept.

=====================  ==================================================================
``store``              :class:`PostgreSQLStore`: opens the pool, ties the parts together
``connection``         the pool, the snapshot a task may hold, a database out of reach as 503
``schema``             tables (SQLite's, column for column) and ordered migrations
``sql``                SQL built from :mod:`gateway.query` nodes: the one place of the dialect
``keyed``              the keys column, the ``keyed`` table, the indexes built on them
``writes``             the write path: group commit, each write in a savepoint, rows locked, seqs in commit order
``bulk``               loading many new tasks fast
``reads``              tasks and the audit trail
``owned``              who owns each task and what each owner holds, behind the quotas
``accounts``           users, tokens, OAuth clients and the token cache
``hooks``              webhook subscriptions, their cursors and the delivery log
``notify``             LISTEN/NOTIFY of account changes, emptying every gateway's token cache
``leases``             advisory locks for work that runs once per service
=====================  ==================================================================

Only this package (and :mod:`gateway.store`, which picks it) imports ``asyncpg``. It is
chosen by a storage URL ``postgresql://…`` (``--db``, ``TASKGATE_DB``, ``storage.path``).
"""

from gateway.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from gateway.store.postgres.store import PostgreSQLStore

__all__ = ["PostgreSQLStore", "MIGRATIONS", "SCHEMA_VERSION"]
