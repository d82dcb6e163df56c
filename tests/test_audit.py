"""Audit events and request log lines: JSON or console, to standard error or a file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import structlog

from gateway.audit import LOG_PATCH_BYTES, configure_logging, flush_logs, log_changes
from gateway.config import LogConfig
from gateway.model import Change

CHANGE = Change(seq=7, at="2024-01-01T00:00:00.000Z", style="sailpoint", task_id="t1", version=3,
                action="updated", actor="ann", request_id="r-1",
                patch=[{"op": "replace", "path": "/progress", "value": "x"}],
                undo=[{"op": "replace", "path": "/progress", "value": None}], client="203.0.113.7")


def test_json_lines_to_a_file_without_secrets(tmp_path: Path):
    log = tmp_path / "audit.log"
    try:
        configure_logging(LogConfig(format="json", file=str(log)))
        log_changes([CHANGE])
        structlog.get_logger().info("request", authorization="Bearer tg_secret", password="pw")
    finally:
        configure_logging(LogConfig())
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first.pop("timestamp") and second.pop("timestamp")
    assert first == {"style": "sailpoint", "task_id": "t1", "version": 3, "actor": "ann", "request_id": "r-1",
                     "seq": 7, "patch": CHANGE.patch, "client": "203.0.113.7", "event": "task.updated",
                     "level": "info"}
    assert second == {"authorization": "[redacted]", "password": "[redacted]", "event": "request", "level": "info"}


def test_an_audit_event_names_a_large_patch_by_its_size_instead_of_carrying_it(tmp_path: Path):
    log = tmp_path / "audit.log"
    patch = [{"op": "add", "path": f"/m{n}", "value": "x" * 1000} for n in range(20)]
    small = dataclasses.replace(CHANGE, seq=8, patch=patch[:15])
    try:
        configure_logging(LogConfig(format="json", file=str(log)))
        log_changes([dataclasses.replace(CHANGE, patch=patch), small])
    finally:
        configure_logging(LogConfig())
    large, kept = [json.loads(line) for line in log.read_text().splitlines()]
    assert large.pop("timestamp") and kept.pop("timestamp")
    assert large == {"style": "sailpoint", "task_id": "t1", "version": 3, "actor": "ann", "request_id": "r-1",
                     "seq": 7, "client": "203.0.113.7", "patch_bytes": len(json.dumps(patch, separators=(",", ":"))),
                     "patch_ops": 20, "event": "task.updated", "level": "info"}
    assert kept["patch"] == patch[:15] and len(json.dumps(patch[:15], separators=(",", ":"))) <= LOG_PATCH_BYTES
    assert 16 * 1024 == LOG_PATCH_BYTES < large["patch_bytes"]


def test_console_format_and_level(tmp_path: Path):
    log = tmp_path / "console.log"
    try:
        configure_logging(LogConfig(format="console", file=str(log), level="warning"))
        log_changes([CHANGE])
        structlog.get_logger().warning("careful", task_id="t9")
    finally:
        configure_logging(LogConfig())
    (line,) = log.read_text().splitlines()
    assert "[warning  ] careful" in line and "task_id=t9" in line


def test_lines_of_one_loop_iteration_are_written_together_and_none_is_lost(tmp_path: Path):
    log = tmp_path / "loop.log"
    seen_in_iteration: list[str] = []

    async def one_iteration() -> None:
        for n in range(3):
            structlog.get_logger().info("step", n=n, text="a\u2028b\x85c")  # line separators to Python, not to JSON
        seen_in_iteration.append(log.read_text())
        await asyncio.sleep(0)  # the iteration ends: its lines are written in one call

    async def stops_before_the_flush() -> None:
        structlog.get_logger().info("last words")
        asyncio.get_running_loop().stop()

    try:
        configure_logging(LogConfig(format="json", file=str(log)))
        asyncio.run(one_iteration())
        assert seen_in_iteration == [""]
        loop = asyncio.new_event_loop()
        loop.create_task(stops_before_the_flush())
        loop.run_forever()  # stops before the flush it scheduled runs
        loop.close()
        structlog.get_logger().info("after the loop")  # no loop: written at once, after what was held
        flush_logs()  # nothing is left to write
    finally:
        configure_logging(LogConfig())
    lines = log.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    events = [json.loads(line) for line in lines[:-1]]
    assert [(e["event"], e.get("n"), e.get("text")) for e in events] == [
        ("step", 0, "a\u2028b\x85c"), ("step", 1, "a\u2028b\x85c"), ("step", 2, "a\u2028b\x85c"),
        ("last words", None, None), ("after the loop", None, None)]


def test_log_text_is_written_in_pieces_a_pipe_keeps_whole() -> None:
    """Workers share standard error: each piece is at most PIPE_BUF bytes and ends a line,
    so lines of two workers interleave but are never cut; only "\\n" ends a line."""
    from gateway.audit import PIPE_BUF, whole_line_chunks
    lines = [f'{{"n": {i}, "text": "{"é" * (i % 300)}\u2028"}}\n' for i in range(400)]
    chunks = whole_line_chunks("".join(lines))
    assert "".join(chunks) == "".join(lines)
    assert all(len(c.encode()) <= PIPE_BUF and c.endswith("\n") for c in chunks)
    assert whole_line_chunks("a\n") == ["a\n"]
    long = "x" * (2 * PIPE_BUF) + "\n"
    assert whole_line_chunks("a\n" + long + "b\n") == ["a\n", long, "b\n"]


def test_the_fast_json_lines_are_the_processor_chain_s(tmp_path: Path, monkeypatch):
    """Each line the JSON logger writes in one call is the line structlog's processor chain
    writes for the same event, byte for byte (secrets, context, values JSON lacks, levels)."""
    from datetime import date

    from gateway import audit

    monkeypatch.setattr(audit, "now_iso_micro", lambda: "2024-01-01T00:00:00.000000Z")
    calls = [("info", "request", {"method": "PATCH", "status": 200, "ms": 1.25, "actor": None}),
             ("warning", "careful", {"Authorization": "Bearer x", "when": date(2024, 1, 2), "n": [1e-05, 2]}),
             ("info", "request", {"method": "GET", "Token": "t", "token": "u"}),
             ("error", "bad", {"text": "a\u2028b", "exc_info": False}), ("debug", "quiet", {}),
             ("info", "with %s", {})]

    def lines(fast: bool) -> list[str]:
        log = tmp_path / f"{fast}.log"
        try:
            configure_logging(LogConfig(format="json", file=str(log), level="info"))
            if not fast:  # structlog's own wrapper class: the chain, one processor at a time
                structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))
            structlog.contextvars.bind_contextvars(worker=2)
            for _ in range(2):  # the first call of a key takes the chain, the next the fast path
                for method, event, kw in calls:
                    getattr(structlog.get_logger(), method)(event, *(("x",) if "%s" in event else ()), **kw)
        finally:
            structlog.contextvars.clear_contextvars()
            configure_logging(LogConfig())
        return log.read_text(encoding="utf-8").split("\n")[:-1]  # U+2028 ends no JSON line

    fast, chain = lines(True), lines(False)
    assert len(fast) == 10 and fast == chain
    assert json.loads(fast[1])["Authorization"] == "[redacted]" and json.loads(fast[2])["worker"] == 2


def test_capture_logs_sees_the_json_logger_s_events(tmp_path: Path):
    """structlog's capture_logs() swaps the chain's processors in place (the same list): the
    JSON logger's one-call path must notice and hand every event to the capture, not the file."""
    from structlog.testing import capture_logs

    log = tmp_path / "t.log"
    try:
        configure_logging(LogConfig(format="json", file=str(log), level="info"))
        logger = structlog.get_logger()
        for _ in range(2):  # the second call of a key would take the one-call path
            logger.info("request", method="GET", status=200)
        with capture_logs() as logs:
            for _ in range(2):
                logger.info("request", method="PUT", status=201)
        logger.info("request", method="POST", status=202)
    finally:
        configure_logging(LogConfig())
    assert logs == [{"event": "request", "method": "PUT", "status": 201, "log_level": "info"}] * 2
    assert [json.loads(line)["method"] for line in log.read_text().splitlines()] == ["GET", "GET", "POST"]


