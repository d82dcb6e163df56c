"""The pytest plugin (entry point ``pytest11: taskgate``): a real ``taskgate serve`` for the
session and a fresh namespace for each test.

* ``taskgate_server`` (session): a ``taskgate serve --testing`` process on a free loopback
  port with a temporary database, its admin token and an OAuth client. Under pytest-xdist
  the workers share one server: the first to need it starts it (under a file lock in the
  run's shared temporary folder), and the last to finish stops it.
* ``taskgate`` (per test): a namespace of its own on that server (:class:`Namespace`): each
  style's base URL, the credentials, and helpers for seed, journal, faults, clock,
  progress, checkpoints and export. It is deleted after the test (which resets it).

Nothing happens unless a test asks for one of the fixtures: loading the plugin starts no
process and imports only the standard library. Requests go over plain ``urllib``, as a
client outside taskgate would send them; the plugin must not import the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Server", "Namespace", "TaskgateError"]

_STATE = "taskgate-server.json"
_counter = itertools.count(1)


class TaskgateError(AssertionError):
    """A call to the test-control API that did not succeed: the status and the body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"taskgate answered {status}: {body}")
        self.status, self.body = status, body


def _call(method: str, url: str, token: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            raw = reply.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        raise TaskgateError(exc.code, json.loads(raw) if raw else None) from None
    return json.loads(raw) if raw else None


class Server:
    """A running ``taskgate serve --testing``: where it listens and how to sign in as admin."""

    def __init__(self, url: str, admin_token: str, client_id: str, client_secret: str, db: str) -> None:
        self.url, self.admin_token, self.client_id, self.client_secret, self.db = \
            url, admin_token, client_id, client_secret, db

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the ``/_taskgate/`` API (or any path) as the admin; the JSON answer."""
        return _call(method, self.url + path, self.admin_token, body)


def _start(folder: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``taskgate serve --testing`` on a fresh database in *folder*; its process and state."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "taskgate.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
    env["TASKGATE_STORAGE_SYNCHRONOUS"] = "NORMAL"  # a throwaway database
    env["TASKGATE_LOG_FILE"] = str(folder / "server.log")
    command = [sys.executable, "-m", "gateway", "--db", str(db)]
    proc = subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", "0", "--allow-new", "--testing"],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    token = url = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not url:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"taskgate serve exited early; see {folder / 'server.log'}")
        if line.startswith("  tg_"):
            token = line.strip()
        if match := re.match(r"taskgate listening on (http://\S+)", line):
            url = match.group(1)
    if not url:
        proc.kill()
        raise RuntimeError("taskgate serve did not start within 60 s")
    proc.stdout.close()
    secret = subprocess.run([*command, "oauth-client", "add", "taskgate-pytest", "--user", "admin"], cwd=folder,
                            env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    return proc, {"url": url, "admin_token": token, "client_id": "taskgate-pytest", "client_secret": secret,
                  "db": str(db), "pid": str(proc.pid), "users": "0"}


def _stop(pid: int, proc: subprocess.Popen[str] | None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if proc is not None:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # not our child: wait for it to be gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(name="taskgate_server", scope="session")
def _taskgate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``taskgate serve --testing`` for the session (shared by xdist's workers)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, state_file = shared / "taskgate-server", shared / _STATE
    folder.mkdir(parents=True, exist_ok=True)
    lock = shared / "taskgate-server.lock"
    proc = None
    with _locked(lock):
        if state_file.exists():
            state = json.loads(state_file.read_text())
        else:
            proc, state = _start(folder)
        state["users"] = str(int(state["users"]) + 1)
        state_file.write_text(json.dumps(state))
    try:
        yield Server(state["url"], state["admin_token"], state["client_id"], state["client_secret"], state["db"])
    finally:
        with _locked(lock):
            state = json.loads(state_file.read_text())
            users = int(state["users"]) - 1
            if users:
                state["users"] = str(users)
                state_file.write_text(json.dumps(state))
            else:
                state_file.unlink()
                _stop(int(state["pid"]), proc)


class Clock:
    """The namespace's clock: :meth:`freeze`, :meth:`set`, :meth:`advance`."""

    def __init__(self, namespace: Namespace) -> None:
        self._ns = namespace

    def _put(self, **body: Any) -> dict[str, Any]:
        return self._ns.call("PUT", "/clock", body)

    def now(self) -> str:
        return str(self._ns.call("GET", "/clock")["now"])

    def freeze(self, at: str | None = None) -> dict[str, Any]:
        return self._put(frozen=True, **({"now": at} if at else {}))

    def unfreeze(self) -> dict[str, Any]:
        return self._put(frozen=False)

    def set(self, at: str) -> dict[str, Any]:
        return self._put(now=at)

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0) -> dict[str, Any]:
        """Move on; webMethods' expiry and schedule rules and scripted progress follow at once."""
        return self._put(advance_seconds=seconds + 60 * minutes + 3600 * hours + 86400 * days)


