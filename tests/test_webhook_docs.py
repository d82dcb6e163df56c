"""docs/events.md is held to the code: every webhook route, trigger, event name, state,
header, metric, refused metadata address and the failure count it states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.apis import sailpoint_hooks, superoffice_hooks, webmethods_hooks
from gateway.app import create_app
from gateway.config import Config, WebhooksConfig
from gateway.events import targets
from gateway.events.delivery import HookStats
from gateway.events.subscriptions import IDEMPOTENCY_HEADER

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text(encoding="utf-8")
HOOK_ROUTES = re.compile(r"trigger-|/Webhook|taskevents|/webhooks/")


def _paths() -> list[str]:
    found = set()
    for resource in create_app(Config()).router.resources():
        path = resource.canonical.replace("/{tenant}", "")
        if HOOK_ROUTES.search(path):
            found.add(re.sub(r"^/(beta|v2024|v2025)/", "/{beta,v2024,v2025}/", path))
    return sorted(found)


@pytest.mark.parametrize("path", _paths())
def test_every_webhook_route_is_on_the_page(path: str) -> None:
    assert path in PAGE or path.removesuffix("/{id}") + "[/{id}]" in PAGE, path


def test_the_names_and_numbers_the_page_states() -> None:
    names = [*sailpoint_hooks.TRIGGERS, *superoffice_hooks.EVENTS.values(), *superoffice_hooks.STATES,
             *(text for _code, text in webmethods_hooks.OPERATIONS.values()), IDEMPOTENCY_HEADER,
             "X-SuperOffice-Signature", "X-SuperOffice-Event", "X-SuperOffice-EventId", "X-Taskgate-Signature",
             *(family.name for family in HookStats().collect()), *map(str, targets._METADATA),
             *sailpoint_hooks.AUTH_TYPES, *sailpoint_hooks.DISPATCH_MODES]
    assert [name for name in names if name not in PAGE] == []
    assert f"`webhooks.max_failures` (default {WebhooksConfig().max_failures}" in PAGE
    for code, text in webmethods_hooks.OPERATIONS.values():
        assert f"{code} {text}" in PAGE or f"`operation` {code} and\n`operationText` `{text}`" in PAGE
