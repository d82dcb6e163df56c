"""The SuperOffice BatchTaskInfo carrier in and out, as pure functions: no HTTP, no SQLite.

Cases come from the vendor's documentation and fixtures (reference/superoffice.md):
the BatchTaskState and BatchTaskCancellationBehaviour tables, case-insensitive member
names (the npm BatchAgent posts camelCase), JSON Patch with case-insensitive paths and an
optional leading slash, the DataContract XML shape, and the npm fixtures' dates with and
without ``SO-TimeZone``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from xml.etree.ElementTree import fromstring, tostring
from zoneinfo import ZoneInfo

import pytest

from gateway import errors
from gateway.apis import superoffice_carrier as carrier
from gateway.apis.superoffice_carrier import Zone
from gateway.limits import MAX_OPERATIONS

OSLO = ZoneInfo("Europe/Oslo")
STATE_LIST = ("Unknown (0), New (1), Aquired (2), Started (3), Succeeded (4), Failed (5), "
              "SucceededManualCleanup (6), All (99999)")


def outcome(run: Any) -> Any:
    """What *run* returns, or the domain error it raises as (type, message)."""
    try:
        return run()
    except errors.TaskgateError as exc:
        return type(exc).__name__, exc.message


# -- member names -------------------------------------------------------------------------
@pytest.mark.parametrize("body, expected", [
    ({"State": "Failed", "Description": "x"}, {"State": "Failed", "Description": "x"}),
    # the npm BatchAgent's camelCase body (UpdateBatchTask)
    ({"id": 7, "state": "Failed", "response": "r"}, {"Id": 7, "State": "Failed", "Response": "r"}),
    ({"PARAMETEROBJECT": {"k": "v"}, "laststarted": None}, {"ParameterObject": {"k": "v"}, "LastStarted": None}),
    # unknown members are ignored, as SuperOffice's JSON binder does; so are the derived ones
    ({"State": "New", "Bogus": 1, "TableRight": {}, "FieldProperties": {}}, {"State": "New"}),
    ({}, {}),
])
def test_canonical_matches_member_names_in_any_case(body, expected):
    assert carrier.canonical(body) == expected


def test_canonical_refuses_one_member_in_two_spellings():
    assert outcome(lambda: carrier.canonical({"State": "New", "state": "Failed"})) == (
        "BadRequest", "BatchTaskInfo: State is given more than once")


# -- XML in --------------------------------------------------------------------------------
DC = "http://schemas.datacontract.org/2004/07/SuperOffice.CRM.Services"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


@pytest.mark.parametrize("xml, expected", [
    ("<BatchTaskInfo><State>Failed</State><Description>done</Description></BatchTaskInfo>",
     {"State": "Failed", "Description": "done"}),
    # member names in any case; an empty element is the empty string
    ("<BatchTaskInfo><state>1</state><response/></BatchTaskInfo>", {"State": "1", "Response": ""}),
    # a DataContract namespace on the root and the members
    (f'<BatchTaskInfo xmlns="{DC}"><State>Started</State></BatchTaskInfo>', {"State": "Started"}),
    (f'<BatchTaskInfo xmlns:i="{XSI}"><LastStarted i:nil="true"/></BatchTaskInfo>', {"LastStarted": None}),
    ("<BatchTaskInfo><ParameterObject><KeyValueOfstringstring><Key>a</Key><Value>1</Value></KeyValueOfstringstring>"
     "<KeyValueOfstringstring><Key>b</Key><Value/></KeyValueOfstringstring></ParameterObject></BatchTaskInfo>",
     {"ParameterObject": {"a": "1", "b": ""}}),
    # a carrier echoed back: its rights are not task data
    ("<BatchTaskInfo><State>New</State><TableRight><Mask>Select</Mask><Reason/></TableRight>"
     "<FieldProperties><State><FieldType>x</FieldType></State></FieldProperties></BatchTaskInfo>", {"State": "New"}),
    ("<BatchTaskInfo><Bogus>1</Bogus></BatchTaskInfo>", {}),
])
def test_fields_from_xml(xml, expected):
    assert carrier.fields_from_xml(fromstring(xml)) == expected


@pytest.mark.parametrize("xml, message", [
    ("<ContactEntity><State>New</State></ContactEntity>",
     "the XML root element must be BatchTaskInfo, not 'ContactEntity'"),
    ("<BatchTaskInfo><State>New</State><state>Failed</state></BatchTaskInfo>",
     "BatchTaskInfo: <state> is given more than once"),
    ("<BatchTaskInfo><Description><b>bold</b></Description></BatchTaskInfo>",
     "BatchTaskInfo: <Description> must hold text, not elements"),
    ("<BatchTaskInfo><ParameterObject><KeyValueOfstringstring><Key>a</Key></KeyValueOfstringstring>"
     "</ParameterObject></BatchTaskInfo>", "BatchTaskInfo: ParameterObject entries need <Key> and <Value>"),
])
def test_fields_from_xml_refuses(xml, message):
    assert outcome(lambda: carrier.fields_from_xml(fromstring(xml))) == ("BadRequest", message)


# -- form in -------------------------------------------------------------------------------
def test_fields_from_form_maps_fields_onto_members():
    """ASP.NET form binding: ``State=Failed&Description=x`` onto the properties."""
    assert carrier.fields_from_form([("State", "Failed"), ("description", "x"), ("Other", "y")]) == {
        "State": "Failed", "Description": "x"}


def test_fields_from_form_refuses_a_field_given_twice():
    assert outcome(lambda: carrier.fields_from_form([("State", "New"), ("State", "Failed")])) == (
        "BadRequest", "form field 'State' is given more than once")


# -- JSON Patch as SuperOffice takes it ---------------------------------------------------
@pytest.mark.parametrize("ops, expected", [
    # the vendor's own example shape; paths are case-insensitive, the leading slash optional
    ([{"op": "replace", "path": "/State", "value": "Failed"}],
     [{"op": "replace", "path": "/State", "value": "Failed"}]),
    ([{"op": "replace", "path": "state", "value": "Failed"}], [{"op": "replace", "path": "/State", "value": "Failed"}]),
    ([{"op": "REPLACE", "path": "/DESCRIPTION", "value": "x"}],
     [{"op": "replace", "path": "/Description", "value": "x"}]),
    ([{"op": "add", "path": "parameterobject/k", "value": "v"}, {"op": "remove", "path": "/ParameterObject/j"}],
     [{"op": "add", "path": "/ParameterObject/k", "value": "v"}, {"op": "remove", "path": "/ParameterObject/j"}]),
    ([{"op": "test", "path": "/state", "value": "New"}, {"op": "replace", "path": "/Response", "value": None}],
     [{"op": "test", "path": "/State", "value": "New"}, {"op": "replace", "path": "/Response", "value": None}]),
    # members an operation does not define are dropped
    ([{"op": "replace", "path": "/State", "value": "New", "from": "/Name", "extra": 1}],
     [{"op": "replace", "path": "/State", "value": "New"}]),
])
def test_normalize_patch(ops, expected):
    assert carrier.normalize_patch(ops) == expected


@pytest.mark.parametrize("body, message", [
    ([], "a JSON Patch must be a non-empty array of operations"),
    ({"op": "replace"}, "a JSON Patch must be a non-empty array of operations"),
    ([1], "[0]: an operation needs string members op and path"),
    ([{"op": "replace", "value": 1}], "[0]: an operation needs string members op and path"),
    # move and copy are not supported by SuperOffice
    ([{"op": "move", "from": "/Name", "path": "/Description"}],
     "[0].op: 'move' is not supported; use add, replace, remove or test"),
    ([{"op": "copy", "from": "/Name", "path": "/Description"}],
     "[0].op: 'copy' is not supported; use add, replace, remove or test"),
    ([{"op": "replace", "path": "/State"}], "[0]: replace needs a value"),
    ([{"op": "test", "path": "/State"}], "[0]: test needs a value"),
    ([{"op": "replace", "path": "/State", "value": "New"}, {"op": "add", "path": "/Nope", "value": 1}],
     "[1].path: BatchTaskInfo has no member 'Nope'"),
    ([{"op": "replace", "path": "/State", "value": "New"}] * (MAX_OPERATIONS + 1),
     f"the patch has {MAX_OPERATIONS + 1} operations; at most {MAX_OPERATIONS} are allowed"),
])
def test_normalize_patch_refuses(body, message):
    assert outcome(lambda: carrier.normalize_patch(body)) == ("BadRequest", message)


# -- member values -------------------------------------------------------------------------
#: BatchTaskState, name and value, as the vendor's enum table gives them ("Aquired" sic)
STATES = [("Unknown", 0), ("New", 1), ("Aquired", 2), ("Started", 3), ("Succeeded", 4), ("Failed", 5),
          ("SucceededManualCleanup", 6), ("All", 99999)]


@pytest.mark.parametrize("name, number", STATES)
def test_every_state_by_name_number_and_text(name, number):
    for given in (name, name.lower(), name.upper(), number, str(number), f" {name} "):
        assert carrier.state_name(given) == name


@pytest.mark.parametrize("value", ["Stopping", "Stopped", "Finished", "Cancelled", "Acquired", "7", 100000, -1, ""])
def test_states_the_vendor_does_not_have_are_refused(value):
    assert outcome(lambda: carrier.state_name(value)) == (
        "BadRequest", f"invalid BatchTaskInfo: State: {str(value)!r} is not one of {STATE_LIST}.")


@pytest.mark.parametrize("value", [True, False, 3.0, ["New"], {"State": "New"}])
def test_a_state_is_a_name_or_a_number(value):
    assert outcome(lambda: carrier.state_name(value)) == (
        "BadRequest", f"invalid BatchTaskInfo: State: Must be a name or number of {STATE_LIST}.")


def test_a_state_is_never_null():
    assert outcome(lambda: carrier.state_name(None)) == (
        "BadRequest", "invalid BatchTaskInfo: State: Field may not be null.")


@pytest.mark.parametrize("given, name", [("CanCancel", "CanCancel"), (0, "CanCancel"), ("cancelwithwarning",
                                         "CancelWithWarning"), ("1", "CancelWithWarning"), (2, "CannotCancel")])
def test_cancellation_behaviour_by_name_or_number(given, name):
    assert carrier.load_fields({"CancellationBehaviour": given}, Zone(UTC)) == {"CancellationBehaviour": name}


@pytest.mark.parametrize("raw, loaded", [
    # the four updatable texts are 254 long in the database (batchtask table doc)
    ({"Description": "x" * 254, "Response": "", "Request": None}, {"Description": "x" * 254, "Response": "",
                                                                  "Request": ""}),
    # XML and form bodies carry text only, so numbers and booleans come as text too
    ({"ProgressPercent": "40", "IsSystemTask": "true", "IsInternalTask": "0", "StartCount": 3},
     {"ProgressPercent": 40, "IsSystemTask": True, "IsInternalTask": False, "StartCount": 3}),
    ({"ParameterObject": {"k": "v"}}, {"ParameterObject": {"k": "v"}}),
    ({"Bogus": 1}, {}),
])
def test_load_fields_gives_the_stored_form(raw, loaded):
    assert carrier.load_fields(raw, Zone(UTC)) == loaded


@pytest.mark.parametrize("raw, message", [
    ({"Description": "x" * 255}, "Description: Longer than maximum length 254."),
    ({"ProgressPercent": 40.5}, "ProgressPercent: Not a valid integer."),
    ({"ProgressPercent": True}, "ProgressPercent: Not a valid integer."),
    ({"DetailsTable": 2**15}, "DetailsTable: Must be greater than or equal to -32768 and less than or equal to 32767."),
    ({"Id": 2**31}, "Id: Must be greater than or equal to -2147483648 and less than or equal to 2147483647."),
    ({"LastStarted": "yesterday"}, "LastStarted: Not a valid date-time; use ISO 8601, e.g. 2024-05-17T19:33:16."),
    # every invalid member is named, in the carrier's order
    ({"Description": 5, "State": "Stopped"}, f"State: 'Stopped' is not one of {STATE_LIST}.; "
                                              "Description: Not a valid string."),
])
def test_load_fields_names_every_invalid_member(raw, message):
    assert outcome(lambda: carrier.load_fields(raw, Zone(UTC))) == ("BadRequest", f"invalid BatchTaskInfo: {message}")


@pytest.mark.parametrize("given, stored", [
    # without an offset a date is in the request's zone (Oslo: +02:00 in May)
    ("2024-05-17T10:00:00", "2024-05-17T08:00:00.000Z"),
    ("2024-05-17T10:00:00.2902385", "2024-05-17T08:00:00.290Z"),
    # a Z or an offset is honoured
    ("2024-05-17T10:00:00Z", "2024-05-17T10:00:00.000Z"),
    ("2018-06-22T16:32:48.2902385+02:00", "2018-06-22T14:32:48.290Z"),
    # SuperOffice's empty date, with what a client's serializer may add
    ("0001-01-01T00:00:00", None), ("0001-01-01T00:00:00.0000000Z", None), ("", None), (None, None),
])
def test_dates_in_are_read_in_the_zone_and_stored_in_utc(given, stored):
    assert carrier.load_fields({"LastStarted": given}, Zone(OSLO)) == {"LastStarted": stored}


# -- SO-TimeZone ---------------------------------------------------------------------------
@pytest.mark.parametrize("header, zone", [
    (None, Zone(OSLO)), ("", Zone(OSLO)), (" ", Zone(OSLO)),  # no header: the base zone, no offsets
    ("UTC", Zone(UTC)), ("utc", Zone(UTC)), ("1", Zone(UTC)),
    ("UTC,includeTZOffset", Zone(UTC, True)),  # as the npm client sends it, no space
    ("UTC, includeTZOffset", Zone(UTC, True)), ("no, INCLUDETZOFFSET", Zone(OSLO, True)),
    ("NO", Zone(OSLO)), ("261", Zone(OSLO)), ("US-NY", Zone(ZoneInfo("America/New_York"))),
    ("460", Zone(ZoneInfo("America/New_York"))), ("Europe/Paris", Zone(ZoneInfo("Europe/Paris"))),
])
def test_parse_time_zone(header, zone):
    assert carrier.parse_time_zone(header, OSLO) == zone


@pytest.mark.parametrize("header, message", [
    ("UTC, bogus", "SO-TimeZone: unknown option 'bogus'; the only one is includeTZOffset"),
    ("Mars/Base", "SO-TimeZone: unknown time zone 'Mars/Base'; use a SuperOffice code (UTC, NO, DK, FR, US-NY, "
                  "US-CA, AU-ACT, CA-QC, BD, US-HI), its numeric id, or an IANA name"),
    ("../etc", "SO-TimeZone: unknown time zone '../etc'; use a SuperOffice code (UTC, NO, DK, FR, US-NY, "
               "US-CA, AU-ACT, CA-QC, BD, US-HI), its numeric id, or an IANA name"),
])
def test_parse_time_zone_refuses(header, message):
    assert outcome(lambda: carrier.parse_time_zone(header, UTC)) == ("BadRequest", message)


# -- the carrier as a client sees it ------------------------------------------------------
#: the npm fixtures Appointment63*.json (base zone Oslo): StartDate, and CreatedDate,
#: which SuperOffice tags as UTC whenever offsets are asked for
FIXTURE_START = "2002-03-31T16:00:00.000Z"
FIXTURE_CREATED = "2002-08-07T12:52:00.000Z"


@pytest.mark.parametrize("zone, last_started, created", [
    (Zone(OSLO), "2002-03-31T18:00:00", "2002-08-07T14:52:00"),                  # Appointment63.json
    (Zone(UTC, True), "2002-03-31T16:00:00Z", "2002-08-07T12:52:00Z"),           # -utctz.json
    (Zone(OSLO, True), "2002-03-31T18:00:00+02:00", "2002-08-07T12:52:00Z"),     # -notz.json
    (Zone(UTC), "2002-03-31T16:00:00", "2002-08-07T12:52:00"),
    (Zone(ZoneInfo("America/New_York"), True), "2002-03-31T11:00:00-05:00", "2002-08-07T12:52:00Z"),
])
def test_view_writes_dates_as_the_fixtures_do(zone, last_started, created):
    doc = {"Id": 1, "LastStarted": FIXTURE_START, "Created": FIXTURE_CREATED, "State": "New"}
    assert carrier.view(doc, zone) == {"Id": 1, "LastStarted": last_started, "Created": created, "State": "New"}


def test_view_writes_the_empty_date_and_leaves_the_stored_doc_alone():
    doc = {"LastStarted": None, "Created": "2024-01-02T03:04:05.678Z"}
    assert carrier.view(doc, Zone(UTC, True)) == {"LastStarted": "0001-01-01T00:00:00",
                                                  "Created": "2024-01-02T03:04:05Z"}
    assert doc == {"LastStarted": None, "Created": "2024-01-02T03:04:05.678Z"}


# -- XML out -------------------------------------------------------------------------------
def test_to_xml_writes_the_datacontract_shape():
    value = {"Id": 7, "IsSystemTask": False, "ParameterObject": {"a": "1"}, "Context": None, "State": "New"}
    assert tostring(carrier.to_xml("BatchTaskInfo", value), encoding="unicode") == (
        f'<BatchTaskInfo xmlns:xsi="{XSI}"><Id>7</Id>'
        "<IsSystemTask>false</IsSystemTask><ParameterObject><KeyValueOfstringstring><Key>a</Key><Value>1</Value>"
        '</KeyValueOfstringstring></ParameterObject><Context xsi:nil="true" /><State>New</State></BatchTaskInfo>')


def test_to_xml_writes_lists_as_repeated_items_and_scalars_as_text():
    assert tostring(carrier.to_xml("ArrayOfBatchTaskInfo", [{"Id": 1}, {"Id": 2}]), encoding="unicode") == (
        "<ArrayOfBatchTaskInfo><BatchTaskInfo><Id>1</Id></BatchTaskInfo><BatchTaskInfo><Id>2</Id></BatchTaskInfo>"
        "</ArrayOfBatchTaskInfo>")
    assert tostring(carrier.to_xml("int", 42), encoding="unicode") == "<int>42</int>"
    assert tostring(carrier.to_xml("boolean", True), encoding="unicode") == "<boolean>true</boolean>"


def test_xml_out_reads_back_in():
    """What a client is given as XML, it can PUT back unchanged."""
    doc = {"State": "Started", "Description": "d", "ParameterObject": {"k": "v"}, "Response": "",
           "TableRight": {"Mask": "Select", "Reason": ""}}
    assert carrier.fields_from_xml(fromstring(tostring(carrier.to_xml("BatchTaskInfo", doc)))) == {
        "State": "Started", "Description": "d", "ParameterObject": {"k": "v"}, "Response": ""}