class Namespace:
    """One test's namespace on the session's server."""

    def __init__(self, server: Server, name: str) -> None:
        self.server, self.name = server, name
        self.base_url = f"{server.url}/_ns/{name}"
        self.admin_token = server.admin_token
        self.client_id, self.client_secret = server.client_id, server.client_secret
        self.clock = Clock(self)

    # -- where each style is -----------------------------------------------------------------
    @property
    def sailpoint_url(self) -> str:
        """The base URL a SailPoint SDK takes (``…/task-status/v1``, ``…/v2025/task-status`` below it)."""
        return self.base_url

    @property
    def superoffice_url(self) -> str:
        """SuperOffice's WebAPI base (``…/api/v1``)."""
        return f"{self.base_url}/api/v1"

    @property
    def webmethods_url(self) -> str:
        """webMethods' REST base (``…/rest/pub``)."""
        return f"{self.base_url}/rest/pub"

    # -- the API -------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.server.call(method, f"/_taskgate/namespaces/{self.name}{path}", body)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """A call to a vendor route in this namespace (``path`` below the base URL), as admin."""
        return _call(method, self.base_url + path, token or self.admin_token, body)

    def seed(self, documents: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        """Load ``{style: [document, …]}``, each in its vendor's own shape; how many of each."""
        return dict(self.call("POST", "/seed", documents)["loaded"])

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """The journal's entries (oldest first) that match *filters* (method, path, route,
        style, status, request_id, fault)."""
        query = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()})
        return list(self.call("GET", "/journal" + (f"?{query}" if query else ""))["entries"])

    def count(self, **filters: Any) -> int:
        """How many journaled requests match *filters*: the verify call."""
        return int(self.call("POST", "/journal/count", filters)["count"])

    def fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule (style, route, path, method; status, retry_after, delay_ms,
        jitter_ms, drop; count, probability, seed)."""
        return dict(self.call("POST", "/faults", rule))

    def clear_faults(self) -> None:
        self.call("DELETE", "/faults")

    def progress(self, style: str, task_id: str, seconds: float, status: str | None = None) -> dict[str, Any]:
        """Move the task's percentage from 0 to 100 over *seconds* of the namespace's clock,
        then complete it with *status*."""
        body: dict[str, Any] = {"style": style, "id": task_id, "seconds": seconds}
        if status is not None:
            body["status"] = status
        return dict(self.call("POST", "/progress", body))

    def checkpoint(self) -> int:
        return int(self.call("POST", "/checkpoints")["checkpoint"])

    def restore(self, checkpoint: int) -> None:
        self.call("POST", f"/checkpoints/{checkpoint}/restore")

    def reset(self) -> None:
        self.call("POST", "/reset")

    def export(self, style: str | None = None) -> dict[str, Any]:
        return dict(self.call("GET", "/export" + (f"?style={style}" if style else "")))

    def task_at(self, style: str, task_id: str, seq: int | None = None) -> dict[str, Any]:
        quoted = urllib.parse.quote(task_id, safe="")
        return dict(self.call("GET", f"/tasks/{style}/{quoted}" + ("" if seq is None else f"?seq={seq}")))


@pytest.fixture(name="taskgate")
def _taskgate(taskgate_server: Server, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    """A fresh namespace for this test, deleted afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-.") or "test"
    name = f"{worker}-{os.getpid()}-{next(_counter)}-{test}"[:64].rstrip("-.")
    taskgate_server.call("PUT", f"/_taskgate/namespaces/{name}")
    try:
        yield Namespace(taskgate_server, name)
    finally:
        with contextlib.suppress(TaskgateError):
            taskgate_server.call("DELETE", f"/_taskgate/namespaces/{name}")
