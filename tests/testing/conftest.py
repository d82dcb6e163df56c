"""An app with testing on (namespaces, the /_taskgate/ API), built by the production factory."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.auth import AUTHENTICATOR
from gateway.config import Config
from gateway.context import STORE
from tests.conftest import Api, _alice_hash


@pytest.fixture(name="tapi")
async def _tapi(aiohttp_client, config: Config) -> Api:
    # a database of its own: a test may also use the plain `api` on the default one
    client = await aiohttp_client(create_app(config.replace("testing", enabled=True).replace("storage", path="t.db")))
    store = client.app[STORE]
    auth = client.app[AUTHENTICATOR]
    await store.add_user("root", "admin", None)
    await store.add_user("alice", "user", _alice_hash())
    await store.add_user("reader", "user", None)
    return Api(client, store, admin=await auth.create_token("root"), user=await auth.create_token("alice"),
               read_only=await auth.create_token("reader", read_only=True))
