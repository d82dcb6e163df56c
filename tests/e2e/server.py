"""A real ``taskgate serve`` process on a free loopback port, on a temporary database, and
the HTTP helpers the end-to-end suites share (standard library, and aiohttp for load)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Server", "running", "Reply", "http", "session", "call", "decoded", "version"]


class Server:
    """Start, kill and restart one taskgate process; the database outlives restarts."""

    def __init__(self, workdir: Path, *, synchronous: str = "FULL", config: str = "",
                 env: dict[str, str] | None = None,
                 command: tuple[str, ...] = (sys.executable, "-m", "gateway"), workers: int = 1,
                 start_timeout: float = 30) -> None:
        """*config*: the text of a config.toml to run with (written into *workdir*);
        *env*: extra ``TASKGATE_*`` settings; *command*: how to run taskgate
        (tests/e2e/test_pyz.py runs the single-file build); *workers*: ``serve --workers``
        (above 1, a supervisor and that many worker processes); *start_timeout*: seconds
        until it must say it is listening."""
        self.command = command
        self.start_timeout = start_timeout
        self.workers = workers
        self.workdir = workdir
        self.config = config
        self.env = dict(env or {})
        self.db = workdir / "taskgate.db"
        self.log = workdir / "server.log"
        self.synchronous = synchronous
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.admin_token: str | None = None

    def start(self, *, allow_new: bool | None = None) -> Server:
        """Start serving; *allow_new*: pass ``--allow-new`` (None: only when the database
        does not exist yet, the first start in a fresh folder)."""
        if allow_new is None:
            allow_new = not self.db.exists()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
        env["TASKGATE_STORAGE_SYNCHRONOUS"] = self.synchronous
        if self.config:
            (self.workdir / "config.toml").write_text(self.config)
        env.update(self.env)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [*self.command, "--db", str(self.db), "serve", "--host", "127.0.0.1", "--port", "0",
                 *(["--allow-new"] if allow_new else []),
                 *(["--workers", str(self.workers)] if self.workers != 1 else [])],
                cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        deadline = time.monotonic() + self.start_timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"taskgate exited early:\n{self.log.read_text()}")
            if line.startswith("  tg_"):
                self.admin_token = line.strip()
            match = re.match(r"taskgate listening on (http://127\.0\.0\.1:\d+|unix:\S+)", line)
            if match:
                self.base_url = match.group(1)
                return self
        self.proc.kill()  # not left running for the rest of the session
        self.proc.wait()
        raise RuntimeError(f"taskgate did not start within {self.start_timeout:g} s:\n{self.log.read_text()}")

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run a ``taskgate`` command on the same database; returns its standard output."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
        done = subprocess.run([sys.executable, "-m", "gateway", "--db", str(self.db), *args], cwd=self.workdir,
                              env=env, input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def kill(self) -> None:
        """SIGKILL; with workers, the supervisor's, and they die with it (returns once they are gone)."""
        assert self.proc is not None
        workers = self.worker_pids().values() if self.workers != 1 else ()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        for pid in workers:
            while _alive(pid):
                assert time.monotonic() < deadline, f"worker {pid} outlived its supervisor"
                time.sleep(0.01)
        self._close()

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid of the worker last started in that slot (``serve --workers``)."""
        return {e["worker"]: e["pid"] for e in self.events() if e.get("event") == "worker.started"}

    def events(self) -> list[dict[str, Any]]:
        """The server's JSON log events so far. Lines are split on "\\n" only: a line is
        UTF-8 JSON, in which U+2028 or U+0085 may stand unescaped. A line still being
        written, or one that is not JSON, is skipped."""
        found = []
        for line in self.log.read_text(encoding="utf-8").split("\n"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                found.append(event)
        return found

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()
        return self.proc.returncode

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def _alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, dead and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@contextmanager
def running(workdir: Path) -> Iterator[Server]:
    """A started ``Server``, stopped afterwards; a clean SIGTERM exit is part of the test."""
    server = Server(workdir)
    try:
        yield server.start()
    finally:
        code = server.stop()
    assert code == 0, server.log.read_text()


class Reply:
    """A plain HTTP answer: status, headers and the raw body."""

    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw

    @property
    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json; charset=utf-8", self.headers["Content-Type"]
        return json.loads(self.raw)


def http(method: str, url: str, authorization: str | None = None, body: Any = None, *,
         headers: dict[str, str] | None = None, data: bytes | None = None) -> Reply:
    """One request with the standard library, as a client outside the project would send it."""
    hdrs = {"Accept": "application/json"}
    if authorization is not None:
        hdrs["Authorization"] = authorization
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read())


@contextlib.asynccontextmanager
async def session(server: Server, token: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session on *server* as its admin (or *token*), with no connection cap,
    so that hundreds of requests really are in flight together."""
    assert server.base_url.startswith("http://127.0.0.1:")
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
            base_url=server.base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=30),
            headers={"Authorization": f"Bearer {token or server.admin_token}"}) as client:
        yield client


def decoded(text: str) -> Any:
    """A response body as JSON when it parses, else the text itself (None when empty)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


async def call(client: aiohttp.ClientSession, method: str, path: str, *, body: Any = None,
               data: bytes | str | None = None, ctype: str = "application/json", rid: str | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """One request; returns (status, parsed JSON or None, headers). *body* is sent as JSON
    text under *ctype*, *data* as given."""
    hdrs = dict(headers or {})
    if rid is not None:
        hdrs["X-Request-ID"] = rid
    if body is not None:
        data = json.dumps(body)
    if data is not None:
        hdrs["Content-Type"] = ctype
    async with client.request(method, path, data=data, headers=hdrs) as resp:
        return resp.status, decoded(await resp.text()), resp.headers


def version(headers: Any) -> int:
    """The version an ``ETag: "<version>"`` header names."""
    tag = headers["ETag"]
    assert tag[0] == tag[-1] == '"', tag
    return int(tag[1:-1])
