"""SailPoint tasks made and read over plain HTTP, and the vendor's error body, for the
end-to-end tests of the SailPoint clients: what a client test checks its SDK against."""

from __future__ import annotations

from typing import Any

from tests.e2e.server import Server, http


def create(server: Server, **fields: Any) -> dict[str, Any]:
    body = {"type": "QUARTZ", "uniqueName": "Cloud Account Aggregation",
            "description": "Aggregate from the specified application", "launcher": "support", **fields}
    reply = http("POST", f"{server.base_url}/task-status/v1", f"Bearer {server.admin_token}", body)
    assert reply.status == 201, reply.raw
    return reply.json


def stored(server: Server, task_id: str) -> dict[str, Any]:
    reply = http("GET", f"{server.base_url}/task-status/v1/{task_id}", f"Bearer {server.admin_token}")
    assert reply.status == 200, reply.raw
    return reply.json


def error_dto(detail: str, text: str, tracking_id: str) -> dict[str, Any]:
    return {"detailCode": detail, "trackingId": tracking_id,
            "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}], "causes": []}
