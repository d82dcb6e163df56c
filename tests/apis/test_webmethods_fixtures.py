"""Fixtures and helpers shared by the webMethods API tests: an app built by the production
factory on a temporary SQLite file, with a :class:`ManualClock` in place of the system clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.apis import webmethods
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR
from gateway.clock import ManualClock
from gateway.config import Config
from gateway.context import STORE
from tests.conftest import Api

START = datetime(2024, 5, 17, 19, 33, 16, 470000, tzinfo=UTC)
START_ISO = "2024-05-17T19:33:16.470Z"
#: START as Integration Server's default Date.toString() form
START_IS = "Fri May 17 19:33:16 UTC 2024"
ERROR_TYPE = "com.wm.app.b2b.server.ServiceException"
BASE = "/rest/pub/opentask"


class WmApi(Api):
    clock: ManualClock
    bob: str


MakeApi = Callable[..., Awaitable[WmApi]]


@pytest.fixture(name="make_wm")
def _make_wm(aiohttp_client, tmp_path) -> MakeApi:
    """Build an app with some ``webmethods.*`` settings; the sweeper waits an hour between
    passes unless told otherwise, so only the reads and updates apply the clock's rules."""
    async def make(**settings: Any) -> WmApi:
        settings.setdefault("sweep_interval_seconds", 3600.0)
        config = Config(base_dir=str(tmp_path)).replace("webmethods", **settings)
        app = create_app(config)
        clock = ManualClock(START)
        app[webmethods.CLOCK] = clock
        client = await aiohttp_client(app)
        store = client.app[STORE]
        auth = client.app[AUTHENTICATOR]
        await store.add_user("root", "admin", None)
        await store.add_user("alice", "user", None)
        await store.add_user("bob", "user", None)
        await store.add_user("boss", "admin", None)
        await store.add_user("reader", "user", None)
        api = WmApi(client, store, admin=await auth.create_token("root"), user=await auth.create_token("alice"),
                    read_only=await auth.create_token("reader", read_only=True))
        api.clock = clock
        api.bob = await auth.create_token("bob")
        return api
    return make


@pytest.fixture(name="wm")
async def _wm(make_wm: MakeApi) -> WmApi:
    return await make_wm()


def envelope(message: str, user: str = "root", time: str = "2024-05-17 19:33:16 UTC", dump: str = "") -> dict:
    return {"$errorDump": dump,
            "$errorInfo": {"$errorDump": dump, "$error": message, "$localizedError": message,
                           "$errorType": ERROR_TYPE, "$user": user, "$time": time, "$details": "",
                           "$errorMsgId": ""},
            "$error": message, "$errorType": ERROR_TYPE}


async def create(api: Api, token: str | None = None, **body: Any) -> str:
    body.setdefault("taskTypeID", "26629648-BF99-D8E1-BDC6-AD91EC9AE268")
    status, doc, _ = await api.request("POST", BASE, body=body, token=token)
    assert status == 200, doc
    return doc["taskID"]


async def stored(api: Api, task_id: str) -> dict[str, Any]:
    task = await api.store.get("webmethods", task_id)
    assert task is not None
    return task.doc
