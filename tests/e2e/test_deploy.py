"""The shipped deployment files, for real: nginx and Caddy (Debian's packages) on loopback
in front of ``taskgate serve`` on a unix socket under a base path, driven through each
API style from another loopback address that must arrive in the logs and audit rows;
the systemd unit checked by ``systemd-analyze verify``; the socket's mode, its removal
on exit, stale-socket removal and the refusal of a socket in use; the header limits that
aiohttp enforces itself."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
#: the address the test's client connects from: not the proxy's own 127.0.0.1
CLIENT_ADDRESS = "127.0.0.5"
SP_ID = "00eebcf881994e419d72e757fd30dc0e"
METRICS_TOKEN = "change-me-to-a-long-random-string"


def tool(name: str) -> str:
    """The path of a Debian-packaged tool; skip only where it cannot be installed."""
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                       None)
    if found:
        return found
    if os.geteuid() == 0:
        pytest.fail(f"{name} is not installed; scripts/test installs it from Debian's packages when run as root")
    pytest.skip(f"{name} is not installed and this user cannot install it (scripts/test does, as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """The proxy could not listen: the port free_port() found was taken before it bound it."""


def deploy_config(workdir: Path) -> str:
    """docs/deploy/config.toml with its socket and database moved into *workdir*."""
    text = (DEPLOY / "config.toml").read_text()
    for old, new in (("/run/taskgate/taskgate.sock", str(workdir / "tg.sock")),
                     ("/var/lib/taskgate/taskgate.db", str(workdir / "taskgate.db"))):
        assert old in text
        text = text.replace(old, new)
    return text


def listens(pid: int, port: int) -> bool:
    """Whether process *pid* holds a TCP socket listening on *port* (Linux's /proc): a
    connection alone could reach another process that took the port first."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    fds = Path(f"/proc/{pid}/fd")
    held = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            held.add(os.readlink(fd))
    return bool(inodes & held)


def wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text()
            failure = PortTaken if "address already in use" in said.lower() else RuntimeError
            raise failure(f"the proxy exited with {proc.returncode}:\n{said}")
        if listens(proc.pid, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the proxy did not listen within 20 s:\n{log.read_text()}")


@contextmanager
def process(args: list[str], log: Path, port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def nginx(workdir: Path, socket_path: Path | list[Path], port: int, *, connections: int = 64) -> Iterator[None]:
    """Debian's nginx with its own prefix, pid and logs, running docs/deploy/nginx.conf; more
    than one socket: one upstream ``server`` line each, as docs/scaling.md says to."""
    site = (DEPLOY / "nginx.conf").read_text()
    sockets = socket_path if isinstance(socket_path, list) else [socket_path]
    upstream = "".join(f"    server unix:{s};\n" for s in sockets)
    for old, new in (("    server unix:/run/taskgate/taskgate.sock;\n", upstream),
                     ("listen 80;", f"listen 127.0.0.1:{port};")):
        assert old in site
        site = site.replace(old, new)
    prefix = workdir / "nginx"
    prefix.mkdir()
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                              "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
        f"events {{ worker_connections {connections}; }}\n"
        f"http {{\n    access_log {prefix}/access.log;\n{temp}{site}\n}}\n")
    with process([tool("nginx"), "-p", str(prefix), "-c", str(prefix / "nginx.conf")], prefix / "out.log", port):
        yield


@contextmanager
def caddy(workdir: Path, socket_path: Path, port: int) -> Iterator[None]:
    """Debian's Caddy running docs/deploy/Caddyfile on loopback, without its admin API or TLS."""
    site = (DEPLOY / "Caddyfile").read_text()
    for old, new in (("unix//run/taskgate/taskgate.sock", f"unix/{socket_path}"),
                     ("tasks.example.com {", f"http://127.0.0.1:{port} {{")):
        assert old in site
        site = site.replace(old, new)
    home = workdir / "caddy"
    home.mkdir()
    (home / "Caddyfile").write_text("{\n\tadmin off\n\tauto_https off\n}\n\n" + site)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    with process([tool("caddy"), "run", "--config", str(home / "Caddyfile"), "--adapter", "caddyfile"],
                 home / "out.log", port, env):
        yield


@contextmanager
def on_a_free_port(proxy, workdir: Path, socket_path: Path, attempts: int = 3) -> Iterator[int]:
    """*proxy* (nginx or caddy) listening on a free port, which it yields. A proxy cannot be
    given port 0, and between free_port() and its bind another process may take the port
    (the other workers' servers and clients, when the suite runs in parallel): then it is
    started again, in a folder of its own, on another port."""
    with ExitStack() as stack:
        for attempt in range(attempts):
            port = free_port()
            home = workdir / f"proxy-{attempt}"
            home.mkdir()
            try:
                stack.enter_context(proxy(home, socket_path, port))
            except PortTaken:
                continue
            yield port
            return
        raise RuntimeError(f"the proxy found no free port in {attempts} attempts")


def call(port: int, method: str, path: str, token: str, body: Any = None,
         content_type: str = "application/json", headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """One request to the proxy from CLIENT_ADDRESS, as a client outside would send it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(CLIENT_ADDRESS, 0))
    try:
        hdrs = {"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        is_json = resp.headers.get("Content-Type", "").startswith("application/json")
        return resp.status, (json.loads(raw) if raw and is_json else raw), resp.headers
    finally:
        conn.close()


@pytest.mark.e2e
@pytest.mark.parametrize("proxy", [nginx, caddy], ids=["nginx", "caddy"])
def test_each_style_through_the_proxy_on_a_unix_socket(tmp_path: Path, proxy):
    workdir = tmp_path / "tg"
    workdir.mkdir()
    server = Server(workdir, config=deploy_config(workdir)).start()
    try:
        socket_path = workdir / "tg.sock"
        assert server.base_url == f"unix:{socket_path}/taskgate"
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o660
        token = server.admin_token
        assert token
        with on_a_free_port(proxy, tmp_path, socket_path) as port:
            base = "/taskgate"
            # a client's own X-Forwarded-For or Forwarded must not be believed: the proxy's view wins
            spoof = {"X-Forwarded-For": "198.51.100.1", "Forwarded": "for=198.51.100.2;proto=https"}
            steps = [
                ("POST", "/task-status/v1", {"id": SP_ID, "type": "QUARTZ", "uniqueName": "u"}, "application/json",
                 201),
                ("PATCH", f"/task-status/v1/{SP_ID}", [{"op": "replace", "path": "/completionStatus",
                                                        "value": "Error"}],
                 "application/json-patch+json", 200),
                ("POST", "/api/v1/BatchTask", {"Name": "n", "State": "Started"}, "application/json", 200),
                ("PUT", "/api/v1/BatchTask/1", {"State": "Failed", "Response": "disk full"}, "application/json", 200),
                ("POST", "/rest/pub/opentask", {"taskTypeID": "T"}, "application/json", 200),
                ("PUT", "/rest/pub/opentask/1", {"TaskData": {"n": 1}}, "application/json", 200),
            ]
            for method, path, body, ctype, want in steps:
                status, got, headers = call(port, method, base + path, token, body, ctype, headers=spoof)
                assert status == want, (method, path, got)
                assert "ETag" in headers or method == "POST", headers
            status, task, _ = call(port, "GET", f"{base}/task-status/v1/{SP_ID}", token)
            assert (status, task["completionStatus"]) == (200, "ERROR")
            status, listed, _ = call(port, "GET", f"{base}/api/v1/BatchTask?$select=State,Response", token)
            assert status == 200
            assert listed == {"odata.metadata": f"http://127.0.0.1:{port}/taskgate/api/v1/$metadata#BatchTask",
                              "odata.nextLink": None, "value": [{"State": "Failed", "Response": "disk full"}]}
            status, got, _ = call(port, "GET", f"{base}/rest/pub/opentask/1?includeTaskData=true", token)
            assert (status, got["TaskData"]) == (200, {"n": 1})
            assert call(port, "GET", f"{base}/healthz", "")[:2] == (200, {"status": "ok"})
            assert call(port, "GET", f"{base}/readyz", "")[0] == 200
            status, _, headers = call(port, "GET", f"{base}/metrics", METRICS_TOKEN)
            assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
            # errors under the prefix keep their style through the proxy
            status, got, _ = call(port, "GET", f"{base}/task-status/v1/{SP_ID}/nothing", token)
            assert status == 404
            assert got["messages"][0]["text"] == f"no resource at {base}/task-status/v1/{SP_ID}/nothing"
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert not socket_path.exists()  # removed on exit
    audit = [json.loads(line) for line in server.cli("audit").splitlines()]
    assert [(a["style"], a["action"], a["client"]) for a in reversed(audit)] == [
        (style, action, CLIENT_ADDRESS) for style in ("sailpoint", "superoffice", "webmethods")
        for action in ("created", "updated")]
    requests = [e for e in server.events() if e.get("event") == "request"]
    assert len(requests) == 13 and {r["remote"] for r in requests} == {CLIENT_ADDRESS}


@pytest.mark.e2e
def test_the_systemd_unit_verifies(tmp_path: Path):
    analyze = tool("systemd-analyze")
    unit = (DEPLOY / "taskgate.service").read_text()
    # verify needs ExecStart to exist: point it at this checkout's taskgate
    assert "ExecStart=/opt/taskgate/.venv/bin/taskgate serve" in unit
    unit = unit.replace("/opt/taskgate/.venv/bin/taskgate", str(Path(sys.executable).parent / "taskgate"))
    (tmp_path / "taskgate.service").write_text(unit)
    done = subprocess.run([analyze, "verify", str(tmp_path / "taskgate.service")], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "taskgate.service" in line]  # other units' noise (no running systemd) is not ours
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


@pytest.mark.e2e
def test_unix_socket_stale_removed_in_use_refused(tmp_path: Path):
    sock = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # left behind, as by a killed process
    config = '[server]\nunix_socket = "s.sock"\nunix_socket_mode = "600"\n'
    server = Server(tmp_path, config=config).start()
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(sock))
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
        conn.close()
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"status":"ok"}')
        second = subprocess.run([sys.executable, "-m", "gateway", "--db", str(tmp_path / "b.db"), "serve",
                                 "--allow-new"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                env={k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")})
        assert second.returncode == 2
        assert second.stderr.endswith(f"taskgate: invalid configuration: server.unix_socket: {str(sock)!r} "
                                      f"is in use by another process\n"), second.stderr
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert not sock.exists()
    sock.write_text("not a socket")
    refused = subprocess.run([sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")})
    assert refused.returncode == 2 and "exists and is not a socket" in refused.stderr
    assert sock.read_text() == "not a socket"


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.e2e
def test_header_limits_past_twice_the_setting_get_aiohttp_s_plain_400(tmp_path: Path):
    config = "[server]\nmax_headers = 10\nmax_header_bytes = 256\nmax_request_line = 300\n"
    server = Server(tmp_path, config=config).start()
    try:
        port = int(server.base_url.rsplit(":", 1)[1])
        path = f"/task-status/v1/{SP_ID}"

        def head(extra: str, target: str = path) -> bytes:
            return (f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.admin_token}\r\n"
                    f"Connection: close\r\n{extra}\r\n").encode()

        # within aiohttp's limits (twice the setting): the route's own shape
        answer = raw_request(port, head("".join(f"X-{i}: 1\r\n" for i in range(10))))
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["detailCode"] == "431 Request Header Fields Too Large"
        assert body["messages"][0]["text"] == "the request has 13 header fields; at most 10 are accepted"
        answer = raw_request(port, head(f"X-Long: {'y' * 300}\r\n"))
        assert answer.startswith(b"HTTP/1.1 431 ")
        # beyond them aiohttp answers before taskgate sees the request (it has not even kept the
        # path): a plain-text HTTP/1.0 400, and the connection is closed
        for extra, target, says in (("".join(f"X-{i}: 1\r\n" for i in range(20)), path, b"Too many headers received"),
                                    (f"X-Long: {'y' * 600}\r\n", path, b"Got more than 512 bytes"),
                                    ("", "/" + "a" * 400, b"Got more than 300 bytes")):
            answer = raw_request(port, head(extra, target))
            status_line, _, rest = answer.partition(b"\r\n")
            headers, _, body = rest.partition(b"\r\n\r\n")
            assert status_line == b"HTTP/1.0 400 Bad Request", answer[:300]
            assert b"Content-Type: text/plain; charset=utf-8" in headers.split(b"\r\n"), headers
            assert body.startswith(says), body
    finally:
        assert server.stop() == 0, server.log.read_text()
    # each refusal is one JSON line of taskgate's log, at info, without aiohttp's traceback
    lines = server.log.read_text().splitlines()
    assert all(line.startswith("{") for line in lines), lines
    refused = [{k: v for k, v in e.items() if k != "timestamp"} for e in server.events()
               if e["event"] == "http.request_refused"]
    assert [e.pop("reason")[:36] for e in refused] == ["Too many headers received",
                                                       "Got more than 512 bytes when reading",
                                                       "Got more than 300 bytes when reading"]
    assert refused == [{"event": "http.request_refused", "level": "info", "remote": "127.0.0.1", "status": 400}] * 3


def read_until(response: http.client.HTTPResponse, marker: bytes, seconds: float) -> bytes:
    """What the stream sends until *marker*, or AssertionError after *seconds*: a proxy that
    buffered the stream would hold the bytes back."""
    deadline = time.monotonic() + seconds
    got = b""
    while marker not in got:
        assert time.monotonic() < deadline, f"{marker!r} did not arrive within {seconds} s: {got!r}"
        chunk = response.read1(65536)
        assert chunk, f"the stream ended before {marker!r}: {got!r}"
        got += chunk
    return got


@pytest.mark.e2e
@pytest.mark.parametrize("proxy", [nginx, caddy], ids=["nginx", "caddy"])
def test_an_event_stream_through_the_proxy_is_not_buffered(tmp_path: Path, proxy):
    workdir = tmp_path / "tg"
    workdir.mkdir()
    server = Server(workdir, config=deploy_config(workdir)).start()
    try:
        token = server.admin_token
        assert token
        with on_a_free_port(proxy, tmp_path, workdir / "tg.sock") as port:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(CLIENT_ADDRESS, 0))
            try:
                conn.request("GET", "/taskgate/events", headers={"Authorization": f"Bearer {token}",
                                                                 "Accept": "text/event-stream"})
                resp = conn.getresponse()
                assert (resp.status, resp.headers["Content-Type"]) == (200, "text/event-stream; charset=utf-8")
                assert read_until(resp, b": taskgate events after 0\n\n", 3).startswith(b"retry: 2000\n")
                status, _, _ = call(port, "POST", "/taskgate/rest/pub/opentask", token, {"taskTypeID": "T"})
                assert status == 200
                # one small event, at once: neither proxy holds it back to fill a buffer
                got = read_until(resp, b"\n\n", 3)
                assert got.startswith(b'id: 1\ndata: {"id":1,'), got
                assert b'"style":"webmethods","task_id":"1","version":1,"action":"created"' in got
            finally:
                conn.close()
    finally:
        assert server.stop() == 0, server.log.read_text()
