"""The taskgate command line, run in process on a real database file."""

from __future__ import annotations

import gc
import io
import json
import sqlite3
from pathlib import Path

import pytest
from gateway.app import STYLES
from gateway.auth import secret_hash
from gateway.cli import build_parser, freeze_startup_heap, main
from gateway.store import SCHEMA_VERSION


@pytest.fixture(name="run")
def _run(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("TASKGATE_CONFIG", "TASKGATE_DB", "TASKGATE_HOST", "TASKGATE_PORT"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--db", "t.db", *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def db(tmp_path: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(tmp_path / "t.db") as conn:
        return conn.execute(sql, params).fetchall()


def test_init_creates_the_database(run, tmp_path: Path):
    code, out, _ = run("init")
    assert (code, out) == (0, f"database {tmp_path / 't.db'} is at schema version {SCHEMA_VERSION}\n")


def test_users_tokens_and_oauth_clients_store_only_hashes(run, tmp_path: Path):
    assert run("user", "add", "ann", "--role", "admin", "--password-stdin", stdin="s3cret\n")[0] == 0
    code, token, _ = run("token", "create", "ann", "--read-only", "--expires-in", "60")
    token = token.strip()
    assert code == 0 and token.startswith("tg_") and len(token) > 40
    code, secret, _ = run("oauth-client", "add", "cid", "--user", "ann")
    secret = secret.strip()
    assert code == 0 and secret.startswith("tgs_")
    assert run("user", "add", "bo", "--associate-id", "627")[0] == 0
    assert db(tmp_path, "SELECT name, role, password_hash, associate_id FROM users ORDER BY name")[1:] == [
        ("bo", "user", None, 627)]
    (pw_hash,), = db(tmp_path, "SELECT password_hash FROM users WHERE name = 'ann'")
    assert pw_hash.startswith("scrypt$16384$8$1$") and "s3cret" not in pw_hash
    assert db(tmp_path, "SELECT hash, user, read_only, source FROM tokens") == [
        (secret_hash(token), "ann", 1, "cli")]
    assert db(tmp_path, "SELECT client_id, secret_hash, user FROM oauth_clients") == [
        ("cid", secret_hash(secret), "ann")]
    raw = (tmp_path / "t.db").read_bytes() + (tmp_path / "t.db-wal").read_bytes() \
        if (tmp_path / "t.db-wal").exists() else (tmp_path / "t.db").read_bytes()
    assert token.encode() not in raw and secret.encode() not in raw and b"s3cret" not in raw


def test_cli_refusals(run):
    assert run("token", "create", "ghost")[::2] == (1, "taskgate: no user 'ghost'\n")
    assert run("oauth-client", "add", "c", "--user", "ghost")[::2] == (1, "taskgate: no user 'ghost'\n")
    run("user", "add", "ann")
    assert run("user", "add", "ann")[0] == 1
    assert run("token", "create", "ann", "--expires-in", "0")[::2] == (1, "taskgate: --expires-in must be positive\n")
    with pytest.raises(SystemExit) as exited:  # 0 is the AssociateId of tasks nobody owns
        run("user", "add", "bo", "--associate-id", "0")
    assert exited.value.code == 2
    _code, _out, err = run("token", "create", "bo")
    assert err.splitlines()[-2:] == ["taskgate user add: error: argument --associate-id: must be 1 or more, not 0",
                                     "taskgate: no user 'bo'"]


def test_import_export_and_audit(run, tmp_path: Path):
    lines = [
        {"style": "sailpoint", "task": {"id": "a", "type": "QUARTZ", "uniqueName": "u", "description": "d",
                                        "launcher": "l", "created": "2024-01-01T00:00:00Z",
                                        "completionStatus": "success"}},
        {"style": "sailpoint", "task": {"id": "b", "type": "nope", "uniqueName": "u"}},
        {"style": "martian", "task": {}},
        "not json",
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    code, _, err = run("import", str(source))
    assert code == 1
    assert [line for line in err.splitlines() if not line.startswith("{")] == [
        "line 2: invalid TaskStatus: type: Must be one of: QUARTZ, QPOC, QUEUED_TASK.",
        f'line 3: expected {{"style": one of {", ".join(s.STYLE for s in STYLES)}, "task": {{…}}}}',
        "line 4: Expecting value: line 1 column 1 (char 0)",
        "imported 1 task(s), 3 failed"]
    code, out, _ = run("export")
    exported = [json.loads(line) for line in out.splitlines()]
    assert exported == [{"style": "sailpoint", "task": {
        "id": "a", "type": "QUARTZ", "uniqueName": "u", "description": "d", "parentName": None, "launcher": "l",
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "launched": None,
        "completed": None, "completionStatus": "SUCCESS", "messages": [], "returns": [], "attributes": {},
        "progress": None, "percentComplete": 0}}]
    # export | import round-trips (a re-import of the same document changes nothing)
    code, _, err = run("import", "-", stdin=out)
    assert (code, [line for line in err.splitlines() if not line.startswith("{")]) == (
        0, ["imported 1 task(s), 0 failed"])
    assert run("export")[1] == out
    code, out, _ = run("audit", "--style", "sailpoint", "--task", "a", "--limit", "5")
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert {k: entry[k] for k in ("seq", "style", "task_id", "version", "action", "actor", "request_id")} == {
        "seq": 1, "style": "sailpoint", "task_id": "a", "version": 1, "action": "created",
        "actor": "cli:import", "request_id": "import:1"}



def test_serve_exits_cleanly_when_another_process_holds_the_write_lock(tmp_path: Path):
    import subprocess
    import sys
    env = {"PATH": "/usr/bin:/bin", "TASKGATE_STORAGE_BUSY_TIMEOUT_MS": "200"}
    base = [sys.executable, "-m", "gateway", "--db", str(tmp_path / "t.db")]
    subprocess.run([*base, "user", "add", "bob"], env=env, check=True, capture_output=True, timeout=60)
    with sqlite3.connect(tmp_path / "t.db", isolation_level=None) as holder:
        holder.execute("BEGIN IMMEDIATE")  # as a long `taskgate import` in another process would
        done = subprocess.run([*base, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
        holder.execute("ROLLBACK")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (f"taskgate: database {str(tmp_path / 't.db')!r} (storage.path): cannot "
                                            "index the sailpoint tasks: database is locked")


def test_a_database_path_that_cannot_be_opened_exits_2(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.db").mkdir()
    assert main(["--db", "dir.db", "init"]) == 2
    assert capsys.readouterr().err == (f"taskgate: database {str(tmp_path / 'dir.db')!r} (storage.path): "
                                       "cannot open it: unable to open database file\n")


def test_serve_refuses_an_unknown_superoffice_zone_before_touching_the_database(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKGATE_SUPEROFFICE_TIME_ZONE", "Mars/Base")
    assert main(["--db", "t.db", "serve", "--port", "0"]) == 2
    assert capsys.readouterr() == ("", "taskgate: invalid configuration: superoffice.time_zone: "
                                       "unknown time zone 'Mars/Base'\n")
    assert not (tmp_path / "t.db").exists()


def test_freezing_the_startup_heap_takes_it_out_of_full_collections():
    kept = [{"n": n} for n in range(1000)]  # long-lived objects, as start-up leaves them
    walked_before = len(gc.get_objects())
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() >= len(kept)
        assert len(gc.get_objects()) <= walked_before - len(kept)  # what a full collection walks
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual


#: the shortest command line of every command
COMMANDS = [["serve"], ["init"], ["user", "add", "u"], ["token", "create", "u"],
            ["oauth-client", "add", "c", "--user", "u"], ["import", "-"], ["export"], ["audit"], ["audit", "verify"],
            ["backup", "b.db"]]


def test_every_command_is_one_function_chosen_by_the_parser(capsys):
    runs = [build_parser().parse_args(argv).run for argv in COMMANDS]
    assert all(callable(run) for run in runs)
    assert len(set(runs)) == len(COMMANDS)  # no function serves two commands
    # and COMMANDS has every command: argparse names them all when refusing an unknown one
    with pytest.raises(SystemExit):
        build_parser().parse_args(["no-such-command"])
    choices = capsys.readouterr().err.rpartition("(choose from ")[2].rstrip(")\n").replace("'", "").split(", ")
    assert choices == list(dict.fromkeys(argv[0] for argv in COMMANDS))


def test_audit_verify_takes_the_listing_options_only_to_refuse_them(run):
    assert run("audit", "--limit", "5", "verify") == (
        2, "", "taskgate: audit verify checks every task; --style, --task and --limit are for listing\n")
