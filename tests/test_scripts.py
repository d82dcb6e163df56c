"""The measuring scripts still run against the code they measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_bench_parts_prints_each_required_piece_of_a_patch_and_their_sum():
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_parts.py"), "--calls", "200", "--writes", "320"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"taskgate's required parts of one SailPoint PATCH \(loop=\w+ json=\w+\), µs of CPU:", lines[0])
    pieces = [re.fullmatch(r"(.+?)\s+(\d+\.\d) µs", line) for line in lines[1:6]]
    assert [m.group(1) for m in pieces if m] == [
        "parse the JSON Patch body", "apply it and validate the replaced members (marshmallow)",
        "the request's log line (structlog)", "the audit event's log line (structlog)",
        "the store's write, 32 a batch, synchronous=FULL"]
    total = re.fullmatch(r"sum\s+(\d+\.\d) µs CPU per PATCH, before HTTP, authentication and the answer", lines[6])
    assert total is not None and len(lines) == 7
    assert abs(float(total.group(1)) - sum(float(m.group(2)) for m in pieces)) < 0.5
