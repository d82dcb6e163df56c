"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against a real
``taskgate serve`` process (tests/e2e/browser.py says why Playwright).

Each test signs in through the sign-in form, checks that the page logged no console error
(nor any uncaught exception), runs axe-core on every page it opens (no serious or
critical violation), and leaves a screenshot of the page beside its temporary folder when
it fails. The live test measures, in the browser, the time from just before a SailPoint
SDK call to the moment the row of the list shows the change: within 1 s. The list and a
task's timeline are photographed on every run, and saved into docs/ when asked
(:func:`docs_picture`), so that a test run leaves the tree as it found it.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.browser import AXE, CHROMIUM, Watched, axe_violations, watch
from tests.e2e.server import Server
from tests.e2e.server import http as send
from tests.e2e.test_sailpoint_sdk import ops, sdk, strict

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: set to "1" to save the docs' pictures again (see docs/dashboard.md)
PICTURES = "TASKGATE_DOCS_PICTURES"
PASSWORDS = {"ada": "ada-secret-1", "bob": "bob-secret-1", "carol": "carol-secret-1"}
CREATED = "2026-03-02T09:00:00.000Z"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def docs_picture(page: Page, name: str) -> None:
    """A picture of what *page* shows, saved as docs/*name* when :data:`PICTURES` is "1"."""
    shot = page.screenshot(full_page=False)
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get(PICTURES) == "1":
        (DOCS / name).write_bytes(shot)


