"""The command line's data tools: JSON Lines of tasks read into the store (``taskgate
import``), and the progress bar that import, export and audit verify draw.

It reads and writes through the store and the styles' ``import_task`` only; it holds no
SQL and no rule of a style."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from gateway import errors
from gateway.app import STYLES
from gateway.clock import now_iso
from gateway.model import Store, Task

__all__ = ["import_lines", "progress", "not_a_file"]


def progress(total: int | None, unit: str, **options: Any) -> Any:
    """A progress bar on standard error when it is a terminal; otherwise one that draws nothing."""
    from tqdm import tqdm  # imported here: only import, export and audit verify draw one

    return tqdm(total=total, unit=unit, disable=not sys.stderr.isatty(), file=sys.stderr,
                dynamic_ncols=True, mininterval=0.25, **options)


def _size_of(source: TextIO) -> int | None:
    try:
        return os.fstat(source.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):  # no file descriptor behind it (a test's StringIO)
        return None


def not_a_file(path: Path) -> bool:
    """Whether a command that writes a database file at *path* would replace something that
    is not a regular file (a device such as /dev/null, a socket, a folder, a dangling
    symlink): backup and copy refuse it, whatever they are told."""
    return (path.exists() or path.is_symlink()) and not path.is_file()


async def import_lines(store: Store, source: TextIO) -> int:
    by_style = {s.STYLE: s for s in STYLES}
    failed = imported = 0
    pending: list[tuple[int, asyncio.Future[Task]]] = []
    # in bytes read when the size is known (a regular file), else in lines
    total = _size_of(source) if not getattr(source, "isatty", lambda: False)() else None
    bar = progress(total, "B" if total else " lines", unit_scale=bool(total), desc="import")

    async def flush() -> None:
        nonlocal failed, imported
        results = await asyncio.gather(*(put for _, put in pending), return_exceptions=True)
        for (lineno, _), result in zip(pending, results, strict=True):
            if isinstance(result, errors.TaskgateError):
                failed += 1
                bar.write(f"line {lineno}: {result.message}", file=sys.stderr)
            elif isinstance(result, BaseException):
                raise result
            else:
                imported += 1
        pending.clear()

    for lineno, line in enumerate(source, 1):
        bar.update(len(line.encode("utf-8", "surrogateescape")) if total else 1)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("style"), str) \
                    or record["style"] not in by_style or "task" not in record:
                raise errors.BadRequest(f'expected {{"style": one of {", ".join(by_style)}, "task": {{…}}}}')
            task_id, doc = by_style[record["style"]].import_task(record["task"], now_iso())
        except (ValueError, RecursionError, errors.TaskgateError) as exc:
            failed += 1
            bar.write(f"line {lineno}: {getattr(exc, 'message', exc)}", file=sys.stderr)  # above the bar
            continue
        pending.append((lineno, asyncio.ensure_future(
            store.put(record["style"], task_id, doc, actor="cli:import", request_id=f"import:{lineno}"))))
        if len(pending) >= 500:
            await flush()
    await flush()
    bar.close()
    print(f"imported {imported} task(s), {failed} failed", file=sys.stderr)
    return 1 if failed else 0
