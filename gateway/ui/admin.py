"""The dashboard's admin pages: the event subscriptions with their delivery log, and, when
the testing toolkit is on, its namespaces with their journal, faults and clock.

- ``/ui/hooks``: every webhook subscription of the three styles (SailPoint trigger
  subscriptions, SuperOffice webhooks, webMethods event endpoints), what each receives,
  where it is delivered, how far it has got, and the newest delivery attempts of all;
  ``/ui/hook?name=style:kind/id``: one subscription's document (as its API answers it,
  secrets blanked) and its delivery log. The log is read as ``GET /webhooks/log`` and
  ``taskgate webhooks log`` read it (:func:`gateway.events.webhooks.log_rows`).
- ``/ui/testing``: the open test namespaces; ``/ui/namespace?name=…``: one namespace's
  clock, fault rules, scripted progress and journal (newest first). These read what the
  ``/_taskgate/`` API reads (:mod:`gateway.testing`); with the toolkit off they are a 404
  page, and the navigation does not link them.

Every page is read-only and for admins: anyone else gets the access-denied page (403), as
the APIs behind them answer. Must hold no SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway import errors
from gateway.apis import sailpoint_hooks, superoffice_hooks, webmethods_hooks
from gateway.auth import Principal
from gateway.context import CONFIG, STORE
from gateway.events.webhooks import log_rows
from gateway.model import Doc, Hook
from gateway.testing.api import NAMESPACES
from gateway.testing.namespaces import Namespaces
from gateway.ui import pages

__all__ = ["HookRow", "hook_row", "HOOK_KINDS", "LOG_ROWS", "JOURNAL_ROWS", "toolkit_on", "setup_admin"]

#: delivery attempts shown on the subscriptions page (all hooks) and on one hook's page
LOG_ROWS = 100
#: journal entries shown on a namespace's page, newest first
JOURNAL_ROWS = 200


@dataclass(frozen=True, slots=True)
class HookKind:
    label: str
    name: Callable[[Doc], str]
    target: Callable[[Doc], str]
    receives: Callable[[Doc], str]
    state: Callable[[Doc], str]
    public: Callable[[Doc], Doc]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _sailpoint_receives(doc: Doc) -> str:
    trigger = _text(doc.get("triggerId"))
    return f"{trigger} where {doc['filter']}" if doc.get("filter") else trigger


#: each hook style: its label and the members behind the page's columns
HOOK_KINDS: dict[str, HookKind] = {
    sailpoint_hooks.HOOK_STYLE: HookKind(
        "SailPoint trigger subscription", lambda d: _text(d.get("name")),
        lambda d: _text((d.get("httpConfig") or {}).get("url")), _sailpoint_receives,
        lambda d: "enabled" if d.get("enabled") else "disabled", sailpoint_hooks.public),
    superoffice_hooks.HOOK_STYLE: HookKind(
        "SuperOffice webhook", lambda d: _text(d.get("Name")), lambda d: _text(d.get("TargetUrl")),
        lambda d: ", ".join(str(e) for e in d.get("Events") or ()), lambda d: _text(d.get("State")),
        lambda d: {**superoffice_hooks.public(d), "Secret": None}),  # its API answers it; the page does not
    webmethods_hooks.HOOK_STYLE: HookKind(
        "webMethods event endpoint", lambda d: "", lambda d: _text(d.get("url")),
        lambda _d: webmethods_hooks.EVENT_TYPE, lambda d: _text(d.get("status")), webmethods_hooks.public),
}


@dataclass(frozen=True, slots=True)
class HookRow:
    """One subscription as the page shows it."""

    name: str  # style/id, as the delivery log and ``taskgate webhooks log --hook`` name it
    label: str
    id: str
    title: str
    target: str
    receives: str
    state: str
    active: bool
    cursor: int
    failures: int
    created: str
    updated: str


def hook_row(hook: Hook) -> HookRow:
    kind = HOOK_KINDS.get(hook.style)
    doc = hook.doc
    if kind is None:  # a style this build does not know: its bare facts
        return HookRow(f"{hook.style}/{hook.id}", hook.style, hook.id, "", "", "", "", hook.active, hook.cursor,
                       hook.failures, hook.created, hook.updated)
    return HookRow(f"{hook.style}/{hook.id}", kind.label, hook.id, kind.name(doc), kind.target(doc),
                   kind.receives(doc), kind.state(doc), hook.active, hook.cursor, hook.failures, hook.created,
                   hook.updated)


def _public(hook: Hook) -> Doc:
    kind = HOOK_KINDS.get(hook.style)
    return kind.public(hook.doc) if kind is not None else {}


def _name(request: web.Request) -> str:
    name = request.query.get("name")
    if not name:
        raise errors.BadRequest("the page needs a name")
    return name


async def _admin(request: web.Request, what: str) -> Principal | None:
    who = await pages.signed_in(request)
    if who is not None and not who.is_admin:
        raise errors.Forbidden(f"Only an admin may see {what} (access denied).")
    return who


def _page(request: web.Request, who: Principal, template: str, **values: Any) -> web.Response:
    return pages.html_response(pages.render(template, who=who, xsrf=pages.xsrf_of(request), live="", **values))


# -- subscriptions -------------------------------------------------------------------------------------
@pages.page_handler
async def hooks_page(request: web.Request) -> web.StreamResponse:
    who = await _admin(request, "the event subscriptions and their deliveries")
    if who is None:
        return pages.to_login(request)
    store = request.app[STORE]
    hooks = sorted(await store.list_hooks(), key=lambda h: (h.style, h.num))
    return _page(request, who, "hooks.html", hooks=[hook_row(h) for h in hooks], hook=None,
                 deliveries=await log_rows(store, limit=LOG_ROWS),
                 dispatch=request.app[CONFIG].webhooks.dispatch)


@pages.page_handler
async def hook_page(request: web.Request) -> web.StreamResponse:
    name = _name(request)  # before the sign-in: a bad link is told at once
    who = await _admin(request, "the event subscriptions and their deliveries")
    if who is None:
        return pages.to_login(request)
    store = request.app[STORE]
    hook = next((h for h in await store.list_hooks() if f"{h.style}/{h.id}" == name), None)
    if hook is None:
        raise errors.NotFound(f"No subscription {name[:120]!r}.")
    return _page(request, who, "hook.html", hook=hook_row(hook),
                 document=pages.dumps_pretty(_public(hook)), deliveries=await log_rows(store, hook=name,
                                                                                        limit=LOG_ROWS))


# -- the testing toolkit -------------------------------------------------------------------------------
def toolkit_on(request: web.Request) -> bool:
    return bool(request.app[CONFIG].testing.enabled)


def _namespaces(request: web.Request) -> Namespaces:
    namespaces = request.app.get(NAMESPACES) if toolkit_on(request) else None
    if namespaces is None:
        raise errors.NotFound("The testing toolkit is off (testing.enabled): it has no pages.")
    return namespaces


@pages.page_handler
async def testing_page(request: web.Request) -> web.StreamResponse:
    if await pages.signed_in(request) is None:
        return pages.to_login(request)
    namespaces = _namespaces(request)
    who = await _admin(request, "the testing toolkit")
    assert who is not None
    found = [ns.describe() for name in namespaces.names() if (ns := namespaces.find(name)) is not None]
    return _page(request, who, "testing.html", namespaces=found, limit=namespaces.limit)


@pages.page_handler
async def namespace_page(request: web.Request) -> web.StreamResponse:
    name = _name(request)
    if await pages.signed_in(request) is None:
        return pages.to_login(request)
    namespaces = _namespaces(request)
    who = await _admin(request, "the testing toolkit")
    assert who is not None
    namespace = namespaces.find(name)
    if namespace is None:
        raise errors.NotFound(f"No namespace {name[:80]!r} is open.")
    entries = list(namespace.journal.entries())[-JOURNAL_ROWS:]
    entries.reverse()
    return _page(request, who, "namespace.html", ns=namespace.describe(), faults=[r.describe() for r in
                                                                                   namespace.faults.rules],
                 scripts=[s.describe() for s in namespace.progress.scripts.values()], entries=entries,
                 shown=len(entries), pretty=pages.dumps_pretty)


def setup_admin(app: web.Application) -> None:
    r = app.router
    r.add_get("/ui/hooks", hooks_page, name="ui:hooks")
    r.add_get("/ui/hook", hook_page, name="ui:hook")
    r.add_get("/ui/testing", testing_page, name="ui:testing")
    r.add_get("/ui/namespace", namespace_page, name="ui:namespace")
