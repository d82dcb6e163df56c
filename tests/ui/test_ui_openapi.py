"""Real answers of every dashboard route, checked against the server's own /openapi.json
(:mod:`tests.openapi_check`): each success and the errors a page gives, media type, body
and headers. The pages are HTML; the document describes them so that it lists every route."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.auth import hash_password
from gateway.ui import pages
from tests.conftest import Api
from tests.openapi_check import Document, answer

TAG = "taskgate dashboard"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_every_dashboard_answer_matches_the_document(api: Api) -> None:
    document = Document(json.loads(await (await api.client.get("/openapi.json")).read()), TAG)
    await api.store.add_user("ada", "admin", hash_password("ada-password"))

    async def send(method: str, path: str, data: str | None = None, headers: dict[str, str] | None = None) -> Any:
        return await answer(api.client, document, method, path, data=data,
                            headers={**(FORM if data is not None else {}), **(headers or {})})

    assert (await send("GET", "/ui")).status == 301
    assert (await send("GET", "/ui/")).status == 303  # no session yet
    assert (await send("GET", "/ui/task?style=sailpoint&id=x")).status == 303
    assert (await send("GET", "/ui/task-parts?style=sailpoint&id=x")).status == 401
    assert (await send("GET", "/ui/live")).status == 401
    for page in ("hooks", "hook?name=x", "testing", "namespace?name=x"):
        assert (await send("GET", f"/ui/{page}")).status == 303, page
    for page in ("hook", "namespace?name="):
        assert (await send("GET", f"/ui/{page}")).status == 400, page
    assert (await send("GET", "/ui/login")).status == 200
    assert (await send("POST", "/ui/login", "user=ada")).status == 400
    assert (await send("POST", "/ui/login", "user=ada&password=wrong")).status == 401
    signed_in = await send("POST", "/ui/login", "user=ada&password=ada-password")
    assert signed_in.status == 303
    xsrf = pages.xsrf_token(api.client.session.cookie_jar.filter_cookies(api.client.make_url("/"))[
        "taskgate_session"].value)
    status, _, _ = await api.request("POST", "/task-status/v1", body={"id": "o1", "type": "QUARTZ",
                                                                      "uniqueName": "u", "launcher": "ada"})
    assert status == 201
    status, _, _ = await api.request("PATCH", "/task-status/v1/o1", data='[{"op": "replace", "path": '
                                     '"/percentComplete", "value": 5}]', content_type="application/json-patch+json")
    assert status == 200
    seq = (await api.store.audit(style="sailpoint", task_id="o1", limit=1))[0].seq
    assert (await send("GET", "/ui/")).status == 200
    assert (await send("GET", "/ui/?page=0")).status == 400
    assert (await send("GET", "/ui/task?style=sailpoint&id=o1")).status == 200
    assert (await send("GET", "/ui/task?style=sailpoint")).status == 400
    assert (await send("GET", "/ui/task?style=sailpoint&id=none")).status == 404
    assert (await send("GET", "/ui/task-parts?style=sailpoint&id=o1")).status == 200
    assert (await send("GET", "/ui/task-parts?style=sailpoint&id=none")).status == 404
    for name in pages.ASSETS:
        assert (await send("GET", f"/ui/static/{name}")).status == 200, name
    assert (await send("GET", "/ui/static/nope.css")).status == 404
    undo = f"xsrf={xsrf}&style=sailpoint&id=o1&seq={seq}&version=2"
    assert (await send("POST", "/ui/undo", undo.replace(xsrf, "forged"))).status == 403
    assert (await send("POST", "/ui/undo", undo.replace("version=2", "version=x"))).status == 400
    assert (await send("POST", "/ui/undo", undo.replace(f"seq={seq}", "seq=999"))).status == 404
    assert (await send("POST", "/ui/undo", undo.replace("version=2", "version=1"))).status == 409
    assert (await send("POST", "/ui/undo", undo)).status == 303
    stream = await api.client.get("/ui/live")
    document.check("GET", "/ui/live", stream.status, stream.headers, b"")
    assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5) == b"retry: 1000\n: live\n\n"
    stream.close()
    assert (await send("GET", "/ui/hooks")).status == 200
    assert (await send("GET", "/ui/hook?name=superoffice:webhook/1")).status == 404
    assert (await send("GET", "/ui/testing")).status == 404  # the toolkit is off here
    assert (await send("GET", "/ui/namespace?name=x")).status == 404
    assert (await send("POST", "/ui/logout", "xsrf=forged")).status == 403
    assert (await send("POST", "/ui/logout", f"xsrf={xsrf}")).status == 303
    assert document.unanswered() == []
