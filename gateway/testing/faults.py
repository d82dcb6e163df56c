"""A test namespace's fault rules: which requests get an error status, added latency, or a
dropped connection, how often, and with what seeded chance.

A rule names what it matches (``style``, ``route`` and ``path`` globs, ``method``) and what
it does (``status`` with ``retry_after``, ``delay_ms`` with ``jitter_ms``, or ``drop``);
``count`` bounds how many times it fires and ``probability`` with ``seed`` decides each
time, from the rule's own :class:`random.Random`, so the same requests meet the same faults
when a failing test is run again. The first matching rule that fires decides. Rendering
the status in the vendor's shape, sleeping and dropping are the HTTP layer's
(:mod:`gateway.testing.api`); this module only decides, and does no I/O.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway import errors

__all__ = ["FaultRule", "Faults", "Decision", "MAX_RULES", "MAX_DELAY_MS", "STATUSES"]

#: most rules one namespace holds
MAX_RULES = 100
#: longest delay a rule may add, jitter included
MAX_DELAY_MS = 30_000
#: the error statuses a rule may answer with (each renders in the route's vendor shape)
STATUSES = (400, 401, 403, 404, 408, 409, 412, 429, 500, 503)
_KEYS = {"style", "route", "path", "method", "status", "retry_after", "delay_ms", "jitter_ms", "drop", "count",
         "probability", "seed"}
_ids = itertools.count(1)


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise errors.BadRequest(f"fault {key}: a text of 1 to 200 characters")
    return value


def _int(raw: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise errors.BadRequest(f"fault {key}: an integer from {lo} to {hi}")
    return value


@dataclass
class Decision:
    """What to do to one request: wait *delay* seconds, then answer *error* or drop it."""

    rule: int
    delay: float = 0.0
    error: errors.TaskgateError | None = None
    drop: bool = False

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "delay_ms": round(self.delay * 1000, 1),
                "status": self.error.status if self.error else None, "drop": self.drop}


@dataclass
class FaultRule:
    style: str | None = None
    route: str | None = None
    path: str | None = None
    method: str | None = None
    status: int | None = None
    retry_after: int | None = None
    delay_ms: int = 0
    jitter_ms: int = 0
    drop: bool = False
    count: int | None = None  # times left to fire; None: no limit
    probability: float = 1.0
    seed: int = 0
    id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def parse(cls, raw: Any) -> FaultRule:
        """A rule from its JSON object; BadRequest naming what is wrong."""
        if not isinstance(raw, dict):
            raise errors.BadRequest("a fault rule is a JSON object")
        unknown = set(raw) - _KEYS
        if unknown:
            raise errors.BadRequest(f"fault rule: unknown members {sorted(unknown)}; known: {sorted(_KEYS)}")
        status = _int(raw, "status", 400, 599)
        if status is not None and status not in STATUSES:
            raise errors.BadRequest(f"fault status: one of {list(STATUSES)}")
        drop = raw.get("drop", False)
        if not isinstance(drop, bool):
            raise errors.BadRequest("fault drop: true or false")
        delay, jitter = _int(raw, "delay_ms", 0, MAX_DELAY_MS) or 0, _int(raw, "jitter_ms", 0, MAX_DELAY_MS) or 0
        if delay + jitter > MAX_DELAY_MS:
            raise errors.BadRequest(f"fault delay_ms + jitter_ms: at most {MAX_DELAY_MS}")
        if status is None and not drop and not delay and not jitter:
            raise errors.BadRequest("a fault rule needs a status, a delay_ms or jitter_ms, or drop")
        if status is not None and drop:
            raise errors.BadRequest("a fault rule answers a status or drops the connection, not both")
        probability = raw.get("probability", 1.0)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise errors.BadRequest("fault probability: a number from 0 to 1")
        method = _text(raw, "method")
        return cls(style=_text(raw, "style"), route=_text(raw, "route"), path=_text(raw, "path"),
                   method=method.upper() if method else None, status=status,
                   retry_after=_int(raw, "retry_after", 0, 3600), delay_ms=delay, jitter_ms=jitter, drop=drop,
                   count=_int(raw, "count", 1, 1_000_000), probability=float(probability),
                   seed=_int(raw, "seed", -(2**63), 2**63 - 1) or 0)

    def matches(self, style: str, route: str, path: str, method: str) -> bool:
        return ((self.style is None or self.style == style)
                and (self.method is None or self.method == method.upper())
                and (self.route is None or fnmatch.fnmatchcase(route, self.route))
                and (self.path is None or fnmatch.fnmatchcase(path, self.path)))

    def decide(self) -> Decision | None:
        """Whether the rule fires on a request it matches (its count and chance), and how."""
        if self.count is not None and self.count <= 0:
            return None
        if self.probability < 1 and self._random.random() >= self.probability:
            return None
        if self.count is not None:
            self.count -= 1
        self.fired += 1
        delay = (self.delay_ms + (self._random.uniform(0, self.jitter_ms) if self.jitter_ms else 0)) / 1000
        error = None
        if self.status is not None:
            error = errors.from_status(self.status, f"fault injected by taskgate testing (rule {self.id})")
            if self.status in (429, 503):
                error.headers["Retry-After"] = str(self.retry_after if self.retry_after is not None else 1)
        return Decision(self.id, delay, error, self.drop)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "style": self.style, "route": self.route, "path": self.path, "method": self.method,
                "status": self.status, "retry_after": self.retry_after, "delay_ms": self.delay_ms,
                "jitter_ms": self.jitter_ms, "drop": self.drop, "count": self.count,
                "probability": self.probability, "seed": self.seed, "fired": self.fired}


class Faults:
    """The rules of one namespace, in the order they were added."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        if len(self.rules) >= MAX_RULES:
            raise errors.Conflict(f"a namespace holds at most {MAX_RULES} fault rules; delete some first")
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) < before

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, style: str, route: str, path: str, method: str) -> Decision | None:
        for rule in self.rules:
            if rule.matches(style, route, path, method) and (decision := rule.decide()) is not None:
                return decision
        return None
