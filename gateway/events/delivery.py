"""The webhook dispatcher: every hook's events, read from the audit trail (the outbox),
delivered at least once and in order per hook.

One dispatcher runs per database (:meth:`gateway.model.Store.lock_dispatcher`, a lock
the process holds until it ends; the other processes keep asking, and one takes over
within ``webhooks.poll_seconds`` of the holder's end). The holder's workers ask again
before each delivery and stop when the lock is gone (on PostgreSQL a database restart
ends the session that held it, and another process may take it). Each active hook has
one worker. A worker reads its style's rows of the trail after the hook's cursor
(``Store.audit(after=cursor, style=…, newest_first=False)``; the other styles' rows it
passes in SQL, unread, and stores the cursor past them every :data:`SKIP_STORED`),
rebuilds the task's documents before and after each change (:class:`Documents`),
lets the style's shape render the request, and sends it; the
next event waits until this one is delivered. The cursor and the log rows are stored
every :data:`FLUSH_EVERY` deliveries and whenever the worker is caught up or failing: a
process killed between two stores sends the events after the stored cursor again (at
least once; the ``Idempotency-Key`` header, the event id, lets a receiver drop repeats).
A failed delivery (no answer within ``webhooks.timeout_seconds``, or a status outside
2xx) is retried after an exponential backoff with jitter; ``webhooks.max_failures``
consecutive failures disable the hook in its style's way (SuperOffice: TooManyErrors).

Workers wake on the store's commits in this process, on those the store hears another
gateway made (PostgreSQL), and poll for the rest. Outbound
calls go through one aiohttp session with a connection limit, a timeout, no redirects
and the SSRF guard's resolver. It holds no SQL and knows no vendor's fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace

import aiohttp
import structlog
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.clock import now_iso
from gateway.config import WebhooksConfig
from gateway.events.subscriptions import IDEMPOTENCY_HEADER, Event, Outgoing, Shape, idempotency_key
from gateway.events.targets import GuardedResolver, TargetPolicy, TargetRefused
from gateway.model import Change, Delivery, Doc, Hook, Store
from gateway.patching import replay
from gateway.speedups import dumps_bytes, loads

__all__ = ["Dispatcher", "DISPATCHER", "Sender", "Documents", "backoff", "FLUSH_EVERY", "SKIP_STORED", "HookStats"]

_log = structlog.get_logger("taskgate.webhooks")
FLUSH_EVERY = 64  # deliveries between two stores of the cursor while a backlog drains
#: other styles' rows a worker passes before it stores its hook's cursor past them
SKIP_STORED = 10_000
_PAGE = 256  # audit rows read at a time
_PAGE_BYTES = 4 * 2**20  # and their most bytes (patch and undo; one row may pass them)
_CACHE = 1024  # tasks whose latest document a worker remembers
_CACHE_BYTES = 32 * 2**20  # and the most bytes of those documents (as compact JSON)


def backoff(failures: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds before the retry that follows *failures* consecutive failures: base·2^(n-1),
    at most *cap*, scaled by a random factor in [0.5, 1) so that hooks do not retry in step."""
    raw = min(cap, base * 2 ** min(failures - 1, 40))
    return raw * (0.5 + (rand or random).random() / 2)


