"""Webhooks end to end: a real ``taskgate serve``, a real receiver process on loopback
(:mod:`tests.e2e.hook_receiver`), subscriptions made through each vendor's API (SailPoint's
with the ``sailpoint`` SDK's trigger-subscription calls).

The acceptance run: 1,000 changes across the three styles reach their hooks, each exactly
once, in commit order per hook, with valid signatures (SuperOffice's HMAC, taskgate's on
webMethods, the SailPoint subscription's bearer token). Then the server is killed with
SIGKILL while a second stream of changes is being delivered and started again: every
acknowledged change is delivered at least once, and every delivery is of a change the
audit trail holds (nothing for a change that did not commit).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sailpoint.configuration import Configuration, ConfigurationParams
from sailpoint.triggers.api.triggers_api import TriggersApi
from sailpoint.triggers.api_client import ApiClient
from sailpoint.triggers.models.bearer_token_auth_config import BearerTokenAuthConfig
from sailpoint.triggers.models.http_authentication_type import HttpAuthenticationType
from sailpoint.triggers.models.http_config import HttpConfig
from sailpoint.triggers.models.http_dispatch_mode import HttpDispatchMode
from sailpoint.triggers.models.subscription_patch_request_inner import SubscriptionPatchRequestInner
from sailpoint.triggers.models.subscription_patch_request_inner_value import SubscriptionPatchRequestInnerValue
from sailpoint.triggers.models.subscription_post_request import SubscriptionPostRequest
from sailpoint.triggers.models.subscription_type import SubscriptionType
from sailpoint.triggers.models.test_invocation import TestInvocation as Invocation

from gateway.apis.sailpoint_hooks import EXAMPLES, TASK_CHANGED
from gateway.events.signing import hmac_sha256_base64, taskgate_signature
from tests.e2e.server import Server, call, http, session, version

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[webhooks]
allow_targets = "127.0.0.1"
retry_base_seconds = 0.05
retry_max_seconds = 0.5
poll_seconds = 0.2
timeout_seconds = 60
"""
SO_SECRET = "so-secret-8f2e"
WM_SECRET = "wm-secret-1c7a"
SP_BEARER = "sp-bearer-5d9b"
TASKS_PER_STYLE = 20
#: how long a test waits for deliveries: generous, for a busy machine; polled, so a quick one is quick
WAIT_SECONDS = 60.0


class Receiver:
    def __init__(self, folder: Path) -> None:
        self.file = folder / "deliveries.jsonl"
        self.file.touch()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.e2e.hook_receiver", str(self.file)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.url = line.split()[-1]

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery the receiver has written whole: a line still being written (a
        long body takes several writes) is past the last newline, and is read next time."""
        return [json.loads(line) for line in self.file.read_text().split("\n")[:-1] if line.strip()]

    def at(self, path: str, count: int) -> list[dict[str, Any]]:
        """The deliveries to *path*, once there are *count* of them (polled for up to WAIT_SECONDS)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            found = [d for d in self.deliveries() if d["path"] == path]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def control(self, **settings: Any) -> None:
        assert http("POST", f"{self.url}/control", body=settings).status == 200

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(name="receiver")
def _receiver(tmp_path: Path) -> Iterator[Receiver]:
    receiver = Receiver(tmp_path)
    try:
        yield receiver
    finally:
        receiver.close()


def _triggers(server: Server) -> TriggersApi:
    params = ConfigurationParams()
    params.base_url = server.base_url
    params.access_token = server.admin_token
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return TriggersApi(ApiClient(Configuration(params)))


def _sdk_subscription(server: Server, url: str) -> str:
    api = _triggers(server)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        made = api.create_subscription_v1(SubscriptionPostRequest(
            name="every task-status change", trigger_id="taskgate:task-status-changed", type=SubscriptionType.HTTP,
            http_config=HttpConfig(url=url, http_dispatch_mode=HttpDispatchMode.ASYNC,
                                   http_authentication_type=HttpAuthenticationType.BEARER_TOKEN,
                                   bearer_token_auth_config=BearerTokenAuthConfig(bearer_token=SP_BEARER))))
    assert made.http_config is not None and made.http_config.bearer_token_auth_config is not None
    assert made.http_config.bearer_token_auth_config.bearer_token is None  # never answered
    return made.id


