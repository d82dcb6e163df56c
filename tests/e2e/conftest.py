"""Fixtures that start real ``taskgate serve`` processes (see tests/e2e/server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import Server


@pytest.fixture(name="server")
def _server(tmp_path: Path):
    server = Server(tmp_path).start()
    yield server
    server.stop()