def test_the_logger_bound_once_writes_the_proxy_s_lines_and_follows_each_configuration(tmp_path: Path):
    """audit.hot_logger (the request and change lines) binds one logger per configuration:
    the same lines as the lazy proxy's, to the file configured now, and to capture_logs."""
    from structlog.testing import capture_logs

    from gateway.audit import hot_logger, logger

    first, second = tmp_path / "1.log", tmp_path / "2.log"
    try:
        configure_logging(LogConfig(format="json", file=str(first), level="info"))
        for _ in range(2):
            logger.info("request", method="GET", status=200)
            hot_logger.info("request", method="GET", status=200)
        configure_logging(LogConfig(format="json", file=str(second), level="warning"))
        hot_logger.info("request", method="PUT", status=201)  # below the level now: not written
        configure_logging(LogConfig(format="json", file=str(second), level="info"))
        hot_logger.info("request", method="POST", status=202)
        with capture_logs() as logs:
            hot_logger.info("request", method="PATCH", status=204)
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))  # structlog's own, same chain
        hot_logger.info("request", method="DELETE", status=200)
    finally:
        configure_logging(LogConfig())
    lines = first.read_text().splitlines()
    assert len(lines) == 4 and [json.loads(line)["method"] for line in lines] == ["GET"] * 4
    strip = [{k: v for k, v in json.loads(line).items() if k != "timestamp"} for line in lines]
    assert strip[0] == strip[1] == strip[2] == strip[3]
    assert [json.loads(line)["method"] for line in second.read_text().splitlines()] == ["POST", "DELETE"]
    assert logs == [{"event": "request", "method": "PATCH", "status": 204, "log_level": "info"}]
