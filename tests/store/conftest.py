"""The fixture of the store's tests: a fresh SQLite store on a temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.sqlite import SQLiteStore


@pytest.fixture(name="store")
async def _store(tmp_path: Path):
    store = await SQLiteStore.open(tmp_path / "t.db")
    yield store
    await store.close()
