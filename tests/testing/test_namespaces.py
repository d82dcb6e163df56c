"""The test-control API in one process: the switch, namespaces (prefix, header, SuperOffice
tenants), reset, checkpoints, a task as of an audit row, seeding, and the 404s when off."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.apis.superoffice import ERROR_SOURCE
from gateway.app import create_app
from gateway.config import Config
from gateway.context import STORE
from gateway.testing import api as testing_api
from gateway.testing.namespaces import MAX_CHECKPOINTS
from tests.conftest import Api

NS = "/_taskgate/namespaces"
TASK = {"type": "QUARTZ", "uniqueName": "Cloud Account Aggregation"}


async def _create(api: Api, prefix: str, task_id: str, **extra: Any) -> dict[str, Any]:
    status, body, _ = await api.request("POST", f"{prefix}/task-status/v1", body={**TASK, "id": task_id, **extra})
    assert status == 201, body
    return body


async def _export(api: Api, name: str) -> dict[str, Any]:
    status, body, _ = await api.request("GET", f"{NS}/{name}/export")
    assert status == 200, body
    return body


async def test_with_testing_off_every_taskgate_route_and_every_namespace_prefix_is_404(
        api: Api, aiohttp_client, config: Config) -> None:
    on = create_app(config.replace("testing", enabled=True))  # only its routes are read: it never starts
    routes = [(r.method, r.resource.canonical) for r in on.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/_taskgate/") and r.method != "HEAD"]
    assert len(routes) == 21
    for method, path in routes:
        concrete = path.replace("{ns}", "a").replace("{checkpoint}", "1").replace("{rule}", "1") \
            .replace("{style}", "sailpoint").replace("{id}", "x")
        status, body, _ = await api.request(method, concrete, body={} if method in ("POST", "PUT") else None)
        assert (status, body) == (404, {"error": f"no resource at {concrete}"}), (method, concrete)
    await _create(api, "", "t1")
    for path in ("/_ns/a/task-status/v1/t1", "/_ns/a/task-status/v1", "/_ns/a/rest/pub/opentask"):
        status, body, _ = await api.request("GET", path)
        assert (status, body) == (404, {"error": f"no resource at {path}"})
    status, body, _ = await api.request("GET", "/task-status/v1/t1", headers={"X-Taskgate-Namespace": "a"})
    assert status == 200 and body["id"] == "t1"  # the header means nothing either
    assert not (config.db_path.parent / (config.db_path.name + ".namespaces")).exists()


async def test_the_shipped_configs_leave_testing_off() -> None:
    from pathlib import Path

    from gateway.config import load_config
    root = Path(__file__).resolve().parents[2]
    for path in (root / "config.toml", root / "docs/deploy/config.toml"):
        assert load_config(path, env={}).testing.enabled is False, path
    assert load_config(None, env={"TASKGATE_CONFIG": str(root / "config.toml")}).testing.enabled is False
    unit = (root / "docs/deploy/taskgate.service").read_text()
    assert "--testing" not in unit and "TASKGATE_TESTING" not in unit


async def test_the_same_id_in_two_namespaces_and_the_main_store_are_three_tasks(tapi: Api) -> None:
    a = await _create(tapi, "/_ns/a", "same", description="in a")
    b = await _create(tapi, "/_ns/b", "same", description="in b")
    main = await _create(tapi, "", "same", description="in main")
    assert (a["description"], b["description"], main["description"]) == ("in a", "in b", "in main")
    for prefix, text in (("/_ns/a", "in a"), ("/_ns/b", "in b"), ("", "in main")):
        status, body, _ = await tapi.request("GET", f"{prefix}/v2025/task-status/same")
        assert (status, body["description"]) == (200, text)
    status, body, _ = await tapi.request("GET", "/v2025/task-status/same", headers={"X-Taskgate-Namespace": "b"})
    assert (status, body["description"]) == (200, "in b")
    assert await tapi.store.count_tasks() == 1
    status, body, _ = await tapi.request("GET", NS)
    assert status == 200 and [n["name"] for n in body["namespaces"]] == ["a", "b"]


async def test_superoffice_tenants_are_namespaces(tapi: Api) -> None:
    for tenant in ("Cust1", "Cust2"):
        status, body, _ = await tapi.request("POST", f"/{tenant}/api/v1/BatchTask", body={"Name": tenant})
        assert (status, body) == (200, 1)  # each tenant numbers its own tasks
    for tenant in ("Cust1", "Cust2"):
        status, body, _ = await tapi.request("GET", f"/{tenant}/api/v1/BatchTask/1")
        assert (status, body["Name"]) == (200, tenant)
    status, body, _ = await tapi.request("GET", "/api/v1/BatchTask/1")
    assert status == 404
    assert [t["doc"]["Name"] for t in (await _export(tapi, "Cust2"))["tasks"]] == ["Cust2"]


async def test_reset_and_restore_bring_back_the_exact_exported_state(tapi: Api) -> None:
    await _create(tapi, "/_ns/x", "one")
    await tapi.request("PATCH", "/_ns/x/task-status/v1/one", data='[{"op": "replace", "path": "/percentComplete", '
                       '"value": 40}]', content_type="application/json-patch+json")
    before = await _export(tapi, "x")
    status, body, _ = await tapi.request("POST", f"{NS}/x/checkpoints")
    assert (status, body) == (201, {"checkpoint": 1})
    await _create(tapi, "/_ns/x", "two")
    await tapi.request("DELETE", "/_ns/x/task-status/v1/one")  # not a SailPoint call: 405, changes nothing
    await tapi.request("PATCH", "/_ns/x/task-status/v1/one", data='[{"op": "replace", "path": "/percentComplete", '
                       '"value": 90}]', content_type="application/json-patch+json")
    assert (await _export(tapi, "x")) != before
    status, body, _ = await tapi.request("POST", f"{NS}/x/checkpoints/1/restore")
    assert (status, body) == (200, {"restored": 1})
    assert (await _export(tapi, "x")) == before
    # the restored audit trail goes on from where it was: the next change is the next seq
    await _create(tapi, "/_ns/x", "three")
    assert (await _export(tapi, "x"))["seq"] == before["seq"] + 1
    status, body, _ = await tapi.request("POST", f"{NS}/x/reset")
    assert status == 200 and body["checkpoints"] == []
    assert (await _export(tapi, "x")) == {"tasks": [], "seq": 0}
    status, body, _ = await tapi.request("POST", f"{NS}/x/checkpoints/1/restore")
    assert (status, body) == (404, {"error": "namespace 'x' has no checkpoint 1"})


async def test_checkpoints_are_bounded(tapi: Api) -> None:
    for number in range(1, MAX_CHECKPOINTS + 1):
        status, body, _ = await tapi.request("POST", f"{NS}/c/checkpoints") if number > 1 else \
            await tapi.request("PUT", f"{NS}/c")
        if number == 1:
            assert status == 201
            status, body, _ = await tapi.request("POST", f"{NS}/c/checkpoints")
        assert status == 201, body
    status, body, _ = await tapi.request("POST", f"{NS}/c/checkpoints")
    assert (status, body) == (409, {"error": f"a namespace keeps at most {MAX_CHECKPOINTS} checkpoints; "
                                             "delete one first"})
    status, _, _ = await tapi.request("DELETE", f"{NS}/c/checkpoints/3")
    assert status == 204
    status, body, _ = await tapi.request("POST", f"{NS}/c/checkpoints")
    assert (status, body) == (201, {"checkpoint": MAX_CHECKPOINTS + 1})


@pytest.mark.parametrize("page", [100, 1])  # 1: each later change undone by a query of its own
async def test_a_task_as_of_an_audit_sequence_number(tapi: Api, page: int, monkeypatch) -> None:
    monkeypatch.setattr(testing_api, "_UNDO_PAGE", page)
    created = await _create(tapi, "/_ns/h", "t")
    for value in (10, 20, 30):
        status, _, _ = await tapi.request(
            "PATCH", "/_ns/h/task-status/v1/t", content_type="application/json-patch+json",
            data=f'[{{"op": "replace", "path": "/percentComplete", "value": {value}}}]')
        assert status == 200
    current = await _export(tapi, "h")
    assert current["seq"] == 4
    for seq, version, percent in ((1, 1, 0), (2, 2, 10), (3, 3, 20), (4, 4, 30)):
        status, body, _ = await tapi.request("GET", f"{NS}/h/tasks/sailpoint/t?seq={seq}")
        assert status == 200, body
        assert (body["version"], body["doc"]["percentComplete"]) == (version, percent)
    status, body, _ = await tapi.request("GET", f"{NS}/h/tasks/sailpoint/t?seq=1")
    assert body["doc"]["modified"] == created["modified"]
    status, body, _ = await tapi.request("GET", f"{NS}/h/tasks/sailpoint/t?seq=0")
    assert (status, body) == (404, {"error": "no sailpoint task 't' at that point"})
    for seq in ("x", "%C2%B2", "%EF%BC%95"):  # "²" was a 500; a fullwidth "５" was read as 5
        status, body, _ = await tapi.request("GET", f"{NS}/h/tasks/sailpoint/t?seq={seq}")
        assert (status, body) == (400, {"error": "seq: a non-negative integer"})


async def test_namespaces_are_listed_created_deleted_and_bounded(tapi: Api, aiohttp_client, config: Config) -> None:
    status, body, _ = await tapi.request("PUT", f"{NS}/made")
    assert status == 201 and body["name"] == "made"
    status, body, _ = await tapi.request("PUT", f"{NS}/made")
    assert status == 200
    folder = config.db_path.parent / "t.db.namespaces"  # beside the app's database (tests/testing/conftest.py)
    assert (folder / "made.db").exists()
    status, _, _ = await tapi.request("DELETE", f"{NS}/made")
    assert status == 204 and not (folder / "made.db").exists()
    status, body, _ = await tapi.request("DELETE", f"{NS}/made")
    assert (status, body) == (404, {"error": "no namespace 'made'"})
    status, body, _ = await tapi.request("GET", f"{NS}/made")
    assert (status, body) == (404, {"error": "no namespace 'made'"})
    status, body, _ = await tapi.request("PUT", f"{NS}/bad%20name")
    assert status in (400, 404)
    # a plain user may not drive the API; a read-only token neither
    for token in (tapi.user, tapi.read_only):
        status, body, _ = await tapi.request("GET", NS, token=token)
        assert (status, body) == (403, {"error": "the /_taskgate/ API is for admins"})


async def test_more_namespaces_than_the_bound_get_503_in_the_vendor_shape(aiohttp_client, config: Config) -> None:
    from gateway.auth import AUTHENTICATOR
    client = await aiohttp_client(create_app(config.replace("testing", enabled=True, max_namespaces=2)))
    await client.app[STORE].add_user("root", "admin", None)
    token = await client.app[AUTHENTICATOR].create_token("root")
    headers = {"Authorization": f"Bearer {token}"}
    for name in ("n1", "n2"):
        assert (await client.get(f"/_ns/{name}/v2025/task-status/x", headers=headers)).status == 404
    resp = await client.get("/_ns/n3/v2025/task-status/x", headers=headers)
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    body = await resp.json()
    assert body["messages"][0]["text"] == "2 namespaces are open (testing.max_namespaces); delete one first"
    resp = await client.put(f"{NS}/n3", headers=headers)
    assert resp.status == 503
    assert (await client.delete(f"{NS}/n1", headers=headers)).status == 204
    assert (await client.put(f"{NS}/n3", headers=headers)).status == 201


async def test_a_user_who_is_not_an_admin_makes_at_most_four_namespaces(tapi: Api) -> None:
    """By using them: namespaces never expire, and only an admin may delete one, so one
    user filled all 32 and the admin's own PUT got 503. The fifth is a 429 in the route's
    vendor shape; the user's four still answer, an admin makes more, and a deleted one
    gives its place back."""
    for n in range(4):
        assert (await tapi.request("GET", f"/_ns/u{n}/api/v1/BatchTask", token=tapi.user))[0] == 200
    status, body, _ = await tapi.request("GET", "/_ns/u4/api/v1/BatchTask", token=tapi.user)
    assert status == 429
    assert body == {"Error": True, "ErrorType": "TooManyRequestsException", "ErrorSource": ERROR_SOURCE,
                    "ErrorMessage": "you have made 4 namespaces that are open, the most one user may "
                    "(testing.max_namespaces_per_user); use one of them, or ask an admin to delete one"}
    assert [n["name"] for n in (await tapi.request("GET", NS))[1]["namespaces"]] == ["u0", "u1", "u2", "u3"]
    assert (await tapi.request("GET", "/_ns/u3/api/v1/BatchTask", token=tapi.user))[0] == 200
    assert (await tapi.request("GET", "/_ns/a4/api/v1/BatchTask"))[0] == 200  # the admin's, by use
    assert (await tapi.request("PUT", f"{NS}/suite"))[0] == 201
    assert (await tapi.request("DELETE", f"{NS}/u0"))[0] == 204
    assert (await tapi.request("GET", "/_ns/u4/api/v1/BatchTask", token=tapi.user))[0] == 200


async def test_seed_loads_each_vendors_documents_and_reports_them(tapi: Api) -> None:
    seed = {"sailpoint": [{"id": "s1", "type": "QUARTZ", "uniqueName": "seeded", "percentComplete": 5}],
            "superoffice": [{"Id": 7, "Name": "seeded", "State": "Started"}],
            "webmethods": [{"TaskInfo": {"taskID": "w1", "taskTypeID": "T1", "status": "active", "name": "seeded"},
                            "TaskData": {"k": "v"}}]}
    status, body, _ = await tapi.request("POST", f"{NS}/seeded/seed", body=seed)
    assert (status, body) == (200, {"loaded": {"sailpoint": 1, "superoffice": 1, "webmethods": 1}})
    status, body, _ = await tapi.request("GET", "/_ns/seeded/v2025/task-status/s1")
    assert (status, body["uniqueName"], body["percentComplete"]) == (200, "seeded", 5)
    status, body, _ = await tapi.request("GET", "/_ns/seeded/api/v1/BatchTask/7")
    assert (status, body["Name"], body["State"]) == (200, "seeded", "Started")
    status, body, _ = await tapi.request("GET", "/_ns/seeded/rest/pub/opentask/w1?includeTaskData=true")
    assert status == 200 and body["TaskInfo"]["name"] == "seeded" and body["TaskData"] == {"k": "v"}
    before = await _export(tapi, "seeded")
    status, body, _ = await tapi.request("POST", f"{NS}/seeded/seed",
                                         body={"sailpoint": [{"id": "s2", "type": "QUARTZ", "uniqueName": "u"},
                                                                       {"type": "QUARTZ"}]})
    assert (status, body) == (400, {"error": "seed sailpoint[1]: a TaskStatus needs a string id"})
    assert await _export(tapi, "seeded") == before  # nothing of a refused seed is stored


@pytest.mark.parametrize(("method", "route"), [("POST", "faults"), ("POST", "journal/count"), ("POST", "seed"),
                                             ("POST", "progress"), ("PUT", "clock")])
async def test_the_toolkit_reads_bodies_as_the_styles_do(tapi: Api, method: str, route: str) -> None:
    """Nesting past 64 levels, duplicate members and a charset other than utf-8 are 400 and
    415 with the reason, as on the styles' routes (they were 500s, and a seed stored such
    documents), and leave the namespace as it was."""
    assert (await tapi.request("PUT", f"{NS}/bodies"))[0] == 201
    before = await _export(tapi, "bodies")
    deep = "[" * 100_000 + "]" * 100_000
    status, body, _ = await tapi.request(method, f"{NS}/bodies/{route}", data=deep)
    assert (status, body) == (400, {"error": "malformed JSON: nested too deeply"})
    nested = '{"sailpoint": [{"id": "d", "type": "QUARTZ", "uniqueName": "u", "attributes": ' + \
        '{"a": ' * 80 + "1" + "}" * 80 + "}]}"
    status, body, _ = await tapi.request(method, f"{NS}/bodies/{route}", data=nested)
    assert (status, body) == (400, {"error": "nested deeper than 64 levels"})
    status, body, _ = await tapi.request(method, f"{NS}/bodies/{route}", data='{"sailpoint": [], "sailpoint": []}')
    assert (status, body) == (400, {"error": "malformed JSON: the key 'sailpoint' appears twice in one object"})
    status, body, _ = await tapi.request(method, f"{NS}/bodies/{route}", data="{}",
                                         content_type="application/json; charset=x-bogus")
    assert (status, body) == (415, {"error": "charset 'x-bogus' is not supported; use utf-8"})
    assert await _export(tapi, "bodies") == before


async def test_namespaces_work_under_a_base_path(aiohttp_client, config: Config) -> None:
    from gateway.auth import AUTHENTICATOR
    client = await aiohttp_client(create_app(config.replace("testing", enabled=True).replace("server",
                                                                                           base_path="/tg")))
    inner = client.app._subapps[0]  # the application under the base path holds the store
    await inner[STORE].add_user("root", "admin", None)
    headers = {"Authorization": f"Bearer {await inner[AUTHENTICATOR].create_token('root')}"}
    resp = await client.post("/tg/_ns/a/task-status/v1", json={**TASK, "id": "x"}, headers=headers)
    assert resp.status == 201
    assert (await client.get("/tg/_ns/a/task-status/v1/x", headers=headers)).status == 200
    assert (await client.get("/tg/task-status/v1/x", headers=headers)).status == 404
    resp = await client.get("/tg/_ns/a/task-status/v1/nope", headers=headers)
    assert resp.status == 404 and (await resp.json())["detailCode"] == "404 Not found"  # SailPoint's shape
    resp = await client.get("/tg/_taskgate/namespaces/a/journal", headers=headers)
    assert [(e["path"], e["status"]) for e in (await resp.json())["entries"]] == [
        ("/task-status/v1", 201), ("/task-status/v1/x", 200), ("/task-status/v1/nope", 404)]


async def test_only_a_caller_who_signs_in_makes_a_namespace(tapi: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer tg_wrong"}):
        resp = await tapi.client.get("/_ns/anon/task-status/v1", headers=headers)
        assert resp.status == 401
        assert await resp.json() == {"error": "no authorization header" if not headers else "invalid token"}
        resp = await tapi.client.get("/task-status/v1", headers={**headers, "X-Taskgate-Namespace": "anon2"})
        assert resp.status == 401
    status, body, _ = await tapi.request("GET", NS)
    assert body["namespaces"] == []
    status, _, _ = await tapi.request("GET", "/_ns/anon/task-status/v1", token=tapi.read_only)
    assert status == 200  # any user who signs in may
    resp = await tapi.client.get("/_ns/anon/task-status/v1")  # once it is open, the route's own rule answers
    assert resp.status == 401
    status, body, _ = await tapi.request("GET", f"{NS}/anon/journal")
    assert [e["status"] for e in body["entries"]] == [200, 401]
