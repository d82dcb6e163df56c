"""Two real ``taskgate serve`` processes on one PostgreSQL database (the test cluster), each
on the unix socket of the shipped deployment config, behind the shipped nginx config with
both in its upstream pool: the split burst of test-and-replace PATCHes counts exactly
through the proxy, kill -9 of one instance keeps the pool serving, and the webMethods
sweeper moves to the surviving instance."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.e2e.server import Server
from tests.e2e.test_deploy import PortTaken, deploy_config, free_port, nginx

pytestmark = pytest.mark.e2e
PATCH_JSON = "application/json-patch+json"
SWEEP_SECONDS = 0.2


def _instances(pg_url: str, tmp_path: Path) -> list[Server]:
    servers = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        server = Server(workdir, config=deploy_config(workdir),
                        env={"TASKGATE_WEBMETHODS_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS)})
        server.db = pg_url  # type: ignore[assignment]  # --db takes the URL as it is
        servers.append(server)
    return servers


@pytest.fixture(name="pair")
def _pair(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    servers = _instances(pg_url, tmp_path)
    try:
        servers[0].start(allow_new=True)
        servers[1].start(allow_new=False)
        servers[1].admin_token = servers[0].admin_token  # the bootstrap admin, made by the first start
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextmanager
def _pool(workdir: Path, servers: list[Server]) -> Iterator[str]:
    """nginx on a free port in front of *servers*; yields its base URL (under /taskgate)."""
    sockets = [s.workdir / "tg.sock" for s in servers]
    assert [s.base_url for s in servers] == [f"unix:{p}/taskgate" for p in sockets]
    with ExitStack() as stack:
        for attempt in range(3):
            port = free_port()
            (workdir / f"proxy-{attempt}").mkdir()
            try:
                stack.enter_context(nginx(workdir / f"proxy-{attempt}", sockets, port, connections=1024))
            except PortTaken:
                continue
            yield f"http://127.0.0.1:{port}/taskgate"
            return
        raise RuntimeError("nginx found no free port in 3 attempts")


def _client(base: str, token: str | None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=60),
                                 headers={"Authorization": f"Bearer {token}"})


async def _rows(url: str, statement: str, *args) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(statement, *args)]
    finally:
        await conn.close()


def _instance(resp: aiohttp.ClientResponse) -> str:
    return resp.headers["X-Request-ID"][:16]  # a process's own prefix


async def test_the_split_burst_counts_exactly_through_nginx_and_kill_9_keeps_the_pool_serving(
        pair, pg_url, tmp_path):
    with _pool(tmp_path, pair) as base:
        async with _client(base, pair[0].admin_token) as client:
            resp = await client.post(f"{base}/task-status/v1", json={"id": "t1", "type": "QUARTZ", "uniqueName": "u"})
            assert resp.status == 201, await resp.text()
            answered: set[str] = set()

            async def bump() -> int:
                resp = await client.get(f"{base}/task-status/v1/t1")
                seen = (await resp.json())["percentComplete"]
                resp = await client.patch(f"{base}/task-status/v1/t1", headers={"Content-Type": PATCH_JSON}, json=[
                    {"op": "test", "path": "/percentComplete", "value": seen},
                    {"op": "replace", "path": "/percentComplete", "value": seen + 1}])
                assert resp.status in (200, 409), await resp.text()
                answered.add(_instance(resp))
                return int(resp.status == 200)

            results = await asyncio.gather(*(bump() for _ in range(200)))
            final = (await (await client.get(f"{base}/task-status/v1/t1")).json())["percentComplete"]
            assert len(answered) == 2  # the pool spread the burst over both instances
            updated = await _rows(pg_url, "SELECT count(*) FROM audit WHERE task_id = 't1' AND action = 'updated'")
            assert sum(results) == final == updated[0][0] > 0

            # kill -9 of one instance mid-burst: what was acknowledged is stored, the pool keeps serving
            acked: list[str] = []
            statuses: list[int] = []

            async def create(task_id: str) -> None:
                resp = await client.post(f"{base}/task-status/v1", json={"id": task_id, "type": "QUARTZ",
                                                                         "uniqueName": "u"})
                statuses.append(resp.status)
                if resp.status == 201:
                    acked.append(task_id)

            burst = [asyncio.ensure_future(create(f"k{n}")) for n in range(300)]
            while len(acked) < 60:
                await asyncio.sleep(0.005)
            pair[0].kill()
            await asyncio.gather(*burst)
            # a request the dead instance had taken is a 502 (nginx does not resend a POST it sent);
            # one it had not is passed to the other
            assert set(statuses) <= {201, 502} and statuses.count(201) >= 150, statuses
            after = []
            for n in range(20):
                resp = await client.post(f"{base}/task-status/v1", json={"id": f"after{n}", "type": "QUARTZ",
                                                                         "uniqueName": "u"})
                after.append((resp.status, _instance(resp)))
            assert len({status for status, _ in after}) == 1 and after[0][0] == 201, after
            assert len({who for _, who in after}) == 1  # the survivor alone
    stored = {row[0] for row in await _rows(pg_url, "SELECT id FROM tasks")}
    assert set(acked) <= stored and {f"after{n}" for n in range(20)} <= stored
    audited = await _rows(pg_url, "SELECT count(*) FROM audit WHERE action = 'created'")
    assert audited[0][0] == len(stored)  # each stored task has its created row, none without


def _sweepers(servers: list[Server]) -> list[int]:
    return [n for n, s in enumerate(servers) for e in s.events() if e.get("event") == "webmethods.sweeper_started"]


async def test_the_webmethods_sweeper_moves_to_the_surviving_instance(pair, pg_url):
    """The instance holding the sweeper's lease is killed before a task's expireDate; the
    other takes the lease and sweeps the task when its date passes. The task is never read
    through the API meanwhile (a read catches a task up itself): the database is looked at."""
    deadline = time.monotonic() + 20
    while not _sweepers(pair):
        assert time.monotonic() < deadline, "no instance took the sweeper's lease"
        await asyncio.sleep(0.05)
    await asyncio.sleep(5 * SWEEP_SECONDS)  # a second sweeper would have started by now
    holder = _sweepers(pair)
    assert len(holder) == 1
    survivor = pair[1 - holder[0]]
    expires = datetime.now(UTC) + timedelta(seconds=3)
    body = {"taskTypeID": "T", "taskQueueInfo": {"expireDate": expires.isoformat(timespec="milliseconds")
                                                 .replace("+00:00", "Z")}}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(survivor.workdir / "tg.sock")),
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        resp = await client.post("http://localhost/taskgate/rest/pub/opentask", json=body,
                                 headers={"Authorization": f"Bearer {survivor.admin_token}"})
        created = await resp.json()
    assert resp.status == 200, created
    task_id = created["taskID"]
    pair[holder[0]].kill()
    assert datetime.now(UTC) < expires  # killed before the date: only the survivor can sweep it
    deadline = time.monotonic() + 20
    while _sweepers(pair) == holder:
        assert time.monotonic() < deadline, "the survivor did not take the sweeper's lease"
        await asyncio.sleep(0.05)
    assert _sweepers(pair) == [*holder, 1 - holder[0]]
    while True:
        rows = await _rows(pg_url, "SELECT actor, request_id FROM audit WHERE style = 'webmethods' AND task_id = $1 "
                                   "AND action = 'updated'", task_id)
        if rows:
            break
        assert time.monotonic() < deadline, "the survivor did not sweep the expired task"
        await asyncio.sleep(0.05)
    assert rows == [("system", "sweeper")]
    stored = await _rows(pg_url, "SELECT doc FROM tasks WHERE style = 'webmethods' AND id = $1", task_id)
    assert '"status":"expired"' in stored[0][0].replace(" ", "")
    assert datetime.now(UTC) >= expires
