"""``taskgate serve --workers N``: a supervisor and N HTTP worker processes on one socket.

The supervisor is the process ``taskgate serve`` started. It has already made (or
migrated) the database and created the first admin, once, before any worker runs. It then
holds the address and starts N workers, each ``taskgate`` again with the same arguments
and :data:`ROLE_ENV` saying which worker it is:

* the supervisor binds and listens on the address (a TCP one, every address of
  ``server.host``, also a free port picked by port 0, or ``server.unix_socket``), and
  every worker accepts on the inherited sockets: a connection waits in one queue until a
  worker takes it, and the worker with the fewest open connections takes the next one
  (:mod:`gateway.balance`). A worker that dies takes only its own connections with it;
  those still queued go to the others.

Each worker tells it is serving by writing one byte to a pipe; until all have, nothing is
printed, and a worker that exits first makes the supervisor stop the others and exit with
that worker's status (1 when it had none). Later, a worker that exits is started again
after a pause that doubles from :data:`RESTART_FIRST_SECONDS` up to
:data:`RESTART_MAX_SECONDS`, and starts over once a worker has served
:data:`STABLE_SECONDS`. SIGTERM and SIGINT are passed on to every worker, which drains
as a single ``serve`` does; the supervisor waits for them (``server.shutdown_timeout``
and a margin, then SIGKILL). A worker dies with its supervisor (``PR_SET_PDEATHSIG``), so
``kill -9`` of the supervisor is ``kill -9`` of the whole service.

Owns the supervisor, the worker role (:func:`worker_role`) and the worker's side of the
hand-shake. It must not open the store nor answer HTTP (that is :mod:`gateway.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gateway
from gateway.audit import logger
from gateway.balance import SHARES_FILE, Shares
from gateway.config import Config, ConfigError

__all__ = ["ROLE_ENV", "SHARED_DIR_ENV", "WorkerRole", "worker_count", "worker_role", "supervise",
           "RESTART_FIRST_SECONDS", "RESTART_MAX_SECONDS", "STABLE_SECONDS", "START_TIMEOUT_SECONDS"]

#: set in a worker's environment: "<index> <supervisor pid> <ready fd> <listening fds, comma-separated> <port>"
ROLE_ENV = "_TASKGATE_WORKER"
#: a folder the workers of one supervisor share (their metrics), removed when it stops
SHARED_DIR_ENV = "_TASKGATE_SHARED_DIR"
#: the listening sockets' queue of connections no worker has taken yet (aiohttp's default)
_BACKLOG = 128
#: the first pause before a worker that died is started again; it doubles up to the most
RESTART_FIRST_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
#: a worker that served this long before it died is restarted after the first pause again
STABLE_SECONDS = 30.0
#: how long a worker may take to listen
START_TIMEOUT_SECONDS = 60.0
#: what the supervisor gives workers beyond server.shutdown_timeout before SIGKILL
_STOP_MARGIN_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


def worker_count(setting: str) -> int:
    """``server.workers`` as a number: ``auto`` is the cores this process may run on."""
    if setting == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1
    return int(setting)


@dataclass(frozen=True)
class WorkerRole:
    """What a worker process learns from its supervisor."""

    index: int
    supervisor: int
    ready_fd: int
    listen_fds: tuple[int, ...]  # the inherited listening sockets
    port: int

    def enter(self) -> None:
        """Die with the supervisor; refuse to run when it is already gone."""
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.supervisor:
            raise SystemExit(1)

    def ready(self) -> None:
        """Tell the supervisor this worker is serving."""
        try:
            os.write(self.ready_fd, b"r")
        finally:
            os.close(self.ready_fd)


def worker_role() -> WorkerRole | None:
    """This process's role when a supervisor started it, else None."""
    value = os.environ.get(ROLE_ENV)
    if not value:
        return None
    index, supervisor, ready_fd, listen_fds, port = value.split()
    return WorkerRole(int(index), int(supervisor), int(ready_fd), tuple(int(fd) for fd in listen_fds.split(",")),
                      int(port))


