"""``taskgate copy SRC DST``: every row of one database into another, across backends.

SRC and DST are each a SQLite file or a ``postgresql://`` URL, for example a file into
PostgreSQL when one machine is outgrown, and back (see docs/scaling.md). The target is made
(or migrated) as ``taskgate init`` would; one that holds users, tasks, audit rows or
webhooks is refused unless ``--replace`` says to empty it first. The rows stream table by
table in chunks (:mod:`gateway.store.copy`) with a progress bar, and the target's every
audit trail is then replayed as ``taskgate audit verify`` does: exit status 1 when a task
disagrees with its trail, 0 when the copy is whole. Stop the gateways writing to SRC
first: rows written meanwhile may or may not be copied.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.app import STYLES
from gateway.config import Config, is_database_url, redact_url
from gateway.data_tools import not_a_file, progress
from gateway.model import Store
from gateway.store import SQLiteStore, open_store
from gateway.store.copy import TABLES, PostgreSQLTarget, SQLiteTarget, count_rows, is_empty, read_chunks
from gateway.store.errors import RowRefused, StoreError
from gateway.verify import verify_trail

__all__ = ["copy_command", "add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("copy", help="copy every task, audit row, account and webhook from SRC to DST (a database "
                                    "file or a postgresql:// URL each), then verify DST's audit trails")
    p.add_argument("source", metavar="SRC", help="the database to copy from")
    p.add_argument("target", metavar="DST", help="the database to copy into (made if missing)")
    p.add_argument("--replace", action="store_true", help="empty DST first when it holds anything")
    p.set_defaults(run=copy_command)


def _config(config: Config, where: str) -> Config:
    return config.replace("storage", path=where if is_database_url(where) else str(Path(where).resolve()))


def _name(where: str) -> str:
    return redact_url(where) if is_database_url(where) else where


class _Unopened(Exception):
    """SRC or DST could not be opened: the message names which, not storage.path."""


async def _open(config: Config, where: str, role: str, allow_new: bool) -> Store:
    try:
        return await open_store(_config(config, where), allow_new=allow_new)
    except StoreError as exc:
        raise _Unopened(f"taskgate: database {_name(where)!r} ({role}): {exc}") from None


@contextlib.asynccontextmanager
async def _opened(config: Config, where: str, role: str, allow_new: bool) -> AsyncIterator[Store]:
    store = await _open(config, where, role, allow_new)
    try:
        yield store
    finally:
        await store.close()


def _refusal(source: str, target: str) -> str | None:
    """Why DST may not be copied into, before anything is opened: it is SRC itself (by
    any path: --replace would empty the database being copied, and the copy then verify
    nothing), or a file that is not a regular one (a device such as /dev/null, a socket)."""
    if is_database_url(target):
        return "the copy cannot go into its own source" if target == source else None
    dest = Path(target)
    if not_a_file(dest):
        return f"{target!r} exists and is not a regular file"
    if not is_database_url(source) and dest.exists() and Path(source).exists() \
            and os.path.samefile(source, target):
        return "the copy cannot go into its own source"
    return None


async def copy_command(args: argparse.Namespace, config: Config) -> int:
    """Copy SRC into DST, then verify DST; 2 when DST is not empty (without --replace) or
    when either cannot be opened."""
    refused = _refusal(args.source, args.target)
    if refused is not None:
        print(f"taskgate: {refused}", file=sys.stderr)
        return 2
    try:
        return await _copy(args, config)
    except _Unopened as exc:
        print(exc, file=sys.stderr)
        return 2


async def _copy(args: argparse.Namespace, config: Config) -> int:
    async with _opened(config, args.source, "SRC", allow_new=False) as source:
        counts = {table: await count_rows(source, table) for table in TABLES}
        target_store = await _open(config, args.target, "DST", allow_new=True)
        try:
            if not args.replace and not await is_empty(target_store):
                print(f"taskgate: {_name(args.target)} is not empty; --replace empties it first", file=sys.stderr)
                return 2
            if isinstance(target_store, SQLiteStore):
                await target_store.close()  # its file is written through a connection of its own
                target: SQLiteTarget | PostgreSQLTarget = SQLiteTarget(target_store.path)
            else:
                target = PostgreSQLTarget(target_store.copy_rows, target_store.run_statements,  # type: ignore[attr-defined]
                                          keyed={style.STYLE: style.INDEXED_FIELDS for style in STYLES})
            try:
                if args.replace:
                    await target.clear()
                async with source.read_snapshot():
                    with progress(sum(counts.values()), " rows", desc="copy") as bar:
                        for table in TABLES:
                            async for rows in read_chunks(source, table):
                                await target.write(table, rows)
                                bar.update(len(rows))
                await target.finish()
            except RowRefused as exc:  # named for the target, not storage.path
                print(f"taskgate: copying into {_name(args.target)}: {exc}", file=sys.stderr)
                return 2
            finally:
                target.close()
        finally:
            await target_store.close()
    print(f"copied {_name(args.source)} to {_name(args.target)}: {counts['tasks']} task(s), {counts['audit']} "
          f"audit row(s), {counts['users']} user(s), {counts['tokens']} token(s), {counts['oauth_clients']} OAuth "
          f"client(s), {counts['hooks']} webhook(s)")
    async with _opened(config, args.target, "DST", allow_new=False) as copied:
        checked = bad = 0
        async with copied.read_snapshot():
            async for style, task_id, stored, trail in copied.trails():
                checked += 1
                if verify_trail(style, task_id, stored, trail) is not None:
                    bad += 1
    print(f"verified {checked} task(s) in {_name(args.target)}: {bad} disagree with their audit trail")
    return 1 if bad else 0
