"""The SuperOffice BatchTaskInfo carrier in and out, as pure functions: member names in
any case, XML and form bodies read into members, JSON Patch as SuperOffice takes it, member
values validated into the stored form, ``SO-TimeZone`` and the dates a client sees, and
the carrier written as XML.

Owns the carrier's shape on the wire. Must not decide what a caller may change or do
(that is :mod:`gateway.apis.superoffice_rules`), do I/O, or know aiohttp. Stored
documents use canonical member names, enum names and UTC ISO 8601 dates (``None`` for
SuperOffice's empty date); what a client sees is computed per request from its
``SO-TimeZone``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError

from gateway import errors
from gateway.clock import parse_iso
from gateway.limits import MAX_OPERATIONS
from schemas.common import flatten_errors
from schemas.superoffice import EMPTY_DATE, FIELDS, STATES, batch_task_schema

__all__ = ["Zone", "SO_ZONES", "find_zone", "parse_time_zone", "format_date", "canonical", "fields_from_xml",
           "fields_from_form", "normalize_patch", "load_fields", "state_name", "view", "to_xml", "STATES"]

_FOLDED = {name.casefold(): name for name in FIELDS}
#: members of the returned carrier that are not task data; clients echo them back
_DERIVED = frozenset({"tableright", "fieldproperties"})

# SuperOffice's own zone codes and ids (GET /api/v1/timezone) for the zones we know the
# IANA name of; the header also takes the numeric id, and, beyond SuperOffice, IANA names.
SO_ZONES: dict[str, tuple[int, str]] = {
    "UTC": (1, "UTC"), "NO": (261, "Europe/Oslo"), "DK": (140, "Europe/Copenhagen"),
    "FR": (156, "Europe/Paris"), "US-NY": (460, "America/New_York"),
    "US-CA": (425, "America/Los_Angeles"), "AU-ACT": (36, "Australia/Sydney"),
    "CA-QC": (114, "America/Toronto"), "BD": (50, "Asia/Dhaka"), "US-HI": (433, "Pacific/Honolulu"),
}
_ZONE_BY_KEY = {code.casefold(): iana for code, (_id, iana) in SO_ZONES.items()}
_ZONE_BY_KEY.update({str(zone_id): iana for _code, (zone_id, iana) in SO_ZONES.items()})


@dataclass(frozen=True, slots=True)
class Zone:
    """How a request reads and writes dates."""

    tz: tzinfo
    include_offset: bool = False


def find_zone(name: str) -> tzinfo | None:
    """A SuperOffice code (any case), its numeric id, or an IANA name; None if unknown."""
    key = name.strip()
    iana = _ZONE_BY_KEY.get(key.casefold(), key)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}", iana):
        return None
    try:
        return UTC if iana == "UTC" else ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def parse_time_zone(header: str | None, base: tzinfo) -> Zone:
    """``SO-TimeZone: CODE[, includeTZOffset]``; no header means the base zone, no offsets."""
    if header is None or not header.strip():
        return Zone(base)
    code, _, option = header.partition(",")
    option = option.strip()
    if option and option.casefold() != "includetzoffset":
        raise errors.BadRequest(f"SO-TimeZone: unknown option {option[:40]!r}; the only one is includeTZOffset")
    tz = find_zone(code)
    if tz is None:
        raise errors.BadRequest(f"SO-TimeZone: unknown time zone {code.strip()[:60]!r}; use a SuperOffice code "
                                f"({', '.join(SO_ZONES)}), its numeric id, or an IANA name")
    return Zone(tz, bool(option))


def format_date(value: str | None, zone: Zone, *, utc_offset: bool = False) -> str:
    """A stored date as SuperOffice writes it: whole seconds, offset only on request.

    *utc_offset* is for creation times, which SuperOffice tags as UTC when offsets are
    asked for (its fixtures: ``…T12:52:00Z`` with ``includeTZOffset``, base-zone time
    without)."""
    if value is None:
        return EMPTY_DATE
    moment = parse_iso(value)
    always_utc = utc_offset and zone.include_offset
    tz = UTC if always_utc else zone.tz
    try:
        local = moment.astimezone(tz)
    except OverflowError:  # a zone's offset would leave year 1..9999: give it in UTC
        local, tz = moment, UTC
    text = f"{local.year:04d}-" + local.strftime("%m-%dT%H:%M:%S")
    if zone.include_offset:
        offset = local.utcoffset()
        if not offset:
            return text + "Z" if tz is UTC or always_utc else text + "+00:00"
        sign = "-" if offset.total_seconds() < 0 else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return text


# -- reading bodies ----------------------------------------------------------------------
def canonical(body: Mapping[str, Any], what: str = "BatchTaskInfo") -> dict[str, Any]:
    """Members of *body* under their canonical names (matched case-insensitively).

    Unknown members are ignored, as SuperOffice's JSON binder does; the same member given
    twice in different spellings is refused."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = _FOLDED.get(str(key).casefold())
        if name is None:
            continue
        if name in out:
            raise errors.BadRequest(f"{what}: {name} is given more than once")
        out[name] = value
    return out