def _listen_tcp(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Sockets listening on every address of *host* (with port 0, the one port the first
    was given), which the workers accept on."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"server.host: cannot resolve {host!r}: {exc.strerror}") from None
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(held) > 1:  # the port the first address was given, on every address
                address = (address[0], held[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            port = sock.getsockname()[1]
    except OSError as exc:
        for sock in held:
            sock.close()
        raise ConfigError(f"server.host/server.port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return held


class _Worker:
    """One worker slot: its process now, and how often it failed lately."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.failures = 0


class Supervisor:
    """N worker processes kept running until :meth:`stop`."""

    def __init__(self, config: Config, argv: list[str], count: int, port: int, listen_fds: tuple[int, ...],
                 shared_dir: str) -> None:
        self.config, self.argv, self.count = config, argv, count
        self.port, self.listen_fds, self.shared_dir = port, listen_fds, shared_dir
        self.workers = [_Worker(i) for i in range(count)]
        self.stopping = asyncio.Event()

    def _env(self, index: int, ready_fd: int) -> dict[str, str]:
        env = dict(os.environ)
        env[ROLE_ENV] = f"{index} {os.getpid()} {ready_fd} {','.join(map(str, self.listen_fds))} {self.port}"
        env[SHARED_DIR_ENV] = self.shared_dir
        # the package this supervisor runs, also from a zip (the single-file build)
        root = str(Path(gateway.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    async def start(self, worker: _Worker) -> int | None:
        """Start *worker*'s process and wait until it serves: None, or the status it exited with."""
        read_fd, write_fd = os.pipe()
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", *self.argv, env=self._env(worker.index, write_fd),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(write_fd, *self.listen_fds))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker's copy is the only one: its death is our end of file
        proc = worker.proc
        ready = asyncio.ensure_future(asyncio.to_thread(os.read, read_fd, 1))
        try:
            done, _ = await asyncio.wait({ready}, timeout=START_TIMEOUT_SECONDS)
            if ready in done and ready.result() == b"r":
                logger.info("worker.started", worker=worker.index, pid=proc.pid)
                return None
            if ready not in done:
                logger.error("worker.start_timeout", worker=worker.index, pid=proc.pid, seconds=START_TIMEOUT_SECONDS)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            code = await proc.wait()
            logger.error("worker.start_failed", worker=worker.index, pid=proc.pid, status=code)
            return code if code > 0 else 1
        finally:
            if not ready.done():
                await asyncio.wait({ready})  # the kill ended the read with end of file
            os.close(read_fd)

    async def keep(self, worker: _Worker) -> None:
        """Start *worker* again whenever it exits, with backoff, until the service stops."""
        while not self.stopping.is_set():
            proc = worker.proc
            assert proc is not None
            began = time.monotonic()
            waiting = asyncio.ensure_future(proc.wait())
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if self.stopping.is_set():
                waiting.cancel()
                return
            code = waiting.result()
            Shares.gone(Path(self.shared_dir) / SHARES_FILE, worker.index)  # the others leave it nothing
            worker.failures = 0 if time.monotonic() - began >= STABLE_SECONDS else worker.failures + 1
            while not self.stopping.is_set():
                pause = min(RESTART_MAX_SECONDS, RESTART_FIRST_SECONDS * 2 ** max(0, worker.failures - 1))
                logger.warning("worker.exited", worker=worker.index, pid=proc.pid, status=code, restart_in=pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), pause)
                if self.stopping.is_set():
                    return
                failed = await self.start(worker)
                if failed is None:
                    break
                code, worker.failures = failed, worker.failures + 1

    async def stop(self) -> int:
        """SIGTERM to every worker, then wait for their drain; 0 when all ended cleanly."""
        self.stopping.set()
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        status = 0
        deadline = self.config.server.shutdown_timeout + _STOP_MARGIN_SECONDS
        for proc in live:
            try:
                code = await asyncio.wait_for(proc.wait(), max(0.1, deadline))
            except TimeoutError:
                logger.error("worker.stop_timeout", pid=proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                code = await proc.wait()
            status = status or (code != 0)
        return int(status)


async def supervise(config: Config, argv: list[str], count: int, unix: socket.socket | None = None) -> int:
    """Run *count* workers until SIGTERM or SIGINT; the exit status of the service. *unix*:
    the listening unix socket the workers accept on (None: TCP, ``server.host``/``port``)."""
    server = config.server
    held: list[socket.socket] = []
    if unix is None:
        held = _listen_tcp(server.host, server.port, _BACKLOG)
        port = held[0].getsockname()[1]
        listen_fds = tuple(s.fileno() for s in held)
    else:
        port = 0
        listen_fds = (unix.fileno(),)
    shared_dir = tempfile.mkdtemp(prefix="taskgate-shared-")
    Shares.make(Path(shared_dir) / SHARES_FILE, count)
    supervisor = Supervisor(config, argv, count, port, listen_fds, shared_dir)
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled.set)
    keepers: list[asyncio.Task[None]] = []
    try:
        failed = [code for code in await asyncio.gather(*(supervisor.start(w) for w in supervisor.workers))
                  if code is not None]
        if failed:
            await supervisor.stop()
            print(f"taskgate: a worker could not start (exit status {failed[0]}); see the log", file=sys.stderr)
            return failed[0]
        if unix is not None:
            where = [f"unix:{unix.getsockname()}{server.base_path}"]
        else:
            where = [f"http://{'[' + s.getsockname()[0] + ']' if s.family == socket.AF_INET6 else s.getsockname()[0]}"
                     f":{port}{server.base_path}" for s in held]
        for url in where:
            print(f"taskgate listening on {url}", flush=True)
        logger.info("listening", workers=count, at=where, db=str(config.db_path))
        keepers = [asyncio.ensure_future(supervisor.keep(w)) for w in supervisor.workers]
        await signalled.wait()
        # the supervisor's copies of the listening sockets go first (no worker is started
        # again from here on): once the workers close theirs as they begin to drain, a new
        # connection is refused, not left in the queue
        supervisor.stopping.set()
        for sock in (*held, *((unix,) if unix is not None else ())):
            sock.close()
        logger.info("stopping", workers=count, shutdown_timeout=server.shutdown_timeout)
        started = time.monotonic()
        status = await supervisor.stop()
        logger.info("stopped", seconds=round(time.monotonic() - started, 3), status=status)
        return status
    finally:
        supervisor.stopping.set()
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        if any(w.proc is not None and w.proc.returncode is None for w in supervisor.workers):
            await supervisor.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for sock in held:
            sock.close()
        shutil.rmtree(shared_dir, ignore_errors=True)
