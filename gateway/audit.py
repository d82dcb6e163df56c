"""Logging: structlog configuration, the audit event of every committed change, and the
request log line.

Audit events are emitted after the commit, from the store's commit listener, one per
change: ``task.created``, ``task.updated``, ``task.deleted``. Nothing here may log a
credential: request logs carry the path without its query (``/oauth/token`` accepts
secrets in the query) and a last processor drops any key that names a secret.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from collections.abc import MutableMapping, Sequence
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from gateway.clock import now_iso_micro
from gateway.config import ConfigError, LogConfig
from gateway.model import Change
from gateway.speedups import dumps_bytes

__all__ = ["configure_logging", "flush_logs", "log_changes", "logger", "hot_logger", "SECRET_KEYS", "PIPE_BUF",
           "whole_line_chunks"]

logger = structlog.get_logger("taskgate")


class _Bound:
    """:data:`logger` for the lines every request and every change writes: structlog's lazy
    proxy binds a new logger on each call (2.6 of 8.3 µs a line), this binds one per
    configuration. It checks the configuration at each call (what ``structlog.configure``
    set, by identity), so a new one, or ``capture_logs``' processors, apply as they do
    through the proxy; the lines are the same."""

    __slots__ = ("_key", "_bound")

    def __init__(self) -> None:
        self._key: tuple[Any, ...] = ()
        self._bound: Any = None

    def info(self, event: str, **kw: Any) -> Any:
        config = structlog.get_config()
        key = (config["wrapper_class"], config["logger_factory"], config["processors"], config["context_class"])
        held = self._key
        if len(held) != 4 or held[0] is not key[0] or held[1] is not key[1] or held[2] is not key[2] \
                or held[3] is not key[3]:
            self._bound, self._key = logger.bind(), key
        return self._bound.info(event, **kw)


#: :data:`logger`'s ``info``, bound once per configuration (:class:`_Bound`)
hot_logger = _Bound()

#: keys never written to a log, whoever put them in an event
SECRET_KEYS = frozenset({"authorization", "password", "token", "access_token", "secret",
                         "client_secret", "cookie", "set-cookie", "x-xsrf-token"})


#: the most bytes a pipe takes in one write without another writer's bytes in between
PIPE_BUF = 4096


def whole_line_chunks(text: str, limit: int = PIPE_BUF) -> list[str]:
    """*text* (whole lines) cut at line ends into pieces of at most *limit* bytes, a line
    longer than that alone in its piece. Each piece is written in one call: workers of
    ``serve --workers`` share standard error, and a pipe (journald's) keeps a write of at
    most PIPE_BUF bytes whole, so their lines interleave but are never cut."""
    if len(text) * 4 <= limit:  # at most 4 bytes a character: short enough whatever it holds
        return [text]
    chunks: list[str] = []
    parts = text.split("\n")  # only "\n" ends a line: U+2028 may stand unescaped inside one
    last = parts.pop()
    lines = [part + "\n" for part in parts] + ([last] if last else [])
    current: list[str] = []
    size = 0
    for line in lines:
        n = len(line.encode("utf-8", "surrogatepass"))
        if current and size + n > limit:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += n
    if current:
        chunks.append("".join(current))
    return chunks


class _Stderr:
    """Standard error as it is at each write, not as it was when logging was configured."""

    def write(self, text: str) -> None:
        for chunk in whole_line_chunks(text):
            sys.stderr.write(chunk)
            sys.stderr.flush()


class _File:
    """A log file opened for appending, written without a buffer: each write of whole
    lines is one system call (so a reader of the file meets no line cut in two)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "ab", buffering=0)

    def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[self._file.write(data):]

    def close(self) -> None:
        self._file.close()


class _LineSink:
    """Where rendered lines go. Inside an event loop, the lines of one loop iteration are
    written together, in one call, when the iteration's callbacks have run (a write
    system call per line cost a tenth of a request's time); outside one, each line at
    once. Only whole lines are ever written, so a reader of the file, or journald reading
    standard error, never sees a line cut in two. At most one iteration's lines are in
    memory, and they are written at exit or when logging is configured again."""

    __slots__ = ("stream", "_lines", "_loop")

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # where a flush is scheduled

    def msg(self, line: str) -> None:
        self._lines.append(line)
        scheduled = self._loop
        if scheduled is not None and scheduled.is_running():
            return  # the flush already due writes this line too (asking for the running loop
            # costs a getpid system call on every call in Python 3.11)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: the command line, or after the server stopped
            self.flush()
            return
        loop.call_soon(self.flush)  # also when a flush was due on a loop that stopped before it ran
        self._loop = loop

    debug = info = warning = warn = error = exception = critical = log = msg

    def flush(self) -> None:
        self._loop = None
        if self._lines:
            lines, self._lines = self._lines, []
            self.stream.write("\n".join(lines) + "\n")


_sink = _LineSink(_Stderr())
_opened: list[_File] = []


def flush_logs() -> None:
    """Write the lines still held (``taskgate serve`` calls it as it stops)."""
    _sink.flush()


atexit.register(flush_logs)


def _drop_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in [k for k in event if k.lower() in SECRET_KEYS]:
        event[key] = "[redacted]"
    if len(_SAFE_KEYS) < 10_000:
        _SAFE_KEYS.update(k for k in event if type(k) is str and k.lower() not in SECRET_KEYS)
    return event