def fields_from_xml(root: Element) -> dict[str, Any]:
    """The members of a ``<BatchTaskInfo>`` document, as text (``None`` for ``nil``)."""
    if _local(root.tag) != "BatchTaskInfo":
        raise errors.BadRequest(f"the XML root element must be BatchTaskInfo, not {_local(root.tag)[:60]!r}")
    raw: dict[str, Any] = {}
    seen: set[str] = set()
    for child in root:
        name = _local(child.tag)
        if name.casefold() in seen:
            raise errors.BadRequest(f"BatchTaskInfo: <{name[:60]}> is given more than once")
        seen.add(name.casefold())
        if name.casefold() in _DERIVED:
            continue
        if name.casefold() == "parameterobject":
            raw[name] = _xml_dictionary(child)
        elif len(child):
            raise errors.BadRequest(f"BatchTaskInfo: <{name[:60]}> must hold text, not elements")
        elif any(_local(k) == "nil" and v == "true" for k, v in child.attrib.items()):
            raw[name] = None
        else:
            raw[name] = child.text or ""
    return canonical(raw)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _xml_dictionary(element: Element) -> dict[str, str]:
    """DataContract's ``<KeyValueOfstringstring><Key/><Value/></…>`` entries."""
    out: dict[str, str] = {}
    for pair in element:
        key = pair.find("Key") if pair.find("Key") is not None else pair.find("{*}Key")
        value = pair.find("Value") if pair.find("Value") is not None else pair.find("{*}Value")
        if key is None or value is None:
            raise errors.BadRequest("BatchTaskInfo: ParameterObject entries need <Key> and <Value>")
        out[key.text or ""] = value.text or ""
    return out


def fields_from_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Flat ``Name=value`` form fields; a member given twice is refused."""
    raw: dict[str, Any] = {}
    for key, value in pairs:
        if key in raw:
            raise errors.BadRequest(f"form field {key[:60]!r} is given more than once")
        raw[key] = value
    return canonical(raw)


def normalize_patch(body: Any) -> list[dict[str, Any]]:
    """JSON Patch as SuperOffice takes it: add/replace/remove/test, member names in any
    case, the leading slash optional. Returns operations with canonical pointers."""
    if not isinstance(body, list) or not body:
        raise errors.BadRequest("a JSON Patch must be a non-empty array of operations")
    if len(body) > MAX_OPERATIONS:
        raise errors.BadRequest(f"the patch has {len(body)} operations; at most {MAX_OPERATIONS} are allowed")
    ops = []
    for index, op in enumerate(body):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise errors.BadRequest(f"[{index}]: an operation needs string members op and path")
        kind = op["op"].lower()
        if kind not in ("add", "replace", "remove", "test"):
            raise errors.BadRequest(f"[{index}].op: {op['op'][:40]!r} is not supported; "
                                    "use add, replace, remove or test")
        if kind != "remove" and "value" not in op:
            raise errors.BadRequest(f"[{index}]: {kind} needs a value")
        path = op["path"] if op["path"].startswith("/") else "/" + op["path"]
        head, sep, rest = path[1:].partition("/")
        name = _FOLDED.get(head.replace("~1", "/").replace("~0", "~").casefold())
        if name is None:
            raise errors.BadRequest(f"[{index}].path: BatchTaskInfo has no member {head[:60]!r}")
        normalized = {"op": kind, "path": f"/{name}{sep}{rest}"}
        if "value" in op:
            normalized["value"] = op["value"]
        ops.append(normalized)
    return ops


# -- member values -------------------------------------------------------------------------
def load_fields(raw: Mapping[str, Any], zone: Zone, *, partial: bool = True) -> dict[str, Any]:
    """Validate and normalise members; BadRequest naming every invalid one."""
    try:
        return batch_task_schema(zone.tz).load(dict(raw), partial=partial)
    except ValidationError as exc:
        raise errors.BadRequest("invalid BatchTaskInfo: " + "; ".join(flatten_errors(exc.messages))) from None


def state_name(value: Any) -> str:
    """A BatchTaskState name from a name (any case) or number; BadRequest otherwise."""
    return load_fields({"State": value}, Zone(UTC))["State"]


# -- the carrier as a client sees it ------------------------------------------------------
def view(doc: Mapping[str, Any], zone: Zone) -> dict[str, Any]:
    """The stored task as SuperOffice returns it (without rights), dates in *zone*."""
    out = dict(doc)
    out["LastStarted"] = format_date(doc.get("LastStarted"), zone)
    out["Created"] = format_date(doc.get("Created"), zone, utc_offset=True)
    return out


# -- XML out -------------------------------------------------------------------------------
def to_xml(root: str, value: Any, item: str = "BatchTaskInfo") -> Element:
    """*value* as an element named *root*: objects as child elements, lists as repeated
    *item* elements, ParameterObject as DataContract key/value pairs."""
    element = Element(root)
    if isinstance(value, Mapping):
        for key, member in value.items():
            if key == "ParameterObject" and root != "FieldProperties" and isinstance(member, Mapping):
                child = Element(key)
                for k, v in member.items():
                    pair = Element("KeyValueOfstringstring")
                    pair.append(_text("Key", k))
                    pair.append(_text("Value", v))
                    child.append(pair)
                element.append(child)
            else:
                element.append(to_xml(key, member, item))
    elif isinstance(value, list):
        for member in value:
            element.append(to_xml(item, member, item))
    elif value is None:
        element.set(_XSI_NIL, "true")
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
    return element


_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _text(tag: str, text: Any) -> Element:
    element = Element(tag)
    element.text = str(text)
    return element