class Sender:
    """One outbound HTTP client: a connection limit, a timeout, no redirects, and the
    guard's resolver (every connection goes to a checked address)."""

    def __init__(self, config: WebhooksConfig, policy: TargetPolicy) -> None:
        self._config = config
        self._policy = policy
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._config.max_connections, limit_per_host=8,
                                             resolver=GuardedResolver(self._policy), use_dns_cache=False)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds),
                headers={"User-Agent": "taskgate-webhooks"}, auto_decompress=False)
        return self._session

    async def send(self, out: Outgoing) -> tuple[int | None, str, float]:
        """(status or None, what went wrong or "", milliseconds); never raises for the
        receiver's failures."""
        started = time.perf_counter()
        try:
            self._policy.literal(out.url)
            async with self._client().post(out.url, data=out.body, headers=out.headers,
                                           allow_redirects=False) as resp:
                await resp.content.read(65_536)  # a little of the answer, so the connection can be reused
                status = resp.status
            error = "" if 200 <= status < 300 else f"HTTP {status}"
            return status, error, (time.perf_counter() - started) * 1000
        except TimeoutError:
            return None, f"no answer within {self._config.timeout_seconds:g} s", (time.perf_counter() - started) * 1000
        except TargetRefused as exc:
            return None, str(exc), (time.perf_counter() - started) * 1000
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = getattr(exc, "os_error", None) or exc.__cause__  # the guard's refusal, from the resolver
            if isinstance(refused, TargetRefused):
                return None, str(refused), (time.perf_counter() - started) * 1000
            return None, f"{type(exc).__name__}: {exc}"[:500], (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Documents:
    """A task's document before and after each change, rebuilt from the trail: the
    document after a task's previous change is remembered, as its compact JSON text (for
    :data:`_CACHE` tasks, at most :data:`_CACHE_BYTES` of text: what it holds is what it
    weighs), so that following the trail in order costs one parse and one patch per
    change; otherwise the task's trail before the change is replayed, in place."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._docs: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()  # version, document's text
        self._bytes = 0

    async def event(self, change: Change) -> Event:
        key = (change.style, change.task_id)
        text: bytes | None
        if change.action == "created":
            text = None
        elif (hit := self._docs.get(key)) is not None and hit[0] == change.version - 1:
            text = hit[1]
        else:
            text = await self._replay(change)
        old = None if text is None else loads(text)
        new: Doc | None = None
        if change.action != "deleted":  # a private copy of the old document, patched in place
            new = replay({} if change.action == "created" or text is None else loads(text), change.patch)
        if (gone := self._docs.pop(key, None)) is not None:
            self._bytes -= len(gone[1])
        if new is not None:
            # one user's megabyte tasks made a worker hold a gigabyte of them: bytes bound it too
            kept = dumps_bytes(new)
            self._docs[key] = (change.version, kept)
            self._bytes += len(kept)
            while len(self._docs) > _CACHE or self._bytes > _CACHE_BYTES:
                self._bytes -= len(self._docs.popitem(last=False)[1][1])
        return Event(change, old, new)

    async def _replay(self, change: Change) -> bytes | None:
        """The text of the task's document before *change*, from its trail (None: none)."""
        doc: Doc | None = None
        after = 0
        while True:
            rows = await self._store.audit(style=change.style, task_id=change.task_id, after=after,
                                           before=change.seq, newest_first=False, limit=1000, max_bytes=_PAGE_BYTES)
            for row in rows:
                doc = None if row.action == "deleted" else replay(
                    {} if row.action == "created" or doc is None else doc, row.patch)
            if not rows:  # a page cut short by its bytes is not the end
                return None if doc is None else dumps_bytes(doc)
            after = rows[-1].seq
            await asyncio.sleep(0)  # a long trail: the loop's other work between its pages


class HookStats:
    """Deliveries and failures by style, and each hook's lag (events behind the trail's
    newest seq), as Prometheus families on scrape. Counted in the dispatching process."""

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.lag: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        delivered = CounterMetricFamily("taskgate_webhook_deliveries", "Webhook events delivered (2xx), by style",
                                        labels=("style",))
        for style, n in self.delivered.items():
            delivered.add_metric((style,), n)
        yield delivered
        failed = CounterMetricFamily("taskgate_webhook_failures", "Webhook delivery attempts that failed, by style",
                                     labels=("style",))
        for style, n in self.failed.items():
            failed.add_metric((style,), n)
        yield failed
        lag = GaugeMetricFamily("taskgate_webhook_lag_events", "Audit rows after a hook's cursor when its worker "
                                "last looked", labels=("style", "hook"))
        for (style, hook), n in self.lag.items():
            lag.add_metric((style, hook), n)
        yield lag


class Dispatcher:
    def __init__(self, store: Store, shapes: dict[str, Shape], config: WebhooksConfig, sender: Sender,
                 stats: HookStats) -> None:
        self._store = store
        self._shapes = shapes
        self._config = config
        self.sender = sender
        self.stats = stats
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._wakeups: set[asyncio.Event] = set()
        self._commit_wakeups: set[asyncio.Event] = set()  # the hooks' workers: a commit may be news to them
        self._commits = 0  # commits heard: a worker that read the trail before one naps not
        self._main: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: qualifies event ids in what is delivered (a test namespace's: :attr:`Event.scope`)
        self.scope = ""

    # -- lifetime ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._main is not None

    def start(self) -> None:
        """Dispatch, until :meth:`halt` or :meth:`stop` (started again after a halt, it
        reads every hook afresh from the store)."""
        if self._main is not None:
            return
        if self._loop is None:  # the commit listeners, once
            self._store.on_commit(self._committed)
            self._store.on_other_commit(lambda: self._committed(()))
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def halt(self) -> None:
        """Stop the supervisor and every worker (unsaved progress is sent again after the
        next :meth:`start`, as after a kill)."""
        tasks = [t for t in (self._main, *self._workers.values()) if t is not None]
        self._main = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()

    async def stop(self) -> None:
        await self.halt()
        await self.sender.close()

    def _committed(self, _changes: Sequence[Change]) -> None:
        # only the hooks' workers deliver changes: with no hook, a commit wakes nothing
        # (before, every batch woke the supervisor, which read the hooks on the reader's thread)
        self._commits += 1
        if self._loop is not None and self._commit_wakeups:
            self._loop.call_soon_threadsafe(self._wake_workers)

    def _wake_workers(self) -> None:
        for event in self._commit_wakeups:
            event.set()

    def poke(self) -> None:
        """Wake every worker and the supervisor (a hook made or changed)."""
        for event in self._wakeups:
            event.set()

    async def _nap(self, seconds: float, *, on_commit: bool = True, heard: int | None = None) -> None:
        """Wait *seconds*, or until :meth:`poke`, or (*on_commit*) until this process commits
        (or, on PostgreSQL, another gateway does); not at all when a commit came since the
        count *heard* (the trail was read before it: it may hold more now)."""
        if heard is not None and self._commits != heard:
            return
        event = asyncio.Event()
        self._wakeups.add(event)
        if on_commit:
            self._commit_wakeups.add(event)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._wakeups.discard(event)
            self._commit_wakeups.discard(event)

    async def _run(self) -> None:
        while True:
            try:
                if self._store.lock_dispatcher():
                    for hook in await self._store.list_hooks():
                        if hook.active and hook.style in self._shapes and hook.num not in self._workers:
                            self._workers[hook.num] = asyncio.create_task(self._work(hook.num),
                                                                          name=f"webhook-{hook.num}")
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("webhooks.dispatcher_failed")
            # hooks are made through this process's routes (which poke) or another process's
            # (found at the next poll): a commit here tells the supervisor nothing
            await self._nap(self._config.poll_seconds, on_commit=False)

    # -- one hook -------------------------------------------------------------------------------
    async def _work(self, num: int) -> None:
        try:
            while await self._drain(num):
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("webhooks.worker_failed", hook=num)
            await asyncio.sleep(self._config.poll_seconds)
        finally:
            self._workers.pop(num, None)

    async def _drain(self, num: int) -> bool:
        """Deliver what is after the hook's cursor; False when the hook is gone or stopped."""
        docs = Documents(self._store)
        #: (the hook's stored cursor, the row up to which the trail holds nothing of its style):
        #: other styles' rows are passed in SQL, and stored past only every SKIP_STORED
        passed: tuple[int, int] | None = None
        while True:
            if not self._store.lock_dispatcher():  # lost: the new holder's workers go on from the cursor
                return False
            hook = await self._store.hook_by_num(num)
            if hook is None or not hook.active:
                return False
            shape = self._shapes[hook.style]
            tasks_style = hook.style.partition(":")[0]  # "superoffice:webhook" hears "superoffice"
            after = hook.cursor if passed is None or passed[0] != hook.cursor else passed[1]
            heard = self._commits  # a commit heard while the page is read was not in it
            # rows commit in sequence order, so a page of its style that comes back empty
            # after this read means no row of its style up to here is left
            head = await self._store.last_seq()
            changes = await self._store.audit(after=after, style=tasks_style, newest_first=False, limit=_PAGE,
                                              max_bytes=_PAGE_BYTES)
            if not changes:
                self.stats.lag[(hook.style, hook.id)] = 0
                passed = (hook.cursor, max(after, head))
                if passed[1] - hook.cursor >= SKIP_STORED:  # else a restart reads past them again, in SQL
                    progress = _Progress(hook)
                    progress.cursor = passed[1]
                    if not await self._flush(progress):
                        return True
                await self._nap(self._config.poll_seconds, heard=heard)
                continue
            self.stats.lag[(hook.style, hook.id)] = max(0, head - after)
            progress = _Progress(hook)
            for change in changes:
                if not self._store.lock_dispatcher():
                    await self._flush(progress)
                    return False
                await asyncio.sleep(0)  # the loop's other work between two events' documents
                event = await docs.event(change)
                if self.scope:
                    event = replace(event, scope=self.scope)
                if not await self._deliver(shape, progress, event):
                    return progress.hook.active and await self._still(progress)
                if len(progress.log) >= FLUSH_EVERY and not await self._flush(progress):
                    return True
            if not await self._flush(progress):
                return True

    async def _deliver(self, shape: Shape, progress: _Progress, event: Event) -> bool:
        """Deliver one event, retrying; False when the worker must start over (the hook
        changed under it, or was disabled)."""
        seq = event.change.seq
        while True:
            out = shape.render(progress.hook, event)
            if out is None:
                progress.cursor = seq
                return True
            out = replace(out, headers={**out.headers, IDEMPOTENCY_HEADER: idempotency_key(seq, event.scope)})
            status, error, ms = await self.sender.send(out)
            attempt = progress.failures + 1
            style = progress.hook.style
            if not error:
                self.stats.delivered[style] = self.stats.delivered.get(style, 0) + 1
                progress.log.append(Delivery(0, progress.hook.num, seq, now_iso(), attempt, status, "delivered", "",
                                             ms))
                progress.cursor, progress.failures = seq, 0
                return True
            self.stats.failed[style] = self.stats.failed.get(style, 0) + 1
            progress.failures = attempt
            if attempt >= self._config.max_failures:
                progress.log.append(Delivery(0, progress.hook.num, seq, now_iso(), attempt, status, "disabled",
                                             error, ms))
                _log.warning("webhooks.disabled", style=style, hook=progress.hook.id, seq=seq, failures=attempt,
                             error=error)
                await self._flush(progress, disable=shape.disabled(progress.hook.doc))
                progress.hook = replace(progress.hook, active=False)
                return False
            progress.log.append(Delivery(0, progress.hook.num, seq, now_iso(), attempt, status, "failed", error, ms))
            _log.info("webhooks.retry", style=style, hook=progress.hook.id, seq=seq, failures=attempt, error=error)
            if not await self._flush(progress):
                return False
            await asyncio.sleep(backoff(attempt, self._config.retry_base_seconds, self._config.retry_max_seconds))
            fresh = await self._store.hook_by_num(progress.hook.num)
            if fresh is None or not fresh.active or fresh.cursor != progress.cursor:
                return False
            progress.hook = fresh

    async def _flush(self, progress: _Progress, disable: Doc | None = None) -> bool:
        """Store the cursor, failures and log rows; False when the hook moved meanwhile."""
        hook = progress.hook
        if progress.cursor == hook.cursor and progress.failures == hook.failures and not progress.log \
                and disable is None:
            return True
        stored = await self._store.advance_hook(hook.num, expected_cursor=hook.cursor, cursor=progress.cursor,
                                                failures=progress.failures, log=progress.log, disable=disable,
                                                keep_log=self._config.log_rows)
        progress.log = []
        if stored:
            progress.hook = replace(hook, cursor=progress.cursor, failures=progress.failures)
        return stored

    async def _still(self, progress: _Progress) -> bool:
        fresh = await self._store.hook_by_num(progress.hook.num)
        return fresh is not None and fresh.active


class _Progress:
    """A worker's unsaved progress on one hook."""

    __slots__ = ("hook", "cursor", "failures", "log")

    def __init__(self, hook: Hook) -> None:
        self.hook = hook
        self.cursor = hook.cursor
        self.failures = hook.failures
        self.log: list[Delivery] = []


DISPATCHER = web.AppKey("webhook_dispatcher", Dispatcher)
