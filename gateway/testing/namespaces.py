"""Test namespaces: isolated sets of tasks, audit, journal, faults, clock and progress on
one server, each its own SQLite file, and the router resource that selects one by a
``/_ns/{name}/…`` prefix in front of any route.

Each :class:`Namespace` is a store of its own (a file in ``<database>.namespaces/``,
created on first use, ``synchronous = OFF``: it is thrown away) holding tasks and audit;
accounts stay in the main store, so users and tokens work in every namespace. Reset and
checkpoints are whole-database snapshots in memory (:mod:`gateway.store.sqlite.snapshots`).
:class:`Namespaces` bounds how many are open (``testing.max_namespaces``) and removes the
files of an earlier run at start.

:class:`NamespacePrefix` answers aiohttp's router for every path under ``/_ns/``: it
resolves the rest of the path with the same router and remembers the name on the request
(aiohttp resolves routes before middlewares run, and a sub-application's prefix cannot
hold a variable). It must not answer HTTP itself or hold a vendor's rule.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractMatchInfo
from aiohttp.web_urldispatcher import AbstractResource, AbstractRoute, MatchInfoError, UrlDispatcher
from yarl import URL

from gateway import errors
from gateway.model import Store
from gateway.store import SQLiteStore
from gateway.store.sqlite.snapshots import Snapshot
from gateway.testing.clock import NamespaceClock
from gateway.testing.faults import Faults
from gateway.testing.journal import Journal
from gateway.testing.progress import Progress

__all__ = ["NAME", "NAME_PATTERN", "PREFIX", "Namespace", "Namespaces", "NamespacePrefix", "NAMESPACE_NAME",
           "MAX_CHECKPOINTS", "Attachment"]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
NAME = re.compile(NAME_PATTERN)
PREFIX = "/_ns"
#: the namespace a request's path named (set while routing)
NAMESPACE_NAME = web.RequestKey("namespace_name", str)
#: most checkpoints one namespace keeps
MAX_CHECKPOINTS = 16


class Attachment(Protocol):
    """What follows a namespace's store besides the namespace (its change feed and
    webhooks, :class:`gateway.events.scoped.ScopedEvents`): told before and after the
    store is restored (reset, restore), and closed before the store is."""

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def close(self) -> None: ...


class Namespace:
    """One namespace: its store, clock, journal, faults, progress and checkpoints, and
    its :attr:`events` (an :class:`Attachment`, or None)."""

    def __init__(self, name: str, store: SQLiteStore, clock: NamespaceClock, journal: Journal,
                 empty: Snapshot, events: Attachment | None = None) -> None:
        self.name = name
        self.events = events
        self.store: Store = store
        self._sqlite = store
        self.clock = clock
        self.journal = journal
        self.faults = Faults()
        self.progress = Progress()
        self._empty = empty
        self.checkpoints: dict[int, Snapshot] = {}
        self._ids = itertools.count(1)

    async def reset(self) -> None:
        """Back to new: no tasks or audit, an empty journal, no faults, scripts or
        checkpoints, the system's clock; its feed restarts (:attr:`events`)."""
        await self._restore(self._empty)
        self.journal.clear()
        self.faults.clear()
        self.progress.scripts.clear()
        self.clock.reset()
        self._drop_checkpoints()

    async def checkpoint(self) -> int:
        if len(self.checkpoints) >= MAX_CHECKPOINTS:
            raise errors.Conflict(f"a namespace keeps at most {MAX_CHECKPOINTS} checkpoints; delete one first")
        number = next(self._ids)
        self.checkpoints[number] = await self._sqlite.snapshot()
        return number

    async def restore(self, number: int) -> None:
        snapshot = self.checkpoints.get(number)
        if snapshot is None:
            raise errors.NotFound(f"namespace {self.name!r} has no checkpoint {number}")
        self.progress.scripts.clear()  # they would write over the restored state
        await self._restore(snapshot)

    async def _restore(self, snapshot: Snapshot) -> None:
        if self.events is not None:
            await self.events.pause()
        try:
            await self._sqlite.restore(snapshot)
        finally:
            if self.events is not None:
                await self.events.resume()

    def drop_checkpoint(self, number: int) -> bool:
        snapshot = self.checkpoints.pop(number, None)
        if snapshot is not None:
            snapshot.close()
        return snapshot is not None

    def _drop_checkpoints(self) -> None:
        for snapshot in self.checkpoints.values():
            snapshot.close()
        self.checkpoints.clear()

    async def close(self) -> None:
        if self.events is not None:
            await self.events.close()
        self._drop_checkpoints()
        self._empty.close()
        await self._sqlite.close()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "clock": self.clock.describe(), "journal": self.journal.describe(),
                "faults": len(self.faults.rules), "progress": len(self.progress.scripts),
                "checkpoints": sorted(self.checkpoints)}


