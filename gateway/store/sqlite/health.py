"""What the store knows of its own file's health: whether the file it opened is still the
one at its path, the last commit that failed, and damage that SQLite reported.

The writer keeps writing into a database file that was deleted or replaced after it was
opened (the open file lives on, unseen by anyone); a damaged page makes SQLite raise
``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``; a full or read-only disk makes commits fail.
None of these is the client's fault, and none is a bug of taskgate: each write is then a
503 (:class:`gateway.errors.ServiceUnavailable`), and ``/readyz`` says why
(:meth:`Health.problem`, asked by :meth:`SQLiteStore.probe_write`).

Owns that state and the checks (one ``stat`` of the path, no SQL). It must not decide
what a write does; the writer and the readers ask it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import structlog

from gateway import errors

__all__ = ["Health", "is_damage", "is_disk_trouble", "RETRY_AFTER_SECONDS", "unavailable"]

#: seconds a client is told to wait when the store cannot take its write now
RETRY_AFTER_SECONDS = 1

_DAMAGE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
# the disk or the file refuses writes: full, read-only, an I/O error, the file gone
_DISK = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
_log = structlog.get_logger("taskgate.store")


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_damage(exc: BaseException) -> bool:
    """Whether SQLite says the file is damaged ("database disk image is malformed", "file
    is not a database")."""
    return isinstance(exc, sqlite3.DatabaseError) and _code(exc) in _DAMAGE


def is_disk_trouble(exc: BaseException) -> bool:
    """Whether SQLite says the disk or the file refuses writes (full, read-only, I/O)."""
    return isinstance(exc, sqlite3.DatabaseError) and _code(exc) in _DISK


def unavailable(message: str, summary: str = "database not writable") -> errors.ServiceUnavailable:
    """The 503 of a refused write: *message* in detail, *summary* in words anyone may see."""
    return errors.ServiceUnavailable(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, summary=summary)


def _log_event(level: str, event: str, **fields: object) -> None:
    try:  # the writer goes on whatever the log sink does
        getattr(_log, level)(event, **fields)
    except Exception:
        pass


class Health:
    """The file's identity at open, the last failed commit and damage seen since open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        self._gone: str | None = None  # sticky: the open file is no longer the path's
        self._gone_summary = ""
        self._damage: str | None = None  # sticky: SQLite found the file damaged
        #: (wall-clock time, reason) of the last failed commit, until a commit succeeds
        self.last_failure: tuple[float, str] | None = None

    def check_file(self) -> str | None:
        """Why the file at the path is not the open one (deleted, replaced), or None. One
        ``stat``: cheap beside a commit's sync. Once found, it stays so until restart."""
        if self._gone is None:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._gone, self._gone_summary = ("the database file was deleted while taskgate had it open",
                                                  "database file deleted")
            except OSError as exc:
                self._gone, self._gone_summary = (f"the database file cannot be checked: {exc.strerror or exc}",
                                                  "database file cannot be checked")
            else:
                if (st.st_dev, st.st_ino) != self._identity:
                    self._gone, self._gone_summary = ("the database file was replaced while taskgate had it open",
                                                      "database file replaced")
            if self._gone is not None:
                _log_event("error", "store.file_gone", reason=self._gone, path=str(self.path))
        return self._gone

    def damaged(self, exc: BaseException, where: str) -> errors.ServiceUnavailable:
        """Remember damage SQLite reported (logged once, as an error, without a traceback)
        and the 503 to answer with."""
        if self._damage is None:
            self._damage = f"the database file is damaged: {exc}"
            _log_event("error", "store.damaged", reason=str(exc), where=where)
        return unavailable("the store's database file is damaged", "database file damaged")

    def commit_failed(self, exc: BaseException) -> None:
        self.last_failure = (time.time(), f"{type(exc).__name__}: {exc}")

    def commit_succeeded(self) -> None:
        self.last_failure = None

    def write_refusal(self) -> str | None:
        """Why writes must be refused before they are tried (the file is gone or damaged)."""
        return self.check_file() or self._damage

    def summary(self) -> str:
        """The cause of :meth:`problem` in words anyone may see."""
        if self.check_file() is not None:
            return self._gone_summary
        return "database file damaged" if self._damage is not None else "database not writable"

    def problem(self) -> str | None:
        """What makes the store unready now, or None."""
        if (refusal := self.write_refusal()) is not None:
            return refusal
        if self.last_failure is not None:
            at, reason = self.last_failure
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
            return f"the last commit failed at {stamp}: {reason}"
        return None
