"""Checkpoints beside the writer: the pass logic alone, and the WAL's size under load."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.store.sqlite import SQLiteStore, wal
from gateway.store.sqlite.wal import CheckpointStep, after_pass
from tests.store.helpers import rows


async def test_background_checkpoints_keep_the_wal_bounded_under_a_steady_load(tmp_path: Path, monkeypatch):
    """The writer never checkpoints by itself; checkpoints run beside it, and once the WAL
    holds WAL_RESTART_FRAMES frames the writer makes it start over. Without that, these
    writes would leave a WAL of several megabytes."""
    monkeypatch.setattr(wal, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(wal, "WAL_RESTART_FRAMES", 40)
    path = tmp_path / "wal.db"
    store = await SQLiteStore.open(path)
    wal_file = Path(f"{path}-wal")
    largest = 0
    try:
        for round_ in range(40):
            await asyncio.gather(*(store.create("s", f"t{round_}-{n}", {"n": n, "pad": "x" * 3000}, actor="a",
                                                request_id="r") for n in range(25)))
            largest = max(largest, wal_file.stat().st_size)
        assert await store.count_tasks() == 1000
    finally:
        await store.close()
    assert not wal_file.exists()  # the last connection checkpointed it and removed it
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]
    assert rows(path, "SELECT count(*), sum(version) FROM tasks") == [(1000, 1000)]
    written = 1000 * 3000  # the documents alone, before pages, indexes and audit rows
    # about 9.5 MB without the rewind; 0.76 to 1.2 MB with it (more on a busy machine: each
    # rewind waits for passes to catch up)
    assert largest < written / 2, (largest, written)


def test_checkpoints_catch_up_before_the_writer_rewinds_the_wal(monkeypatch):
    """Past WAL_RESTART_FRAMES, passes follow one another until two in a row copied at most
    REWIND_FRAMES (the writer then has milliseconds of copying left, not a whole pass), or
    the WAL reached four times WAL_RESTART_FRAMES without catching up."""
    monkeypatch.setattr(wal, "WAL_RESTART_FRAMES", 100)
    monkeypatch.setattr(wal, "REWIND_FRAMES", 30)

    def steps(passes: list[tuple[int, int]]) -> list[str]:
        out, small = [], False
        for frames, work in passes:
            step, small = after_pass(frames, work, small)
            out.append(step.value)
        return out
    assert steps([(99, 99)]) == ["done"]
    assert steps([(150, 150), (210, 60), (220, 10), (230, 10)]) == ["again", "again", "again", "rewind"]
    assert steps([(150, 150), (160, 10), (220, 60), (230, 10), (231, 1)]) == ["again"] * 4 + ["rewind"]
    assert steps([(300, 300), (399, 99), (400, 100)]) == ["again", "again", "rewind"]


def test_a_pass_says_what_follows_as_a_step_and_whether_it_was_small(monkeypatch):
    """The pass logic alone: the step is a CheckpointStep, and "small" is what the next
    call is given as small_before."""
    monkeypatch.setattr(wal, "WAL_RESTART_FRAMES", 100)
    monkeypatch.setattr(wal, "REWIND_FRAMES", 30)
    assert after_pass(0, 0, False) == (CheckpointStep.DONE, True)
    assert after_pass(99, 99, True) == (CheckpointStep.DONE, False)  # short WAL: done, whatever came before
    assert after_pass(100, 31, True) == (CheckpointStep.AGAIN, False)  # long, and this pass was not small
    assert after_pass(100, 30, False) == (CheckpointStep.AGAIN, True)  # small, but the one before was not
    assert after_pass(100, 30, True) == (CheckpointStep.REWIND, True)  # two small passes in a row
    assert after_pass(399, 399, False) == (CheckpointStep.AGAIN, False)
    assert after_pass(400, 399, False) == (CheckpointStep.REWIND, False)  # four times the limit: rewind anyway
    assert [step.value for step in CheckpointStep] == ["done", "again", "rewind"]
