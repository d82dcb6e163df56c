"""Scripted progress: a task's percentage moves from 0 to 100 over a span of a namespace's
clock time, then the task completes with a chosen status, so that a polling client sees it
progress without anyone sleeping.

A :class:`Script` is data (which task, from when, for how long, to which status); what it
does to a document is one pure function per style (:data:`STEPS`), run by the store as
any write. :func:`Progress.catch_up` is called before every request of the namespace and
after the clock moves. It must not answer HTTP or hold SQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import errors
from gateway.clock import Clock, iso_utc
from gateway.model import Doc, Store
from schemas.sailpoint import COMPLETION_STATUSES
from schemas.superoffice import STATES

__all__ = ["Script", "Progress", "STEPS", "FINAL"]

ACTOR = "taskgate-testing"


def _sailpoint(doc: Doc, percent: int, status: str, now: str) -> Doc:
    out = {**doc, "percentComplete": percent}
    if percent >= 100:
        out.update(completionStatus=status, completed=now)
    return out


def _superoffice(doc: Doc, percent: int, status: str, now: str) -> Doc:
    state = status if percent >= 100 else ("Started" if doc.get("State") in ("New", "Aquired", "Unknown")
                                           else doc.get("State"))
    return {**doc, "ProgressPercent": percent, "State": state}


#: per style: the document at *percent*, completed with *status* at 100
STEPS: dict[str, Callable[[Doc, int, str, str], Doc]] = {"sailpoint": _sailpoint, "superoffice": _superoffice}
#: per style: the statuses a script may end with, and the default
FINAL: dict[str, tuple[tuple[str, ...], str]] = {
    "sailpoint": (COMPLETION_STATUSES, "SUCCESS"),
    "superoffice": (tuple(s for s in STATES if s in ("Succeeded", "Failed")), "Succeeded"),
}


@dataclass
class Script:
    style: str
    task_id: str
    start: datetime
    seconds: float
    status: str
    percent: int = -1  # the last percentage written

    def due(self, now: datetime) -> int:
        elapsed = (now - self.start).total_seconds()
        if elapsed >= self.seconds:
            return 100
        return max(0, min(99, math.floor(elapsed / self.seconds * 100)))

    def describe(self) -> dict[str, Any]:
        return {"style": self.style, "id": self.task_id, "start": iso_utc(self.start), "seconds": self.seconds,
                "status": self.status, "percent": self.percent}


class Progress:
    """The scripts of one namespace."""

    MAX_SCRIPTS = 1000

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], Script] = {}

    def add(self, raw: Any, clock: Clock) -> Script:
        if not isinstance(raw, dict):
            raise errors.BadRequest("a progress script is a JSON object")
        unknown = set(raw) - {"style", "id", "seconds", "status"}
        if unknown:
            raise errors.BadRequest(f"progress: unknown members {sorted(unknown)}")
        style, task_id, seconds = raw.get("style"), raw.get("id"), raw.get("seconds")
        if style not in STEPS:
            raise errors.BadRequest(f"progress style: one of {sorted(STEPS)}")
        if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or not str(task_id):
            raise errors.BadRequest("progress id: the task's id")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 10**7:
            raise errors.BadRequest("progress seconds: a number above 0 (clock seconds from 0 % to 100 %)")
        allowed, default = FINAL[style]
        status = raw.get("status", default)
        if status not in allowed:
            raise errors.BadRequest(f"progress status for {style}: one of {list(allowed)}")
        if len(self.scripts) >= self.MAX_SCRIPTS:
            raise errors.Conflict(f"a namespace holds at most {self.MAX_SCRIPTS} progress scripts")
        script = Script(style, str(task_id), clock.now(), float(seconds), status)
        self.scripts[(script.style, script.task_id)] = script
        return script

    async def catch_up(self, store: Store, clock: Clock, request_id: str) -> int:
        """Write each script's percentage at the clock's time, where it moved; finished
        scripts and those whose task is gone end. How many tasks changed."""
        if not self.scripts:
            return 0
        now = clock.now()
        stamp = iso_utc(now)
        changed = 0
        for key, script in list(self.scripts.items()):
            percent = script.due(now)
            if percent == script.percent:
                continue
            step = STEPS[script.style]

            def mutate(old: Doc | None, percent: int = percent, script: Script = script,
                       step: Callable[[Doc, int, str, str], Doc] = step) -> Doc | None:
                if old is None:
                    raise errors.NotFound(f"task {script.task_id!r} does not exist")
                return step(old, percent, script.status, stamp)
            try:
                await store.update(script.style, script.task_id, mutate, actor=ACTOR, request_id=request_id)
            except errors.NotFound:
                del self.scripts[key]
                continue
            script.percent = percent
            changed += 1
            if percent >= 100:
                del self.scripts[key]
        return changed
