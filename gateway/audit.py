"""Logging: structlog configuration, the audit event of every committed change, and the
request log line.

Audit events are emitted after the commit, from the store's commit listener, one per
change: ``task.created``, ``task.updated``, ``task.deleted``. Nothing here may log a
credential: request logs carry the path without its query (``/oauth/token`` accepts
secrets in the query) and a last processor drops any key that names a secret.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Sequence, TextIO

import structlog

from gateway.config import ConfigError, LogConfig
from gateway.store import Change

__all__ = ["configure_logging", "log_changes", "logger", "SECRET_KEYS"]

logger = structlog.get_logger("taskgate")

#: keys never written to a log, whoever put them in an event
SECRET_KEYS = frozenset({"authorization", "password", "token", "access_token", "secret",
                         "client_secret", "cookie", "set-cookie", "x-xsrf-token"})

_opened: list[TextIO] = []


class _Stderr:
    """Standard error as it is at each write, not as it was when logging was configured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in [k for k in event if k.lower() in SECRET_KEYS]:
        event[key] = "[redacted]"
    return event


def configure_logging(config: LogConfig) -> None:
    """Point structlog at standard error or the configured file, as JSON or console lines."""
    while _opened:
        _opened.pop().close()
    stream: Any = _Stderr()
    if config.file:
        try:
            stream = open(config.file, "a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise ConfigError(f"log.file: cannot open {config.file!r}: {exc.strerror}") from None
        _opened.append(stream)
    renderer: Any = (structlog.processors.JSONRenderer(sort_keys=False) if config.format == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, config.level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def log_changes(changes: Sequence[Change]) -> None:
    """The store's commit listener: one audit event per committed change."""
    for c in changes:
        logger.info(f"task.{c.action}", style=c.style, task_id=c.task_id, version=c.version,
                    actor=c.actor, request_id=c.request_id, seq=c.seq, patch=c.patch, client=c.client)
