"""The ``taskgate`` command line: serve, init, user, token, oauth-client, import, export, audit, events,
backup.

Each command is one function, chosen by argparse (``set_defaults(run=…)``). The command
line loads the configuration (exit status 2 on a bad value, naming the key); a command
opens the store (:func:`~gateway.serving.command_store`), does one thing and closes it;
``serve`` hands over to :mod:`gateway.serving`.
Only ``init`` and ``serve --allow-new`` create a database; every other command refuses a
missing or empty file (exit status 2), so a deleted database is never silently a new one.
Secrets it creates are printed once, on standard output, and only their hashes are
stored; other commands confirm what they did in one line. Progress bars (import, export,
audit verify) go to standard error, and only when it is a terminal. Task changes are
audited in the database as the server's are, but their log events go only to a
``log.file``: on a terminal an import would otherwise print one JSON line per task.

The ``--help`` texts are plain text (argparse prints them as they are written), never
reStructuredText like these docstrings; docs/cli.md is generated from them.

This module owns the arguments, the exit statuses and what the commands print; it must
not hold SQL or rules of a style: it calls the store, the styles' ``import_task`` and
:func:`~gateway.verify.verify_trail`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from gateway import copying, errors, serving, speedups, trail_commands
from gateway.app import STYLES
from gateway.audit import configure_logging, flush_logs
from gateway.auth import Authenticator, hash_password, new_secret, secret_hash
from gateway.config import Config, ConfigError, is_database_url, load_config, redact_url
from gateway.data_tools import import_lines, not_a_file, progress
from gateway.events.tail import tail
from gateway.events.webhooks import log_rows as webhook_log_rows
from gateway.limits import dumps
from gateway.serving import with_store
from gateway.store import Store, StoreError, backup

__all__ = ["main", "build_parser"]

_STYLE_NAMES = tuple(s.STYLE for s in STYLES)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:  # 0 is the AssociateId of tasks nobody owns
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


DESCRIPTION = ("Serve the task APIs of SailPoint ISC, SuperOffice WebAPI and webMethods Task Engine over one "
               "SQLite file, and manage its users, tokens, tasks and backups.")
EPILOG = "Run taskgate COMMAND --help for the options of a command."

#: a command: the parsed arguments and the configuration in, the exit status out
Command = Callable[[argparse.Namespace, Config], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    """The parser; each command's parser sets ``run`` (a :data:`Command`) and may set
    ``adjust``, what its own flags change in the configuration."""
    parser = argparse.ArgumentParser(prog="taskgate", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--config", metavar="PATH", help="config file (default: $TASKGATE_CONFIG or ./config.toml)")
    parser.add_argument("--db", metavar="PATH", help="database file or postgresql:// URL (overrides storage.path)")
    # only init and serve --allow-new make a database: a missing or empty file is refused
    # elsewhere, so that a deleted database or a mistyped --db is never quietly a new one
    parser.set_defaults(adjust=_unchanged, allow_new=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    p = sub.add_parser("serve", help="run the HTTP server")
    p.add_argument("--host", help="address to listen on (overrides server.host)")
    p.add_argument("--port", type=int, help="TCP port to listen on, 0 for a free one (overrides server.port)")
    p.add_argument("--allow-new", action="store_true",
                   help="create a new database when the file is missing or empty (otherwise refused)")
    p.add_argument("--testing", action="store_true",
                   help="serve the /_taskgate/ test-control API and namespaces (testing.enabled; never in production)")
    p.add_argument("--seed", metavar="DIR",
                   help="load the fixtures in DIR (one folder per style, each vendor's own documents) at start")
    p.add_argument("--workers", metavar="N", help="HTTP worker processes, or auto for one per core "
                                                  "(overrides server.workers)")
    p.set_defaults(run=serving.serve, adjust=_serve_settings)
    sub.add_parser("init", help="create or migrate the database").set_defaults(run=_init, allow_new=True)

    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with users")
    p = user.add_parser("add", help="add a user")
    p.add_argument("name", metavar="NAME", help="the name the user signs in with")
    p.add_argument("--role", choices=("admin", "user"), default="user",
                   help="admin may do everything; user reads and updates tasks within each style's rules")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (without one, the user signs in with tokens only)")
    p.add_argument("--associate-id", type=_positive, metavar="N",
                   help="the SuperOffice associate id this user is (owner of BatchTasks with AssociateId N)")
    p.set_defaults(run=_user_add)
    p = user.add_parser("passwd", help="set a new password for a user (read from a prompt or standard input)")
    p.add_argument("name", metavar="NAME", help="the user")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of prompting on the terminal")
    p.set_defaults(run=_user_passwd)
    p = user.add_parser("disable", help="stop a user signing in by any means (tokens, password, sessions, "
                                        "OAuth clients); its tasks and audit trail stay")
    p.add_argument("name", metavar="NAME", help="the user")
    p.set_defaults(run=_user_disable, disabled=True)
    p = user.add_parser("enable", help="let a disabled user sign in again")
    p.add_argument("name", metavar="NAME", help="the user")
    p.set_defaults(run=_user_disable, disabled=False)
    p = user.add_parser("delete", help="delete a user with its tokens and OAuth clients (its tasks and audit "
                                       "trail stay)")
    p.add_argument("name", metavar="NAME", help="the user")
    p.set_defaults(run=_user_delete)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with tokens")
    p = token.add_parser("create", help="create a token for USER and print it once")
    p.add_argument("user", metavar="USER", help="the user the token signs in as")
    p.add_argument("--read-only", action="store_true", help="the token reads but changes nothing (403 on a change)")
    p.add_argument("--expires-in", type=int, metavar="SECONDS",
                   help="the token stops working SECONDS from now, 0 for never "
                        "(default: auth.cli_token_ttl_seconds)")
    p.set_defaults(run=_token_create)
    p = token.add_parser("list", help="list stored tokens (never their secrets): ID, user, access, expiry, "
                                      "source, created")
    p.add_argument("user", metavar="USER", nargs="?", help="only the tokens of this user")
    p.set_defaults(run=_token_list)
    p = token.add_parser("revoke", help="revoke the token with this ID (as token list prints it)")
    p.add_argument("id", metavar="ID", help=f"the token's ID, or at least {_MIN_ID} characters of it")
    p.set_defaults(run=_token_revoke)

    client = sub.add_parser("oauth-client", help="manage OAuth2 clients").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with OAuth2 clients")
    p = client.add_parser("add", help="add a client-credentials client and print its secret once")
    p.add_argument("client_id", metavar="CLIENT_ID", help="the client id the client sends to /oauth/token")
    p.add_argument("--user", required=True, help="the user the client acts as")
    p.set_defaults(run=_oauth_client_add)
    client.add_parser("list", help="list OAuth2 clients and the user each acts as").set_defaults(
        run=_oauth_client_list)
    p = client.add_parser("revoke", help="delete an OAuth2 client: it gets no new access tokens")
    p.add_argument("client_id", metavar="CLIENT_ID", help="the client id")
    p.set_defaults(run=_oauth_client_revoke)

    p = sub.add_parser("import", help="import tasks from JSON Lines ({\"style\", \"task\"} per line)")
    p.add_argument("file", metavar="FILE", help="a file, or - for standard input")
    p.set_defaults(run=_import)
    p = sub.add_parser("export", help="export tasks as JSON Lines")
    p.add_argument("--style", choices=_STYLE_NAMES, help="only the tasks of this API style (default: all)")
    p.set_defaults(run=_export)
    trail_commands.add_parser(sub, _STYLE_NAMES)  # taskgate audit [verify|purge]: gateway/trail_commands.py
    copying.add_parser(sub)  # taskgate copy SRC DST: gateway/copying.py
    p = sub.add_parser("events", help="follow the change feed").add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do").add_parser(
        "tail", help="print each committed change as it happens, one line per event (from the database's audit "
                     "trail, whichever process made the change), until interrupted")
    p.add_argument("--since", type=int, metavar="N", help="start after event N (0: from the first; default: "
                                                          "only changes to come)")
    p.add_argument("--style", choices=_STYLE_NAMES, action="append", help="only this style's events (repeatable)")
    p.add_argument("--task", metavar="ID", help="only the events of the task with this id")
    p.add_argument("--json", action="store_true", help="print each event as JSON, as GET /events sends it")
    p.set_defaults(run=_events_tail)
    hooks = sub.add_parser("webhooks", help="webhook deliveries").add_subparsers(dest="action", required=True,
                                                                              metavar="ACTION", help="what to do")
    p = hooks.add_parser("log", help="print the webhook delivery log, newest first, as JSON Lines")
    p.add_argument("--hook", metavar="NAME", help="only this hook, as the log names it (e.g. superoffice:webhook/1)")
    p.add_argument("--limit", type=_positive, default=100, help="print at most this many attempts")
    p.set_defaults(run=_webhooks_log)
    p = sub.add_parser("backup", help="copy the database to DEST with SQLite's online backup (safe while serving)")
    p.add_argument("dest", metavar="DEST", help="the file to write; missing folders on the way to it are created")
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")
    p.set_defaults(run=_backup)
    return parser


def _unchanged(config: Config, args: argparse.Namespace) -> Config:
    """What a command without settings flags does to the configuration: nothing."""
    return config


def _serve_settings(config: Config, args: argparse.Namespace) -> Config:
    """``serve --host/--port/--workers/--testing`` over ``server.host``, ``server.port``,
    ``server.workers`` and ``testing.enabled``."""
    if args.testing:
        config = config.replace("testing", enabled=True)
    if args.host:
        config = config.replace("server", host=args.host)
    if args.workers is not None:
        config = config.replace("server", workers=args.workers)
    if args.port is not None:
        config = config.replace("server", port=args.port)
    return config


@with_store
async def _import(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate import FILE``: JSON Lines from FILE (``-``: standard input); 1 if a line failed."""
    if args.file == "-":
        return await import_lines(store, sys.stdin)
    try:
        # invalid UTF-8 is kept as surrogates: the line holding it fails alone, by its number
        source = open(args.file, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        print(f"taskgate: cannot read {args.file!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with source:
        return await import_lines(store, source)


@with_store
async def _export(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate export``: every task (of one style) as JSON Lines on standard output."""
    # one snapshot: a server writing meanwhile cannot make the export a mix of two moments
    async with store.read_snapshot():
        with progress(await store.count_tasks(args.style), " tasks", desc="export") as bar:
            async for task in store.export(args.style):
                sys.stdout.write(dumps({"style": task.style, "task": task.doc}) + "\n")
                bar.update()
    return 0


@with_store
async def _init(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate init``: opening the store creates or migrates the database."""
    where = redact_url(config.storage_url) if config.storage_url else config.db_path
    print(f"database {where} is at schema version {await store.schema_version()}")
    return 0


@with_store
async def _user_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate user add NAME``: a user, with a password read from standard input if asked."""
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            print("taskgate: empty password", file=sys.stderr)
            return 1
    await store.add_user(args.name, args.role, hash_password(password) if password else None,
                         associate_id=args.associate_id)
    details = [f"role {args.role}", "with a password" if password else "no password"]
    if args.associate_id is not None:
        details.append(f"SuperOffice associate {args.associate_id}")
    print(f"added user {args.name!r} ({', '.join(details)})")
    return 0


async def _user_exists(store: Store, name: str) -> bool:
    """Whether the user exists; says so on standard error when not."""
    if await store.get_user(name) is None:
        print(f"taskgate: no user {name!r}", file=sys.stderr)
        return False
    return True


@with_store
async def _token_create(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate token create USER``: a new token for USER, printed once."""
    if not await _user_exists(store, args.user):
        return 1
    if args.expires_in is not None and args.expires_in < 0:
        print("taskgate: --expires-in must be 0 (never) or more", file=sys.stderr)
        return 1
    lifetime = config.auth.cli_token_ttl_seconds if args.expires_in is None else args.expires_in
    auth = Authenticator(store, token_ttl_seconds=config.auth.token_ttl_seconds)
    print(await auth.create_token(args.user, read_only=args.read_only, expires_in=lifetime or None))
    return 0


#: how many characters of a token's hash ``token list`` prints as its ID, and the fewest
#: ``token revoke`` accepts (a hash is 64; 12 hex digits make a clash between a
#: deployment's tokens unlikely, and revoke refuses an ID that matches more than one)
_ID_CHARS = 12
_MIN_ID = 8


def _when(unix: int | None) -> str:
    if unix is None:
        return "never"
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
    return f"{text} (expired)" if unix <= time.time() else text


@with_store
async def _token_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate token list [USER]``: one line per token; never a secret, only its ID."""
    if args.user is not None and not await _user_exists(store, args.user):
        return 1
    rows = [("ID", "USER", "ACCESS", "EXPIRES", "SOURCE", "CREATED")]
    rows += [(t.hash[:_ID_CHARS], t.user, "read-only" if t.read_only else "read-write", _when(t.expires), t.source,
              t.created) for t in await store.list_tokens(args.user)]
    _print_table(rows)
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@with_store
async def _token_revoke(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate token revoke ID``: delete the one token whose hash starts with ID."""
    wanted = args.id.strip().lower()
    if len(wanted) < _MIN_ID:
        print(f"taskgate: a token ID has at least {_MIN_ID} characters (see taskgate token list)", file=sys.stderr)
        return 1
    found = [t for t in await store.list_tokens() if t.hash.startswith(wanted)]
    if not found:
        print(f"taskgate: no token {args.id!r}", file=sys.stderr)
        return 1
    if len(found) > 1:
        print(f"taskgate: {args.id!r} matches {len(found)} tokens; give more of the ID", file=sys.stderr)
        return 1
    await store.delete_token(found[0].hash)
    print(f"revoked token {found[0].hash[:_ID_CHARS]} of user {found[0].user!r} ({found[0].source})")
    return 0


def _read_new_password(args: argparse.Namespace) -> str | None:
    """The password from standard input (``--password-stdin``), else asked twice on the
    terminal; None (said on standard error) when empty, mistyped or there is no terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass

        password = getpass.getpass("New password: ")
        if password and getpass.getpass("Again: ") != password:
            print("taskgate: the passwords differ", file=sys.stderr)
            return None
    else:
        print("taskgate: no terminal to ask for the password on (use --password-stdin)", file=sys.stderr)
        return None
    if not password:
        print("taskgate: empty password", file=sys.stderr)
        return None
    return password


@with_store
async def _user_passwd(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate user passwd NAME``: a new password hash; browser sessions and remembered
    Basic successes end with the old one."""
    if not await _user_exists(store, args.name):
        return 1
    password = _read_new_password(args)
    if password is None:
        return 1
    if not await store.set_password(args.name, hash_password(password)):
        print(f"taskgate: no user {args.name!r}", file=sys.stderr)
        return 1
    print(f"changed the password of user {args.name!r} (its browser sessions ended)")
    return 0


@with_store
async def _user_disable(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate user disable|enable NAME``."""
    if not await store.set_disabled(args.name, args.disabled):
        print(f"taskgate: no user {args.name!r}", file=sys.stderr)
        return 1
    if args.disabled:
        print(f"disabled user {args.name!r}: it signs in by no means; its tasks and audit trail stay")
    else:
        print(f"enabled user {args.name!r}")
    return 0


@with_store
async def _user_delete(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate user delete NAME``: the user, its tokens and OAuth clients."""
    if not await _user_exists(store, args.name):
        return 1
    tokens = len(await store.list_tokens(args.name))
    clients = sum(c.user == args.name for c in await store.list_oauth_clients())
    if not await store.delete_user(args.name):
        print(f"taskgate: no user {args.name!r}", file=sys.stderr)
        return 1
    print(f"deleted user {args.name!r} with {tokens} token(s) and {clients} OAuth client(s); "
          "its tasks and audit trail stay")
    return 0


@with_store
async def _oauth_client_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate oauth-client add ID --user USER``: a client acting as USER; its secret printed once."""
    if not await _user_exists(store, args.user):
        return 1
    secret = new_secret("tgs_")
    await store.add_oauth_client(args.client_id, secret_hash(secret), args.user)
    print(secret)
    return 0


@with_store
async def _oauth_client_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate oauth-client list``: one line per client (never its secret)."""
    _print_table([("CLIENT_ID", "USER"), *((c.client_id, c.user) for c in await store.list_oauth_clients())])
    return 0


@with_store
async def _oauth_client_revoke(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate oauth-client revoke CLIENT_ID``: the client gets no new access tokens."""
    client = await store.get_oauth_client(args.client_id)
    if client is None or not await store.delete_oauth_client(args.client_id):
        print(f"taskgate: no OAuth client {args.client_id!r}", file=sys.stderr)
        return 1
    print(f"revoked OAuth client {args.client_id!r} of user {client.user!r} (access tokens it was issued end "
          f"within auth.token_ttl_seconds, {config.auth.token_ttl_seconds} s, or at taskgate token revoke)")
    return 0


@with_store
async def _webhooks_log(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate webhooks log``: delivery attempts as JSON Lines; 1 for an unknown hook."""
    try:
        rows = await webhook_log_rows(store, hook=args.hook, limit=args.limit)
    except errors.NotFound as exc:
        print(f"taskgate: {exc.message}", file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(row))
    return 0


@with_store
async def _events_tail(args: argparse.Namespace, config: Config, store: Store) -> int:
    """``taskgate events tail``: runs until interrupted (exit status 130)."""
    await tail(store, sys.stdout, since=args.since, poll_seconds=config.events.poll_seconds,
               styles=frozenset(args.style or ()), task_id=args.task, as_json=args.json)
    return 0


async def _backup(args: argparse.Namespace, config: Config) -> int:
    """``taskgate backup DEST``: reads the file directly, so it never migrates or
    checkpoints a live database."""
    dest = Path(args.dest)
    if not_a_file(dest):
        # --force or not: replacing /dev/null, a socket or a folder with a database file
        # breaks whatever uses it (as root, the system's /dev/null)
        print(f"taskgate: {str(dest)!r} exists and is not a regular file; the backup replaces only files",
              file=sys.stderr)
        return 1
    if dest.exists() and not args.force:
        print(f"taskgate: {str(dest)!r} exists (--force replaces it)", file=sys.stderr)
        return 1
    if dest.resolve() == config.db_path.resolve():
        print("taskgate: the backup cannot replace the database itself", file=sys.stderr)
        return 1
    try:
        created = _make_folders(dest.parent)
    except OSError as exc:
        where = f": {str(exc.filename)!r}" if exc.filename and str(exc.filename) != str(dest.parent) else ""
        print(f"taskgate: cannot create the folder {str(dest.parent)!r} for the backup: {exc.strerror or exc}{where}",
              file=sys.stderr)
        return 1
    try:
        info = await backup(config.db_path, dest, busy_timeout_ms=config.storage.busy_timeout_ms)
    except BaseException:
        for folder in reversed(created):  # a failed backup leaves nothing behind, folders included
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    if created:
        print(f"created folder {created[-1]}", file=sys.stderr)
    print(f"backed up {config.db_path} to {dest}: {info.tasks} task(s), {info.pages} pages, "
          f"schema version {info.schema_version}", file=sys.stderr)
    return 0


def _make_folders(folder: Path) -> list[Path]:
    """*folder* and its missing parents made, as ``mkdir -p`` does; those made, outermost first."""
    missing = []
    while not folder.is_dir() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    missing.reverse()
    made = []
    try:
        for path in missing:
            path.mkdir()
            made.append(path)
    except OSError:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return made


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what serve's worker processes are started with
    try:
        config = load_config(args.config)
        if args.db:
            db = args.db if is_database_url(args.db) else str(Path(args.db).resolve())
            config = config.replace("storage", path=db)
        config = args.adjust(config, args)
        configure_logging(config.log)
    except ConfigError as exc:
        print(f"taskgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    run: Command = args.run
    try:
        return speedups.run(run(args, config))
    except ConfigError as exc:
        print(f"taskgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        where = redact_url(config.storage_url) if config.storage_url else str(config.db_path)
        print(f"taskgate: database {where!r} (storage.path): {exc}", file=sys.stderr)
        return 2
    except errors.Conflict as exc:
        print(f"taskgate: already exists: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `taskgate export | head`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141
    finally:
        flush_logs()  # the lines of the loop's last iteration
