"""How ``serve --workers N`` spreads connections: one listening socket, and the worker with
the fewest open connections takes the next one.

The supervisor listens and every worker accepts on the same socket, so a connection waits
in one queue until a worker takes it. Left to the kernel, the worker whose loop is idle
first takes all that are queued, and with ``SO_REUSEPORT`` (each worker its own socket)
the kernel hashes each new connection to a worker: 32 keep-alive connections came to 12
and 20, or 21 and 11, as often as not, and the worker with 20 ran out of core while the
other idled. A client with a few long-lived connections (a reverse proxy's keep-alive
pool) could land them all on one worker.

Each worker writes how many connections it holds into its slot of :class:`Shares` (a
small file of N counters the supervisor makes, mapped by every worker; the supervisor
marks a worker that exited :data:`GONE` until its successor publishes) and, when a
connection waits, takes it only if no other worker holds fewer; otherwise it looks again
:data:`PAUSE_SECONDS` later, and takes it anyway once it has waited
:data:`MOST_DEFERRED_SECONDS`, so that a worker that is busy, stalled or gone delays a
connection by at most that. Counts are published at each accept and every
:data:`PUBLISH_SECONDS`, so they may be that stale.

Owns the shared counters and :class:`BalancedSite`; it must not know routes, the store or
the connection limit (the runner's protocol factory, whatever it is, makes each
connection's protocol).
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import socket
import struct
import time
from pathlib import Path

from aiohttp import web

from gateway.audit import logger

__all__ = ["Shares", "BalancedSite", "SHARES_FILE", "GONE", "PAUSE_SECONDS", "MOST_DEFERRED_SECONDS",
           "PUBLISH_SECONDS"]

#: the file of counters in the supervisor's shared folder
SHARES_FILE = "connections"
#: how soon a worker that left a connection to the others looks at the queue again
PAUSE_SECONDS = 0.0005
#: the longest a worker leaves one waiting connection to the others before it takes it
MOST_DEFERRED_SECONDS = 0.01
#: how often a worker publishes its count between accepts (connections that closed)
PUBLISH_SECONDS = 0.1
#: how long a worker stops accepting after the process ran out of file descriptors
_EMFILE_PAUSE_SECONDS = 1.0
#: accept errors that pause accepting, as asyncio's own accept does: the process or the
#: system is out of descriptors or memory
_OUT_OF = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_SLOT = struct.Struct("<q")
#: the count of a slot whose worker is not serving (not started yet, or dead and not yet
#: replaced): no worker leaves a connection to it
GONE = 2 ** 62


class Shares:
    """N counters, one per worker, in a file every worker maps: each worker writes its own
    slot, reads the others'. A worker started in a dead one's place writes the slot anew."""

    def __init__(self, path: Path, index: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.count = size // _SLOT.size
        if not 0 <= index < self.count:
            raise ValueError(f"worker {index} has no slot among {self.count}")
        self.index = index
        self._others = [i * _SLOT.size for i in range(self.count) if i != index]

    @staticmethod
    def make(path: Path, count: int) -> None:
        """The supervisor's file: *count* slots, each :data:`GONE` until its worker serves."""
        with open(path, "wb") as f:
            f.write(_SLOT.pack(GONE) * count)

    @staticmethod
    def gone(path: Path, index: int) -> None:
        """The supervisor's word that worker *index* exited: its slot is :data:`GONE` until
        the worker started in its place publishes (its last count would make the others
        leave every new connection to nobody, for :data:`MOST_DEFERRED_SECONDS` each)."""
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, _SLOT.pack(GONE), index * _SLOT.size)
        finally:
            os.close(fd)

    def publish(self, held: int) -> None:
        _SLOT.pack_into(self._map, self.index * _SLOT.size, held)

    def fewest_of_others(self) -> int | None:
        """The fewest connections another worker holds (None: there is no other)."""
        if not self._others:
            return None
        return min(_SLOT.unpack_from(self._map, at)[0] for at in self._others)

    def close(self) -> None:
        self._map.close()


