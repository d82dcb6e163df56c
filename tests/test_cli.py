"""The taskgate command line, run in process on a real database file."""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.app import STYLES
from gateway.auth import secret_hash
from gateway.cli import build_parser, main
from gateway.serving import freeze_startup_heap
from gateway.store import SCHEMA_VERSION, SQLiteStore


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
    assert run("init")[0] == 0  # only init (and serve --allow-new) creates the database
    return run


@pytest.mark.parametrize("argv", [["user", "add", "u"], ["token", "list"], ["import", "-"], ["export"], ["audit"],
                                  ["audit", "verify"], ["oauth-client", "list"]])
def test_a_command_on_a_missing_database_exits_2_and_creates_nothing(argv, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKGATE_DB", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["--db", "gone.db", *argv]) == 2
    assert capsys.readouterr() == ("", f"taskgate: database {str(tmp_path / 'gone.db')!r} (storage.path): there is "
                                       "no database file; create a new one deliberately (taskgate init, or serve "
                                       "--allow-new), or restore it from a backup\n")
    assert list(tmp_path.iterdir()) == []


def test_init_creates_the_database_and_serve_help_names_allow_new(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--db", "new.db", "init"]) == 0
    assert capsys.readouterr().out == f"database {tmp_path / 'new.db'} is at schema version {SCHEMA_VERSION}\n"
    assert build_parser().parse_args(["serve", "--allow-new"]).allow_new is True
    assert build_parser().parse_args(["serve"]).allow_new is False


def db(tmp_path: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(tmp_path / "t.db") as conn:
        return conn.execute(sql, params).fetchall()


def test_init_creates_the_database(run, tmp_path: Path):
    code, out, _ = run("init")
    assert (code, out) == (0, f"database {tmp_path / 't.db'} is at schema version {SCHEMA_VERSION}\n")


def test_users_tokens_and_oauth_clients_store_only_hashes(run, tmp_path: Path):
    assert run("user", "add", "ann", "--role", "admin", "--password-stdin", stdin="s3cret\n") == (
        0, "added user 'ann' (role admin, with a password)\n", "")
    code, token, _ = run("token", "create", "ann", "--read-only", "--expires-in", "60")
    token = token.strip()
    assert code == 0 and token.startswith("tg_") and len(token) > 40
    code, secret, _ = run("oauth-client", "add", "cid", "--user", "ann")
    secret = secret.strip()
    assert code == 0 and secret.startswith("tgs_")
    assert run("user", "add", "bo", "--associate-id", "627") == (
        0, "added user 'bo' (role user, no password, SuperOffice associate 627)\n", "")
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
    assert run("user", "add", "ann") == (0, "added user 'ann' (role user, no password)\n", "")
    assert run("user", "add", "ann") == (1, "", "taskgate: already exists: UNIQUE constraint failed: users.name\n")
    assert run("user", "add", "cy", "--password-stdin") == (1, "", "taskgate: empty password\n")
    assert run("token", "create", "ann", "--expires-in", "-1")[::2] == (
        1, "taskgate: --expires-in must be 0 (never) or more\n")
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
    # the failed lines and one summary; no log event per task on the terminal (the audit rows are below)
    assert run("import", str(source)) == (1, "", "\n".join([
        "line 2: invalid TaskStatus: type: Must be one of: QUARTZ, QPOC, QUEUED_TASK.",
        f'line 3: expected {{"style": one of {", ".join(s.STYLE for s in STYLES)}, "task": {{…}}}}',
        "line 4: Expecting value: line 1 column 1 (char 0)",
        "imported 1 task(s), 3 failed\n"]))
    code, out, _ = run("export")
    exported = [json.loads(line) for line in out.splitlines()]
    assert exported == [{"style": "sailpoint", "task": {
        "id": "a", "type": "QUARTZ", "uniqueName": "u", "description": "d", "parentName": None, "launcher": "l",
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "launched": None,
        "completed": None, "completionStatus": "SUCCESS", "messages": [], "returns": [], "attributes": {},
        "progress": None, "percentComplete": 0}}]
    # export | import round-trips (a re-import of the same document changes nothing)
    assert run("import", "-", stdin=out) == (0, "", "imported 1 task(s), 0 failed\n")
    assert run("export")[1] == out
    code, out, _ = run("audit", "--style", "sailpoint", "--task", "a", "--limit", "5")
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert {k: entry[k] for k in ("seq", "style", "task_id", "version", "action", "actor", "request_id")} == {
        "seq": 1, "style": "sailpoint", "task_id": "a", "version": 1, "action": "created",
        "actor": "cli:import", "request_id": "import:1"}


def test_with_a_log_file_an_import_logs_each_change_there_and_not_on_the_terminal(run, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TASKGATE_LOG_FILE", str(tmp_path / "taskgate.log"))
    task = {"id": "a", "type": "QUARTZ", "uniqueName": "u", "created": "2024-01-01T00:00:00Z"}
    try:
        assert run("import", "-", stdin=json.dumps({"style": "sailpoint", "task": task}) + "\n") == (
            0, "", "imported 1 task(s), 0 failed\n")
    finally:
        monkeypatch.delenv("TASKGATE_LOG_FILE")
        run("init")  # logging back on standard error, for the tests that follow
    events = [json.loads(line) for line in (tmp_path / "taskgate.log").read_text().splitlines()]
    assert [{k: e[k] for k in ("event", "style", "task_id", "version", "actor", "request_id", "seq")}
            for e in events] == [{"event": "task.created", "style": "sailpoint", "task_id": "a", "version": 1,
                                  "actor": "cli:import", "request_id": "import:1", "seq": 1}]


def _parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("taskgate",)):
    """*parser* and every subcommand's parser under it, with the words that reach it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*words, name))


#: what reStructuredText markup looks like in a help text: ``code``, :func:`x`, `link`_
_RST = re.compile(r"``|:[a-z]+:`|`_")


def test_help_texts_are_plain_text_and_every_argument_has_one():
    seen = []
    for words, parser in _parsers(build_parser()):
        seen.append(" ".join(words))
        text = parser.format_help()
        assert not _RST.search(text), f"{' '.join(words)} --help has reStructuredText markup:\n{text}"
        for action in parser._actions:
            assert action.help, f"{' '.join(words)}: {action.dest} has no help text"
    # taskgate, its twelve commands, and under six of them: user add, passwd, disable, enable,
    # delete; token create, list, revoke; oauth-client add, list, revoke; audit verify, purge; events
    # tail; webhooks log
    assert len(seen) == 1 + 12 + 15
    assert build_parser().description == ("Serve the task APIs of SailPoint ISC, SuperOffice WebAPI and webMethods "
                                          "Task Engine over one SQLite file, and manage its users, tokens, tasks "
                                          "and backups.")


def test_serve_exits_cleanly_when_another_process_holds_the_write_lock(tmp_path: Path):
    import subprocess
    import sys
    env = {"PATH": "/usr/bin:/bin", "TASKGATE_STORAGE_BUSY_TIMEOUT_MS": "200"}
    base = [sys.executable, "-m", "gateway", "--db", str(tmp_path / "t.db")]
    subprocess.run([*base, "init"], env=env, check=True, capture_output=True, timeout=60)
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


def test_serve_refuses_the_testing_toolkit_with_several_workers_before_touching_the_database(
        tmp_path: Path, monkeypatch, capsys):
    """A namespace lives in the worker that made it: another worker would answer 404 for it."""
    monkeypatch.chdir(tmp_path)
    assert main(["--db", "t.db", "serve", "--allow-new", "--testing", "--workers", "2", "--port", "0"]) == 2
    assert capsys.readouterr() == ("", "taskgate: invalid configuration: testing.enabled: namespaces live in one "
                                       "process; serve the testing toolkit with server.workers = 1 (it is 2)\n")
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
            ["audit", "purge", "--deleted-before", "2026-01-01T00:00:00Z"], ["copy", "a.db", "b.db"],
            ["events", "tail"], ["webhooks", "log"], ["backup", "b.db"]]


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


async def _lives(path: Path, hook_at: int | None = None) -> None:
    """Two lives of task a and one of b, deleted, and a live c; with *hook_at*, an active
    webhook whose cursor stands after that many of these changes."""
    store = await SQLiteStore.open(path)
    try:
        for task_id in ("a", "a", "b"):
            await store.create("s", task_id, {"n": 1}, actor="t", request_id="r")
            await store.delete("s", task_id, actor="t", request_id="r")
        await store.create("s", "c", {"n": 1}, actor="t", request_id="r")
        if hook_at is not None:
            hook = await store.create_hook("s", "h", lambda hook_id: {"id": hook_id}, active=True)
            assert await store.advance_hook(hook.num, expected_cursor=hook.cursor, cursor=hook_at, failures=0, log=[])
    finally:
        await store.close()


def test_audit_purge_drops_the_trails_of_lives_deleted_before_a_time_and_not_those_a_webhook_still_owes(
        run, tmp_path: Path, capsys):
    asyncio.run(_lives(tmp_path / "t.db", hook_at=4))
    assert run("audit", "purge", "--deleted-before", "2000-01-01T00:00:00+02:00") == (
        0, "purged the trails of 0 task lives deleted before 1999-12-31T22:00:00.000Z: 0 audit rows\n", "")
    # a year before 1000 is written with four digits (unpadded, "999-…" came after every time)
    assert run("audit", "purge", "--deleted-before", "0999-01-01T00:00:00.001Z") == (
        0, "purged the trails of 0 task lives deleted before 0999-01-01T00:00:00.001Z: 0 audit rows\n", "")
    # the webhook has been sent the first four changes: both lives of a, not b's
    assert run("audit", "purge", "--deleted-before", "9999-01-01T00:00:00Z") == (
        0, "purged the trails of 2 task lives deleted before 9999-01-01T00:00:00.000Z: 4 audit rows\n", "")
    code, out, _ = run("audit", "--limit", "10")
    assert (code, [(c["seq"], c["task_id"], c["action"]) for c in map(json.loads, out.splitlines())]) == (
        0, [(7, "c", "created"), (6, "b", "deleted"), (5, "b", "created")])
    with pytest.raises(SystemExit) as exited:
        run("audit", "purge", "--deleted-before", "yesterday")
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith("error: argument --deleted-before: not an RFC 3339 date-time: "
                                            "'yesterday'\n")
    assert run("audit", "--task", "c", "purge", "--deleted-before", "2026-01-01T00:00:00Z") == (
        2, "", "taskgate: audit purge drops every style's deleted lives; --style, --task and --limit are for "
               "listing\n")


def _token_id(token: str) -> str:
    return secret_hash(token)[:12]


def test_token_create_expires_after_cli_token_ttl_seconds_unless_told(run, tmp_path: Path, monkeypatch):
    run("user", "add", "ann")
    before = int(time.time())
    plain = run("token", "create", "ann")[1].strip()
    never = run("token", "create", "ann", "--expires-in", "0")[1].strip()
    short = run("token", "create", "ann", "--expires-in", "60")[1].strip()
    monkeypatch.setenv("TASKGATE_AUTH_CLI_TOKEN_TTL_SECONDS", "0")
    configured_never = run("token", "create", "ann")[1].strip()
    expires = dict(db(tmp_path, "SELECT hash, expires FROM tokens"))
    assert before + 7_776_000 <= expires[secret_hash(plain)] <= int(time.time()) + 7_776_000  # 90 days
    assert expires[secret_hash(never)] is None and expires[secret_hash(configured_never)] is None
    assert before + 60 <= expires[secret_hash(short)] <= int(time.time()) + 60


def test_token_list_and_revoke(run, tmp_path: Path):
    run("user", "add", "ann", "--role", "admin")
    run("user", "add", "bo")
    ann = run("token", "create", "ann", "--expires-in", "0")[1].strip()
    bo = run("token", "create", "bo", "--read-only", "--expires-in", "60")[1].strip()
    (bo_expires,), = db(tmp_path, "SELECT expires FROM tokens WHERE user = 'bo'")
    created = dict(db(tmp_path, "SELECT user, created FROM tokens"))
    code, out, err = run("token", "list")
    assert (code, err) == (0, "")
    lines = [line.split() for line in out.splitlines()]
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bo_expires))
    assert sorted(lines[1:]) == sorted([[_token_id(ann), "ann", "read-write", "never", "cli", created["ann"]],
                                        [_token_id(bo), "bo", "read-only", expiry, "cli", created["bo"]]])
    assert lines[0] == ["ID", "USER", "ACCESS", "EXPIRES", "SOURCE", "CREATED"]
    assert ann not in out and bo not in out and secret_hash(ann) not in out  # never a secret, nor a whole hash
    assert [line.split()[0] for line in run("token", "list", "bo")[1].splitlines()] == ["ID", _token_id(bo)]
    assert run("token", "list", "ghost")[::2] == (1, "taskgate: no user 'ghost'\n")
    assert run("token", "revoke", _token_id(bo)) == (0, f"revoked token {_token_id(bo)} of user 'bo' (cli)\n", "")
    assert db(tmp_path, "SELECT user FROM tokens") == [("ann",)]
    assert run("token", "revoke", _token_id(bo)) == (1, "", f"taskgate: no token {_token_id(bo)!r}\n")
    assert run("token", "revoke", "abc")[::2] == (
        1, "taskgate: a token ID has at least 8 characters (see taskgate token list)\n")
    assert run("token", "revoke", _token_id(ann)[:8].upper())[0] == 0  # any case, any prefix of 8 or more
    assert db(tmp_path, "SELECT count(*) FROM tokens") == [(0,)]


def test_an_id_that_matches_two_tokens_revokes_neither(run, tmp_path: Path):
    run("user", "add", "ann")
    for h in ("abcdef0123", "abcdef0199"):
        db(tmp_path, "INSERT INTO tokens (hash, user, source, created) VALUES (?, 'ann', 'cli', 't')", h)
    assert run("token", "revoke", "abcdef01") == (1, "", "taskgate: 'abcdef01' matches 2 tokens; give more of the ID\n")
    assert db(tmp_path, "SELECT count(*) FROM tokens") == [(2,)]
    assert run("token", "revoke", "abcdef012") == (0, "revoked token abcdef0123 of user 'ann' (cli)\n", "")
    assert db(tmp_path, "SELECT hash FROM tokens") == [("abcdef0199",)]


def test_oauth_client_list_and_revoke(run, tmp_path: Path):
    run("user", "add", "ann")
    run("oauth-client", "add", "zed", "--user", "ann")
    run("oauth-client", "add", "app", "--user", "ann")
    code, out, _ = run("oauth-client", "list")
    assert (code, [line.split() for line in out.splitlines()]) == (
        0, [["CLIENT_ID", "USER"], ["app", "ann"], ["zed", "ann"]])
    assert "tgs_" not in out
    assert run("oauth-client", "revoke", "app") == (
        0, "revoked OAuth client 'app' of user 'ann' (access tokens it was issued end within "
           "auth.token_ttl_seconds, 3600 s, or at taskgate token revoke)\n", "")
    assert db(tmp_path, "SELECT client_id FROM oauth_clients") == [("zed",)]
    assert run("oauth-client", "revoke", "app") == (1, "", "taskgate: no OAuth client 'app'\n")


def test_user_disable_enable_delete_and_passwd(run, tmp_path: Path):
    run("user", "add", "ann", "--password-stdin", stdin="old\n")
    run("token", "create", "ann")
    run("oauth-client", "add", "cid", "--user", "ann")
    db(tmp_path, "INSERT INTO tokens (hash, user, source, created) VALUES ('sess', 'ann', 'session', 't')")
    db(tmp_path, "INSERT INTO audit (at, style, task_id, version, action, actor, request_id, patch, undo) "
                 "VALUES ('t', 'webmethods', '1', 1, 'created', 'ann', 'r', '[]', '[]')")
    assert run("user", "disable", "ann") == (
        0, "disabled user 'ann': it signs in by no means; its tasks and audit trail stay\n", "")
    assert db(tmp_path, "SELECT disabled FROM users WHERE name = 'ann'") == [(1,)]
    assert run("user", "enable", "ann") == (0, "enabled user 'ann'\n", "")
    assert db(tmp_path, "SELECT disabled FROM users WHERE name = 'ann'") == [(0,)]
    (old_hash,), = db(tmp_path, "SELECT password_hash FROM users")
    assert run("user", "passwd", "ann", "--password-stdin", stdin="new\n") == (
        0, "changed the password of user 'ann' (its browser sessions ended)\n", "")
    (new_hash,), = db(tmp_path, "SELECT password_hash FROM users")
    assert new_hash != old_hash and new_hash.startswith("scrypt$")
    assert db(tmp_path, "SELECT source FROM tokens") == [("cli",)]  # the session ended, the API token stays
    assert run("user", "passwd", "ann", "--password-stdin", stdin="\n") == (1, "", "taskgate: empty password\n")
    assert run("user", "passwd", "ann") == (  # standard input is no terminal: no prompt, no secret on argv
        1, "", "taskgate: no terminal to ask for the password on (use --password-stdin)\n")
    assert run("user", "delete", "ann") == (
        0, "deleted user 'ann' with 1 token(s) and 1 OAuth client(s); its tasks and audit trail stay\n", "")
    assert db(tmp_path, "SELECT count(*) FROM users WHERE name = 'ann'") == [(0,)]
    assert db(tmp_path, "SELECT count(*) FROM tokens") == db(tmp_path, "SELECT count(*) FROM oauth_clients") == [(0,)]
    assert db(tmp_path, "SELECT actor FROM audit") == [("ann",)]
    for action in ("disable", "enable", "delete", "passwd"):
        assert run("user", action, "ann", stdin="x\n")[::2] == (1, "taskgate: no user 'ann'\n")
