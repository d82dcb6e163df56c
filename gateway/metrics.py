"""Operational endpoints: ``/healthz``, ``/readyz`` and the Prometheus ``/metrics``.

Each application has its own :class:`Metrics` (its own ``CollectorRegistry``, never the
process-global one), fed by the request middleware (one dict lookup and two cheap updates
per request, no await) and by the store's listeners (commit latency, batch size, audit
events). The task gauge, the sign-in limiter's counts and the event streams' are read on
scrape. Who may read ``/metrics`` is ``metrics.expose``: nobody (no route), loopback
clients only (the client as :mod:`gateway.proxy` establishes it), or bearers of ``metrics.token``. None of these
endpoints needs a taskgate user. This module holds no SQL and no vendor shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from gateway import errors
from gateway.audit import logger
from gateway.auth import AUTHENTICATOR, FailureLimiter, public
from gateway.auth.limiter import REFUSAL_REASONS
from gateway.codecs import json_response
from gateway.config import MetricsConfig
from gateway.context import CONFIG, FEED, STORE, TRAFFIC
from gateway.events.feed import Feed
from gateway.metrics_shared import PUBLISH_SECONDS, SharedMetrics
from gateway.model import Change
from gateway.store import SCHEMA_VERSION
from gateway.turns import Turns
from gateway.workers import SHARED_DIR_ENV

__all__ = ["Metrics", "METRICS", "setup", "READY_TIMEOUT", "READY_REASONS"]

#: every reason a 503 of /readyz gives: a few words anyone may read; the detail is logged
READY_REASONS = ("taskgate is shutting down", "low disk space", "database schema mismatch", "database busy",
                 "database not writable", "database file deleted", "database file replaced",
                 "database file cannot be checked", "database file damaged", "database error")
#: the detail /readyz last found (None: ready), so that a cause is logged once, not every probe
_UNREADY = web.AppKey("readyz_last_detail", list)
#: seconds /readyz waits for its write probe before answering 503
READY_TIMEOUT = 5.0
_LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _RequestStats:
    """Request counts and latency histograms, kept as plain numbers and turned into
    Prometheus families on scrape. Every update and every scrape runs on the event loop's
    thread, so no lock is needed: an update costs about a microsecond, a fraction of
    what prometheus-client's locked Counter and Histogram cost per request."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        #: (route, style) -> count per bucket (not cumulative), the +Inf bucket, then the sum
        self.latencies: dict[tuple[str, str], list[float]] = {}

    def observe(self, route: str, style: str, status: int, seconds: float) -> None:
        key = (route, style, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        slots = self.latencies.get((route, style))
        if slots is None:
            slots = self.latencies[(route, style)] = [0] * (len(_LATENCY_BUCKETS) + 2)
        slots[bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # first bound >= seconds: le semantics
        slots[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("taskgate_http_requests", "HTTP requests answered, by route, style and status",
                                       labels=("route", "style", "status"))
        for (route, style, status), n in self.counts.items():
            requests.add_metric((route, style, str(status)), n)
        yield requests
        latency = HistogramMetricFamily("taskgate_http_request_duration_seconds",
                                        "Time from the request reaching taskgate to its response, by route and style",
                                        labels=("route", "style"))
        for (route, style), slots in self.latencies.items():
            buckets: list[tuple[str, float]] = []
            total = 0.0
            for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), slots, strict=False):
                total += count
                buckets.append((floatToGoString(bound), total))
            latency.add_metric((route, style), buckets, sum_value=slots[-1])
        yield latency


class _SignInStats:
    """The sign-in limiter's counts (:class:`~gateway.auth.FailureLimiter` keeps them as
    plain numbers), turned into families on scrape: refused sign-ins by reason, secret
    checks admitted, and checks running or waiting for a slot."""

    def __init__(self) -> None:
        self.limiter: FailureLimiter | None = None  # set on each scrape: it is made at start-up

    def collect(self) -> Iterator[Metric]:
        # "is not None", never truth: a limiter's truth is its len(), which is 0 once no
        # window is held, and across workers a walk of the whole shared table
        limiter = self.limiter
        refused = CounterMetricFamily("taskgate_signin_refused",
                                      "Sign-ins refused with 429: locked (the address's failures plus its checks "
                                      "under way reached auth.max_failures) or busy (no check slot freed in time)",
                                      labels=("reason",))
        for reason in REFUSAL_REASONS:
            refused.add_metric((reason,), limiter.refused[reason] if limiter is not None else 0)
        yield refused
        yield CounterMetricFamily("taskgate_signin_checks", "Password and client-secret checks admitted",
                                  value=limiter.checks if limiter is not None else 0)
        checks = GaugeMetricFamily("taskgate_signin_checks_in_flight",
                                   "Password and client-secret checks when scraped: running, or waiting for one "
                                   "of the auth.max_concurrent_checks slots", labels=("state",))
        checks.add_metric(("running",), limiter.in_flight if limiter is not None else 0)
        checks.add_metric(("waiting",), limiter.waiting if limiter is not None else 0)
        yield checks


class _EventStats:
    """The change feed's counts (:class:`~gateway.events.feed.Feed` keeps them as plain
    numbers), turned into families on scrape: streams open, events sent, clients cut off."""

    def __init__(self) -> None:
        self.feed: Feed | None = None  # set on each scrape: it is made with the store

    def collect(self) -> Iterator[Metric]:
        feed = self.feed
        yield GaugeMetricFamily("taskgate_events_streams", "GET /events streams open when scraped",
                                value=feed.subscribers if feed else 0)
        yield CounterMetricFamily("taskgate_events_sent", "Events written to GET /events streams",
                                  value=feed.sent if feed else 0)
        yield CounterMetricFamily("taskgate_events_cut_off", "GET /events streams ended because their client fell "
                                  "further behind than events.buffer_events", value=feed.cut_off if feed else 0)


class _TurnStats:
    """Requests running and waiting for one of their user's turns
    (:class:`~gateway.turns.Turns` counts them), turned into the family *name* on scrape."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self.turns: Turns | None = None  # set as the application is made

    def collect(self) -> Iterator[Metric]:
        turns = self.turns
        family = GaugeMetricFamily(self.name, self.documentation, labels=("state",))
        family.add_metric(("running",), turns.running if turns is not None else 0)
        family.add_metric(("waiting",), turns.waiting if turns is not None else 0)
        yield family


class Metrics:
    """The registry of one application and the updates the rest of taskgate makes."""

    def __init__(self, styles: Sequence[str]) -> None:
        self.styles = tuple(styles)
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self._requests = _RequestStats()
        registry.register(self._requests)
        self._signin = _SignInStats()
        registry.register(self._signin)
        self._events = _EventStats()
        registry.register(self._events)
        #: the lists' and the large writes' turns, once the application has them (see :mod:`gateway.turns`)
        self.list_turns = _TurnStats("taskgate_list_turns", "Lists and searches when scraped: running, or waiting "
                                     "for one of their user's server.max_lists_per_user turns")
        self.write_turns = _TurnStats("taskgate_write_turns", "Writes with a body over 64 KiB (or of unknown length) "
                                      "when scraped: running, or waiting for one of their user's "
                                      "server.max_large_writes_per_user turns")
        registry.register(self.list_turns)
        registry.register(self.write_turns)
        #: ``observe_request(route, style, status, seconds)``: the request middleware's update
        self.observe_request = self._requests.observe
        self.commit_latency = Histogram("taskgate_store_commit_duration_seconds",
                                        "Time of one group commit of task writes (BEGIN IMMEDIATE to COMMIT)",
                                        buckets=_LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("taskgate_store_batch_size", "Task writes committed together in one transaction",
                                    buckets=_BATCH_BUCKETS, registry=registry)
        self.audit_events = Counter("taskgate_audit_events", "Audit rows written, by style and action",
                                    ("style", "action"), registry=registry)
        self._audit_children: dict[tuple[str, str], Any] = {}
        self.tasks = Gauge("taskgate_tasks", "Tasks stored, by style (counted when scraped)", ("style",),
                           registry=registry)
        self.in_progress = Gauge("taskgate_http_requests_in_progress",
                                 "Requests being handled when scraped (this scrape included)", registry=registry)
        self.singletons = Gauge("taskgate_singletons", "Processes doing work that runs once per service, by work "
                                "(each is 1 when the service is well)", ("name",), registry=registry)
        #: the other workers' numbers, with ``serve --workers`` (see :mod:`gateway.metrics_shared`)
        self.shared: SharedMetrics | None = None

    def observe_batch(self, size: int, seconds: float) -> None:
        """The store's batch listener."""
        self.batch_size.observe(size)
        self.commit_latency.observe(seconds)

    def count_changes(self, changes: Sequence[Change]) -> None:
        """The store's commit listener."""
        for c in changes:
            child = self._audit_children.get((c.style, c.action))
            if child is None:  # labels() looks its child up under a lock each time: once per pair
                child = self._audit_children[(c.style, c.action)] = self.audit_events.labels(c.style, c.action)
            child.inc()

    def render(self, counts: dict[str, int], in_progress: int, limiter: FailureLimiter | None = None,
               feed: Feed | None = None) -> bytes:
        self._signin.limiter = limiter
        self._events.feed = feed
        for style in {*self.styles, *counts}:
            self.tasks.labels(style).set(counts.get(style, 0))
        self.in_progress.set(in_progress)
        if self.shared is None:
            return generate_latest(self.registry)
        return generate_latest(_Families(self.shared.merged(self.registry.collect())))

    def publish(self, in_progress: int, limiter: FailureLimiter | None) -> None:
        """This worker's numbers, for the other workers' scrapes."""
        if self.shared is not None:
            self._signin.limiter = limiter
            self.in_progress.set(in_progress)
            self.shared.publish(self.registry.collect())


class _Families:
    """What ``generate_latest`` reads: families already collected."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


METRICS = web.AppKey("metrics", Metrics)


@public
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers HTTP. Says nothing about the database."""
    return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _schema_wanted(store: object) -> int:
    """The schema version this taskgate's store of *store*'s backend migrates to (each
    backend has its own migrations; SQLite's when the store does not say)."""
    return int(getattr(store, "SCHEMA_VERSION", SCHEMA_VERSION))


def low_space(folder: str, min_free_mib: int) -> str | None:
    """Why the file system holding *folder* has too little room for writes, or None (one
    ``statvfs``; *min_free_mib* 0 checks nothing). Space an unprivileged process may use
    counts: the blocks kept for root are no room for taskgate."""
    if min_free_mib <= 0:
        return None
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        return f"cannot check the free space of the database's folder: {exc.strerror or exc}"
    free_mib = st.f_bavail * st.f_frsize / (1024 * 1024)
    if free_mib < min_free_mib:
        return f"{free_mib:.0f} MiB free beside the database, below storage.min_free_mib ({min_free_mib} MiB)"
    return None


@public
async def readyz(request: web.Request) -> web.Response:
    """Ready: not shutting down, the schema is current, the database's file system has
    ``storage.min_free_mib`` free, and a write goes through the store's write path (the
    store refuses that probe while its file is gone or damaged or its last commit failed).

    Nobody signs in to ask, so a 503 says why in a few words only (``low disk space``,
    ``database file replaced``…): the detail (SQLite's words, free MiB, versions) may name
    the file system and goes to the log, as a warning each time it changes."""
    store = request.app[STORE]
    config = request.config_dict[CONFIG]
    summary = detail = None
    try:
        if request.app[TRAFFIC].draining:
            summary = detail = "taskgate is shutting down"
        elif config.storage_url is None and \
                (detail := low_space(str(config.db_path.parent), config.storage.min_free_mib)) is not None:
            summary = "low disk space"  # a PostgreSQL server's disk is its own to watch
        elif (version := await store.schema_version()) != (wanted := _schema_wanted(store)):
            summary = "database schema mismatch"
            detail = f"database schema {version}, this taskgate needs {wanted}"
        else:
            await asyncio.wait_for(store.probe_write(), READY_TIMEOUT)
    except TimeoutError:
        summary, detail = "database busy", f"the database did not take a write within {READY_TIMEOUT:g} s"
    except errors.ServiceUnavailable as exc:
        summary, detail = exc.summary, exc.message
    except errors.TaskgateError as exc:
        summary, detail = "database not writable", exc.message
    except Exception as exc:  # the database itself failed: not ready, and say why in the log
        summary, detail = "database error", f"{type(exc).__name__}: {exc}"
    last = request.app[_UNREADY]
    if detail != last[0]:
        last[0] = detail
        if summary is not None:
            logger.warning("readyz.unready", reason=summary, detail=detail)
    if summary is not None:
        return json_response({"status": "unavailable", "reason": summary}, status=503,
                             headers={"Cache-Control": "no-store"})
    return json_response({"status": "ready", "schema": _schema_wanted(store)}, headers={"Cache-Control": "no-store"})


def _metrics_handler(config: MetricsConfig):
    token = config.token.encode()

    @public
    async def metrics(request: web.Request) -> web.Response:
        if config.expose == "loopback":
            try:
                local = ipaddress.ip_address(request.remote or "").is_loopback
            except ValueError:
                local = False
            if not local:
                raise errors.Forbidden("metrics are served to loopback clients only")
        else:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            offered = given.strip().encode("utf-8", "surrogatepass")
            if scheme.lower() != "bearer" or not hmac.compare_digest(offered, token):
                raise errors.Unauthorized("metrics need the bearer token of metrics.token",
                                          headers={"WWW-Authenticate": 'Bearer realm="taskgate metrics"'})
        counts = await request.app[STORE].count_by_style()
        authenticator = request.config_dict.get(AUTHENTICATOR)
        body = request.app[METRICS].render(counts, request.app[TRAFFIC].active,
                                           authenticator.limiter if authenticator is not None else None,
                                           request.app.get(FEED))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})

    return metrics


