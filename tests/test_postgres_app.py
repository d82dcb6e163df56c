"""The server on PostgreSQL: readiness, and two apps (two gateways) on one database
answering each other's writes, through real HTTP on loopback (aiohttp's test server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR
from gateway.auth.hashing import hash_password, secret_hash
from gateway.config import Config
from gateway.context import STORE
from gateway.store.postgres import SCHEMA_VERSION, PostgreSQLStore
from gateway.store.postgres import accounts as pg_accounts
from tests.pg_cluster import Cluster

PATCH_JSON = "application/json-patch+json"


async def test_readyz_on_postgresql_names_its_schema_and_checks_no_local_disk(aiohttp_client, tmp_path, pg_url):
    client = await aiohttp_client(create_app(Config(base_dir=str(tmp_path)).replace("storage", path=pg_url)))
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready", "schema": SCHEMA_VERSION})
    assert isinstance(client.app[STORE], PostgreSQLStore)


async def test_two_gateways_on_one_database_serialize_a_burst_of_test_and_replace_patches(
        aiohttp_client, tmp_path, pg_url):
    """The issue's 200 concurrent test-and-replace PATCHes, split across two gateways on one
    database: the 2xx count equals the final value equals the audit rows of the changes."""
    config = Config(base_dir=str(tmp_path)).replace("storage", path=pg_url)
    one = await aiohttp_client(create_app(config))
    two = await aiohttp_client(create_app(config))
    await one.app[STORE].add_user("root", "admin", None)
    auth = {"Authorization": f"Bearer {await one.app[AUTHENTICATOR].create_token('root')}"}
    resp = await one.post("/task-status/v1", headers=auth, json={"id": "t1", "type": "QUARTZ", "uniqueName": "u"})
    assert resp.status == 201, await resp.text()

    async def bump(client) -> int:
        resp = await client.get("/task-status/v1/t1", headers=auth)
        seen = (await resp.json())["percentComplete"]
        resp = await client.patch("/task-status/v1/t1", headers={**auth, "Content-Type": PATCH_JSON}, json=[
            {"op": "test", "path": "/percentComplete", "value": seen},
            {"op": "replace", "path": "/percentComplete", "value": seen + 1}])
        assert resp.status in (200, 409), await resp.text()  # a failed test op is a 409 there
        return int(resp.status == 200)

    results = await asyncio.gather(*(bump(client) for _ in range(100) for client in (one, two)))
    final = (await two.app[STORE].get("sailpoint", "t1")).doc["percentComplete"]
    changes = [c for c in await one.app[STORE].audit(style="sailpoint", task_id="t1") if c.action == "updated"]
    assert sum(results) == final == len(changes) > 0


async def test_a_database_restart_is_503s_while_it_is_down_and_service_resumes_without_a_restart(
        aiohttp_client, tmp_path):
    """A cluster of its own (the session's serves the other tests): the server stopped under
    a running app, its requests answered 503 in the style's shape, then started again."""
    cluster = Cluster().start()
    try:
        cluster.sql("CREATE DATABASE restart TEMPLATE template0")
        config = Config(base_dir=str(tmp_path)).replace("storage", path=cluster.dsn("restart"))
        client = await aiohttp_client(create_app(config))
        await client.app[STORE].add_user("root", "admin", None)
        auth = {"Authorization": f"Bearer {await client.app[AUTHENTICATOR].create_token('root')}"}
        resp = await client.post("/task-status/v1", headers=auth, json={"id": "t1", "type": "QUARTZ",
                                                                         "uniqueName": "u"})
        assert resp.status == 201
        cluster.pause()
        down = [await client.get("/task-status/v1/t1", headers=auth),
                await client.patch("/task-status/v1/t1", headers={**auth, "Content-Type": PATCH_JSON},
                                   json=[{"op": "replace", "path": "/percentComplete", "value": 5}]),
                await client.get("/readyz")]
        assert [r.status for r in down] == [503, 503, 503]
        assert (await down[1].json())["detailCode"] == "503 Service Unavailable"
        cluster.resume()
        for _ in range(100):  # the pool reconnects by itself
            resp = await client.patch("/task-status/v1/t1", headers={**auth, "Content-Type": PATCH_JSON},
                                      json=[{"op": "replace", "path": "/percentComplete", "value": 5}])
            if resp.status != 503:
                break
            await asyncio.sleep(0.05)
        assert (resp.status, (await resp.json())["percentComplete"]) == (200, 5)
        assert (await client.get("/readyz")).status == 200
    finally:
        cluster.stop()


async def test_a_gateway_listens_again_after_a_database_restart_and_hears_a_revocation_at_once(
        aiohttp_client, tmp_path, monkeypatch):
    """The listening session is lost with the restart; the store connects and listens again by
    itself. A token revoked afterwards through another store is refused by the app at once,
    with the cache's bound set to an hour: only the notification can explain the refusal."""
    monkeypatch.setattr(pg_accounts, "TOKEN_CACHE_SECONDS", 3600.0)
    cluster = Cluster().start()
    other = None
    try:
        cluster.sql("CREATE DATABASE relisten TEMPLATE template0")
        url = cluster.dsn("relisten")
        client = await aiohttp_client(create_app(Config(base_dir=str(tmp_path)).replace("storage", path=url)))
        store = client.app[STORE]
        await store.add_user("root", "admin", None)
        token = await client.app[AUTHENTICATOR].create_token("root")
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/task-status/v1/none", headers=auth)).status == 404
        cluster.pause()
        cluster.resume()
        for _ in range(200):  # the listener notices the lost session and listens again
            if store._listener.sessions == 2 and store._listener.listening:
                break
            await asyncio.sleep(0.05)
        assert (store._listener.sessions, store._listener.listening) == (2, True)
        for _ in range(100):  # the pool reconnects too; the token is then remembered for an hour
            resp = await client.get("/task-status/v1/none", headers=auth)
            if resp.status != 503:
                break
            await asyncio.sleep(0.05)
        assert resp.status == 404
        other = await PostgreSQLStore.open(url)
        await other.delete_token(secret_hash(token))
        for _ in range(100):
            resp = await client.get("/task-status/v1/none", headers=auth)
            if resp.status == 401:
                break
            await asyncio.sleep(0.01)
        assert resp.status == 401
    finally:
        if other is not None:
            await other.close()
        cluster.stop()


async def test_failed_sign_ins_through_two_gateways_add_up_and_both_refuse(aiohttp_client, tmp_path, pg_url):
    """6 wrong passwords through one gateway and 4 through the other reach the limit of 10:
    the second refuses the right password at once (its own count's answer from the database
    says 10), the first as soon as the notifications land, and a gateway started afterwards
    reads the open window when it starts."""
    config = Config(base_dir=str(tmp_path)).replace("storage", path=pg_url).replace(
        "auth", max_failures=10, failure_window_seconds=60)
    one = await aiohttp_client(create_app(config))
    two = await aiohttp_client(create_app(config))
    await one.app[STORE].add_user("alice", "user", hash_password("alice-password"))

    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()}

    for client, guesses in ((one, 6), (two, 4)):
        for n in range(guesses):
            assert (await client.get("/task-status/v1", headers=basic(f"guess{n}"))).status == 401

    async def refused(client) -> tuple[int, object, bool]:
        for _ in range(100):  # the database's answer or another gateway's notification is on its way
            resp = await client.get("/task-status/v1", headers=basic("alice-password"))
            if resp.status != 200:
                break
            await asyncio.sleep(0.01)
        wait = int(resp.headers.get("Retry-After", "0"))
        return resp.status, await resp.json(), 0 < wait <= 60  # the window's end, on the database's clock

    assert await refused(two) == (429, {"message": " Rate Limit Exceeded "}, True)
    assert await refused(one) == (429, {"message": " Rate Limit Exceeded "}, True)
    three = await aiohttp_client(create_app(config))
    assert await refused(three) == (429, {"message": " Rate Limit Exceeded "}, True)
    rows = await one.app[STORE].read_sql("SELECT key_hash, failures FROM signin_failures")
    assert rows == [(hashlib.sha256(b"127.0.0.1").hexdigest()[:32], 10)]  # the key's hash, never the address


