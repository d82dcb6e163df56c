"""Debian's chromium driven by Playwright, for the dashboard's browser tests.

Playwright for Python drives the system browser (``executable_path``): it downloads
nothing, and its own driver ships inside its wheel. Every page a test opens records the
console's errors and the page's uncaught exceptions (a test ends by checking there are
none, or exactly the ones it expects), and can run axe-core (installed from npm into
``tests/e2e/dashboard_js`` with ``npm ci``) and report its serious and critical findings.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

__all__ = ["CHROMIUM", "AXE", "Watched", "watch", "axe_violations"]

ROOT = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "dashboard_js" / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class Watched:
    page: Page
    errors: list[str] = field(default_factory=list)


def watch(page: Page) -> Watched:
    """*page*, with its console errors and uncaught exceptions collected."""
    watched = Watched(page)
    page.on("console", lambda message: watched.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    return watched


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.1 AA
    rules and axe's best practices), each as ``{id, impact, nodes}``."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # through the DevTools protocol: the page's CSP does not apply
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact,
                                            nodes: v.nodes.map(n => n.target.join(' '))}));
    }""")
    return [v for v in found if v["impact"] in ("serious", "critical")]
