"""The single-file build: ``scripts/build-pyz`` makes ``taskgate.pyz``, which serves all three
styles when run by a Python that has none of taskgate's dependencies.

The pyz is built into a temporary folder (pip's own download cache makes rebuilds quick)
and run with ``-I`` by a bare virtual environment made from the base interpreter, without
pip and without site packages: the only place aiohttp and the rest can come from is the
pyz itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import Server, http

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WM_TYPE = "26629648-BF99-D8E1-BDC6-AD91EC9AE268"


@pytest.fixture(name="pyz", scope="module")
def _pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "taskgate.pyz"
    done = subprocess.run([str(ROOT / "scripts" / "build-pyz"), str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.is_file()
    return out


@pytest.fixture(name="bare_python", scope="module")
def _bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    missing = subprocess.run([str(python), "-I", "-c", "import aiohttp"], capture_output=True, text=True)
    assert missing.returncode == 1 and "No module named 'aiohttp'" in missing.stderr
    return python


def test_the_pyz_serves_all_three_styles(pyz: Path, bare_python: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SHIV_ROOT", str(tmp_path / "shiv"))  # where shiv unpacks its dependencies
    work = tmp_path / "run"
    work.mkdir()
    # the first start unpacks the bundled dependencies into SHIV_ROOT: slow on a busy machine
    server = Server(work, command=(str(bare_python), "-I", str(pyz)), start_timeout=120).start()
    try:
        auth, base = f"Bearer {server.admin_token}", server.base_url
        r = http("GET", f"{base}/healthz")
        assert (r.status, r.json) == (200, {"status": "ok"})

        # SailPoint: PATCH with JSON Patch
        sp = "00eebcf881994e419d72e757fd30dc0e"
        r = http("POST", f"{base}/task-status/v1", auth, {"id": sp, "type": "QUARTZ", "uniqueName": "Aggregation"})
        assert r.status == 201, r.raw
        created = r.json
        r = http("PATCH", f"{base}/task-status/v1/{sp}", auth, headers={"Content-Type": "application/json-patch+json"},
                 data=json.dumps([{"op": "replace", "path": "/completionStatus", "value": "Error"},
                                  {"op": "replace", "path": "/completed",
                                   "value": "2024-05-17T19:33:16.470Z"}]).encode())
        assert (r.status, r.headers["ETag"]) == (200, '"2"'), r.raw
        assert r.json == {**created, "completionStatus": "ERROR", "completed": "2024-05-17T19:33:16.470Z",
                          "modified": r.json["modified"]}
        assert r.json["modified"] >= created["modified"]

        # SuperOffice: PUT of BatchTaskInfo members
        r = http("POST", f"{base}/api/v1/BatchTask", auth, {"Name": "Nightly export", "State": "Started"})
        assert (r.status, r.json) == (200, 1), r.raw
        before = http("GET", f"{base}/api/v1/BatchTask/1", auth).json
        assert (before["Id"], before["Name"], before["State"], before["Response"]) == (
            1, "Nightly export", "Started", "")
        r = http("PUT", f"{base}/api/v1/BatchTask/1", auth, {"State": "Failed", "Response": "disk full"})
        assert (r.status, r.headers["ETag"]) == (200, '"2"'), r.raw
        assert r.json == {**before, "State": "Failed", "Response": "disk full"}

        # webMethods: PUT merges TaskInfo, replaces TaskData
        r = http("POST", f"{base}/rest/pub/opentask", auth,
                 {"taskTypeID": WM_TYPE, "taskQueueInfo": {"name": "Approve order 42"}, "taskData": {"Order": "42"}})
        assert (r.status, r.json) == (200, {"taskID": "1"}), r.raw
        before = http("GET", f"{base}/rest/pub/opentask/1?includeTaskData=true", auth).json
        assert (before["TaskInfo"]["status"], before["TaskData"]) == ("active", {"Order": "42"})
        r = http("PUT", f"{base}/rest/pub/opentask/1", auth,
                 {"TaskInfo": {"status": "completed"}, "TaskData": {"Order": "42", "approved": "true"}})
        assert (r.status, r.json, r.headers["ETag"]) == (200, {}, '"2"')
        after = http("GET", f"{base}/rest/pub/opentask/1?includeTaskData=true", auth).json
        assert after == {"TaskInfo": {**before["TaskInfo"], "status": "completed", "taskVersionNumber": 2,
                                      "lastModifiedDate": after["TaskInfo"]["lastModifiedDate"]},
                         "TaskData": {"Order": "42", "approved": "true"}}

        # the dashboard: its templates and vendored files are in the package
        r = http("GET", f"{base}/ui/login", headers={"Accept": "text/html"})
        assert r.status == 200 and b'<form class="signin"' in r.raw, r.raw[:200]
        r = http("GET", f"{base}/ui/static/htmx-2.0.11.min.js")
        assert (r.status, r.headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
        assert r.raw == (ROOT / "gateway/ui/static/vendor/htmx-2.0.11.min.js").read_bytes()
    finally:
        assert server.stop() == 0, server.log.read_text()
    # it ran from the pyz's own unpacked dependencies, not from the project's .venv
    assert list((tmp_path / "shiv").glob("taskgate.pyz_*/site-packages/aiohttp/__init__.py"))
