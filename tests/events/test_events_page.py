"""docs/events.md states the feed's numbers and shapes as the code has them."""

from __future__ import annotations

from pathlib import Path

from gateway.config import EventsConfig
from gateway.events.feed import CATCH_UP_PAGE, CUT_GRACE_SECONDS, END_BEHIND, END_SHUTDOWN, TAKE_BYTES
from gateway.events.sse import ACTIONS, OPERATIONS, RETRY_MS, TAG
from gateway.events.tail import SUMMARY_CHARS

PAGE = " ".join((Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text(encoding="utf-8").split())


def test_the_page_states_the_defaults_and_bounds():
    defaults = EventsConfig()
    for stated in (f"`events.poll_seconds` ({defaults.poll_seconds:g} s)",
                   f"`events.heartbeat_seconds` ({defaults.heartbeat_seconds:g} s)",
                   f"`events.buffer_events` ({defaults.buffer_events})",
                   f"`events.buffer_bytes` ({defaults.buffer_bytes // (1 << 20)} MiB)",
                   f"at most {CATCH_UP_PAGE} rows per query", f"and {TAKE_BYTES // 1024} KiB of patches",
                   f"at most {TAKE_BYTES // 1024} KiB of events per write",
                   f"at most {CUT_GRACE_SECONDS:g} s later",
                   f"after `retry` ({RETRY_MS // 1000} s)", f"retry: {RETRY_MS}", f"cut at {SUMMARY_CHARS} characters",
                   f"under the tag `{TAG}`"):
        assert stated in PAGE, stated


def test_the_page_names_every_parameter_action_and_reason():
    for p in OPERATIONS[("stream", "GET")]["parameters"]:
        assert f"| `{p['name']}`" in PAGE, p["name"]
    assert f"(`{'`, `'.join(ACTIONS)}`)" in PAGE
    for reason in (END_BEHIND, END_SHUTDOWN):
        assert f"`{reason}`" in PAGE
