"""HTTP's own header values, read as RFC 9110 says (gateway/codecs.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway import errors
from gateway.codecs import decode_json, parse_http_date, parse_if_match

NOW = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    # the three forms of RFC 9110 §5.6.7, all the same moment
    ("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    # a two-digit year is in the past, unless that is more than 50 years ahead
    ("Friday, 04-Dec-26 00:00:00 GMT", datetime(2026, 12, 4, tzinfo=UTC)),
    ("Monday, 01-Jan-76 00:00:00 GMT", datetime(2076, 1, 1, tzinfo=UTC)),
    ("Monday, 01-Jan-77 00:00:00 GMT", datetime(1977, 1, 1, tzinfo=UTC)),
    # not HTTP-dates: RFC 5322 leniencies, impossible dates and times
    ("Mon, 01 Jan 0 00:00:00 GMT", None),
    ("Mon, 01 Jan 2024 00:00:00 +0000", None),
    ("Mon, 1 Jan 2024 00:00:00 GMT", None),
    ("mon, 01 jan 2024 00:00:00 GMT", None),
    ("Mon, 31 Feb 2024 00:00:00 GMT", None),
    ("Mon, 01 Foo 2024 00:00:00 GMT", None),
    ("Mon, 01 Jan 2024 24:00:00 GMT", None),
    ("Mon, 01 Jan 0000 00:00:00 GMT", None),
    ("2024-01-01T00:00:00Z", None),
    ("", None),
])
def test_http_dates_are_read_in_rfc_9110_s_three_forms_only(text: str, expected: datetime | None):
    assert parse_http_date(text, NOW) == expected


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("*", None), ('"3"', frozenset({3})),
    ('"1", W/"2"', frozenset({1})),  # a weak tag never matches (strong comparison, RFC 9110 §13.1.1)
    ("3", frozenset()),  # unparsable: admits nothing, so the write is refused, not applied blindly
])
def test_if_match_names_the_versions_it_admits(header: str | None, expected: frozenset[int] | None):
    assert parse_if_match(header) == expected


@pytest.mark.parametrize("text", [
    b'{"a":1,"a":2}', b'{"a" :1, "a"\n: 2}', b'[{"x":{"b":1,"b":2}}]',
    b'{"a":1,"a":2,"s":"\\u0022:"}',  # an escaped quote the text does not spell as `":`
    b'{"s":"x\\":y","s":1}', b'{"n":12345678901234567890,"n":1}',  # the json path (long digits) too
])
def test_decode_json_refuses_a_key_named_twice_in_one_object(text: bytes):
    with pytest.raises(errors.BadRequest, match="appears twice in one object"):
        decode_json(text)


@pytest.mark.parametrize(("text", "value"), [
    (b'{"s":"x\\":y"}', {"s": 'x":y'}), (b'[{"a":1},{"a":2}]', [{"a": 1}, {"a": 2}]),
    (b'{"a":{"a":{"a":1}}}', {"a": {"a": {"a": 1}}}), (b'"a\\":"', 'a":'),
])
def test_decode_json_takes_the_same_key_in_different_objects_and_quotes_in_strings(text: bytes, value: object):
    assert decode_json(text) == value


@pytest.mark.parametrize(("text", "message"), [
    (b'{"a":["\\ud800"]}', "a string holds an unpaired UTF-16 surrogate"),
    (b'{"\\uDFFF":1}', "a string holds an unpaired UTF-16 surrogate"),  # a key, an upper-case escape
    (b'"\\udbff"', "a string holds an unpaired UTF-16 surrogate"),
    (b'[' * 65 + b']' * 65, "nested deeper than 64 levels"),
    (b'{"a":1,"a":"\\ud800"}', "appears twice in one object"),  # the duplicate is told first, as before
])
def test_decode_json_refuses_surrogates_and_depth_in_one_walk(text: bytes, message: str):
    with pytest.raises(errors.BadRequest, match=message):
        decode_json(text)


@pytest.mark.parametrize(("text", "value"), [
    (b'{"e":"\\ud83d\\ude00","k":"\\u00e9"}', {"e": "\U0001f600", "k": "\u00e9"}),  # paired: one character
    (b'[' * 64 + b']' * 64, json.loads("[" * 64 + "]" * 64)),
    (b'{"\\\\ud800":"\\\\udfff"}', {"\\ud800": "\\udfff"}),  # an escaped backslash, not a surrogate
])
def test_decode_json_takes_paired_surrogates_and_64_levels(text: bytes, value: object):
    assert decode_json(text) == value


async def test_a_large_xml_body_is_parsed_in_turns_to_the_tree_one_parse_makes_and_refused_alike():
    """Past 64 KiB an XML body is fed to the parser in chunks, with the loop's turn between:
    the tree of one whole parse (a chunk boundary inside a character included), and the
    refusal that one whole parse meets, word for word."""
    from xml.etree.ElementTree import ParseError, tostring

    import defusedxml.ElementTree

    from gateway.codecs import decode_xml
    head = "<BatchTaskInfo><P>"
    body = (head + "x" * (65_535 - len(head)) + "é</P>"
            + "".join(f"<Item{n}>é{'x' * 40}ü</Item{n}>" for n in range(3000)) + "</BatchTaskInfo>").encode()
    assert body[65_535:65_537] == "é".encode()  # the first chunk ends inside it
    assert tostring(await decode_xml(body)) == tostring(defusedxml.ElementTree.fromstring(body, forbid_dtd=True))
    unclosed = b"<a>" * 100_000
    with pytest.raises(ParseError) as whole:
        defusedxml.ElementTree.fromstring(unclosed, forbid_dtd=True)
    for bad, message in ((unclosed, f"malformed XML: {whole.value}"),
                         (b'<!DOCTYPE a [<!ENTITY e "x">]><a>' + b" " * 70_000 + b"&e;</a>",
                          "XML with a DTD, entity declarations or external references is refused")):
        with pytest.raises(errors.BadRequest) as in_turns:
            await decode_xml(bad)
        assert in_turns.value.message == message
