"""A test namespace's own change feed and webhooks: what a request under a namespace
streams and subscribes to, in place of the server's.

A namespace (:mod:`gateway.testing.namespaces`) is a store of its own, so it gets a
:class:`~gateway.events.feed.Feed` of its store's audit trail and a webhook
:class:`~gateway.events.delivery.Dispatcher` of its store's hooks, each made on first use
(the first ``GET /events`` or webhook route under the namespace) and configured as the
server's (``[events]``, ``[webhooks]``, the same target guard). Only this process writes a
namespace's file, so both hear every change at its commit; they read the trail on a slow
poll only as a safety net.

A reset or a restore replaces the namespace's trail, and its ids begin again: before it
the dispatcher halts (:meth:`ScopedEvents.pause`), after it the feed restarts, ending
every stream with the reason ``reset`` and 0 as the id to resume from, and the
dispatcher starts over from the hooks and cursors the restored store holds
(:meth:`ScopedEvents.resume`). Since the ids begin again, and every namespace's begin at 1,
what a namespace's hooks receive qualifies them: the ``Idempotency-Key`` is
``{namespace}.{epoch}:{id}`` and SuperOffice's ``EventId`` is derived from it, with a new
random epoch at each reset and restore, so a receiver that drops repeats never drops a
namespace's new event for an old one's key. Deleting the namespace ends its streams (``deleted``) and
stops its dispatcher (:meth:`ScopedEvents.close`). It holds no SQL and no HTTP beyond
finding a request's feed and dispatcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

from aiohttp import web

from gateway.context import CONFIG, FEED, SCOPE
from gateway.events.delivery import DISPATCHER, Dispatcher, HookStats, Sender
from gateway.events.feed import CUT_GRACE_SECONDS, END_DELETED, END_RESET, Feed
from gateway.events.subscriptions import POLICY, SHAPES
from gateway.model import Store

__all__ = ["ScopedEvents", "EventScopes", "feed_of", "dispatcher_of", "POLL_SECONDS"]

#: how often a namespace's feed and dispatcher read its store unprompted (a safety net:
#: every write to a namespace is this process's, and wakes them at its commit)
POLL_SECONDS = 5.0


class ScopedEvents:
    """One namespace's feed and dispatcher, each made on first use."""

    def __init__(self, scopes: EventScopes, name: str, store: Store) -> None:
        self._scopes = scopes
        self.name = name
        self._store = store
        self.scope = _scope(name)
        self._feed: Feed | None = None
        self._dispatcher: Dispatcher | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def feed(self) -> Feed:
        if self._feed is None:
            async with self._lock:
                if self._feed is None:
                    settings = self._scopes.config.events
                    feed = Feed(self._store, poll_seconds=max(settings.poll_seconds, POLL_SECONDS),
                                buffer_events=settings.buffer_events, buffer_bytes=settings.buffer_bytes)
                    await feed.start()
                    if self._closed:
                        await feed.close(END_DELETED)
                    self._feed = feed
        return self._feed

    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            config = self._scopes.config.webhooks
            config = dataclasses.replace(config, poll_seconds=max(config.poll_seconds, POLL_SECONDS))
            self._dispatcher = Dispatcher(self._store, self._scopes.shapes, config,
                                          Sender(config, self._scopes.policy), HookStats())
            self._dispatcher.scope = self.scope
            if config.dispatch and not self._closed:
                self._dispatcher.start()
        return self._dispatcher

    async def pause(self) -> None:
        """Before the store is restored: the dispatcher stops where it is."""
        if self._dispatcher is not None:
            await self._dispatcher.halt()

    async def resume(self) -> None:
        """After the store was restored: the feed restarts, the dispatcher starts over."""
        self.scope = _scope(self.name)
        if self._feed is not None:
            await self._feed.restart(END_RESET)
        if self._dispatcher is not None:
            self._dispatcher.scope = self.scope
        if self._dispatcher is not None and self._scopes.config.webhooks.dispatch and not self._closed:
            self._dispatcher.start()

    def stop_streams(self) -> None:
        if self._feed is not None:
            self._feed.stop_streams()

    async def close(self) -> None:
        """End the streams (``deleted``), waiting a moment for them to send their end, and
        stop the dispatcher; before the store closes."""
        self._closed = True
        self._scopes.live.discard(self)
        if self._feed is not None:
            feed = self._feed
            await feed.close(END_DELETED)
            deadline = asyncio.get_running_loop().time() + CUT_GRACE_SECONDS
            while feed.subscribers and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
        if self._dispatcher is not None:
            await self._dispatcher.stop()


class EventScopes:
    """The server's namespaces' events: :meth:`attach` makes one namespace's, and a
    graceful stop ends every namespace's streams (:meth:`stop_streams`)."""

    def __init__(self, app: web.Application) -> None:
        self.config = app[CONFIG]
        self.shapes = app[SHAPES]
        self.policy = app[POLICY]
        self.live: set[ScopedEvents] = set()

    def attach(self, name: str, store: Store) -> ScopedEvents:
        scoped = ScopedEvents(self, name, store)
        self.live.add(scoped)
        return scoped

    def stop_streams(self) -> None:
        for scoped in list(self.live):
            scoped.stop_streams()


def _scope(name: str) -> str:
    """What qualifies the event ids a namespace's hooks receive until its next reset."""
    return f"{name}.{secrets.token_hex(4)}"


def _scoped(request: web.Request) -> ScopedEvents | None:
    scope = request.get(SCOPE)
    events = getattr(scope, "events", None) if scope is not None else None
    return events if isinstance(events, ScopedEvents) else None


async def feed_of(request: web.Request) -> Feed:
    """The feed of the request's tasks: its namespace's, else the server's."""
    scoped = _scoped(request)
    return await scoped.feed() if scoped is not None else request.app[FEED]


def dispatcher_of(request: web.Request) -> Dispatcher:
    """The webhook dispatcher of the request's hooks: its namespace's, else the server's."""
    scoped = _scoped(request)
    return scoped.dispatcher() if scoped is not None else request.app[DISPATCHER]
