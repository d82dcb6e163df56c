"""The task write path through the store: versions, audit rows, group commit, refusals."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import jsonpatch
import pytest

from gateway import errors
from gateway.clock import parse_iso
from gateway.model import Task
from gateway.query import Query, Sort
from gateway.store.sqlite import SQLiteStore
from tests.store.helpers import bump


async def test_numbered_creates_in_one_batch_get_consecutive_ids_above_explicit_ones(store: SQLiteStore):
    await store.create("so", "41", {"Id": 41}, actor="t", request_id="r")

    def broken(n):
        raise errors.BadRequest("no")

    results = await asyncio.gather(
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="1"),
        store.create_numbered("so", broken, actor="t", request_id="2"),
        store.create("so", "100", {"Id": 100}, actor="t", request_id="3"),
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="4"),
        return_exceptions=True)
    # in queue order: the refused one used up its number (like an identity column), and
    # "100" lifts the counter for the numbered create after it
    assert [r.id if isinstance(r, Task) else type(r).__name__ for r in results] == ["42", "BadRequest", "100", "101"]
    results = await asyncio.gather(
        store.create("so", "102", {"Id": 102}, actor="t", request_id="5"),
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="6"),
        store.put("so", "104", {"Id": 104}, actor="t", request_id="7"),
        store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="8"))
    assert [r.id for r in results] == ["102", "103", "104", "105"]
    await store.delete("so", "105", actor="t", request_id="9")
    assert (await store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="10")).id == "106"
    assert [r[0] for r in await store.read_sql("SELECT last FROM counters")] == [106]
    with pytest.raises(errors.Conflict, match="no integer id is left for so tasks \\(the last is 106\\)"):
        await store.create_numbered("so", lambda n: {"Id": n}, actor="t", request_id="11", max_id=106)
    assert await store.get("so", "107") is None


async def test_unmodified_since_refuses_a_task_changed_after_that_second(store: SQLiteStore):
    task = await store.create("s", "a", {"n": 1}, actor="t", request_id="r")
    assert task.modified and (await store.get("s", "a")).modified == task.modified
    changed = parse_iso(task.modified)
    with pytest.raises(errors.PreconditionFailed, match="was modified after"):
        await store.update("s", "a", bump("n"), actor="t", request_id="r",
                           unmodified_since=changed.replace(microsecond=0) - timedelta(seconds=1))
    with pytest.raises(errors.PreconditionFailed):
        await store.delete("s", "a", actor="t", request_id="r",
                           unmodified_since=changed.replace(microsecond=0) - timedelta(seconds=1))
    task = await store.update("s", "a", bump("n"), actor="t", request_id="r",
                              unmodified_since=changed.replace(microsecond=0))
    assert task.doc == {"n": 2}


async def test_create_update_delete_write_versions_and_audit(store: SQLiteStore):
    await store.create("s", "a", {"n": 1, "l": [1]}, actor="ann", request_id="r1")
    task = await store.update("s", "a", bump("n"), actor="bob", request_id="r2")
    assert (task.version, task.doc) == (2, {"n": 2, "l": [1]})
    await store.delete("s", "a", actor="cy", request_id="r3")
    assert await store.get("s", "a") is None
    trail = await store.audit(style="s", task_id="a", newest_first=False)
    assert [(c.seq, c.version, c.action, c.actor, c.request_id) for c in trail] == [
        (1, 1, "created", "ann", "r1"), (2, 2, "updated", "bob", "r2"), (3, 3, "deleted", "cy", "r3")]
    assert trail[1].patch == [{"op": "replace", "path": "/n", "value": 2}]
    assert trail[1].undo == [{"op": "replace", "path": "/n", "value": 1}]
    # replaying the patches from nothing gives every version; the undos walk back
    doc: dict = {}
    for change, expected in zip(trail, [{"n": 1, "l": [1]}, {"n": 2, "l": [1]}, {}], strict=True):
        doc = jsonpatch.apply_patch(doc, change.patch)
        assert doc == expected
    for change, expected in zip(reversed(trail), [{"n": 2, "l": [1]}, {"n": 1, "l": [1]}, {}], strict=True):
        doc = jsonpatch.apply_patch(doc, change.undo)
        assert doc == expected


async def test_domain_errors_of_the_write_path(store: SQLiteStore):
    await store.create("s", "a", {"n": 1}, actor="t", request_id="r")
    with pytest.raises(errors.Conflict, match="task 'a' already exists"):
        await store.create("s", "a", {"n": 9}, actor="t", request_id="r")
    with pytest.raises(errors.NotFound, match="task 'b' does not exist"):
        await store.update("s", "b", bump("n"), actor="t", request_id="r")
    with pytest.raises(errors.PreconditionFailed, match="task 'a' is at version 1, not 3, 4"):
        await store.update("s", "a", bump("n"), actor="t", request_id="r", if_match=frozenset({3, 4}))
    task = await store.update("s", "a", bump("n"), actor="t", request_id="r", if_match=frozenset({1}))
    assert task.version == 2
    # the same id in another style is another task
    await store.create("other", "a", {"n": 5}, actor="t", request_id="r")
    assert (await store.get("s", "a")).doc == {"n": 2}


async def test_one_batch_applies_in_order_and_leaves_out_a_failing_mutation(store: SQLiteStore):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")

    def explode(old):
        raise errors.BadRequest("nope")

    def crash(old):
        raise ZeroDivisionError("bug")

    # queued together, so one writer batch takes them all
    results = await asyncio.gather(
        store.update("s", "a", bump("n"), actor="t", request_id="1"),
        store.update("s", "a", explode, actor="t", request_id="2"),
        store.update("s", "a", bump("n"), actor="t", request_id="3"),
        store.update("s", "a", crash, actor="t", request_id="4"),
        store.create("s", "b", {"n": 7}, actor="t", request_id="5"),
        store.update("s", "b", bump("n"), actor="t", request_id="6"),
        return_exceptions=True)
    assert [(r.version, r.doc) if not isinstance(r, Exception) else type(r).__name__ for r in results] == [
        (2, {"n": 1}), "BadRequest", (3, {"n": 2}), "InternalError", (1, {"n": 7}), (2, {"n": 8})]
    assert [(c.task_id, c.version, c.request_id) for c in await store.audit(newest_first=False)] == [
        ("a", 1, "r"), ("a", 2, "1"), ("a", 3, "3"), ("b", 1, "5"), ("b", 2, "6")]


async def test_an_unchanged_document_writes_nothing(store: SQLiteStore):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    task = await store.update("s", "a", lambda old: dict(old), actor="t", request_id="r")
    assert task.version == 1
    assert len(await store.audit()) == 1


async def test_listeners_hear_each_commit_after_it(store: SQLiteStore):
    heard = []
    store.on_commit(lambda changes: heard.append([(c.task_id, c.action, c.version) for c in changes]))
    await asyncio.gather(store.create("s", "a", {}, actor="t", request_id="r"),
                         store.create("s", "b", {}, actor="t", request_id="r"))
    await store.delete("s", "a", actor="t", request_id="r")
    assert heard == [[("a", "created", 1), ("b", "created", 1)], [("a", "deleted", 2)]]


async def test_close_finishes_queued_writes(open_store):
    store = await open_store()
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    pending = [asyncio.ensure_future(store.update("s", "a", bump("n"), actor="t", request_id=str(i)))
               for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    assert all(p.done() and not p.exception() for p in pending)
    with pytest.raises(errors.InternalError):
        await store.update("s", "a", bump("n"), actor="t", request_id="late")
    again = await open_store()
    try:
        assert await again.read_sql("SELECT version, doc FROM tasks") == [(51, '{"n":50}')]
    finally:
        await again.close()


async def test_documents_are_stored_as_compact_json(store: SQLiteStore):
    await store.create("s", "a", {"ü": "ß", "n": [1, {"x": None}]}, actor="t", request_id="r")
    assert await store.read_sql("SELECT doc FROM tasks") == [('{"ü":"ß","n":[1,{"x":null}]}',)]
    assert json.loads((await store.read_sql("SELECT patch FROM audit"))[0][0])[0]["op"] == "add"


async def test_an_unstorable_document_fails_alone_in_its_batch(store: SQLiteStore):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    results = await asyncio.gather(
        store.update("s", "a", bump("n"), actor="t", request_id="1"),
        store.update("s", "a", lambda old: {**old, "bad": "\ud800"}, actor="t", request_id="2"),
        store.update("s", "a", lambda old: {**old, "big": "x" * 1_048_576}, actor="t", request_id="3"),
        store.update("s", "a", bump("n"), actor="t", request_id="4"),
        return_exceptions=True)
    assert [r.version if not isinstance(r, Exception) else f"{type(r).__name__}: {r.message}" for r in results] == [
        2, "BadRequest: the task cannot be stored: UnicodeEncodeError",
        "PayloadTooLarge: the task would be 1048592 bytes; at most 1048576 are kept", 3]


async def test_a_failing_listener_does_not_silence_the_others(store: SQLiteStore):
    heard = []

    def broken(changes):
        raise OSError("disk full")

    store.on_commit(broken)
    store.on_commit(lambda changes: heard.append(len(changes)))
    await store.create("s", "a", {}, actor="t", request_id="r")
    assert heard == [1] and (await store.get("s", "a")).version == 1


async def test_the_writer_survives_a_broken_log_sink(store: SQLiteStore):
    import structlog

    class Closed:
        def write(self, text: str) -> int:
            raise ValueError("I/O operation on closed file")

        def flush(self) -> None:
            pass

    def crash(old):
        raise ZeroDivisionError("bug")

    await store.create("s", "a", {"n": 0}, actor="t", request_id="r")
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=Closed()))
    try:
        with pytest.raises(errors.InternalError, match="An internal fault occurred."):
            await asyncio.wait_for(store.update("s", "a", crash, actor="t", request_id="1"), 5)
        task = await asyncio.wait_for(store.update("s", "a", bump("n"), actor="t", request_id="2"), 5)
    finally:
        structlog.reset_defaults()
    assert (task.version, task.doc) == (2, {"n": 1})


async def test_batch_listeners_hear_each_commit_s_size_and_the_probe_writes_nothing(store: SQLiteStore):
    heard = []
    store.on_batch(lambda size, seconds: heard.append((size, seconds > 0)))
    await asyncio.gather(*(store.create("s", str(i), {}, actor="t", request_id="r") for i in range(5)))
    await store.probe_write()
    assert heard == [(5, True), (1, True)]
    assert len(await store.audit()) == 5 and await store.count_by_style() == {"s": 5}
    await store.close()
    with pytest.raises(errors.InternalError, match="the store is closed"):
        await store.probe_write()


async def test_one_batch_is_one_commit_and_its_failing_mutation_changes_nothing(
        store: SQLiteStore):
    """Group commit: writes queued together commit in one transaction, in queue order;
    a write whose mutation raises is left out alone and the others are stored."""
    await asyncio.gather(store.create("s", "a", {"n": 0}, actor="t", request_id="r"),
                         store.create("s", "b", {"n": 0}, actor="t", request_id="r"))
    commits: list[list[tuple[str, int, str]]] = []
    store.on_commit(lambda changes: commits.append([(c.task_id, c.version, c.request_id) for c in changes]))

    def append(tag: str):
        def mutate(old):
            return {**old, "log": [*old.get("log", []), tag]}  # sees every earlier write of the batch
        return mutate

    def refuse(old):
        raise errors.Conflict("refused")

    results = await asyncio.gather(
        store.update("s", "a", append("first"), actor="t", request_id="1"),
        store.update("s", "b", append("other"), actor="t", request_id="2"),
        store.update("s", "a", refuse, actor="t", request_id="3"),
        store.update("s", "a", append("second"), actor="t", request_id="4"),
        return_exceptions=True)
    assert [r.doc if isinstance(r, Task) else type(r).__name__ for r in results] == [
        {"n": 0, "log": ["first"]}, {"n": 0, "log": ["other"]}, "Conflict", {"n": 0, "log": ["first", "second"]}]
    assert commits == [[("a", 2, "1"), ("b", 2, "2"), ("a", 3, "4")]]
    assert await store.read_sql("SELECT id, version, doc FROM tasks ORDER BY id") == [
        ("a", 3, '{"n":0,"log":["first","second"]}'), ("b", 2, '{"n":0,"log":["other"]}')]
    assert await store.read_sql(
                "SELECT task_id, version, request_id, patch FROM audit WHERE seq > 2 ORDER BY seq") == [
        ("a", 2, "1", '[{"op":"add","path":"/log","value":["first"]}]'),
        ("b", 2, "2", '[{"op":"add","path":"/log","value":["other"]}]'),
        ("a", 3, "4", '[{"op":"replace","path":"/log","value":["first","second"]}]')]


async def test_a_write_of_several_steps_commits_them_in_one_transaction_as_an_audit_row_each(
        store: SQLiteStore):
    """Each step sees the document the step before left, and each change is its own audit
    row (and version) under its own actor; a step that changes nothing writes no row."""
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r0")
    commits: list[list[tuple[int, int, str]]] = []
    store.on_commit(lambda changes: commits.append([(c.seq, c.version, c.actor) for c in changes]))
    task = await store.write("s", "a", [("system", bump("n")), ("nobody", lambda old: old),
                                        ("ann", lambda old: {**old, "by": "ann", "n": old["n"] * 10})],
                             request_id="r1", if_match=frozenset({1}))
    assert task == Task("s", "a", 3, {"n": 10, "by": "ann"}, task.modified, (await store.get("s", "a")).created)
    assert commits == [[(2, 2, "system"), (3, 3, "ann")]]  # one commit
    assert await store.read_sql("SELECT seq, version, actor, request_id, patch FROM audit WHERE seq > 1") == [
        (2, 2, "system", "r1", '[{"op":"replace","path":"/n","value":1}]'),
        (3, 3, "ann", "r1", '[{"op":"add","path":"/by","value":"ann"},{"op":"replace","path":"/n","value":10}]')]
    assert await store.read_sql("SELECT version, doc FROM tasks") == [(3, '{"n":10,"by":"ann"}')]


async def test_a_write_whose_later_step_raises_stores_none_of_its_steps(store: SQLiteStore):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r0")

    def refuse(old):
        raise errors.Conflict("refused")

    with pytest.raises(errors.Conflict, match="refused"):
        await store.write("s", "a", [("system", bump("n")), ("ann", refuse)], request_id="r1")
    with pytest.raises(errors.PreconditionFailed):  # checked before the first step
        await store.write("s", "a", [("system", bump("n"))], request_id="r2", if_match=frozenset({7}))
    assert await store.read_sql("SELECT version, doc FROM tasks") == [(1, '{"n":0}')]
    assert await store.read_sql("SELECT count(*) FROM audit") == [(1,)]
    # a step may delete: the steps after it see no document
    seen = []
    assert await store.write("s", "a", [("system", bump("n")), ("ann", lambda old: None),
                                        ("cy", lambda old: seen.append(old))], request_id="r3") is None
    assert seen == [None]
    assert await store.read_sql("SELECT seq, version, action, actor FROM audit WHERE seq > 1") == [
        (2, 2, "updated", "system"), (3, 3, "deleted", "ann")]
    assert await store.read_sql("SELECT count(*) FROM tasks") == [(0,)]


async def test_bulk_create_stores_tasks_with_created_audit_rows_and_counts_their_ids(
        store: SQLiteStore):
    assert await store.bulk_create("s", ((str(i), {"n": i}) for i in range(1, 6)), actor="seed",
                                   request_id="bulk", chunk=2) == 5
    assert [(t.id, t.version, t.doc) for t in (await store.find("s", Query(order=(Sort("$.n"),))))[0]] == [
        (str(i), 1, {"n": i}) for i in range(1, 6)]
    assert [(c.task_id, c.action, c.actor, c.patch, c.undo) for c in await store.audit(newest_first=False)] == [
        (str(i), "created", "seed", [{"op": "add", "path": "/n", "value": i}], [{"op": "remove", "path": "/n"}])
        for i in range(1, 6)]
    numbered = await store.create_numbered("s", lambda n: {"n": n}, actor="t", request_id="r")
    assert numbered.id == "6"  # above every bulk-created integer id
    with pytest.raises(errors.Conflict):
        await store.bulk_create("s", [("7", {}), ("3", {})], actor="seed", request_id="bulk")
    assert await store.read_sql("SELECT count(*) FROM tasks") == [(6,)]  # the failing chunk left nothing


async def test_a_write_may_require_the_life_of_the_task_it_read(store: SQLiteStore):
    """Task.created names the task's latest creation: a write holding it is refused once the
    task was deleted and created again under its id, even with the same document."""
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r0")
    first = await store.get("s", "a")
    assert first is not None and first.created == first.modified
    assert (await store.find("s", Query()))[0][0].created == first.created
    updated = await store.write("s", "a", [("t", bump("n"))], request_id="r1", created=first.created)
    assert (updated.version, updated.created) == (2, first.created)  # the same life goes on
    await store.delete("s", "a", actor="t", request_id="r2")
    await asyncio.sleep(0.002)  # another millisecond: created is a time to the millisecond
    again = await store.put("s", "a", {"n": 1}, actor="t", request_id="r3")
    assert again.created != first.created
    with pytest.raises(errors.PreconditionFailed, match="deleted and created again"):
        await store.write("s", "a", [("t", bump("n"))], request_id="r4", created=first.created)
    assert await store.read_sql("SELECT version, doc, created FROM tasks") == [(1, '{"n":1}', again.created)]


async def test_a_task_deleted_and_created_again_in_one_batch_or_write_is_stored_as_created_anew(
        store: SQLiteStore):
    await store.create("s", "a", {"n": 0}, actor="t", request_id="r0")
    old = (await store.get("s", "a")).created
    await asyncio.sleep(0.002)
    await asyncio.gather(store.delete("s", "a", actor="t", request_id="r1"),
                         store.create("s", "a", {"n": 1}, actor="t", request_id="r2"))  # one batch
    (version, created), = await store.read_sql("SELECT version, created FROM tasks")
    assert (version, created != old) == (3, True)
    assert (await store.get("s", "a")).created == created
    await asyncio.sleep(0.002)
    task = await store.write("s", "a", [("x", lambda old: None), ("y", lambda old: {"n": 2})], request_id="r3")
    assert await store.read_sql("SELECT version, doc, created FROM tasks") == [(5, '{"n":2}', task.created)]
    assert task.created not in (old, created)


async def test_a_write_whose_id_holds_a_lone_surrogate_fails_alone(store: SQLiteStore):
    """SQLite cannot bind such an id: in a batch it failed every write with a 500 (and a
    read-ahead thread with it); now it is refused before it is queued."""
    results = await asyncio.gather(*(store.put("s", task_id, {"n": 1}, actor="a", request_id="r")
                                     for task_id in ("ok1", "\ud800", "ok2")), return_exceptions=True)
    assert [r.id if isinstance(r, Task) else (type(r), r.message) for r in results] == [
        "ok1", (errors.BadRequest, "the task id is not text that can be stored (it holds a lone surrogate)"), "ok2"]
    assert [t.id for t in (await store.find("s", Query(order=(Sort("id"),))))[0]] == ["ok1", "ok2"]