async def _publishing(app: web.Application) -> AsyncIterator[None]:
    """A worker of ``serve --workers`` writes its numbers every PUBLISH_SECONDS and as it stops."""
    metrics = app[METRICS]

    def publish() -> None:
        authenticator = app.get(AUTHENTICATOR)
        try:
            metrics.publish(app[TRAFFIC].active, authenticator.limiter if authenticator is not None else None)
        except OSError:  # the folder went with a supervisor that stopped; the numbers are this worker's alone
            pass

    async def loop() -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            publish()

    task = asyncio.get_running_loop().create_task(loop(), name="metrics-publish")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        publish()


def setup(app: web.Application, config: MetricsConfig) -> None:
    """The three routes (``/metrics`` only when exposed), named ``taskgate:…``; with a
    folder shared with other workers, the numbers of the whole service."""
    folder = os.environ.get(SHARED_DIR_ENV)
    if folder and config.expose != "off":
        app[METRICS].shared = SharedMetrics(folder)
        app.cleanup_ctx.append(_publishing)
    app[_UNREADY] = [None]
    app.router.add_get("/healthz", healthz, name="taskgate:healthz")
    app.router.add_get("/readyz", readyz, name="taskgate:readyz")
    if config.expose != "off":
        app.router.add_get("/metrics", _metrics_handler(config), name="taskgate:metrics")
