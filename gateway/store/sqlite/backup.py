"""Online backup of a database file, on connections of its own.

Owns :func:`backup`: SQLite's online backup API copies a consistent snapshot while a
server goes on writing, and the copy appears whole (written beside its destination,
checked, synced, renamed) or not at all. It must not open a store: no migration, no
checkpoint of the live file, no change to it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from gateway.store.errors import StoreError

__all__ = ["BackupInfo", "backup"]


@dataclass(frozen=True, slots=True)
class BackupInfo:
    pages: int
    schema_version: int
    tasks: int


def _backup(source: Path, dest: Path, busy_timeout_ms: int) -> BackupInfo:
    if not source.is_file():
        raise StoreError("there is no database file to back up")
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    # mode=rw: never create the source; a missing file is an error, not an empty backup
    src = sqlite3.connect(f"file:{urllib.parse.quote(str(source))}?mode=rw", uri=True)
    try:
        src.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = src.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise StoreError("not a taskgate database (no schema version)")
        partial.unlink(missing_ok=True)
        dst = sqlite3.connect(str(partial))
        try:
            # One step (pages=-1): SQLite copies every page inside one read transaction, so
            # the copy is one snapshot. The database is in WAL mode, so the server's writer
            # goes on meanwhile (only a checkpoint waits for the snapshot). Copying in small
            # steps would release the snapshot between steps, and SQLite restarts a backup
            # whenever another connection writes in between: under steady writes it would
            # never finish.
            src.backup(dst, pages=-1)
            # the copy stands alone: rollback-journal mode, no -wal file beside it
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy fails its integrity check: {check}")
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            copied_version = dst.execute("PRAGMA user_version").fetchone()[0]
            tasks = dst.execute("SELECT count(*) FROM tasks").fetchone()[0]
        finally:
            dst.close()
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, dest)
        directory = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return BackupInfo(pages, copied_version, tasks)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back it up: {exc}") from exc
    finally:
        src.close()
        partial.unlink(missing_ok=True)


async def backup(source: str | Path, dest: str | Path, *, busy_timeout_ms: int = 5000) -> BackupInfo:
    """Copy the database *source* to *dest* with SQLite's online backup API, consistent
    while a server writes to *source*; *dest* appears whole (written beside it, synced,
    then renamed) or not at all. StoreError when *source* is missing or not taskgate's."""
    return await asyncio.to_thread(_backup, Path(source), Path(dest), busy_timeout_ms)