def _http(server: Server, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return send(method, server.base_url + path, f"Bearer {server.admin_token}", body, **kwargs)


@pytest.fixture(name="server", scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("dashboard")).start()
    try:
        server.cli("user", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORDS["ada"] + "\n")
        server.cli("user", "add", "bob", "--password-stdin", stdin=PASSWORDS["bob"] + "\n")
        server.cli("user", "add", "carol", "--password-stdin", stdin=PASSWORDS["carol"] + "\n")
        yield server
    finally:
        server.stop()


@pytest.fixture(name="browser", scope="module")
def _browser() -> Iterator[Browser]:
    assert AXE.is_file(), "axe-core is missing: run npm ci in tests/e2e/dashboard_js (scripts/test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="open_page")
def _open_page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``open_page(**context options)``: a new page in a context of its own; each page's
    console is checked after the test, and a failed test leaves a screenshot of each."""
    opened: list[tuple[Any, Watched]] = []

    def open_page(**options: Any) -> Watched:
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
        watched = watch(context.new_page())
        watched.page.add_init_script(
            "document.addEventListener('htmx:sseOpen', () => { window.__liveOpen = true; });")
        opened.append((context, watched))
        return watched

    yield open_page
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, (context, watched) in enumerate(opened):
        if failed:
            shot = tmp_path / f"failure-{i}.png"
            watched.page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failed page: {shot}")
        context.close()


def sign_in(watched: Watched, server: Server, user: str, path: str = "/ui/") -> Page:
    page = watched.page
    page.goto(server.base_url + path)
    expect(page).to_have_title("Sign in · taskgate dashboard")
    assert axe_violations(page) == []
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    return page


def sailpoint_task(server: Server, **fields: Any) -> dict[str, Any]:
    body = {"type": "QUARTZ", "uniqueName": "Cloud Account Aggregation", "description": "Aggregate accounts",
            "launcher": "ada", "created": CREATED, **fields}
    body = {name: value for name, value in body.items() if value is not None}  # None: the server's default
    reply = _http(server, "POST", "/task-status/v1", body)
    assert reply.status == 201, reply.raw
    return reply.json


def webmethods_task(server: Server, name: str, assigned: list[str]) -> str:
    reply = _http(server, "POST", "/rest/pub/opentask", {
        "taskTypeID": "26629648-BF99-D8E1-BDC6-AD91EC9AE268",
        "taskQueueInfo": {"name": name, "priority": "high", "assignedToList": assigned}})
    assert reply.status == 200, reply.raw
    return str(json.loads(reply.raw)["taskID"])


def task_url(server: Server, style: str, task_id: str) -> str:
    return f"{server.base_url}/ui/task?{urllib.parse.urlencode({'style': style, 'id': task_id})}"


def diff_rows(entry: Any) -> list[str]:
    """The diff table of a timeline entry, one "member\told\tnew" line per row, read at once
    (a live refresh may replace the entry meanwhile)."""
    return entry.evaluate("li => [...li.querySelectorAll('table.diff tbody tr')]"
                          ".map(tr => [...tr.cells].map(c => c.textContent).join('\\t'))")


def live_open(page: Page) -> None:
    page.wait_for_function("() => window.__liveOpen === true", timeout=5000)


# -- the tests ---------------------------------------------------------------------------------------------
def test_sign_in_then_the_list_and_sign_out(server: Server, open_page: Any) -> None:
    task = sailpoint_task(server, id="a0000000000000000000000000000001", uniqueName="Sign-in check",
                          percentComplete=40)
    watched = open_page()
    page = sign_in(watched, server, "bob")
    expect(page).to_have_title("Tasks · taskgate dashboard")
    row = page.locator("tr", has_text="Sign-in check")
    expect(row).to_contain_text("SailPoint")
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("40 %")
    expect(row.get_by_role("link", name="Sign-in check")).to_have_attribute(
        "href", f"./task?style=sailpoint&id={task['id']}")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_title("Sign in · taskgate dashboard")
    page.goto(server.base_url + "/ui/")  # the session has ended
    expect(page).to_have_title("Sign in · taskgate dashboard")
    assert watched.errors == []


def test_a_wrong_password_is_refused_on_the_form(server: Server, open_page: Any) -> None:
    watched = open_page()
    page = watched.page
    page.goto(server.base_url + "/ui/login")
    page.get_by_label("User").fill("bob")
    page.get_by_label("Password").fill("not-it")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("invalid user name or password")
    assert axe_violations(page) == []
    # the page itself answered 401: the browser says so in the console, and nothing else does
    assert watched.errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]


def test_the_list_filters_sorts_and_pages_across_styles(server: Server, open_page: Any) -> None:
    for i in range(3):
        sailpoint_task(server, id=f"b000000000000000000000000000000{i}", uniqueName=f"Filter sp {i}",
                       percentComplete=30 * i, created=f"2026-03-0{i + 3}T10:00:00.000Z")
    reply = _http(server, "POST", "/api/v1/BatchTask", {"Name": "Filter so nightly export", "State": "Started",
                                                          "ProgressPercent": 65})
    assert reply.status in (200, 201), reply.raw
    webmethods_task(server, "Filter wm approve order", ["bob"])
    watched = open_page()
    page = sign_in(watched, server, "ada")
    page.get_by_label("Text").fill("Filter")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#summary")).to_contain_text("5 tasks")
    names = page.locator("tbody tr td:nth-child(2) a").all_inner_texts()
    assert sorted(names[2:]) == ["Filter sp 0", "Filter sp 1", "Filter sp 2"]  # created in 2026-03, oldest
    page.get_by_label("Style").select_option("sailpoint")
    page.get_by_label("Sort by").select_option("name")
    page.get_by_label("Order").select_option("asc")
    page.get_by_role("button", name="Show").click()
    assert page.locator("tbody tr td:nth-child(2) a").all_inner_texts() == ["Filter sp 0", "Filter sp 1",
                                                                           "Filter sp 2"]
    page.get_by_label("Status").select_option("running")
    page.get_by_label("Owner").fill("nobody")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#summary")).to_contain_text("0 tasks")
    assert axe_violations(page) == []
    page.goto(server.base_url + "/ui/?q=Filter&style=superoffice")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("65 %")
    page.goto(server.base_url + "/ui/?" + urllib.parse.urlencode({"q": "Filter", "page": "2"}))
    expect(page.locator("#summary")).to_contain_text("No task on page 2")
    expect(page.locator("tbody tr")).to_have_text(["No task matches."])
    page.get_by_role("link", name="Previous page").click()
    expect(page.locator("tbody tr")).to_have_count(5)
    assert watched.errors == []


def test_a_sdk_patch_shows_live_in_the_list_within_a_second(server: Server, open_page: Any) -> None:
    task = sailpoint_task(server, id="c0000000000000000000000000000001", uniqueName="Live aggregation")
    watched = open_page()
    page = sign_in(watched, server, "bob", "/ui/?q=Live+aggregation")
    row = page.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("running")
    live_open(page)
    page.evaluate("""() => {
        window.__seen = null;
        const row = document.querySelector('tbody tr');
        new MutationObserver(() => {
            if (window.__seen === null && row.textContent.includes('SUCCESS')) window.__seen = performance.now();
        }).observe(row, {childList: true, subtree: true, characterData: true});
    }""")
    started = page.evaluate("performance.now()")
    with strict():
        sdk(server.base_url, server.admin_token).update_task_status_v1(id=task["id"], json_patch_operation=ops(
            {"op": "replace", "path": "/completionStatus", "value": "Success"},
            {"op": "replace", "path": "/percentComplete", "value": 100}))
    page.wait_for_function("() => window.__seen !== null", timeout=5000)
    elapsed_ms = page.evaluate("window.__seen") - started
    print(f"PATCH by the SDK → the row in the browser: {elapsed_ms:.0f} ms")
    assert elapsed_ms < 1000
    expect(row).to_contain_text("100 %")
    expect(row.locator("td").nth(6)).to_have_text("2")  # the version
    assert axe_violations(page) == []
    assert watched.errors == []


def test_a_task_created_by_a_client_shows_live_in_the_open_list(server: Server, open_page: Any) -> None:
    sailpoint_task(server, id="c1000000000000000000000000000001", uniqueName="Fresh one")
    watched = open_page()
    page = sign_in(watched, server, "bob", "/ui/?q=Fresh")  # the first page, newest first
    expect(page.locator("tbody tr")).to_have_count(1)
    by_name = open_page()
    other = sign_in(by_name, server, "bob", "/ui/?q=Fresh&sort=name&order=asc")  # another sort: a notice
    live_open(page)
    live_open(other)
    page.evaluate("""() => {
        window.__seen = null;
        const body = document.querySelector('tbody');
        new MutationObserver(() => {
            if (window.__seen === null && body.textContent.includes('Fresh two')) window.__seen = performance.now();
        }).observe(body, {childList: true, subtree: true, characterData: true});
    }""")
    started = page.evaluate("performance.now()")
    # one that does not match the filter, then one that does, both by HTTP clients
    sailpoint_task(server, id="c1000000000000000000000000000002", uniqueName="Stale two", created=None)
    created = sailpoint_task(server, id="c1000000000000000000000000000003", uniqueName="Fresh two", created=None,
                             percentComplete=5)
    page.wait_for_function("() => window.__seen !== null", timeout=5000)
    elapsed_ms = page.evaluate("window.__seen") - started
    print(f"POST of a new task → its row at the top of the list in the browser: {elapsed_ms:.0f} ms")
    assert elapsed_ms < 1000
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Fresh two")
    expect(rows.first).to_contain_text("5 %")
    assert "Stale two" not in page.locator("tbody").inner_text()
    # the new row follows live like the others
    _http(server, "PATCH", f"/task-status/v1/{created['id']}", [{"op": "replace", "path": "/percentComplete",
                                                                "value": 80}],
          headers={"Content-Type": "application/json-patch+json"})
    expect(rows.first).to_contain_text("80 %", timeout=3000)
    assert axe_violations(page) == []
    notice = other.locator("#new-tasks")
    expect(notice).to_have_text("1 new task matches this list: show them", timeout=3000)
    expect(other.locator("tbody tr")).to_have_count(1)
    assert axe_violations(other) == []
    notice.get_by_role("link", name="show them").click()
    expect(other.locator("tbody tr td:nth-child(2) a")).to_have_text(["Fresh one", "Fresh two"])
    assert watched.errors == [] and by_name.errors == []


def test_a_task_page_shows_the_diff_of_a_change_and_follows_live(server: Server, open_page: Any) -> None:
    task = sailpoint_task(server, id="d0000000000000000000000000000001", uniqueName="Timeline aggregation",
                          percentComplete=10)
    reply = _http(server, "PATCH", f"/v2025/task-status/{task['id']}",
                  [{"op": "replace", "path": "/percentComplete", "value": 60},
                   {"op": "replace", "path": "/progress", "value": "Aggregating accounts"}],
                  headers={"Content-Type": "application/json-patch+json", "X-Request-ID": "dashboard-first-patch"})
    assert reply.status == 200, reply.raw
    watched = open_page()
    page = sign_in(watched, server, "ada", "/ui/?q=Timeline")
    page.get_by_role("link", name="Timeline aggregation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"SailPoint task {task['id']}")
    first = page.locator("ol.timeline > li").first
    expect(first).to_contain_text("updated to version 2 by admin")
    expect(first).to_contain_text("request id dashboard-first-patch")
    lines = diff_rows(first)
    stamped = next(line for line in lines if line.startswith("/modified"))
    assert re.fullmatch(rf'/modified\t"{CREATED}"\t"{TIME}"', stamped)
    assert sorted(set(lines) - {stamped}) == ["/percentComplete\t10\t60", '/progress\tnull\t"Aggregating accounts"']
    expect(page.locator("ol.timeline > li")).to_have_count(2)
    expect(page.locator("ol.timeline > li").last).to_contain_text("created to version 1")
    assert axe_violations(page) == []
    live_open(page)
    with strict():
        sdk(server.base_url, server.admin_token).update_task_status_v1(id=task["id"], json_patch_operation=ops(
            {"op": "replace", "path": "/completionStatus", "value": "Warning"}))
    expect(page.locator("ol.timeline > li")).to_have_count(3, timeout=3000)
    newest = page.locator("ol.timeline > li").first
    expect(newest).to_contain_text("updated to version 3")
    assert '/completionStatus\tnull\t"WARNING"' in diff_rows(newest)
    page.evaluate("() => document.getElementById('timeline-h').scrollIntoView()")  # the picture is of the timeline
    docs_picture(page, "dashboard-task.png")
    assert axe_violations(page) == []
    assert watched.errors == []


def test_undo_one_change_and_a_refused_undo(server: Server, open_page: Any) -> None:
    task = sailpoint_task(server, id="e0000000000000000000000000000001", uniqueName="Undo aggregation")
    path = f"/task-status/v1/{task['id']}"
    patch = {"headers": {"Content-Type": "application/json-patch+json"}}
    assert _http(server, "PATCH", path, [{"op": "replace", "path": "/percentComplete", "value": 50}], **patch).status \
        == 200
    assert _http(server, "PATCH", path, [{"op": "replace", "path": "/progress", "value": "half"}], **patch).status \
        == 200
    assert _http(server, "PATCH", path, [{"op": "replace", "path": "/progress", "value": "more"}], **patch).status \
        == 200
    watched = open_page()
    page = sign_in(watched, server, "ada", "/ui/task?" + urllib.parse.urlencode({"style": "sailpoint",
                                                                                 "id": task["id"]}))
    seqs = [int(x) for x in re.findall(r"Undo change (\d+)", page.locator("ol.timeline").inner_text())]
    newest, middle, oldest = seqs  # the third, second and first PATCH
    # the second PATCH set /progress, which the third changed again: refused, with the reason
    page.get_by_role("button", name=f"Undo change {middle}").click()
    expect(page.get_by_role("alert")).to_contain_text(
        f"change {middle} cannot be undone: change {newest} by admin at")
    expect(page.get_by_role("alert")).to_contain_text("changed /progress later; undo that one first")
    assert axe_violations(page) == []
    # the first PATCH's member changed nothing later: undone, as a new change
    page.get_by_role("button", name=f"Undo change {oldest}").click()
    expect(page.get_by_role("status")).to_have_text(f"Change {oldest} was undone.")
    newest_entry = page.locator("ol.timeline > li").first
    expect(newest_entry).to_contain_text("updated to version 5 by ada")
    expect(newest_entry).to_contain_text(f"#undo:{oldest}")
    lines = diff_rows(newest_entry)
    assert sorted(line.partition("\t")[0] for line in lines) == ["/modified", "/percentComplete"]
    assert "/percentComplete\t50\t0" in lines
    stored = _http(server, "GET", path).json
    assert (stored["percentComplete"], stored["progress"]) == (0, "more")
    # the browser's own line for the page answered 409, and nothing else
    assert watched.errors == ["Failed to load resource: the server responded with a status of 409 (Conflict)"]


def test_another_users_task_is_an_access_denied_page(server: Server, open_page: Any) -> None:
    task_id = webmethods_task(server, "Approve order 42", ["bob"])
    bobs = open_page()
    page = sign_in(bobs, server, "bob", "/ui/task?" + urllib.parse.urlencode({"style": "webmethods", "id": task_id}))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"webMethods task {task_id}")
    expect(page.locator("pre.doc")).to_contain_text('"Approve order 42"')
    assert bobs.errors == []
    carols = open_page()
    page = sign_in(carols, server, "carol", "/ui/task?" + urllib.parse.urlencode({"style": "webmethods",
                                                                                 "id": task_id}))
    expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
    expect(page.get_by_role("alert")).to_have_text(
        f"No webMethods task '{task_id}', or you may not see it (access denied).")
    assert "Approve order 42" not in page.content()
    assert axe_violations(page) == []
    page.goto(server.base_url + "/ui/?q=Approve+order+42")
    expect(page.locator("tbody tr")).to_have_text(["No task matches."])
    assert carols.errors == ["Failed to load resource: the server responded with a status of 404 (Not Found)"]


def test_small_screens_dark_mode_and_the_keyboard(server: Server, open_page: Any) -> None:
    sailpoint_task(server, id="f0000000000000000000000000000001", uniqueName="Keyboard aggregation",
                   percentComplete=70)
    watched = open_page(viewport={"width": 360, "height": 740}, color_scheme="dark")
    page = sign_in(watched, server, "bob", "/ui/?q=Keyboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the screen
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(18, 20, 23)"
    assert axe_violations(page) == []  # colour contrast is among axe's rules, in the dark scheme too
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    link = page.get_by_role("link", name="Keyboard aggregation")
    for _ in range(20):
        if page.evaluate("document.activeElement.textContent") == "Keyboard aggregation":
            break
        page.keyboard.press("Tab")
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("SailPoint task f0000000000000000000000000000001")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert axe_violations(page) == []
    assert watched.errors == []


def test_the_list_screenshot_for_the_docs(server: Server, open_page: Any) -> None:
    watched = open_page()
    page = sign_in(watched, server, "ada")
    expect(page.locator("tbody tr").first).to_be_visible()
    docs_picture(page, "dashboard-list.png")
    assert watched.errors == []
