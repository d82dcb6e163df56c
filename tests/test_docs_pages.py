"""docs/ and the code stay coupled: every setting, command and route is on its page, the
generated pages are current, and every page is linked from the README.

One case per item, so that a gap is reported with all the others, not just the first.
``scripts/gen-docs`` (``python -m gateway.docgen``) rewrites the generated pages.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gateway import docgen
from gateway.apis import webmethods
from gateway.app import create_app
from gateway.config import AuthConfig, Config, QuotaConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: the pages issue 17 asks for; any other docs/*.md (not starting with _) must be linked too
REQUIRED_PAGES = ("sailpoint.md", "superoffice.md", "webmethods.md", "configuration.md", "cli.md",
                  "operations.md", "architecture.md", "performance.md")
STYLE_PAGES = {"sailpoint": "sailpoint.md", "superoffice": "superoffice.md", "webmethods": "webmethods.md",
               "ui": "dashboard.md"}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _config_keys() -> list[str]:
    return [f"{section.name}.{f.name}" for section in dataclasses.fields(Config) if section.name != "base_dir"
            for f in dataclasses.fields(section.default_factory())]  # type: ignore[misc]


def _routes() -> list[tuple[str, str, str]]:
    """(method, path, route name) of every route of the application production runs."""
    app = create_app(Config())  # the router only: nothing is opened before the app starts
    return [(r.method, r.resource.canonical, r.name) for r in app.router.routes()
            if r.resource is not None and r.name]


def _pages() -> list[str]:
    found = {p.name for p in DOCS.glob("*.md") if not p.name.startswith("_")}
    return sorted(found | set(REQUIRED_PAGES))


def _links(path: Path) -> list[tuple[str, str]]:
    """(target, anchor) of every relative Markdown link in *path*."""
    found = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _text(path)):
        if re.match(r"[a-z]+:", target) or target.startswith("/"):
            continue  # another site, or a path on a running server
        file, _, anchor = target.partition("#")
        found.append((file, anchor))
    return found


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of *path*."""
    anchors = set()
    in_code = False
    for line in _text(path).splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"#{1,6} (.+)", line)
        if heading and not in_code:
            title = heading.group(1).strip().lower()
            anchors.add("".join(ch for ch in title if ch.isalnum() or ch in " -_").replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("key", _config_keys())
def test_every_setting_is_on_the_configuration_page(key: str):
    assert f"`{key}`" in _text(DOCS / "configuration.md"), f"{key} is missing from docs/configuration.md"


@pytest.mark.parametrize("command", [c.name for c in docgen.commands()])
def test_every_command_is_on_the_cli_page(command: str):
    assert f"### `taskgate {command}`" in _text(DOCS / "cli.md"), f"taskgate {command} is missing from docs/cli.md"


@pytest.mark.parametrize(("method", "path", "name"), _routes(), ids=lambda v: v)
def test_every_route_is_on_its_styles_page_or_operations(method: str, path: str, name: str):
    page = STYLE_PAGES.get(name.partition(":")[0], "operations.md")
    rows = [line for line in _text(DOCS / page).splitlines() if f"`{path}`" in line and f"`{method}`" in line]
    assert rows, f"{method} {path} ({name}) is missing from docs/{page}"


@pytest.mark.parametrize("page", ["configuration.md", "cli.md", *STYLE_PAGES.values(), "operations.md"])
def test_the_generated_pages_are_current(page: str):
    path = DOCS / page
    current = _text(path)
    if page == "configuration.md":
        wanted = docgen.configuration_page()
    elif page == "cli.md":
        wanted = docgen.cli_page()
    else:
        wanted = docgen.with_routes(current, page)
    assert current == wanted, f"docs/{page} is stale: run scripts/gen-docs"


@pytest.mark.parametrize("page", _pages())
def test_every_docs_page_exists_and_the_readme_links_it(page: str):
    assert (DOCS / page).is_file(), f"docs/{page} does not exist"
    assert f"](docs/{page})" in _text(README), f"README.md does not link docs/{page}"


@pytest.mark.parametrize("page", ["README.md", *(f"docs/{p}" for p in _pages())])
def test_relative_links_lead_somewhere(page: str):
    source = ROOT / page
    broken = []
    for file, anchor in _links(source):
        target = (source.parent / file).resolve() if file else source
        if not target.exists():
            broken.append(f"{file}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{file}#{anchor}: no such heading")
    assert not broken, f"{page} has broken links: {broken}"


def test_the_readme_is_short():
    size = len(README.read_bytes())
    assert size < 15_000, f"README.md is {size} bytes; move detail into docs/"


def test_the_readme_states_the_sign_in_lockout_the_defaults_give():
    words = {5: "five", 10: "ten", 20: "twenty"}
    periods = {60: "a minute", 300: "five minutes", 3600: "an hour"}
    defaults = AuthConfig()
    text = " ".join(_text(README).split())
    sentence = (f"{words[defaults.max_failures].capitalize()} failed sign-ins from one address lock it out "
                f"for {periods[defaults.failure_window_seconds]}")
    assert sentence in text


def _modules() -> list[str]:
    """Every module of the server and the schemas, as architecture.md names it."""
    found = []
    for package in ("gateway", "schemas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in ("gateway/__init__.py", "gateway/__main__.py", "gateway/apis/__init__.py",
                                "schemas/__init__.py"):
                found.append(relative)
    return found


def _architecture_name(module: str) -> str:
    """How docs/architecture.md's tables spell *module*: its path below its group's package."""
    for prefix, drop in (("gateway/apis/", "gateway/apis/"), ("gateway/store/", "gateway/"),
                         ("gateway/auth/", "gateway/"), ("schemas/", "schemas/")):
        if module.startswith(prefix):
            return module.removeprefix(drop)
    return module


@pytest.mark.parametrize("module", _modules())
def test_every_module_is_on_the_architecture_page(module: str):
    assert f"`{_architecture_name(module)}`" in _text(DOCS / "architecture.md"), \
        f"{module} is missing from docs/architecture.md"


def test_the_webmethods_page_states_the_audit_page_size():
    text = " ".join(_text(DOCS / "webmethods.md").split())
    assert (f"`maxRes`: the most entries in the page, 1 to {webmethods.MAX_AUDIT_PAGE}; without it, "
            f"{webmethods.MAX_AUDIT_PAGE}.") in text


def test_the_dashboard_page_states_the_timeline_bounds():
    from gateway.ui import pages, views
    text = " ".join(_text(DOCS / "dashboard.md").split())
    assert (f"A page holds at most {pages.TIMELINE_PAGE} changes and {pages.TIMELINE_LINES} members in all, "
            f"{pages.TIMELINE_LINES_PER_CHANGE} of each change") in text
    assert f"shows at most {views.VALUE_CHARS:,} characters of a value" in text


def _guarantees() -> str:
    text = _text(DOCS / "operations.md")
    return text.split("\n## Guarantees\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("key", [f.name for f in dataclasses.fields(QuotaConfig)])
def test_the_guarantees_state_each_quota_with_its_default(key: str):
    default = getattr(QuotaConfig(), key)
    stated = " ".join(_guarantees().split())  # the page wraps its lines anywhere
    assert f"`quota.{key}` (default {default:,g})" in stated, f"quota.{key} (default {default:,g})"


@pytest.mark.parametrize("command", ["user disable", "user delete", "user passwd", "token list", "token revoke",
                                     "oauth-client list", "oauth-client revoke"])
def test_the_guarantees_say_how_to_revoke_with_commands_that_exist(command: str):
    stated = " ".join(_guarantees().split())
    group, _, verb = command.partition(" ")
    assert f"`taskgate {group} " in stated and verb in stated.split(f"`taskgate {group} ")[1].split("`")[0]
    assert f"`taskgate {command}" in _text(DOCS / "cli.md")