async def test_a_burst_of_guesses_split_over_two_gateways_gets_at_most_twice_the_limit_checked(
        aiohttp_client, tmp_path, pg_url):
    """The bound docs/scaling.md states across N gateways: 30 wrong passwords sent to each of
    two gateways at once get at least the limit and at most N x the limit checked (each
    gateway counts its own at once, the other's when its notification lands); every checked
    one is counted in the database."""
    config = Config(base_dir=str(tmp_path)).replace("storage", path=pg_url).replace(
        "auth", max_failures=10, failure_window_seconds=60)
    apps = [await aiohttp_client(create_app(config)) for _ in range(2)]
    await apps[0].app[STORE].add_user("alice", "user", hash_password("alice-password"))
    for client in apps:
        client.app[AUTHENTICATOR].limiter.busy_wait = 60.0  # queued checks wait their turn: they are counted here

    async def guess(client, n: int) -> int:
        auth = {"Authorization": "Basic " + base64.b64encode(f"alice:guess{n}".encode()).decode()}
        resp = await client.get("/task-status/v1", headers=auth)
        assert resp.status in (401, 429), await resp.text()
        return resp.status

    statuses = await asyncio.gather(*(guess(client, n) for n in range(30) for client in apps))
    checked = statuses.count(401)
    assert 10 <= checked <= 20 and statuses.count(429) == 60 - checked
    for _ in range(100):  # the last counts' upserts run in the background
        rows = await apps[0].app[STORE].read_sql("SELECT failures FROM signin_failures")
        if rows == [(checked,)]:
            break
        await asyncio.sleep(0.02)
    assert rows == [(checked,)]
