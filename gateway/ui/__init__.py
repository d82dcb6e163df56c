"""The dashboard: server-rendered pages under ``/ui/`` for people, fed live by the changes
the store commits.

- :mod:`~gateway.ui.views`: what the list and a task's page show of each style, the read
  rules, the list's filters as store queries (pure).
- :mod:`~gateway.ui.pages`: sign-in, the list, a task with its timeline, undo, the files.
- :mod:`~gateway.ui.live`: ``GET /ui/live``, the Server-Sent Events stream of each page.
- :mod:`~gateway.ui.admin`: the event subscriptions with their delivery log, and the
  testing toolkit's namespaces (journal, faults, clock): read-only, for admins.
- :mod:`~gateway.ui.openapi`: these routes in the OpenAPI document.

``setup`` registers the routes; ``live_ctx`` (a cleanup context, after the store's) runs
the hub of the live streams. Must not hold SQL or vendor rules.
"""

from aiohttp import web

from gateway.ui.admin import setup_admin
from gateway.ui.live import live, live_ctx
from gateway.ui.pages import setup_pages

__all__ = ["setup", "live_ctx"]


def setup(app: web.Application) -> None:
    """Register every dashboard route, named ``ui:…``."""
    setup_pages(app)
    setup_admin(app)
    app.router.add_get("/ui/live", live, name="ui:live")
