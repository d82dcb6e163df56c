"""The service's metrics across worker processes: each worker's numbers in a shared folder,
added up on scrape.

With ``serve --workers N`` a scrape of ``/metrics`` reaches one worker, but must show the
whole service. Each worker writes what its registry holds to ``<folder>/<pid>.json``
every :data:`PUBLISH_SECONDS` (and as it stops), with one ``os.replace``, so that a
reader never meets half a file; the worker that answers a scrape adds the other workers'
files to its own live numbers. Counters and histograms of workers that ended stay in the
sum (a count never goes back when a worker is replaced); gauges count only workers that
are alive, and gauges read from the database (:data:`OWN_ONLY`) are this worker's alone.
What a worker counted in its last interval before it died is lost.

This is the approach of prometheus-client's multiprocess mode (a folder of per-process
files, added up at scrape) without its cost per update: the request counters stay plain
numbers in memory (see :mod:`gateway.metrics`), and a worker writes one small file a
second. Owns the folder's files; it must not hold SQL or HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric

__all__ = ["SharedMetrics", "PUBLISH_SECONDS", "OWN_ONLY"]

#: how often a worker writes its numbers for the others' scrapes
PUBLISH_SECONDS = 1.0
#: gauges every worker reads from the same database: taken from the scraped worker only
OWN_ONLY = frozenset({"taskgate_tasks"})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


class SharedMetrics:
    """One worker's view of the shared folder."""

    def __init__(self, folder: str | Path, pid: int | None = None) -> None:
        self.folder = Path(folder)
        self.pid = os.getpid() if pid is None else pid

    def publish(self, families: Iterable[Metric]) -> None:
        """Write this worker's numbers (one replace: readers see the old file or the new)."""
        data = [{"name": f.name, "type": f.type, "doc": f.documentation,
                 "samples": [[s.name, s.labels, s.value] for s in f.samples if not s.name.endswith("_created")]}
                for f in families]
        tmp = self.folder / f".{self.pid}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.folder / f"{self.pid}.json")

    def _others(self) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
        for path in self.folder.glob("*.json"):
            try:
                pid = int(path.stem)
            except ValueError:
                continue
            if pid == self.pid:
                continue
            with contextlib.suppress(OSError, ValueError):
                yield _alive(pid), json.loads(path.read_text(encoding="utf-8"))

    def merged(self, own: Iterable[Metric]) -> list[Metric]:
        """*own* families with every other worker's numbers added."""
        order: list[str] = []
        kinds: dict[str, tuple[str, str]] = {}
        sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        created: dict[str, list[Any]] = {}

        def add(name: str, kind: str, doc: str, samples: Iterable[tuple[str, dict[str, str], float]]) -> None:
            if name not in kinds:
                kinds[name] = (kind, doc)
                order.append(name)
                sums[name] = {}
            into = sums[name]
            for sample_name, labels, value in samples:
                key = (sample_name, _key(labels))
                into[key] = into.get(key, 0.0) + value

        for family in own:
            add(family.name, family.type, family.documentation,
                ((s.name, s.labels, s.value) for s in family.samples if not s.name.endswith("_created")))
            created[family.name] = [s for s in family.samples if s.name.endswith("_created")]
        for alive, families in self._others():
            for f in families:
                if f["name"] in OWN_ONLY or (f["type"] == "gauge" and not alive):
                    continue
                add(f["name"], f["type"], f["doc"], f["samples"])
        out = []
        for name in order:
            kind, doc = kinds[name]
            metric = Metric(name, doc, kind)
            for (sample_name, labels), value in sums[name].items():
                metric.add_sample(sample_name, dict(labels), value)
            for sample in created.get(name, ()):
                metric.add_sample(sample.name, sample.labels, sample.value)
            out.append(metric)
        return out