def _files(folder: Path, name: str) -> list[Path]:
    base = folder / f"{name}.db"
    return [base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")]


class Namespaces:
    """The open namespaces of one server, at most *limit*."""

    def __init__(self, folder: Path, *, limit: int, journal_entries: int, journal_bytes: int,
                 prepare: Callable[[Store], Awaitable[None]],
                 attach: Callable[[str, Store], Attachment] | None = None, per_user: int = 0) -> None:
        self.folder = folder
        self.limit = limit
        self.per_user = per_user
        self._makers: dict[str, str] = {}  # namespace -> the user (not an admin) who made it by using it
        self._journal = (journal_entries, journal_bytes)
        self._prepare = prepare
        self._attach = attach
        self._open: dict[str, Namespace] = {}
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """A fresh folder: files left by an earlier run are removed (namespaces are not kept)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob("*.db*"):
            leftover.unlink(missing_ok=True)

    def names(self) -> list[str]:
        return sorted(self._open)

    def find(self, name: str) -> Namespace | None:
        return self._open.get(name)

    async def get(self, name: str, maker: str | None = None) -> Namespace:
        """The namespace *name*, created on first use; BadRequest for a bad name,
        ServiceUnavailable when *limit* are open, TooManyRequests when *maker* (a user
        who is not an admin, making it by using it) has made *per_user* that are open."""
        found = self._open.get(name)
        if found is not None:
            return found
        if not NAME.fullmatch(name):
            raise errors.BadRequest(f"a namespace name is 1 to 64 letters, digits, '.', '_' or '-'; got {name[:80]!r}")
        async with self._lock:
            found = self._open.get(name)
            if found is not None:
                return found
            if maker is not None and self.per_user and \
                    sum(1 for made_by in self._makers.values() if made_by == maker) >= self.per_user:
                raise errors.TooManyRequests(
                    f"you have made {self.per_user} namespaces that are open, the most one user may "
                    "(testing.max_namespaces_per_user); use one of them, or ask an admin to delete one")
            if len(self._open) >= self.limit:
                err = errors.ServiceUnavailable(f"{self.limit} namespaces are open (testing.max_namespaces); "
                                                "delete one first")
                err.headers["Retry-After"] = "1"
                raise err
            clock = NamespaceClock()
            for path in _files(self.folder, name):
                path.unlink(missing_ok=True)
            store = await SQLiteStore.open(self.folder / f"{name}.db", synchronous="OFF", cache_mib=0,
                                           allow_new=True, now=clock.now_iso)
            try:
                await self._prepare(store)
                empty = await store.snapshot()
            except BaseException:
                await store.close()
                raise
            namespace = Namespace(name, store, clock, Journal(*self._journal), empty,
                                  self._attach(name, store) if self._attach is not None else None)
            self._open[name] = namespace
            if maker is not None:
                self._makers[name] = maker
            return namespace

    async def delete(self, name: str) -> bool:
        async with self._lock:
            namespace = self._open.pop(name, None)
            self._makers.pop(name, None)
            if namespace is None:
                return False
            await namespace.close()
            for path in [*_files(self.folder, name), *self.folder.glob(f"{name}.db-*.lock")]:  # and its leases
                path.unlink(missing_ok=True)
            return True

    async def close(self) -> None:
        for name in list(self._open):
            await self.delete(name)


class NamespacePrefix(AbstractResource):
    """Every path ``/_ns/{name}/rest``: resolved as ``/rest`` by *router*, the name kept on
    the request (:data:`NAMESPACE_NAME`). Registered only when testing is on."""

    def __init__(self, router: UrlDispatcher) -> None:
        super().__init__(name=None)
        self._router = router
        self._prefix = ""  # a base path, when the application is mounted under one
        self._pattern = re.compile(re.escape(PREFIX) + r"/(" + NAME_PATTERN + r")(/.*)")

    @property
    def canonical(self) -> str:
        return self._prefix + PREFIX

    def url_for(self, **kwargs: str) -> URL:
        return URL.build(path=f"{self._prefix}{PREFIX}/{kwargs['name']}")

    def add_prefix(self, prefix: str) -> None:
        self._prefix = prefix + self._prefix

    def get_info(self) -> dict[str, Any]:  # type: ignore[override]
        return {"prefix": self._prefix + PREFIX, "namespaces": True}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[AbstractRoute]:
        return iter(())

    async def resolve(self, request: web.Request) -> tuple[AbstractMatchInfo | None, set[str]]:  # type: ignore[override]
        path = request.rel_url.path_safe
        if not path.startswith(self._prefix + PREFIX + "/"):
            return None, set()
        match = self._pattern.fullmatch(path[len(self._prefix):])
        if match is None or match.group(2).startswith(PREFIX + "/"):
            return None, set()
        request[NAMESPACE_NAME] = match.group(1)  # an unmatched path is journaled in it too
        inner = request.clone(rel_url=URL.build(path=self._prefix + match.group(2), encoded=True))
        found = await self._router.resolve(inner)
        if isinstance(found, MatchInfoError):
            exc = found.http_exception
            return None, set(exc.allowed_methods) if isinstance(exc, web.HTTPMethodNotAllowed) else set()
        return found, set()
