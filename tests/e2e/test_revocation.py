"""Revocation across processes: two real ``taskgate serve`` processes on one database file,
and ``taskgate token revoke``/``user disable``/``user passwd`` run as a third. Each change
stops the credential in both servers within the stated bound (TOKEN_CACHE_SECONDS for
tokens; the next request for passwords). Polled with a deadline a little above the bound,
never a timing assertion."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from gateway.auth import secret_hash
from gateway.store.sqlite import TOKEN_CACHE_SECONDS
from tests.e2e.server import Server, http

_DEADLINE = TOKEN_CACHE_SECONDS + 3  # the bound, and room for a loaded machine


def _refused_within(servers: list[Server], authorization: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for server in servers:
        while http("GET", f"{server.base_url}/task-status/v1", authorization).status != 401:
            assert time.monotonic() < deadline, f"still accepted after {seconds} s by {server.base_url}"
            time.sleep(0.05)


def test_revocations_reach_every_running_server_within_the_bound(tmp_path: Path):
    first = Server(tmp_path).start()
    second = Server(tmp_path)
    try:
        second.start()
        servers = [first, second]
        first.cli("user", "add", "ann", "--password-stdin", stdin="pw-one\n")
        token = first.cli("token", "create", "ann").strip()
        other = first.cli("token", "create", "ann").strip()
        basic = "Basic " + base64.b64encode(b"ann:pw-one").decode()
        for server in servers:  # each server now remembers the token rows and the Basic success
            for authorization in (f"Bearer {token}", f"Bearer {other}", basic):
                assert http("GET", f"{server.base_url}/task-status/v1", authorization).status == 200

        out = first.cli("token", "revoke", secret_hash(token)[:12])
        assert out == f"revoked token {secret_hash(token)[:12]} of user 'ann' (cli)\n"
        _refused_within(servers, f"Bearer {token}", _DEADLINE)
        for server in servers:
            assert http("GET", f"{server.base_url}/task-status/v1", f"Bearer {other}").status == 200

        first.cli("user", "passwd", "ann", "--password-stdin", stdin="pw-two\n")
        _refused_within(servers, basic, _DEADLINE)
        new_basic = "Basic " + base64.b64encode(b"ann:pw-two").decode()
        for server in servers:
            assert http("GET", f"{server.base_url}/task-status/v1", new_basic).status == 200

        first.cli("user", "disable", "ann")
        _refused_within(servers, f"Bearer {other}", _DEADLINE)
        _refused_within(servers, new_basic, _DEADLINE)
    finally:
        codes = [second.stop(), first.stop()]
    assert codes == [0, 0], first.log.read_text()