def _subscribe_all(server: Server, receiver: Receiver) -> None:
    _sdk_subscription(server, f"{receiver.url}/sailpoint")
    auth = f"Bearer {server.admin_token}"
    reply = http("POST", f"{server.base_url}/Cust12345/api/v1/Webhook", auth, {
        "Name": "batch tasks", "Events": ["batchtask.created", "batchtask.changed", "batchtask.deleted"],
        "TargetUrl": f"{receiver.url}/superoffice", "Secret": SO_SECRET, "State": "Active", "Type": "webhook"})
    assert reply.status == 200, reply.raw
    reply = http("POST", f"{server.base_url}/rest/pub/taskevents/endpoints", auth,
                 {"url": f"{receiver.url}/webmethods", "secret": WM_SECRET})
    assert reply.status == 201, reply.raw


async def _changes(server: Server, count: int, acknowledged: list[tuple[str, str, int]] | None = None,
                   stop_after: float | None = None) -> None:
    """*count* changes across the styles, 16 at a time: creates first, then updates in
    turn. Each acknowledged one is noted as (style, id, version)."""
    async with session(server) as client:
        ids: dict[str, list[str]] = {"sailpoint": [], "superoffice": [], "webmethods": []}
        for n in range(TASKS_PER_STYLE):
            status, body, headers = await call(client, "POST", "/task-status/v1",
                                               body={"type": "QUARTZ", "uniqueName": f"Account Aggregation {n}"})
            assert status == 201
            ids["sailpoint"].append(body["id"])
            status, body, headers = await call(client, "POST", "/api/v1/BatchTask", body={"Name": f"b{n}"})
            assert status == 200
            ids["superoffice"].append(str(body))
            status, body, headers = await call(client, "POST", "/rest/pub/opentask", body={"taskTypeID": "T"})
            assert status == 200
            ids["webmethods"].append(body["taskID"])
        semaphore = asyncio.Semaphore(16)

        async def one(n: int) -> None:
            style = ("sailpoint", "superoffice", "webmethods")[n % 3]
            task = ids[style][(n // 3) % TASKS_PER_STYLE]
            async with semaphore:
                if style == "sailpoint":
                    reply = await call(client, "PATCH", f"/v2025/task-status/{task}",
                                       ctype="application/json-patch+json",
                                       body=[{"op": "replace", "path": "/progress", "value": f"step {n}"}])
                elif style == "superoffice":
                    reply = await call(client, "PUT", f"/api/v1/BatchTask/{task}", body={"Response": f"step {n}"})
                else:
                    reply = await call(client, "PUT", f"/rest/pub/opentask/{task}",
                                       body={"TaskInfo": {"description": f"step {n}"}})
            assert reply[0] == 200, reply
            if acknowledged is not None:
                acknowledged.append((style, task, version(reply[2])))

        await asyncio.gather(*(one(n) for n in range(count - 3 * TASKS_PER_STYLE)))


def _trail(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.cli("audit", "--limit", "100000").splitlines()][::-1]


def _by_hook(receiver: Receiver) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"/sailpoint": [], "/superoffice": [], "/webmethods": []}
    for d in receiver.deliveries():
        if d["headers"].get("X-SuperOffice-Event") == "test":
            continue  # the test event SuperOffice sends when a webhook is made
        out[d["path"]].append(d)
    return out


def _check_signatures(hooks: dict[str, list[dict[str, Any]]]) -> None:
    for d in hooks["/superoffice"]:
        assert d["headers"]["X-SuperOffice-Signature"] == hmac_sha256_base64(SO_SECRET, d["body"].encode())
        assert d["headers"]["X-SuperOffice-EventId"] == json.loads(d["body"])["EventId"]
    for d in hooks["/webmethods"]:
        assert d["headers"]["X-Taskgate-Signature"] == taskgate_signature(WM_SECRET, d["body"].encode())
    for d in hooks["/sailpoint"]:
        assert d["headers"]["Authorization"] == f"Bearer {SP_BEARER}"


def _wait_for(receiver: Receiver, expected: dict[str, set[int]], deadline: float) -> dict[str, list[dict[str, Any]]]:
    while True:
        hooks = _by_hook(receiver)
        got = {path: {int(d["headers"]["Idempotency-Key"]) for d in ds} for path, ds in hooks.items()}
        if all(expected[path] <= got[path] for path in expected) or time.monotonic() > deadline:
            return hooks
        time.sleep(0.1)


def test_the_sailpoint_sdk_manages_trigger_subscriptions(tmp_path: Path, receiver: Receiver) -> None:
    server = Server(tmp_path, config=CONFIG).start()
    try:
        sub_id = _sdk_subscription(server, f"{receiver.url}/sdk")
        api = _triggers(server)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            listed = api.list_subscriptions_v1(filters=f'id eq "{sub_id}"')
            assert [s.id for s in listed] == [sub_id]
            patched = api.patch_subscription_v1(sub_id, [SubscriptionPatchRequestInner(
                op="replace", path="/filter",
                value=SubscriptionPatchRequestInnerValue('$[?($.action == "deleted")]'))])
            assert patched.filter == '$[?($.action == "deleted")]'
            api.start_test_trigger_invocation_v1(Invocation(trigger_id="taskgate:task-status-changed",
                                                            content_json={}, subscription_ids=[sub_id]))
            test = receiver.at("/sdk", 1)
            assert len(test) == 1 and test[0]["headers"]["X-Taskgate-Test"] == "true"
            assert json.loads(test[0]["body"]) == EXAMPLES[TASK_CHANGED]
            assert test[0]["headers"]["Authorization"] == f"Bearer {SP_BEARER}"
            api.delete_subscription_v1(sub_id)
            assert api.list_subscriptions_v1() == []
    finally:
        assert server.stop() == 0


def test_a_thousand_changes_arrive_once_in_order_and_a_kill_loses_none(tmp_path: Path, receiver: Receiver) -> None:
    started = time.monotonic()
    server = Server(tmp_path, config=CONFIG).start()
    _subscribe_all(server, receiver)
    first_seq = len(_trail(server))  # nothing before the subscriptions is sent
    asyncio.run(_changes(server, 1000))
    trail = _trail(server)
    assert len(trail) - first_seq == 1000
    expected = {f"/{style}": {r["seq"] for r in trail if r["style"] == style and r["seq"] > first_seq}
                for style in ("sailpoint", "superoffice", "webmethods")}
    hooks = _wait_for(receiver, expected, time.monotonic() + WAIT_SECONDS)
    for path, deliveries in hooks.items():
        seqs = [int(d["headers"]["Idempotency-Key"]) for d in deliveries]
        assert seqs == sorted(expected[path]), path  # each exactly once, in commit order
    _check_signatures(hooks)
    sp = json.loads(hooks["/sailpoint"][-1]["body"])
    assert set(sp) == {"id", "action", "version", "actor", "at", "taskStatus", "previousTaskStatus"}
    wm = json.loads(hooks["/webmethods"][-1]["body"])
    assert set(wm) == {"operation", "operationText", "source", "taskURL", "oldTask", "newTask"}
    assert wm["taskURL"] == f"/rest/pub/opentask/{wm['newTask']['TaskInfo']['taskID']}"
    so = json.loads(hooks["/superoffice"][-1]["body"])
    assert so["Event"] == "batchtask.changed" and so["ContextIdentifier"] == "Cust12345"
    assert so["Changes"] == ["Response"]  # the member the PUT changed

    # a second stream, delivered slowly, and SIGKILL while it is under way
    receiver.control(delay_ms=3)
    acknowledged: list[tuple[str, str, int]] = []
    before = len(receiver.deliveries())
    asyncio.run(_changes(server, 360, acknowledged))
    deadline = time.monotonic() + WAIT_SECONDS
    while len(receiver.deliveries()) < before + 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()
    in_flight = len(receiver.deliveries()) - before
    assert in_flight < 360, "the kill came after every delivery: nothing was mid-stream"
    receiver.control(delay_ms=0)
    server.start()
    trail = _trail(server)
    seq_of = {(r["style"], r["task_id"], r["version"]): r["seq"] for r in trail}
    must = {f"/{style}": set() for style in ("sailpoint", "superoffice", "webmethods")}
    for style, task, ver in acknowledged:
        must[f"/{style}"].add(seq_of[(style, task, ver)])
    hooks = _wait_for(receiver, must, time.monotonic() + WAIT_SECONDS)
    committed = {f"/{style}": {r["seq"] for r in trail if r["style"] == style and r["seq"] > first_seq}
                 for style in ("sailpoint", "superoffice", "webmethods")}
    for path, deliveries in hooks.items():
        seqs = [int(d["headers"]["Idempotency-Key"]) for d in deliveries]
        assert must[path] <= set(seqs), path  # every acknowledged change, at least once
        assert set(seqs) <= committed[path], path  # nothing that is not in the trail
        assert set(seqs) == committed[path], path  # and, after the restart, everything committed
    _check_signatures(hooks)
    log = [json.loads(line) for line in server.cli("webhooks", "log", "--limit", "5").splitlines()]
    assert len(log) == 5 and {row["outcome"] for row in log} == {"delivered"}
    assert server.stop() == 0
    assert time.monotonic() - started < 4 * WAIT_SECONDS + 60  # bounded, if generous for a busy machine
