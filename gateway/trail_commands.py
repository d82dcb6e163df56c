"""``taskgate audit``: print the audit trail, verify it, or purge the trails of deleted tasks.

It was part of :mod:`gateway.cli`; it lives here with its parser, as ``taskgate copy``
does in :mod:`gateway.copying`, since the purge made the trail's commands a concept of
their own. It owns their arguments, exit statuses and what they print; the store does
the reading and the purging (:meth:`gateway.model.Store.purge_deleted`), and
:func:`~gateway.verify.verify_trail` the replay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.clock import iso_utc, parse_iso
from gateway.config import Config
from gateway.data_tools import progress
from gateway.limits import dumps
from gateway.model import Store
from gateway.serving import with_store
from gateway.verify import verify_trail

__all__ = ["add_parser"]

_LIMIT = 100  # changes `taskgate audit` prints unless told otherwise


def add_parser(sub: argparse._SubParsersAction, styles: Sequence[str]) -> None:
    """``taskgate audit`` and its actions, under *sub*; *styles*: the API styles' names."""
    p = sub.add_parser("audit", help="print the audit trail, newest first, as JSON Lines; or verify it")
    p.add_argument("--style", choices=styles, help="only the changes of this API style's tasks")
    p.add_argument("--task", metavar="ID", help="only the changes of the task with this id")
    p.add_argument("--limit", type=int, default=_LIMIT, help="print at most this many changes")
    p.set_defaults(run=_audit)
    actions = p.add_subparsers(dest="action", metavar="ACTION", help="verify or purge instead of printing")
    actions.add_parser(
        "verify", help="replay every task's audit trail; print each task that disagrees (JSON Lines), exit 1 if any"
    ).set_defaults(run=_audit_verify)
    p = actions.add_parser("purge", help="drop the audit rows of the tasks deleted before a time (every life of "
                           "theirs up to that delete), giving their bytes back to their owners' quotas; lives an "
                           "active webhook has not been sent yet stay")
    p.add_argument("--deleted-before", required=True, metavar="TIME", type=_moment,
                   help="an RFC 3339 date-time (UTC when it names no offset), such as 2026-01-01T00:00:00Z")
    p.set_defaults(run=_audit_purge)


@with_store
async def _audit(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate audit``: the audit trail, newest first, as JSON Lines."""
    for c in await store.audit(style=args.style, task_id=args.task, limit=args.limit):
        sys.stdout.write(dumps({"seq": c.seq, "at": c.at, "style": c.style, "task_id": c.task_id,
                                "version": c.version, "action": c.action, "actor": c.actor,
                                "impersonator": c.impersonator, "request_id": c.request_id, "client": c.client,
                                "patch": c.patch,
                                "undo": c.undo}) + "\n")
    return 0


@with_store
async def _audit_verify(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate audit verify``: replay every trail; 1 if a task disagrees with its own."""
    if _listing_options(args, "audit verify checks every task"):
        return 2
    checked = bad = 0
    async with store.read_snapshot():
        with progress(await store.count_audited_tasks(), " tasks", desc="verify") as bar:
            async for style, task_id, stored, trail in store.trails():
                checked += 1
                bar.update()
                finding = verify_trail(style, task_id, stored, trail)
                if finding is not None:
                    bad += 1
                    sys.stdout.write(dumps(finding.as_json()) + "\n")
    print(f"verified {checked} task(s): {bad} disagree with their audit trail", file=sys.stderr)
    return 1 if bad else 0


def _listing_options(args: argparse.Namespace, what: str) -> bool:
    """Whether an action of ``taskgate audit`` was given the listing's options (said on
    standard error, beside *what* the action does instead)."""
    if args.style or args.task or args.limit != _LIMIT:
        print(f"taskgate: {what}; --style, --task and --limit are for listing", file=sys.stderr)
        return True
    return False


def _moment(text: str) -> str:
    """An RFC 3339 date-time as the audit trail writes its times; argparse's error otherwise."""
    try:
        return iso_utc(parse_iso(text))  # the years before 1000 padded, the milliseconds exact
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 date-time: {text!r}") from None


@with_store
async def _audit_purge(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate audit purge``: a few hundred lives per transaction, while serving too."""
    if _listing_options(args, "audit purge drops every style's deleted lives"):
        return 2
    lives, rows = await store.purge_deleted(args.deleted_before)
    print(f"purged the trails of {lives} task lives deleted before {args.deleted_before}: {rows} audit rows")
    return 0
