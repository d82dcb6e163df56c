"""Who may see which event: each style's own read rule, applied per event to a caller.

The rules themselves live with their styles (``may_read`` and ``reads_everything`` in
:mod:`gateway.apis.sailpoint_rules`, :mod:`gateway.apis.superoffice_rules` and
:mod:`gateway.apis.webmethods_rules`), where the handlers ask them too; this module only
builds, from a :class:`~gateway.auth.Principal`, each style's caller as that style's
handlers build it, and hands the feed one check per style: None where the caller reads
every task of the style (no document is needed), or the rule to apply to the task's
document, and the part of a document each rule reads (:func:`judged`). It must not hold
a rule of its own, nor do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.apis import sailpoint_rules, superoffice_rules, webmethods_rules
from gateway.auth import Principal
from gateway.events.published import Check
from gateway.model import Doc

__all__ = ["access_for", "judged", "STYLE_NAMES"]


def _sailpoint(who: Principal) -> Check | None:
    caller = sailpoint_rules.Caller(who.name, who.is_admin)
    if sailpoint_rules.reads_everything(caller):
        return None
    return lambda doc: sailpoint_rules.may_read(caller, doc)


def _superoffice(who: Principal) -> Check | None:
    caller = superoffice_rules.Caller(who.name, who.is_admin, who.associate_id, who.read_only)
    if superoffice_rules.reads_everything(caller):
        return None
    return lambda doc: superoffice_rules.may_read(caller, doc)


def _webmethods(who: Principal) -> Check | None:
    actor = webmethods_rules.Actor(who.name, who.is_admin)  # the stream acts for no one else
    if webmethods_rules.reads_everything(actor):
        return None

    def check(doc: Doc | None) -> bool:
        return webmethods_rules.may_read(actor, doc)
    return check


_RULES = {"sailpoint": _sailpoint, "superoffice": _superoffice, webmethods_rules.STYLE: _webmethods}
#: the styles whose events the feed carries
STYLE_NAMES = tuple(_RULES)
_JUDGED = {"sailpoint": sailpoint_rules.judged, "superoffice": superoffice_rules.judged,
           webmethods_rules.STYLE: webmethods_rules.judged}


def judged(style: str, doc: Doc | None) -> Doc | None:
    """What *style*'s read rule reads of *doc* (None: no document), on which every check
    :func:`access_for` hands out answers as on the whole document."""
    if doc is None:
        return None
    part = _JUDGED.get(style)
    return doc if part is None else part(doc)


def access_for(who: Principal, styles: tuple[str, ...]) -> Mapping[str, Check | None]:
    """Each of *styles* → None (*who* reads all its tasks) or the check of a task's document."""
    return {style: _RULES[style](who) for style in styles}
