"""Seeding: fixtures written in each vendor's own document shape, loaded into a store at
start (``taskgate serve --seed DIR``) or into a namespace (``POST …/seed``).

A seed is ``{style: [document, …]}``; each document is what ``taskgate import`` takes for
its style (a SailPoint TaskStatus, a SuperOffice BatchTaskInfo, a webMethods
``{"TaskInfo", "TaskData"}``), made canonical by the style's ``import_task``. Every document
is checked before any is stored, and each is created or replaced. A seed folder holds one
folder per style (``sailpoint/``, ``superoffice/``, ``webmethods/``) of ``*.json`` files,
each a document or a list of them, read in name order. It must not answer HTTP or hold SQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from gateway import errors
from gateway.model import Store

__all__ = ["seed", "read_seed_dir"]


async def seed(store: Store, styles: Iterable[ModuleType], documents: Any, now: str, rid: str) -> dict[str, int]:
    """Load ``{style: [document, …]}`` into *store*; how many of each style. BadRequest,
    naming the document, before anything is stored."""
    by_name = {style.STYLE: style for style in styles}
    if not isinstance(documents, dict) or set(documents) - set(by_name):
        raise errors.BadRequest(f"seed: an object of style → list of documents; styles: {sorted(by_name)}")
    loaded: list[tuple[str, str, dict[str, Any]]] = []
    for name, docs in documents.items():
        if not isinstance(docs, list):
            raise errors.BadRequest(f"seed {name}: a list of documents")
        for number, doc in enumerate(docs):
            try:
                task_id, stored = by_name[name].import_task(doc, now)
            except errors.TaskgateError as exc:
                raise errors.BadRequest(f"seed {name}[{number}]: {exc.message}") from None
            loaded.append((name, task_id, stored))
    counts = dict.fromkeys(documents, 0)
    for name, task_id, stored in loaded:
        await store.put(name, task_id, stored, actor="seed", request_id=rid)
        counts[name] += 1
    return counts


def read_seed_dir(folder: Path, styles: Iterable[str]) -> dict[str, list[Any]]:
    """``{style: [document, …]}`` from *folder*/<style>/*.json. ValueError, naming the file,
    for a folder that is missing or a file that is not JSON."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    out: dict[str, list[Any]] = {}
    for style in styles:
        for path in sorted((folder / style).glob("*.json")):
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise ValueError(f"{path}: {exc}") from None
            out.setdefault(style, []).extend(value if isinstance(value, list) else [value])
    return out
