"""JSON Patch helpers: the audit diff and JSON equality, checked against jsonpatch."""

from __future__ import annotations

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import errors
from gateway.patching import apply_json_patch, diff, same_json

keys = st.text(alphabet="ab/~0", min_size=0, max_size=3)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=12)
documents = st.dictionaries(keys, json_values, max_size=4)


@settings(max_examples=300, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=documents, new=documents)
def test_diff_patches_apply_both_ways(old, new):
    patch, undo = diff(old, new)
    assert same_json(jsonpatch.apply_patch(old, patch), new)
    assert same_json(jsonpatch.apply_patch(new, undo), old)
    assert (patch == []) == same_json(old, new)


@settings(max_examples=300, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=documents, changes=documents, dropped=st.sets(keys, max_size=2))
def test_diff_of_a_copy_that_keeps_some_members_as_they_are(old, changes, dropped):
    # as mutations build the new document: the members they keep are the old objects
    new = {key: value for key, value in {**old, **changes}.items() if key not in dropped}
    patch, undo = diff(old, new)
    assert same_json(jsonpatch.apply_patch(old, patch), new)
    assert same_json(jsonpatch.apply_patch(new, undo), old)
    assert (patch == []) == same_json(old, new)
    assert not {op["path"] for op in patch} & {f"/{key}".replace("~", "~0") for key in old
                                                 if key in new and new[key] is old[key] and "/" not in key}


@pytest.mark.parametrize("a, b, same", [
    (1, True, False), (1, 1.0, False), (0, False, False), ([1], [True], False), ({"a": 1}, {"a": 1.0}, False),
    ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True), ("1", 1, False), ({}, [], False)])
def test_same_json_tells_types_apart(a, b, same):
    assert same_json(a, b) is same


def test_diff_of_a_type_change_is_a_replace():
    assert diff({"a": {"b": 1}}, {"a": {"b": True}}) == (
        [{"op": "replace", "path": "/a/b", "value": True}], [{"op": "replace", "path": "/a/b", "value": 1}])
    assert diff({"a/b": 1, "c~": 2}, {"a/b": 2}) == (
        [{"op": "remove", "path": "/c~0"}, {"op": "replace", "path": "/a~1b", "value": 2}],
        [{"op": "add", "path": "/c~0", "value": 2}, {"op": "replace", "path": "/a~1b", "value": 1}])


def test_apply_leaves_the_input_alone_and_is_all_or_nothing():
    doc = {"a": {"b": [1]}}
    with pytest.raises(errors.Conflict):
        apply_json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 2}, {"op": "remove", "path": "/x"}])
    assert doc == {"a": {"b": [1]}}
    assert apply_json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 2}]) == {"a": {"b": [1, 2]}}
    assert doc == {"a": {"b": [1]}}
