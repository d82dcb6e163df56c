"""The README's walkthroughs run as written, in order, against a real ``taskgate serve`` on a
fresh database, and print what their text says they print.

Which blocks run: a fenced ``sh`` block directly after the line ``<!-- walkthrough -->``,
in README.md and then in the docs/ pages in the order the README links them (their
examples continue in the same shell, on the same server). The shell starts in a folder of
its own, where ``.venv/bin/taskgate`` runs this checkout's taskgate on the server's
database, with ``BASE`` set to the server's address (the examples default to
``http://127.0.0.1:8080``). It runs with ``pipefail``; every step must exit 0.

The notation, for a human first: a comment ``# → …`` after a command says what that
command prints, standard output and standard error together as a terminal shows them.
The commands between two such comments are one step; a step without one must print
nothing.

- ``# → 201 {"id": "…", "type": "QUARTZ", …}``: a leading status code means the output
  is an HTTP response printed by ``curl -i`` (or ``-D -``) with that status; the rest is
  its body. Without a code the whole output is the body.
- Lines ``#   Name: value`` after it are headers that response must carry; other
  ``#   …`` lines continue the body.
- A body is JSON where ``…`` is a wildcard: as a value it matches anything; as the last
  member of an object it allows more members (without it the members must be exactly
  those); as the last element of an array it allows more elements; inside a string it
  matches any text there. A body that is not JSON (XML, a command's message) is text in
  which ``…`` matches any text.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import running

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- walkthrough -->"
EXPECT = "# → "
MORE = "#   "
#: stand-ins for a bare … in a JSON shape: any value (or, ending an array, any more elements),
#: and, as an object's member, "other members may follow"
ANY = "\x00…any"
MORE_MEMBERS = "\x00…more"
_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9-]*):\s?(.*)")


@dataclass
class Expectation:
    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""


@dataclass
class Step:
    where: str  # file:line of the step's first command
    commands: str
    expect: Expectation | None


def walkthrough_pages(root: Path = ROOT) -> list[Path]:
    """README.md, then each docs/ page in the order the README first links it."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    linked = dict.fromkeys(re.findall(r"\]\((docs/[^)#\s]+\.md)", readme))
    pages = [root / "README.md", *(root / p for p in linked if (root / p).is_file())]
    pages += sorted(p for p in (root / "docs").glob("*.md") if p not in pages)
    return pages


def blocks(path: Path) -> list[tuple[int, list[str]]]:
    """The marked ``sh`` blocks of *path*: (line number of the first line inside, lines)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == MARKER:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            assert j < len(lines) and lines[j].strip() == "```sh", \
                f"{path.name}:{i + 1}: {MARKER} must be followed by a ```sh block"
            end = j + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            found.append((j + 2, lines[j + 1:end]))
            i = end
        i += 1
    return found


def steps(path: Path) -> list[Step]:
    """Every marked block of *path*, cut into steps at its ``# →`` lines."""
    found: list[Step] = []
    for first, lines in blocks(path):
        commands: list[str] = []
        start = first
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith(EXPECT):
                parts = [line[len(EXPECT):]]
                while i + 1 < len(lines) and lines[i + 1].startswith(MORE):
                    i += 1
                    parts.append(lines[i][len(MORE):])
                assert commands, f"{path.name}:{first + i}: an expectation with no command before it"
                found.append(Step(f"{path.name}:{start}", "\n".join(commands), expectation(parts)))
                commands = []
            else:
                if not commands:
                    start = first + i
                if line.strip():
                    commands.append(line)
            i += 1
        if any(c.strip() and not c.lstrip().startswith("#") for c in commands):
            found.append(Step(f"{path.name}:{start}", "\n".join(commands), None))
    return found


def expectation(parts: list[str]) -> Expectation:
    head = re.fullmatch(r"(\d{3})(?:\s+(.*))?", parts[0].strip())
    if head is None:
        return Expectation(None, [], "\n".join(parts))
    expected = Expectation(int(head.group(1)))
    body = [head.group(2)] if head.group(2) else []
    for part in parts[1:]:
        header = _HEADER.fullmatch(part.strip())
        if header:
            expected.headers.append((header.group(1), header.group(2)))
        else:
            body.append(part)
    expected.body = "\n".join(body)
    return expected


# --- shapes ---------------------------------------------------------------------------------------

class Text(str):
    """A body expected as text, with … as a wildcard."""


def shape(text: str) -> Any:
    """The JSON value *text* describes, with bare … replaced by ANY / MORE_MEMBERS; or Text."""
    out: list[str] = []
    stack: list[str] = []
    in_string = escaped = False
    last = ""
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == "…":
            member = bool(stack) and stack[-1] == "{" and last in "{,"
            out.append(f"{json.dumps(MORE_MEMBERS)}: null" if member else json.dumps(ANY))
            last = '"'
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
        out.append(ch)
        if not ch.isspace():
            last = ch
    try:
        return json.loads("".join(out))
    except ValueError:
        return Text(text.strip())


def _glob(pattern: str, text: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("…"))
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 200 else text[:200] + "…"


def mismatches(expected: Any, actual: Any, where: str = "body") -> list[str]:
    """What in *actual* the shape *expected* does not allow; empty when it matches."""
    if expected == ANY:
        return []
    if isinstance(expected, Text):
        text = actual if isinstance(actual, str) else json.dumps(actual)
        if _glob(expected, text.strip()):
            return []
        return [f"{where}: expected {_short(expected)!r}, got {_short(text)!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {_short(actual)}"]
        problems = []
        for key, value in expected.items():
            if key == MORE_MEMBERS:
                continue
            if key not in actual:
                problems.append(f"{where}: no member {key!r}")
            else:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        if MORE_MEMBERS not in expected and set(actual) - set(expected):
            problems.append(f"{where}: members the text does not show: {sorted(set(actual) - set(expected))}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected an array, got {_short(actual)}"]
        more = bool(expected) and expected[-1] == ANY
        items = expected[:-1] if more else expected
        if len(actual) < len(items) or not more and len(actual) != len(items):
            return [f"{where}: expected {'at least ' if more else ''}{len(items)} element(s), got {len(actual)}"]
        pairs = enumerate(zip(items, actual, strict=False))
        return [p for i, (e, a) in pairs for p in mismatches(e, a, f"{where}[{i}]")]
    if isinstance(expected, str) and "…" in expected:
        if isinstance(actual, str) and _glob(expected, actual):
            return []
        return [f"{where}: expected {expected!r}, got {_short(actual)}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{where}: expected {_short(expected)}, got {_short(actual)}"]
    return []


def check(expect: Expectation | None, output: str) -> list[str]:
    """What is wrong with a step's *output* against what its text says."""
    if expect is None:
        return [] if not output.strip() else [f"prints {_short(output)!r}, but the text shows no output"]
    body = output
    if expect.status is not None:
        head, sep, body = output.replace("\r\n", "\n").partition("\n\n")
        while sep and re.match(r"HTTP/\S+ 100\b", head):  # an interim answer before the real one
            head, sep, body = body.partition("\n\n")
        status = re.match(r"HTTP/\S+ (\d{3})", head)
        if status is None:
            return [f"expected an HTTP response (curl -i), got {_short(output)!r}"]
        problems = [] if int(status.group(1)) == expect.status else \
            [f"status: expected {expect.status}, got {status.group(1)} {_short(body)}"]
        headers = {}
        for line in head.split("\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        for name, value in expect.headers:
            got = headers.get(name.lower())
            if got is None or not _glob(value, got):
                problems.append(f"header {name}: expected {value!r}, got {got!r}")
        if not expect.body.strip():
            return problems + ([f"expected no body, got {_short(body)!r}"] if body.strip() else [])
    else:
        problems = []
    wanted = shape(expect.body)
    if isinstance(wanted, Text):
        return problems + mismatches(wanted, body)
    try:
        got = json.loads(body)
    except ValueError:
        return problems + [f"body: expected JSON, got {_short(body)!r}"]
    return problems + mismatches(wanted, got)


# --- the shell ------------------------------------------------------------------------------------

class Shell:
    """One bash process for a whole walkthrough, so that variables carry from step to step."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.output = cwd / ".step-output"
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.run("set -o pipefail")

    def run(self, commands: str, timeout: float = 60) -> tuple[int, str]:
        """Run *commands* in the shell (standard input empty); their exit status and output."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        done = secrets.token_hex(8)
        self.proc.stdin.write(f"{{\n{commands}\n}} > {self.output.name} 2>&1 < /dev/null\n"
                              f"echo \"{done} $?\"\n".encode())
        self.proc.stdin.flush()
        seen = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while (b"\n" + done.encode()) not in b"\n" + seen:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise AssertionError(f"no end of step within {timeout} s:\n{commands}")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the shell exited during:\n{commands}\n{seen.decode(errors='replace')}")
                seen += chunk
        before, _, status = (b"\n" + seen).rpartition(b"\n" + done.encode())
        shell_said = before.decode(errors="replace").strip()  # bash's own complaints (a syntax error)
        printed = self.output.read_text(encoding="utf-8", errors="replace")
        return int(status.split()[0]), printed + (f"\n{shell_said}" if shell_said else "")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _walk(workdir: Path, pages: list[Path]) -> tuple[int, list[str]]:
    """Run every step of *pages* against a fresh server; (steps run, failures)."""
    workdir.mkdir()
    venv = workdir / ".venv" / "bin"
    venv.mkdir(parents=True)
    # the README's `.venv/bin/taskgate`, run from this folder: no config.toml here, so its
    # database is ./taskgate.db, which is the server's
    (venv / "taskgate").write_text(f"#!/bin/sh\nexec '{sys.executable}' -m gateway \"$@\"\n")
    (venv / "taskgate").chmod(0o755)
    failures: list[str] = []
    count = 0
    with running(workdir) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}
        # python3 as the examples call it: the interpreter running the suite
        env.update(BASE=server.base_url, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                   LC_ALL="C.UTF-8")
        shell = Shell(workdir, env)
        try:
            for page in pages:
                for step in steps(page):
                    count += 1
                    status, output = shell.run(step.commands)
                    problems = ([f"exit status {status}"] if status else []) + check(step.expect, output)
                    if problems:
                        failures.append(f"{step.where}:\n{step.commands}\n  " + "\n  ".join(problems)
                                        + f"\n  output: {_short(output)!r}")
        finally:
            shell.close()
    return count, failures


# --- the tests ------------------------------------------------------------------------------------

pytestmark = pytest.mark.e2e


def test_the_walkthroughs_run_in_order_on_a_fresh_database_and_print_what_they_say(tmp_path: Path):
    pages = walkthrough_pages()
    count, failures = _walk(tmp_path / "walk", pages)
    assert count >= 20, f"only {count} walkthrough steps found in {[p.name for p in pages]}"
    assert not failures, f"{len(failures)} step(s) of {count} differ from their text:\n\n" + "\n\n".join(failures)


def test_the_readme_walkthrough_has_a_block_per_style():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    runnable = [step.commands for step in steps(ROOT / "README.md")]
    assert text.count(MARKER) >= 4, "a setup block and one per style"
    for call in ("/task-status/", "/api/v1/BatchTask", "/rest/pub/opentask"):
        assert any(call in commands for commands in runnable), f"no walkthrough step calls {call}"


# The notation itself, without a server: a changed output must be reported.

@pytest.mark.parametrize(("expected", "output"), [
    ('{"id": "…", "type": "QUARTZ", …}', '{"id": "ab12", "type": "QUARTZ", "launcher": "admin"}'),
    ('{"id": …, "n": 1}', '{"id": [1, 2], "n": 1}'),
    ('[{"id": "…", …}, …]', '[{"id": "a", "x": 1}, {"id": "b"}]'),
    ('[…]', '[]'),
    ('{"access_token": "tg_…", "expires_in": 3600, …}', '{"access_token": "tg_x9", "expires_in": 3600, "scope": "s"}'),
    ("backed up … to backups/…: … task(s)", "backed up /x/taskgate.db to backups/t.db: 3 task(s)"),
    ("<BatchTaskInfo>…<State>Failed</State>…</BatchTaskInfo>",
     "<BatchTaskInfo><Id>1</Id><State>Failed</State></BatchTaskInfo>"),
    ("1", "1\n"),
])
def test_a_shape_matches_what_it_describes(expected: str, output: str):
    assert check(Expectation(None, [], expected), output) == []


@pytest.mark.parametrize(("expected", "output", "problem"), [
    ('{"id": "…", "type": "QUARTZ", …}', '{"id": "ab12", "type": "QPOC"}', "body.type"),
    ('{"id": "…"}', '{"id": "ab12", "type": "QUARTZ"}', "members the text does not show"),
    ('{"id": "…", "state": "…"}', '{"id": "ab12"}', "no member 'state'"),
    ('[{"id": "…"}]', '[{"id": "a"}, {"id": "b"}]', "expected 1 element"),
    ('{"n": 1}', '{"n": true}', "body.n"),
    ('{"token": "tg_…"}', '{"token": "tgs_1"}', "body.token"),
    ("backed up … to backups/…", "taskgate: no folder 'backups'", "expected 'backed up"),
    ('{"a": 1}', "not json", "expected JSON"),
])
def test_a_changed_output_is_reported(expected: str, output: str, problem: str):
    found = check(Expectation(None, [], expected), output)
    assert found and problem in found[0], found


def test_status_headers_and_silence_are_checked():
    response = 'HTTP/1.1 201 Created\r\nETag: "1"\r\nContent-Type: application/json\r\n\r\n{"id": "x"}'
    assert check(expectation(['201 {"id": "…"}', 'ETag: "1"']), response) == []
    assert check(expectation(['200 {"id": "…"}']), response) == ["status: expected 200, got 201 {\"id\": \"x\"}"]
    assert check(expectation(['201 {"id": "…"}', 'ETag: "2"']), response) == [
        "header ETag: expected '\"2\"', got '\"1\"'"]
    assert check(expectation(['201 {"id": "…"}']), '{"id": "x"}')[0].startswith("expected an HTTP response")
    assert check(None, "") == []
    assert check(None, "surprise\n") == ["prints 'surprise\\n', but the text shows no output"]
