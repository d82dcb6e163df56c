"""Undoing one change (gateway/undo.py): which later changes conflict, the stamps each style
makes on every change, and the mutation's own check inside the write."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import errors
from gateway.model import Change
from gateway.patching import diff
from gateway.undo import check_undo, paths_overlap, undo_mutation


def change(seq: int, old: dict[str, Any] | None, new: dict[str, Any], action: str = "updated",
           actor: str = "ada") -> Change:
    patch, undo = diff(old or {}, new)
    if old is None:
        patch, undo = [{"op": "add", "path": "", "value": new}], [{"op": "remove", "path": ""}]
    return Change(seq, f"2026-01-01T00:00:{seq:02d}.000Z", "sailpoint", "t1", seq, action, actor, f"r{seq}",
                  patch, undo)


V1 = {"a": 1, "b": {"c": 1, "d": 1}, "modified": "m1"}
V2 = {"a": 2, "b": {"c": 1, "d": 1}, "modified": "m2"}
V3 = {"a": 2, "b": {"c": 2, "d": 1}, "modified": "m3"}
V4 = {"a": 2, "b": {"c": 2, "d": 5}, "modified": "m4"}
STAMPS = frozenset({"/modified"})


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("/a", "/a", True), ("/b", "/b/c", True), ("/b/c", "/b", True), ("", "/a", True), ("/a", "/ab", False),
    ("/b/c", "/b/d", False)])
def test_paths_overlap_when_one_is_the_other_or_inside_it(a: str, b: str, overlap: bool) -> None:
    assert paths_overlap(a, b) is overlap


def test_a_change_whose_members_nothing_later_touched_is_undone_and_stamped_anew() -> None:
    first, second, third = change(2, V1, V2), change(3, V2, V3), change(4, V3, V4)
    check_undo(first, [second, third], STAMPS)
    mutate = undo_mutation(first, STAMPS, lambda doc: {**doc, "modified": "now"})
    assert mutate(V4) == {"a": 1, "b": {"c": 2, "d": 5}, "modified": "now"}


def test_a_later_change_of_the_same_member_is_named_in_the_refusal() -> None:
    first, again = change(2, V1, V2), change(3, V2, {**V2, "a": 3, "modified": "m3"}, actor="bob")
    with pytest.raises(errors.Conflict) as refused:
        check_undo(first, [again], STAMPS)
    assert refused.value.message == ("change 2 cannot be undone: change 3 by bob at 2026-01-01T00:00:03.000Z "
                                     "changed /a later; undo that one first")


def test_a_member_inside_one_the_change_replaced_conflicts() -> None:
    whole = change(2, V1, {**V1, "b": {"x": 1}, "modified": "m2"})  # /b/c and /b/d removed, /b/x added
    inside = change(3, {**V1, "b": {"x": 1}}, {**V1, "b": {"x": 2}})
    with pytest.raises(errors.Conflict, match="changed /b/x later"):
        check_undo(whole, [inside], STAMPS)


def test_without_its_stamps_every_sailpoint_change_would_conflict() -> None:
    first, second = change(2, V1, V2), change(3, V2, V3)
    check_undo(first, [second], STAMPS)
    with pytest.raises(errors.Conflict, match="changed /modified later"):
        check_undo(first, [second])


@pytest.mark.parametrize(("target", "later", "message"), [
    (change(1, None, V1, "created"), [], "change 1 is the task's creation, which cannot be undone"),
    (change(2, V1, V2), [change(3, V2, {}, "deleted")], "change 2 cannot be undone: the task was deleted again later "
                                                        "(change 3 by ada at 2026-01-01T00:00:03.000Z)"),
    (change(2, V1, {**V1, "modified": "m2"}), [], "change 2 only stamped the task; there is nothing to undo"),
])
def test_creations_deletions_and_stamps_alone_cannot_be_undone(target: Change, later: list[Change],
                                                               message: str) -> None:
    with pytest.raises(errors.Conflict) as refused:
        check_undo(target, later, STAMPS)
    assert refused.value.message == message


def test_the_mutation_refuses_a_document_that_changed_since_the_check() -> None:
    first = change(2, V1, V2)
    with pytest.raises(errors.Conflict) as refused:
        undo_mutation(first, STAMPS)({**V2, "a": 7})
    assert refused.value.message == "change 2 cannot be undone: the task has changed since; reload the page"
    with pytest.raises(errors.NotFound):
        undo_mutation(first, STAMPS)(None)
