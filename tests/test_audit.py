"""Audit events and request log lines: JSON or console, to standard error or a file."""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from gateway.audit import configure_logging, log_changes
from gateway.config import LogConfig
from gateway.store import Change

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
