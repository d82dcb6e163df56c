"""What a SailPoint PATCH costs in the pieces the issue requires and the ceiling skips,
each timed alone in this process: µs of CPU per request, the best of five runs.

``scripts/bench`` measures whole requests against the ceiling (a bare aiohttp handler);
its CPU column says what the ceiling spends on a whole request. This says how much of
taskgate's own budget its required pieces take before any HTTP is done: the patch and its
validation with marshmallow, the two log lines through structlog, and the store's write
(the audit diff, the stored text, SQLite's statements and the commit, every thread of
the process counted) in a batch of 32 on a real database file.

Usage: python scripts/bench_parts.py [--calls 20000] [--writes 6400] [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ceiling import TASK_STATUS  # noqa: E402  (scripts/ is on the path as this script's folder)

from gateway.apis.sailpoint import patch_mutation  # noqa: E402
from gateway.audit import configure_logging, flush_logs, log_changes, logger  # noqa: E402
from gateway.clock import now_iso  # noqa: E402
from gateway.config import LogConfig  # noqa: E402
from gateway.model import Change  # noqa: E402
from gateway.speedups import describe, loads, run  # noqa: E402
from gateway.store.sqlite import SQLiteStore  # noqa: E402

# the ceiling answers with this task; the patch below changes it from 41 to 42
TASK = {**TASK_STATUS, "progress": "step 41", "percentComplete": 41}
BODY = b'[{"op":"replace","path":"/percentComplete","value":42},{"op":"replace","path":"/progress","value":"step 42"}]'
CHANGE = Change(seq=7, at="2026-11-22T13:43:47.522Z", style="sailpoint", task_id=TASK["id"], version=3,
                action="updated", actor="sp_worker", request_id="24aeff560cb6a04200000000d8e8c083",
                patch=[{"op": "replace", "path": "/percentComplete", "value": 42}],
                undo=[{"op": "replace", "path": "/percentComplete", "value": 41}], client="127.0.0.1")


def per_call(fn: Callable[[], Any], calls: int = 20_000) -> float:
    """µs of CPU per call of *fn*, the best of five runs."""
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, time.process_time() - began)
    return best / calls * 1e6


async def store_write(path: Path, writes: int, synchronous: str) -> float:
    """µs of CPU (every thread) per update of a real store, 32 updates queued at once
    (asyncio's task for each, which a request has anyway, included)."""
    store = await SQLiteStore.open(path, synchronous=synchronous)
    ids = [f"{n:032x}" for n in range(32)]
    try:
        for task_id in ids:
            await store.create("sailpoint", task_id, {**TASK, "id": task_id}, actor="seed", request_id="r")

        def bump(old: dict[str, Any]) -> dict[str, Any]:
            return {**old, "percentComplete": old["percentComplete"] + 1, "modified": now_iso()}
        batches, best = max(1, writes // len(ids) // 5), float("inf")
        for _ in range(5):
            began = time.process_time()
            for _ in range(batches):
                await asyncio.gather(*(store.update("sailpoint", task_id, bump, actor="sp_worker", request_id="r")
                                       for task_id in ids))
            best = min(best, time.process_time() - began)
        return best / (batches * len(ids)) * 1e6
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per run of each piece but the store's")
    parser.add_argument("--writes", type=int, default=6400, help="store writes in all (five runs)")
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        configure_logging(LogConfig(file=str(Path(tmp) / "taskgate.log")))
        now = now_iso()
        parts = {
            "parse the JSON Patch body": per_call(lambda: loads(BODY), args.calls),
            "apply it and validate the replaced members (marshmallow)":
                per_call(lambda: patch_mutation(loads(BODY), now)(TASK), args.calls),
            "the request's log line (structlog)": per_call(lambda: logger.info(
                "request", method="PATCH", path="/task-status/v1/" + TASK["id"], status=200, ms=12.5,
                request_id=CHANGE.request_id, actor="sp_worker", remote="127.0.0.1"), args.calls),
            "the audit event's log line (structlog)": per_call(lambda: log_changes([CHANGE]), args.calls),
            f"the store's write, 32 a batch, synchronous={args.synchronous}":
                run(store_write(Path(tmp) / "parts.db", args.writes, args.synchronous)),
        }
        flush_logs()
    width = max(map(len, parts))
    print(f"taskgate's required parts of one SailPoint PATCH ({describe()}), µs of CPU:")
    for name, micros in parts.items():
        print(f"{name:<{width}}  {micros:7.1f} µs")
    print(f"{'sum':<{width}}  {sum(parts.values()):7.1f} µs CPU per PATCH, before HTTP, authentication and the answer")


if __name__ == "__main__":
    main()
