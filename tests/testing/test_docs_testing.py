"""docs/testing.md held to the code: its examples are tests that run, its API table names
every /_taskgate/ route, and the settings it names exist."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.app import create_app
from gateway.config import Config
from gateway.testing.faults import MAX_DELAY_MS, MAX_RULES, STATUSES
from gateway.testing.journal import ENTRY_OVERHEAD
from gateway.testing.namespaces import MAX_CHECKPOINTS

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs/testing.md").read_text()
_EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)```", re.S)


def test_each_example_is_a_test_that_runs_word_for_word() -> None:
    examples = _EXAMPLE.findall(PAGE)
    assert len(examples) == 3
    for source, code in examples:
        text = (ROOT / source).read_text()
        imports = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
        body = "\n".join(line for line in code.splitlines() if not line.startswith(("import ", "from "))).strip()
        for line in imports:  # the test file may import more names on the same line
            module, _, names = line.partition(" import ")
            assert any(have.startswith(module + " import ") and set(names.split(", ")) <= set(
                have.partition(" import ")[2].split(", ")) for have in text.splitlines()) or line in text, line
        assert body in text, f"{source} lacks, word for word:\n{body[:200]}"


def test_the_api_table_names_every_route(config: Config) -> None:
    app = create_app(config.replace("testing", enabled=True))
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/_taskgate/") or route.method == "HEAD":
            continue
        rest = path.removeprefix("/_taskgate/namespaces/{ns}")
        shown = path if rest == path else rest
        shown = shown.replace("{checkpoint}", "{n}").replace("{rule}", "{id}")
        if shown:
            assert f"{shown}`" in PAGE or f"{shown} " in PAGE or f"{shown}?" in PAGE, (route.method, path)


def test_the_numbers_on_the_page_are_the_codes() -> None:
    assert f"at most {MAX_CHECKPOINTS} kept" in PAGE and f"{MAX_CHECKPOINTS} checkpoints each" in PAGE
    assert f"{MAX_RULES} fault rules" in PAGE
    assert f"at most {MAX_DELAY_MS // 1000} s" in PAGE
    assert ", ".join(map(str, STATUSES[:-1])) + f" or {STATUSES[-1]}" in PAGE
    assert f"plus {ENTRY_OVERHEAD}\nbytes" in PAGE or f"plus {ENTRY_OVERHEAD} bytes" in PAGE
    assert f"(default {Config().testing.max_namespaces})" in PAGE
