"""``taskgate serve``: one process's life as a server, and the store a command opens.

Owns opening the store for a command (:func:`command_store`), the first admin of an
empty database, listening on TCP or a unix socket with the connection limit, freezing
what start-up built, and the graceful stop on SIGTERM or SIGINT (stop listening, drain
the requests in progress, let the app close the store). It must not parse arguments
(that is :mod:`gateway.cli`) nor hold SQL or rules of a style.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from aiohttp import web

from gateway import speedups
from gateway.app import create_app
from gateway.audit import log_changes, logger
from gateway.auth import new_secret, secret_hash
from gateway.balance import SHARES_FILE, BalancedSite, Shares
from gateway.config import Config, ConfigError
from gateway.connections import LimitedRunner
from gateway.context import TRAFFIC
from gateway.store import Store, open_store
from gateway.workers import SHARED_DIR_ENV, WorkerRole, supervise, worker_count, worker_role

__all__ = ["serve", "command_store", "bootstrap_admin", "freeze_startup_heap"]


@asynccontextmanager
async def command_store(config: Config, *, allow_new: bool) -> AsyncIterator[Store]:
    """The store a command works on, open for the block and closed after it however it ends."""
    store = await open_store(config, allow_new=allow_new)
    if config.log.file:  # a log file gets every change's event, as the server's does; a terminal none
        store.on_commit(log_changes)
    try:
        yield store
    finally:
        await store.close()


def with_store(command: Callable[[argparse.Namespace, Config, Store], Awaitable[int]]) \
        -> Callable[[argparse.Namespace, Config], Awaitable[int]]:
    """A command of the command line run with the store open (:func:`command_store`), and
    closed after it however it ends."""

    @functools.wraps(command)
    async def run(args: argparse.Namespace, config: Config) -> int:
        async with command_store(config, allow_new=args.allow_new) as store:
            return await command(args, config, store)

    return run


async def bootstrap_admin(store: Store, config: Config, out: TextIO) -> None:
    """No user yet: create the admin with a random token, print the token once."""
    if await store.count_users():
        return
    token = new_secret()
    await store.add_user(config.auth.bootstrap_user, "admin", None, (secret_hash(token), False, None, "bootstrap"))
    print(f"Created admin user {config.auth.bootstrap_user!r}. Its API token is shown only this once:\n"
          f"  {token}", file=out, flush=True)


async def _seed(store: Store, folder: Path) -> None:
    """``serve --seed DIR``: every style's fixtures in *folder* into the store, and a line
    saying what was loaded."""
    from gateway.app import STYLES
    from gateway.clock import now_iso
    from gateway.errors import TaskgateError
    from gateway.testing.seeding import read_seed_dir, seed

    try:
        counts = await seed(store, STYLES, read_seed_dir(folder, [s.STYLE for s in STYLES]), now_iso(), "seed")
    except (ValueError, TaskgateError) as exc:
        raise ConfigError(f"--seed: {exc}") from None
    print("Seeded " + (", ".join(f"{n} {style}" for style, n in counts.items()) or "nothing") + f" from {folder}",
          flush=True)
    logger.info("seeded", folder=str(folder), **counts)


def _clear_stale_socket(path: Path) -> None:
    """Remove a unix socket left by a process that is gone; refuse one that is in use."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"server.unix_socket: {str(path)!r} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise ConfigError(f"server.unix_socket: {str(path)!r} is in use by another process")


#: what aiohttp's shutdown gives connections after the drain: idle keep-alive ones that
#: sent a new request in the meantime
_CLOSE_GRACE_SECONDS = 1.0


def _bind_unix(path: Path, mode: int) -> socket.socket:
    """A listening unix socket at *path* for the workers of a supervisor to accept on."""
    _clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"server.unix_socket: cannot listen on {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    return sock


async def _supervise(config: Config, argv: list[str], count: int) -> int:
    """``serve`` with more than one worker: the supervisor of :mod:`gateway.workers`."""
    path = config.unix_socket_path
    if path is None:
        return await supervise(config, argv, count)
    sock = _bind_unix(path, int(config.server.unix_socket_mode, 8))
    inode = path.stat().st_ino
    try:
        return await supervise(config, argv, count, sock)
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == inode:  # still ours, not a successor's
                path.unlink()


async def _listen_worker(runner: web.AppRunner, role: WorkerRole) -> None:
    """A worker's sites: the supervisor's listening sockets, shared with the other workers
    (:mod:`gateway.balance`)."""
    shared = os.environ.get(SHARED_DIR_ENV)
    if not shared:
        raise ConfigError(f"a worker needs {SHARED_DIR_ENV} (its supervisor sets it)")
    shares = Shares(Path(shared) / SHARES_FILE, role.index)
    for fd in role.listen_fds:
        await BalancedSite(runner, socket.socket(fileno=fd), shares).start()
    logger.info("listening", worker=role.index, pid=os.getpid(), port=role.port, speedups=speedups.describe())


