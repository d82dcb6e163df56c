"""The dashboard's admin pages in a real browser (Debian's chromium through Playwright, as
tests/e2e/test_dashboard.py drives it), against a real ``taskgate serve`` with the testing
toolkit on and a real webhook receiver process on loopback: the event subscriptions of
the three styles with their delivery log, a plain user's access-denied page, and the
toolkit's namespace with its journal, faults and clock, reached from the navigation. Each
page is checked by axe-core (no serious or critical violation) and for console errors,
at desktop size and at 360 px in the dark scheme. The subscriptions page is saved into
docs/ on every run, as the list and a task's timeline are."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import axe_violations
from tests.e2e.server import Server
from tests.e2e.server import http as send
from tests.e2e.test_dashboard import PASSWORDS, _browser, _open_page, docs_picture, sign_in  # noqa: F401 (fixtures)
from tests.e2e.test_webhooks import Receiver

pytestmark = pytest.mark.e2e

CONFIG = """
[testing]
enabled = true

[webhooks]
allow_targets = "127.0.0.1"
retry_base_seconds = 0.05
retry_max_seconds = 0.2
poll_seconds = 0.2
max_failures = 2
"""


@pytest.fixture(name="receiver", scope="module")
def _receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    receiver = Receiver(tmp_path_factory.mktemp("receiver"))
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(name="server", scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("dashboard-admin"), config=CONFIG).start()
    try:
        server.cli("user", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORDS["ada"] + "\n")
        server.cli("user", "add", "bob", "--password-stdin", stdin=PASSWORDS["bob"] + "\n")
        yield server
    finally:
        server.stop()


def _http(server: Server, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return send(method, server.base_url + path, f"Bearer {server.admin_token}", body, **kwargs)


def _subscribe(server: Server, receiver: Receiver) -> dict[str, str]:
    made = {}
    reply = _http(server, "POST", "/trigger-subscriptions/v1", {
        "name": "task changes", "triggerId": "taskgate:task-status-changed", "type": "HTTP",
        "httpConfig": {"url": f"{receiver.url}/sailpoint", "httpDispatchMode": "ASYNC",
                       "httpAuthenticationType": "NO_AUTH"}})
    assert reply.status == 201, reply.raw
    made["sailpoint"] = reply.json["id"]
    reply = _http(server, "POST", "/api/v1/Webhook", {
        "Name": "batch tasks", "Events": ["batchtask.created"], "TargetUrl": f"{receiver.url}/superoffice",
        "Secret": "so-secret-e2e-1234", "State": "Active", "Type": "webhook"})
    assert reply.status == 200, reply.raw
    made["superoffice"] = str(reply.json["WebhookId"])
    reply = _http(server, "POST", "/rest/pub/taskevents/endpoints", {"url": f"{receiver.url}/webmethods",
                                                                      "secret": "wm-secret-e2e"})
    assert reply.status == 201, reply.raw
    made["webmethods"] = str(json.loads(reply.raw)["id"])
    return made


def test_the_subscriptions_and_their_delivery_log(server: Server, receiver: Receiver, open_page: Any) -> None:
    receiver.control(fail=["/webmethods"])
    made = _subscribe(server, receiver)
    for path, body in (("/task-status/v1", {"type": "QUARTZ", "uniqueName": "Hooked aggregation"}),
                       ("/api/v1/BatchTask", {"Name": "Hooked export"}), ("/rest/pub/opentask", {"taskTypeID": "T"})):
        assert _http(server, "POST", path, body).status in (200, 201)
    for _ in range(100):  # the webMethods endpoint fails twice and is disabled; the others are delivered to
        if {d["path"] for d in receiver.deliveries() if d["status"] == 200} == {"/sailpoint", "/superoffice"} and \
                sum(d["path"] == "/webmethods" for d in receiver.deliveries()) == 2:
            break
        time.sleep(0.05)
    bobs = open_page()
    page = sign_in(bobs, server, "bob")
    expect(page.get_by_role("navigation", name="Dashboard").get_by_role("link")).to_have_text(["Tasks"])
    page.goto(server.base_url + "/ui/hooks")
    expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
    expect(page.get_by_role("alert")).to_have_text(
        "Only an admin may see the event subscriptions and their deliveries (access denied).")
    assert axe_violations(page) == []
    assert bobs.errors == ["Failed to load resource: the server responded with a status of 403 (Forbidden)"]

    watched = open_page()
    page = sign_in(watched, server, "ada")
    nav = page.get_by_role("navigation", name="Dashboard")
    expect(nav.get_by_role("link")).to_have_text(["Tasks", "Subscriptions", "Testing toolkit"])
    nav.get_by_role("link", name="Subscriptions").click()
    expect(page).to_have_title("Event subscriptions · taskgate dashboard")
    rows = page.locator("table.hooks tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("SailPoint trigger subscription")
    expect(rows.nth(0)).to_contain_text("task changes")
    expect(rows.nth(1)).to_contain_text("batch tasks")
    expect(rows.nth(1)).to_contain_text("batchtask.created")
    expect(rows.nth(2)).to_contain_text("webMethods event endpoint")
    expect(rows.nth(2).locator("td").nth(4)).to_have_text("failed (not delivered to)")
    expect(page.locator("table.deliveries tbody tr", has_text="delivered")).to_have_count(2)
    assert "so-secret-e2e-1234" not in page.content() and "wm-secret-e2e" not in page.content()
    assert axe_violations(page) == []
    docs_picture(page, "dashboard-hooks.png")
    rows.nth(2).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"webMethods event endpoint {made['webmethods']}")
    expect(page.locator("pre.doc")).to_contain_text('"secret": null')
    log = page.locator("table.deliveries tbody tr")
    expect(log).to_have_count(2)
    expect(log.nth(0)).to_contain_text("disabled")
    expect(log.nth(0)).to_contain_text("500")
    expect(log.nth(1)).to_contain_text("failed")
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # the tables become cards
    assert watched.errors == []


def test_the_testing_toolkits_journal_faults_and_clock(server: Server, open_page: Any) -> None:
    assert _http(server, "PUT", "/_taskgate/namespaces/e2e-run/clock",
                 {"frozen": True, "now": "2031-02-03T04:05:06Z"}).status == 200
    assert _http(server, "POST", "/_taskgate/namespaces/e2e-run/faults",
                 {"path": "/task-status/v1/*", "method": "GET", "status": 503, "count": 1}).status == 201
    assert _http(server, "POST", "/_ns/e2e-run/task-status/v1", {"id": "n1", "type": "QUARTZ",
                                                                 "uniqueName": "In a namespace"},
                 headers={"X-Request-ID": "e2e-journal-1"}).status == 201
    assert _http(server, "GET", "/_ns/e2e-run/task-status/v1/n1").status == 503
    watched = open_page(viewport={"width": 360, "height": 740}, color_scheme="dark")
    page = sign_in(watched, server, "ada")
    page.get_by_role("link", name="Testing toolkit").click()
    expect(page).to_have_title("Testing toolkit · taskgate dashboard")
    row = page.locator("table.namespaces tbody tr", has_text="e2e-run")
    expect(row).to_contain_text("2031-02-03T04:05:06.000Z frozen")
    expect(row).to_contain_text("2 kept of 2 recorded")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert axe_violations(page) == []
    row.get_by_role("link", name="e2e-run").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Namespace e2e-run")
    expect(page.locator("#clock")).to_have_text("2031-02-03T04:05:06.000Z, frozen.")
    expect(page.locator("table.faults tbody tr")).to_contain_text(["GET /task-status/v1/*"])
    expect(page.locator("table.faults tbody tr td").nth(2)).to_have_text("answer 503, 0 more times")
    journal = page.locator("table.journal tbody tr")
    expect(journal).to_have_count(2)
    expect(journal.nth(0)).to_contain_text("GET /task-status/v1/n1")
    expect(journal.nth(0)).to_contain_text("rule 1")
    expect(journal.nth(1)).to_contain_text("e2e-journal-1")
    summary = journal.nth(1).locator("summary")
    summary.focus()
    page.keyboard.press("Enter")  # the body opens by keyboard
    expect(journal.nth(1).locator("details pre")).to_contain_text('"In a namespace"')
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert axe_violations(page) == []
    assert watched.errors == []


def test_the_toolkit_pages_are_absent_when_it_is_off(tmp_path: Path, open_page: Any) -> None:
    server = Server(tmp_path).start()
    try:
        server.cli("user", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORDS["ada"] + "\n")
        watched = open_page()
        page = sign_in(watched, server, "ada")
        expect(page.get_by_role("navigation", name="Dashboard").get_by_role("link")).to_have_text(
            ["Tasks", "Subscriptions"])
        page.goto(server.base_url + "/ui/testing")
        expect(page.get_by_role("alert")).to_have_text(
            "The testing toolkit is off (testing.enabled): it has no pages.")
        assert axe_violations(page) == []
        assert watched.errors == ["Failed to load resource: the server responded with a status of 404 (Not Found)"]
    finally:
        server.stop()
