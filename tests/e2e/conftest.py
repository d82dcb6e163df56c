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


@pytest.fixture(name="workers_server", params=[1, 2], ids=["1-worker", "2-workers"])
def _workers_server(request: pytest.FixtureRequest, tmp_path: Path):
    """A real serve, and one with two worker processes on the same file."""
    server = Server(tmp_path, workers=request.param).start()
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Each phase's report on the test item (``item.rep_call``), so that a fixture's teardown
    knows whether the test failed (the dashboard's browser tests then save a screenshot)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
