"""The /_taskgate/ routes in the OpenAPI document: there only when testing is on, and each
answer (every success, and the errors a caller meets) checked against the document."""

from __future__ import annotations

import json
from typing import Any

from openapi_spec_validator import validate

from tests.conftest import Api
from tests.openapi_check import Answer, Document, answer

TAG = "taskgate testing"
NS = "/_taskgate/namespaces"


async def _document(api: Api) -> dict[str, Any]:
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200
    return json.loads(await resp.read())


async def test_the_document_has_the_testing_routes_only_when_testing_is_on(api: Api, tapi: Api) -> None:
    off = await _document(api)
    assert [p for p in off["paths"] if p.startswith("/_") or "_ns" in p] == []
    assert TAG not in {t["name"] for t in off.get("tags", ())}
    on = await _document(tapi)
    validate(on)  # still a valid OpenAPI 3.0 document with them
    ours = sorted(p for p in on["paths"] if p.startswith("/_taskgate/"))
    assert len(ours) == 15
    assert not [p for p in on["paths"] if "_ns" in p]  # the prefix is documented on docs/testing.md


async def test_every_testing_answer_matches_the_document(tapi: Api) -> None:
    document = Document(await _document(tapi), TAG)
    auth = tapi.auth()

    async def send(method: str, path: str, body: Any = None, token: str | None = None) -> Answer:
        return await answer(tapi.client, document, method, path, body=body,
                            headers={"Authorization": f"Bearer {token or tapi.admin}"})

    assert (await send("GET", NS)).status == 200
    assert (await send("PUT", f"{NS}/doc")).status == 201
    assert (await send("PUT", f"{NS}/doc")).status == 200
    assert (await send("GET", f"{NS}/doc")).status == 200
    assert (await send("GET", f"{NS}/nope")).status == 404
    assert (await send("GET", NS, token=tapi.user)).status == 403
    resp = await tapi.client.get(NS)
    assert resp.status == 401
    created = await tapi.client.post("/_ns/doc/task-status/v1", headers=auth,
                                     json={"id": "t", "type": "QUARTZ", "uniqueName": "u"})
    assert created.status == 201
    assert (await send("POST", f"{NS}/doc/checkpoints")).status == 201
    assert (await send("POST", f"{NS}/doc/checkpoints/1/restore")).status == 200
    assert (await send("POST", f"{NS}/doc/checkpoints/9/restore")).status == 404
    assert (await send("DELETE", f"{NS}/doc/checkpoints/1")).status == 204
    assert (await send("GET", f"{NS}/doc/export")).status == 200
    assert (await send("GET", f"{NS}/doc/tasks/sailpoint/t?seq=1")).status == 200
    assert (await send("GET", f"{NS}/doc/tasks/sailpoint/t?seq=z")).status == 400
    assert (await send("GET", f"{NS}/doc/clock")).status == 200
    assert (await send("PUT", f"{NS}/doc/clock", {"frozen": True, "advance_seconds": 5})).status == 200
    assert (await send("PUT", f"{NS}/doc/clock", {"advance_seconds": -1})).status == 400
    assert (await send("POST", f"{NS}/doc/progress", {"style": "sailpoint", "id": "t", "seconds": 10})).status == 201
    assert (await send("POST", f"{NS}/doc/progress", {"style": "webmethods", "id": "t", "seconds": 10})).status == 400
    assert (await send("GET", f"{NS}/doc/journal?method=POST&status=201")).status == 200
    assert (await send("POST", f"{NS}/doc/journal/count", {"route": "sailpoint:*"})).status == 200
    assert (await send("POST", f"{NS}/doc/journal/count", {"colour": "red"})).status == 400
    assert (await send("DELETE", f"{NS}/doc/journal")).status == 204
    rule = await send("POST", f"{NS}/doc/faults", {"status": 500, "count": 1})
    assert rule.status == 201
    assert (await send("POST", f"{NS}/doc/faults", {"status": 418})).status == 400
    assert (await send("GET", f"{NS}/doc/faults")).status == 200
    assert (await send("DELETE", f"{NS}/doc/faults/{rule.json()['id']}")).status == 204
    assert (await send("DELETE", f"{NS}/doc/faults/{rule.json()['id']}")).status == 404
    assert (await send("DELETE", f"{NS}/doc/faults")).status == 204
    assert (await send("POST", f"{NS}/doc/seed", {"sailpoint": []})).status == 200
    assert (await send("POST", f"{NS}/doc/seed", {"nope": []})).status == 400
    assert (await send("POST", f"{NS}/doc/reset")).status == 200
    assert (await send("DELETE", f"{NS}/doc")).status == 204
    assert (await send("DELETE", f"{NS}/doc")).status == 404
    assert document.unanswered() == []