def _timestamp(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """``timestamp`` in ISO 8601 UTC with microseconds, as structlog's TimeStamper writes it."""
    event["timestamp"] = now_iso_micro()
    return event


def _json_line(event: dict[str, Any], default: Any = None) -> str:
    return dumps_bytes(event, default=default).decode("utf-8")


_SAFE_KEYS: set[str] = set()  # keys seen that name no secret (they come from code: few)


def _fast_json_method(name: str, chain: list[Any], renderer: Any) -> Any:
    """A logger method for the JSON format that does what the processor chain does (see
    :func:`configure_logging`), in one call: the same line, without a call per processor
    and per step of structlog's event handling. Anything unusual (positional arguments,
    ``exc_info``, keys not seen before, a chain replaced since, as ``capture_logs`` does)
    takes structlog's own path."""
    level = structlog.processors.add_log_level(None, name, {})["level"]
    steps = len(chain)

    def meth(self: Any, event: str, *args: Any, **kw: Any) -> Any:
        # capture_logs() replaces the chain's processors in place, keeping the list: check its end too
        if args or self._processors is not chain or chain[-1] is not renderer or len(chain) != steps \
                or "exc_info" in kw or not _SAFE_KEYS.issuperset(kw):
            return getattr(super(type(self), self), name)(event, *args, **kw)
        event_dict = self._context.copy()
        event_dict.update(kw)
        event_dict["event"] = event
        event_dict = structlog.contextvars.merge_contextvars(None, name, event_dict)
        if not _SAFE_KEYS.issuperset(event_dict.keys() - {"event"}):
            event_dict = _drop_secrets(None, name, event_dict)
        event_dict["level"] = level
        event_dict["timestamp"] = now_iso_micro()
        return getattr(self._logger, name)(renderer(self._logger, name, event_dict))
    return meth


def _json_wrapper(level: int, chain: list[Any], renderer: Any) -> type:
    """structlog's filtering bound logger for *level*, with :func:`_fast_json_method` for
    each level it logs."""
    base = structlog.make_filtering_bound_logger(level)
    methods = {name: _fast_json_method(name, chain, renderer)
               for name, number in (("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING),
                                    ("warn", logging.WARNING), ("error", logging.ERROR),
                                    ("critical", logging.CRITICAL)) if number >= level}
    return type("JsonBoundLogger", (base,), methods)


class _AiohttpRecords(logging.Handler):
    """aiohttp's own log records (its server's "Error handling request", its client's
    warnings) as events in taskgate's log, so that the log stays one JSON line an event,
    in the configured file. A request aiohttp's parser refused (a request line or header
    over its limit, a malformed message) is one info line without a traceback: any client
    may send as many as it likes, and each was some 800 bytes of plain text on standard
    error."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger(record.name)
            exc = record.exc_info[1] if record.exc_info else None
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
            if isinstance(exc, HttpProcessingError):
                log.info("http.request_refused", remote=remote, status=exc.code, reason=str(exc.message)[:200])
            elif record.levelno >= logging.ERROR:
                log.error("aiohttp.error", message=record.getMessage(), exc_info=record.exc_info)
            else:
                log.warning("aiohttp.warning", message=record.getMessage())
        except Exception:  # a failing log sink must not end the request that logged
            pass


_aiohttp_records = _AiohttpRecords()


def configure_logging(config: LogConfig) -> None:
    """Point structlog at standard error or the configured file, as JSON or console lines,
    and aiohttp's own records (warnings and errors) at it too."""
    source = logging.getLogger("aiohttp")
    source.handlers[:] = [_aiohttp_records]
    source.propagate = False
    source.setLevel(logging.WARNING)
    _sink.flush()
    while _opened:
        _opened.pop().close()
    stream: Any = _Stderr()
    if config.file:
        try:
            stream = _File(config.file)
        except OSError as exc:
            raise ConfigError(f"log.file: cannot open {config.file!r}: {exc.strerror}") from None
        _opened.append(stream)
    _sink.stream = stream
    renderer: Any = (structlog.processors.JSONRenderer(serializer=_json_line) if config.format == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    chain = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _timestamp,
        _drop_secrets,
        structlog.processors.format_exc_info,
        renderer,
    ]
    level = getattr(logging, config.level.upper())
    structlog.configure(
        processors=chain,
        wrapper_class=(_json_wrapper(level, chain, renderer) if config.format == "json"
                       else structlog.make_filtering_bound_logger(level)),
        logger_factory=lambda *args: _sink,
        cache_logger_on_first_use=False,
    )


#: the largest patch an audit event carries (its compact JSON's bytes); a larger one is
#: named by its size and operations, and read from the audit trail (``taskgate audit``)
LOG_PATCH_BYTES = 16 * 1024


def log_changes(changes: Sequence[Change]) -> None:
    """The store's commit listener: one audit event per committed change. An event holds
    the patch up to :data:`LOG_PATCH_BYTES`: one user's changes of megabyte documents made
    megabyte lines, a log no quota counts."""
    for c in changes:
        # an admin's change made as another user names both: the actor it was made as and who made it
        extra: dict[str, Any] = {"impersonator": c.impersonator} if c.impersonator else {}
        size = len(dumps_bytes(c.patch))
        if size <= LOG_PATCH_BYTES:
            extra["patch"] = c.patch
        else:
            extra["patch_bytes"], extra["patch_ops"] = size, len(c.patch)
        hot_logger.info(f"task.{c.action}", style=c.style, task_id=c.task_id, version=c.version,
                        actor=c.actor, request_id=c.request_id, seq=c.seq, client=c.client, **extra)
