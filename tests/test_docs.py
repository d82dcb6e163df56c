"""Docs and code stay coupled: every setting and command is documented, and every setting
is commented in config.toml. The reference moved from the README into docs/ (the README
links it), so that is where each is looked for; tests/test_docs_pages.py checks the pages
themselves, one case per item."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gateway.cli import build_parser
from gateway.config import Config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
CLI = (ROOT / "docs" / "cli.md").read_text()
CONFIG_TOML = (ROOT / "config.toml").read_text()


def config_keys() -> list[tuple[str, str]]:
    return [(section.name, f.name) for section in dataclasses.fields(Config) if section.name != "base_dir"
            for f in dataclasses.fields(section.default_factory())]  # type: ignore[misc]


def test_every_setting_is_documented_and_commented_in_config_toml():
    """Every gap is collected, so one run names all of them."""
    gaps = [f"README does not link docs/{page}" for page in ("configuration.md", "cli.md")
            if f"docs/{page}" not in README]
    for section, key in config_keys():
        if f"`{section}.{key}`" not in CONFIGURATION:
            gaps.append(f"{section}.{key} missing from docs/configuration.md")
        if f"[{section}]" not in CONFIG_TOML:
            gaps.append(f"{section}.{key}: config.toml has no [{section}] section")
            continue
        block = CONFIG_TOML.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        if not re.search(rf"#[^\n]*\n(#[^\n]*\n)*{key} = ", block):
            gaps.append(f"{section}.{key} not commented in config.toml")
    assert gaps == [], "\n".join(gaps)


def test_every_command_is_documented():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    gaps = [f"command {name} missing from docs/cli.md" for name in sub.choices
            if not re.search(rf"`(taskgate )?{re.escape(name)}[ `]", CLI)]
    assert gaps == [], "\n".join(gaps)
