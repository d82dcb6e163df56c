"""The optional fast paths give what the standard library gives, and fall back to it."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from gateway import speedups

TRICKY = [b'{"a": 1, "b": [1.5, -0.0, 1e100, 1e-7, true, null], "c": "\\u00e9\\ud83d\\ude00"}',
          b'{"a": 1, "a": 2}', b'[99999999999999999999, -9223372036854775809, 18446744073709551615]',
          b'"\\ud800"', b' {"x": "\xc3\xa9"} ', b'12345678901234567.5',
          # integers beyond 64 bits wherever a number can start, and beside long digit runs in strings
          b'12345678901234567890', b'-12345678901234567890', b'{"a":12345678901234567890}',
          b'[1,\n\t-99999999999999999999]', b'{"id": "00000000000000000000000000003bb", "n": 18446744073709551616}',
          b'{"id": "0000000000000000000000000001", "f": [1.5, 2e-7]}']
BAD = [b'{"a": NaN}', b"[Infinity]", b"\xef\xbb\xbf{}", b"{", b'"\xff"', b"[1,]", b"", b"01"]


@pytest.fixture(name="path", params=["fast", "stdlib"])
def _path(request, monkeypatch):
    if request.param == "stdlib":
        monkeypatch.setattr(speedups, "orjson", None)
    elif speedups.orjson is None:
        pytest.skip("orjson is not installed")
    return request.param


@pytest.mark.parametrize("text", TRICKY)
def test_loads_reads_what_json_reads(path, text):
    expected = json.loads(text.decode("utf-8"))
    got = speedups.loads(text)
    assert json.dumps(got) == json.dumps(expected)  # compares 1 and 1.0, big integers, inf, surrogates
    assert [type(v) for v in (got if isinstance(got, list) else [got])] == \
        [type(v) for v in (expected if isinstance(expected, list) else [expected])]


@pytest.mark.parametrize("text", [b"[1e400]", b'{"a": -1e400}', b"1" + b"0" * 400 + b".5"])
def test_loads_refuses_a_number_past_a_double_s_range(path, text):
    """json reads 1e400 as infinity, which no JSON text can write back (a test op's message
    failed on it, a 500): refused, as NaN and Infinity are."""
    with pytest.raises(ValueError, match="is beyond the range of a 64-bit float"):
        speedups.loads(text)
    assert speedups.loads(b"[1.7976931348623157e308]") == [1.7976931348623157e308]


def test_loads_leaves_long_digit_runs_in_strings_to_orjson(monkeypatch):
    if speedups.orjson is None:
        pytest.skip("orjson is not installed")
    monkeypatch.setattr(speedups, "_stdlib_loads", None)  # calling it would fail the test
    assert speedups.loads(b'{"id":"000000000000000000000000000003bb","ids":["1234567890123456789012"]}') == \
        {"id": "000000000000000000000000000003bb", "ids": ["1234567890123456789012"]}


@pytest.mark.parametrize("text", BAD)
def test_loads_refuses_with_json_s_errors(path, text):
    with pytest.raises(ValueError) as expected:
        json.loads(text.decode("utf-8"), parse_constant=speedups._reject_constant)
    with pytest.raises(type(expected.value)) as got:
        speedups.loads(text)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, True], "é": "\u2028"}, [2**70], {"k": "\ud800"}, []])
def test_dumps_bytes_writes_the_same_values_as_json(path, value):
    try:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            speedups.dumps_bytes(value)
        return
    assert speedups.dumps_bytes(value) == expected


def test_run_uses_uvloop_when_installed():
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert speedups.run(loop_module()).startswith("uvloop" if speedups.UVLOOP else "asyncio")


def test_loads_reads_long_digit_runs_in_strings_without_the_pattern(monkeypatch):
    """A run of 19 digits in a string, and no float in what orjson read: no integer was
    beyond 64 bits, so neither the pattern nor json runs."""
    if speedups.orjson is None:
        pytest.skip("orjson is not installed")
    monkeypatch.setattr(speedups, "_stdlib_loads", None)
    monkeypatch.setattr(speedups, "_LONG_DIGITS", None)  # searching with it would fail the test
    text = b'{"id":"000000000000000000000000000003eb","n":[1,{"m":18446744073709551615}],"s":"2"}'
    assert speedups.loads(text) == json.loads(text)


FLOATS = [1e-05, 2.5e-07, 9.999999999999999e-05, 1e-09, 1.5e-10, 0.0001, 1e16, -0.0, 5e-324, 10.00001,
          1.7976931348623157e308]
DOCUMENTS = [{"a": [1, 2.5, None, True], "é": "\u2028\x7f\x1f"}, [2**70], {"k": "\ud800"}, [], None, "e-5",
             {"n": None, "f": 1e-05, "s": "0.00001 and 1e-7"}, {"x": float("nan")}, [None, float("inf")], {1: "a"},
             [{"deep": [[[FLOATS]]]}], {"nothing": None, "id": "000000000000000000000000000003eb"}]


@pytest.mark.parametrize("value", DOCUMENTS)
def test_dumps_text_writes_what_json_writes(path, value):
    """Stored text is the standard library's, character for character, NaN refused alike."""
    try:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            speedups.dumps_text(value)
        assert str(got.value) == str(exc)
        return
    assert speedups.dumps_text(value) == expected


def test_dumps_agree_on_every_float_spelling(path):
    """Floats of every magnitude: json's spelling, whichever path wrote them."""
    values = [v for e in range(-320, 309) for m in (1.0, 2.5, 9.99, 1.2345678901234567)
              if math.isfinite(v := m * 10.0 ** e)]
    values += FLOATS + [-v for v in FLOATS]
    for value in values:
        expected = json.dumps([value, {"v": value}], separators=(",", ":"))
        assert speedups.dumps_text([value, {"v": value}]) == expected, value
        assert speedups.dumps_bytes([value, {"v": value}]) == expected.encode(), value


@pytest.mark.parametrize("value", [
    [1e-07, *["e-"] * 20],  # too many "e-" to look at one by one: the value is walked for floats
    [1e-05, "1e-7"], ["1e-7", "0.00001", 1.5], ["e-" * 40], [{"v": 1e-06}, "e-" * 16],
])
def test_dumps_bytes_keeps_json_s_spelling_beside_strings_that_look_like_floats(path, value):
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert speedups.dumps_bytes(value) == expected