async def _listen_unix(runner: web.AppRunner, path: Path, mode: int) -> web.UnixSite:
    _clear_stale_socket(path)
    site = web.UnixSite(runner, str(path))
    # bind under a umask that already gives the final mode: no moment with wider access
    old_umask = os.umask(0o777 & ~mode)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(f"server.unix_socket: cannot listen on {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    return site


def freeze_startup_heap() -> int:
    """Collect, then move every object start-up left (modules, schemas, the OpenAPI document,
    the application) out of the garbage collector's sight; the number moved.

    They live as long as the process, and a full collection would walk them all while
    every request in flight waits; frozen (``gc.freeze``), it skips them."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def serve(args: argparse.Namespace, config: Config) -> int:
    """``taskgate serve``: listen until SIGTERM or SIGINT, then drain and stop. With
    ``server.workers`` above 1 this process is the supervisor of that many workers
    (:mod:`gateway.workers`), each of which runs this function again in its role."""
    role = worker_role()
    if role is not None:
        role.enter()
    app = create_app(config)  # refuses settings the styles check before the database is touched
    count = worker_count(config.server.workers)
    if count > 1 and config.testing.enabled:
        # each namespace (its store, journal, faults, clock and scripts) lives in the process
        # that made it: another worker would answer 404 for it, or make a second one
        raise ConfigError(f"testing.enabled: namespaces live in one process; serve the testing "
                          f"toolkit with server.workers = 1 (it is {count})")
    if role is None:
        # the one open that may create the database: the app's own open below finds it
        # there, and so do the workers, which a supervisor starts only after it
        async with command_store(config, allow_new=args.allow_new) as store:
            await bootstrap_admin(store, config, sys.stdout)
            if getattr(args, "seed", None):
                await _seed(store, Path(args.seed))
        if config.testing.enabled:
            logger.warning("testing is on: the admin-only /_taskgate/ API and the /_ns/ namespaces are served; "
                           "never expose this server in production", max_namespaces=config.testing.max_namespaces)
        if count > 1:
            return await _supervise(config, args.argv, count)
    server = config.server
    # aiohttp's parser gets twice the configured header limits: between the two, the
    # request reaches the app and gets a 431 in its style's shape (see gateway/app.py)
    # the drain below gives requests in progress shutdown_timeout; aiohttp's own wait in
    # runner.cleanup() then only closes what is left, so that the stop stays within one timeout
    # the sites get at most server.max_connections at once (see gateway/connections.py)
    runner = LimitedRunner(app, max_connections=server.max_connections, access_log=None, handle_signals=False,
                           shutdown_timeout=min(_CLOSE_GRACE_SECONDS, server.shutdown_timeout),
                           max_line_size=server.max_request_line, max_field_size=2 * server.max_header_bytes,
                           max_headers=2 * server.max_headers,
                           # aiohttp starts keepalive_timeout when a connection opens and after each answer
                           # and does not reset it on partial data, so it also bounds slow headers (slowloris)
                           keepalive_timeout=server.keepalive_timeout)
    await runner.setup()  # opens the store and builds the app: what start-up keeps is all there now
    freeze_startup_heap()
    socket_path = config.unix_socket_path
    socket_inode = None
    # before the "listening" line: a SIGTERM sent as soon as it is printed is a clean stop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if role is not None:
            socket_path = None  # the supervisor's to remove
            await _listen_worker(runner, role)
            role.ready()
        elif socket_path is not None:
            await _listen_unix(runner, socket_path, int(server.unix_socket_mode, 8))
            socket_inode = socket_path.stat().st_ino
            print(f"taskgate listening on unix:{socket_path}{server.base_path}", flush=True)
            logger.info("listening", unix_socket=str(socket_path), base_path=server.base_path, db=str(config.db_path),
                        speedups=speedups.describe())
        else:
            tcp = web.TCPSite(runner, server.host, server.port)
            try:
                await tcp.start()
            except OSError as exc:
                raise ConfigError(f"server.host/server.port: cannot listen on "
                                  f"{server.host}:{server.port}: {exc.strerror or exc}") from None
            for host, port, *_ in runner.addresses:
                print(f"taskgate listening on http://{host}:{port}{server.base_path}", flush=True)
                logger.info("listening", host=host, port=port, base_path=server.base_path, db=str(config.db_path),
                            speedups=speedups.describe())
        await stop.wait()
        app[TRAFFIC].begin_drain()  # before the log line: /readyz is 503 from here on, event streams end
        logger.info("stopping", shutdown_timeout=server.shutdown_timeout)
    finally:
        # stop listening, give the requests in progress shutdown_timeout (see Traffic),
        # then let aiohttp close the connections and the app close the store: it commits
        # the queued writes, checkpoints the WAL and closes the database
        started = time.monotonic()
        for site in list(runner.sites):
            await site.stop()
        left = await app[TRAFFIC].drain(server.shutdown_timeout)
        if left:
            logger.warning("requests cut short by the shutdown", requests=left)
        await runner.cleanup()
        if socket_inode is not None and socket_path is not None:
            try:
                if socket_path.stat().st_ino == socket_inode:  # still ours, not a successor's
                    socket_path.unlink()
            except FileNotFoundError:
                pass
        logger.info("stopped", seconds=round(time.monotonic() - started, 3))
    return 0