class BalancedSite(web.BaseSite):
    """A site that accepts from an inherited listening *sock* one connection at a time,
    leaving it to a worker with fewer connections while one may take it (see the module)."""

    __slots__ = ("_sock", "_shares", "_name", "_deferred_since", "_timer", "_publisher", "_reading",
                 "_pending", "_stopped")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, shares: Shares) -> None:
        super().__init__(runner)
        self._sock = sock
        self._shares = shares
        if sock.family == socket.AF_UNIX:
            self._name = f"http://unix:{sock.getsockname()}:"
        else:
            host, port = sock.getsockname()[:2]
            self._name = f"http://{'[' + host + ']' if sock.family == socket.AF_INET6 else host}:{port}"
        self._deferred_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._publisher: asyncio.TimerHandle | None = None
        self._reading = False
        self._pending: set[asyncio.Task[object]] = set()
        self._stopped = False

    @property
    def name(self) -> str:
        return self._name

    def _held(self) -> int:
        server = self._runner.server
        return len(server.connections) if server is not None else 0

    async def start(self) -> None:
        await super().start()
        self._sock.setblocking(False)
        self._resume()
        self._publish()

    async def stop(self) -> None:
        """Stop accepting and close this process's copy of the socket (once the supervisor
        and every worker closed theirs, a new connection is refused at once rather than
        left waiting in the queue); connections already taken are the runner's to drain."""
        self._stopped = True
        self._pause()
        for handle in (self._timer, self._publisher):
            if handle is not None:
                handle.cancel()
        self._sock.close()
        self._runner._check_site(self)
        self._runner._unreg_site(self)

    def _resume(self) -> None:
        self._timer = None
        if not self._stopped and not self._reading:
            asyncio.get_running_loop().add_reader(self._sock.fileno(), self._ready)
            self._reading = True

    def _pause(self, seconds: float | None = None) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._reading = False
        if seconds is not None and not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._resume)

    def _publish(self) -> None:
        self._shares.publish(self._held())
        if not self._stopped:
            self._publisher = asyncio.get_running_loop().call_later(PUBLISH_SECONDS, self._publish)

    def _ready(self) -> None:
        """A connection waits (or another worker took it already)."""
        held = self._held()
        fewest = self._shares.fewest_of_others()
        now = time.monotonic()
        if fewest is not None and held > fewest:
            since = self._deferred_since
            if since is None or now - since > 2 * MOST_DEFERRED_SECONDS:
                # a new connection: the one deferred before went to another worker meanwhile
                self._deferred_since = since = now
            if now - since < MOST_DEFERRED_SECONDS:
                self._pause(PAUSE_SECONDS)  # a worker with fewer may take it meanwhile
                return
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):  # taken by another, or gone
            self._deferred_since = None
            return
        except OSError as exc:
            if exc.errno in _OUT_OF:  # as asyncio's own accept does: try again later
                logger.warning("accept failed", reason=str(exc), pause_seconds=_EMFILE_PAUSE_SECONDS)
                self._pause(_EMFILE_PAUSE_SECONDS)
            else:  # this connection's trouble (a protocol error, a firewall's refusal): the next one's not
                logger.info("accept failed", reason=str(exc))
            return
        self._deferred_since = None
        conn.setblocking(False)
        self._shares.publish(held + 1)
        factory = self._runner.server
        assert factory is not None
        task: asyncio.Task[object] = asyncio.ensure_future(
            asyncio.get_running_loop().connect_accepted_socket(factory, conn))
        self._pending.add(task)
        task.add_done_callback(lambda done: self._connected(done, conn))

    def _connected(self, task: asyncio.Task[object], conn: socket.socket) -> None:
        """A connection handed to the runner's protocol, or not: then it is closed here
        (cancelled by the loop's end, or refused by the transport), not left to the
        garbage collector."""
        self._pending.discard(task)
        if task.cancelled() or task.exception() is not None:
            conn.close()
