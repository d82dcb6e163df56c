"""Two real ``taskgate serve`` processes on two ports against one PostgreSQL database (the
test cluster): a burst split across both serializes exactly, kill -9 of one mid-burst loses
nothing it acknowledged while the other keeps serving, a token revoked behind both is
refused within the cache's bound, and failed sign-ins on both add up to one limit."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gateway.store.postgres.accounts import TOKEN_CACHE_SECONDS
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e
PATCH_JSON = "application/json-patch+json"


@pytest.fixture(name="pair")
def _pair(pg_url: str, tmp_path: Path):
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        server = Server(tmp_path / name)
        server.db = pg_url  # type: ignore[assignment]  # --db takes the URL as it is
        servers.append(server)
    first, second = servers
    first.start(allow_new=True)
    second.start(allow_new=False)
    second.admin_token = first.admin_token  # the bootstrap admin, made by the first start
    try:
        yield first, second
    finally:
        for server in servers:
            server.stop()


async def _rows(url: str, statement: str) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


def _client(server: Server) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=server.base_url, connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=30),
                                 headers={"Authorization": f"Bearer {server.admin_token}"})


async def test_200_test_and_replace_patches_split_across_two_instances_serialize_exactly(pair, pg_url):
    async with _client(pair[0]) as one, _client(pair[1]) as two:
        resp = await one.post("/task-status/v1", json={"id": "t1", "type": "QUARTZ", "uniqueName": "u"})
        assert resp.status == 201, await resp.text()

        async def bump(client: aiohttp.ClientSession) -> int:
            seen = (await (await client.get("/task-status/v1/t1")).json())["percentComplete"]
            resp = await client.patch("/task-status/v1/t1", headers={"Content-Type": PATCH_JSON}, json=[
                {"op": "test", "path": "/percentComplete", "value": seen},
                {"op": "replace", "path": "/percentComplete", "value": seen + 1}])
            assert resp.status in (200, 409), await resp.text()
            return int(resp.status == 200)

        results = await asyncio.gather(*(bump(c) for _ in range(100) for c in (one, two)))
        final = (await (await two.get("/task-status/v1/t1")).json())["percentComplete"]
    updated = await _rows(pg_url, "SELECT count(*) FROM audit WHERE task_id = 't1' AND action = 'updated'")
    assert sum(results) == final == updated[0][0] > 0

    # a token revoked behind both instances' backs is refused by each within the cache's bound
    async with _client(pair[0]) as one, _client(pair[1]) as two:
        for client in (one, two):
            assert (await client.get("/task-status/v1/t1")).status == 200
        await _rows(pg_url, "DELETE FROM tokens")
        started = time.monotonic()
        refused = set()
        while len(refused) < 2 and time.monotonic() - started < 5:
            for n, client in enumerate((one, two)):
                if (await client.get("/task-status/v1/t1")).status == 401:
                    refused.add(n)
            await asyncio.sleep(0.05)
        assert refused == {0, 1} and time.monotonic() - started < TOKEN_CACHE_SECONDS + 1


async def test_kill_9_of_one_instance_mid_burst_loses_nothing_it_acknowledged(pair, pg_url):
    first, second = pair
    acked: list[str] = []

    async def create(client: aiohttp.ClientSession, task_id: str) -> None:
        try:
            resp = await client.post("/task-status/v1", json={"id": task_id, "type": "QUARTZ", "uniqueName": "u"})
        except aiohttp.ClientError:
            return  # the killed instance's connections break: not acknowledged
        if resp.status == 201:
            acked.append(task_id)

    async with _client(first) as one, _client(second) as two:
        burst = [asyncio.ensure_future(create(c, f"k{n}-{k}")) for n in range(150) for k, c in enumerate((one, two))]
        while len(acked) < 60:
            await asyncio.sleep(0.005)
        first.kill()
        await asyncio.gather(*burst)
        resp = await two.post("/task-status/v1", json={"id": "after", "type": "QUARTZ", "uniqueName": "u"})
        assert resp.status == 201  # the other instance keeps serving
    stored = {row[0] for row in await _rows(pg_url, "SELECT id FROM tasks")}
    assert set(acked) <= stored and "after" in stored
    assert len([i for i in acked if i.endswith("-1")]) == 150  # every request to the survivor was acknowledged
    audited = await _rows(pg_url, "SELECT count(*) FROM audit")
    assert audited[0][0] == len(stored)  # each stored task has its created row, none without


async def test_failed_sign_ins_on_two_instances_add_up_and_both_refuse(pair, pg_url):
    """6 wrong passwords sent to one instance and 4 to the other reach the limit of 10 (the
    default): both then refuse the right password, in SailPoint's shape, with the window's
    Retry-After; the database holds one row, the count of the key's hash."""
    first, second = pair
    first.cli("user", "add", "alice", "--password-stdin", stdin="alice-password\n")

    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()}

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for server, guesses in ((first, 6), (second, 4)):
            for n in range(guesses):
                resp = await http.get(f"{server.base_url}/task-status/v1", headers=basic(f"guess{n}"))
                assert resp.status == 401, await resp.text()
        for server in (second, first):
            for _ in range(100):  # the database's answer or the other's notification is on its way
                resp = await http.get(f"{server.base_url}/task-status/v1", headers=basic("alice-password"))
                if resp.status != 200:
                    break
                await asyncio.sleep(0.02)
            assert (resp.status, await resp.json()) == (429, {"message": " Rate Limit Exceeded "})
            assert 0 < int(resp.headers["Retry-After"]) <= 60
    assert await _rows(pg_url, "SELECT failures FROM signin_failures") == [(10,)]
