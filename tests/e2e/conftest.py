"""Fixtures that start real ``taskgate serve`` processes (see tests/e2e/server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import Server, running


@pytest.fixture(name="server")
def _server(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="fresh_server")
def _fresh_server(tmp_path: Path):
    """A new database for one test, stopped with SIGTERM and checked to exit cleanly."""
    workdir = tmp_path / "server"
    workdir.mkdir()
    with running(workdir) as server:
        yield server
