"""The store's own log events: faults it survives (a failed checkpoint, a broken listener,
a mutation with a bug), logged where they happen.

Owns the ``taskgate.store`` logger. Reporting must never raise: the writer goes on
whatever the log sink does. Audit events of committed changes are not logged here
(:mod:`gateway.audit` does, from the commit listeners).
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["report"]

_log = structlog.get_logger("taskgate.store")


def report(event: str, **fields: Any) -> None:
    """Log the exception being handled; a failing log sink must never stop the writer."""
    try:
        _log.exception(event, **fields)
    except Exception:
        pass
