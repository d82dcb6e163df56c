"""The peers of scripts/bench --peers: what taskgate's users would run instead, on one workload.

Each peer serves the same 10,000 records (by default) and answers the same PATCH: change two
fields of a random record and return it. taskgate's side of the workload is its SailPoint
PATCH (``sailpoint_patch``: ``percentComplete`` and ``progress``); the peers' records carry
the same TaskStatus fields as columns (``percent_complete`` and ``progress`` change):

- ``minimal``: a hand-written aiohttp + aiosqlite UPDATE … RETURNING and a commit per request,
  on taskgate's own event loop and JSON library (scripts/bench_peers/minimal.py), WAL and
  ``synchronous=FULL``; no validation, audit, logging or authentication;
- ``fastapi``: FastAPI + SQLModel under uvicorn, SQLModel's tutorial pattern (a Session per
  request, ``sqlmodel_update``, commit, refresh; scripts/bench_peers/heroes.py);
- ``datasette``: Datasette 1.0a41's ``POST /<db>/<table>/<pk>/-/update`` with ``"return": true``
  and an API token signed for the root actor;
- ``json-server``: json-server 0.17.4 (npm) on a db.json, ``PATCH /tasks/<id>``.

The peers' dependencies never go into taskgate's environment: the Python ones are installed
on first use, pinned, into a virtual environment of their own (``WORKDIR/venv``), json-server
into ``WORKDIR/npm``. Nothing here imports them; it runs them as processes.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: the peers' Python packages, exactly; uvicorn[standard] brings uvloop and httptools, as
#: FastAPI's own `fastapi[standard]` install does, and Datasette runs on the same uvicorn
PY_PINS = ("fastapi==0.165.0", "sqlmodel==0.0.50", "uvicorn[standard]==0.55.0", "datasette==1.0a41")
NPM_PINS = ("json-server@0.17.4",)
SEED_VERSION = 1  # bump when the peers' records change (their templates are remade)
TABLE = "task"
COLUMNS = ("id", "type", "unique_name", "description", "parent_name", "launcher", "created", "modified",
           "launched", "completed", "completion_status", "progress", "percent_complete")
STATUSES = (None, "SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR")


@dataclass(frozen=True)
class Peer:
    name: str
    label: str  # what the report calls it
    method: str
    path: str  # a format with one %d, the record's id
    body: str  # a format with two %d: the new percent_complete, and the number in progress
    python: bool = False  # runs from the peers' virtual environment
    npm: bool = False  # runs from the peers' node_modules


PATCH_FIELDS = '"percent_complete":%d,"progress":"step %d"'
PEERS = (
    Peer("minimal", "aiohttp + aiosqlite, minimal UPDATE", "PATCH", "/tasks/%d", "{" + PATCH_FIELDS + "}"),
    Peer("fastapi", "FastAPI 0.165 + SQLModel 0.0.50, uvicorn", "PATCH", "/tasks/%d", "{" + PATCH_FIELDS + "}",
         python=True),
    Peer("datasette", "Datasette 1.0a41 /-/update", "POST", f"/peer_datasette/{TABLE}/%d/-/update",
         '{"update":{' + PATCH_FIELDS + '},"return":true}', python=True),
    Peer("json-server", "json-server 0.17.4", "PATCH", "/tasks/%d", "{" + PATCH_FIELDS + "}", npm=True),
)
NAMES = tuple(p.name for p in PEERS)


def parse(text: str) -> list[Peer]:
    """The peers named in *text* (comma-separated, or ``all``), in the report's order."""
    names = set(NAMES) if text == "all" else {x.strip() for x in text.split(",") if x.strip()}
    unknown = names - set(NAMES)
    if unknown or not names:
        raise ValueError(f"unknown peers: {', '.join(sorted(unknown)) or '(none)'}; known: {', '.join(NAMES)}, all")
    return [p for p in PEERS if p.name in names]


# -- installing ----------------------------------------------------------------------------
def install_plan(workdir: Path, peers: list[Peer]) -> list[str]:
    """What :func:`install` would install, one line each, or nothing when it is in place."""
    plan = []
    if any(p.python for p in peers) and _stamp(workdir / "venv") != " ".join(PY_PINS):
        plan.append(f"{', '.join(PY_PINS)} into {workdir.name}/venv (a virtual environment of their own)")
    if any(p.npm for p in peers) and _stamp(workdir / "npm") != " ".join(NPM_PINS):
        plan.append(f"{', '.join(NPM_PINS)} into {workdir.name}/npm (npm install --prefix)")
    return plan


def install(workdir: Path, peers: list[Peer]) -> None:
    """Install what *peers* need, pinned, beside taskgate's environment and never into it;
    again only when the pins change (a stamp file in each folder holds them)."""
    venv, npm = workdir / "venv", workdir / "npm"
    if any(p.python for p in peers) and _stamp(venv) != " ".join(PY_PINS):
        print(f"installing the peers' Python packages {', '.join(PY_PINS)} into {venv} "
              "(a virtual environment of their own, not taskgate's .venv) ...", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], workdir / "install-venv.log")
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *PY_PINS], workdir / "install-venv.log")
        (venv / ".bench-installed").write_text(" ".join(PY_PINS))
    if any(p.npm for p in peers) and _stamp(npm) != " ".join(NPM_PINS):
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise SystemExit("json-server needs node and npm (install Node.js 18 or newer), "
                             "or leave it out: --peers " + ",".join(n for n in NAMES if n != "json-server"))
        print(f"installing {', '.join(NPM_PINS)} into {npm} (npm install --prefix) ...", flush=True)
        shutil.rmtree(npm, ignore_errors=True)
        npm.mkdir(parents=True)
        _run(["npm", "install", "--prefix", str(npm), "--no-audit", "--no-fund", *NPM_PINS],
             workdir / "install-npm.log")
        (npm / ".bench-installed").write_text(" ".join(NPM_PINS))


def versions(workdir: Path, peers: list[Peer]) -> dict[str, str]:
    """The installed version of what each peer runs on, as the report names them."""
    out: dict[str, str] = {}
    if any(p.python for p in peers):
        code = ("import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in "
                "('fastapi', 'sqlmodel', 'sqlalchemy', 'pydantic', 'uvicorn', 'uvloop', 'httptools', 'datasette')))")
        done = subprocess.run([str(workdir / "venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
        out["python"] = done.stdout.strip()
    if any(p.npm for p in peers):
        pkg = json.loads((workdir / "npm" / "node_modules" / "json-server" / "package.json").read_text())
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        out["npm"] = f"json-server@{pkg['version']} node {node}"
    if any(p.name == "minimal" for p in peers):
        import aiohttp
        import aiosqlite
        out["minimal"] = f"aiohttp=={aiohttp.__version__} aiosqlite=={aiosqlite.__version__} (taskgate's own)"
    return out


def _stamp(folder: Path) -> str:
    try:
        return (folder / ".bench-installed").read_text()
    except OSError:
        return ""


def _run(argv: list[str], log: Path) -> None:
    with open(log, "a") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(argv[:4])} … failed; see {log}")


# -- the records ---------------------------------------------------------------------------
def records(n: int) -> Iterator[dict[str, Any]]:
    """*n* TaskStatus-shaped records with ids 1..n, as the bench seeds taskgate's."""
    for i in range(1, n + 1):
        when = f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
        status = STATUSES[i % len(STATUSES)]
        yield {"id": i, "type": "QUARTZ" if i % 2 else "QPOC", "unique_name": f"Aggregation {i}", "description": "",
               "parent_name": None, "launcher": "sp_worker", "created": when, "modified": when, "launched": None,
               "completed": when if status else None, "completion_status": status, "progress": "step 0",
               "percent_complete": 0}


def create_table(db: sqlite3.Connection) -> None:
    db.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, type TEXT NOT NULL, unique_name TEXT NOT NULL, "
               "description TEXT NOT NULL, parent_name TEXT, launcher TEXT NOT NULL, created TEXT NOT NULL, "
               "modified TEXT NOT NULL, launched TEXT, completed TEXT, completion_status TEXT, "
               "progress TEXT, percent_complete INTEGER)")


def seed_sqlite(path: Path, n: int) -> None:
    """The peers' SQLite file: *n* records in WAL mode (kept in the file), as taskgate's."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        create_table(db)
        db.executemany(f"INSERT INTO {TABLE} VALUES ({', '.join('?' * len(COLUMNS))})",
                       ([r[c] for c in COLUMNS] for r in records(n)))
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def templates(workdir: Path, n: int) -> tuple[Path, Path]:
    """The peers' seeded SQLite file and db.json for *n* records, made once in *workdir*."""
    db, js = workdir / f"peers-{n}.db", workdir / f"peers-{n}.json"
    stamp = workdir / f"peers-{n}.stamp"
    if not (db.exists() and js.exists() and stamp.exists() and stamp.read_text() == str(SEED_VERSION)):
        seed_sqlite(db, n)
        js.write_text(json.dumps({"tasks": list(records(n))}))
        stamp.write_text(str(SEED_VERSION))
    return db, js


def fresh_copies(workdir: Path, n: int, peers: list[Peer]) -> dict[str, Path]:
    """A copy of the template for each peer, shared by its rounds (as taskgate's is)."""
    db, js = templates(workdir, n)
    out = {}
    for peer in peers:
        copy = workdir / f"peer_{peer.name.replace('-', '_')}{'.json' if peer.npm else '.db'}"
        for stale in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            stale.unlink(missing_ok=True)
        shutil.copyfile(js if peer.npm else db, copy)
        out[peer.name] = copy
    return out


# -- running -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def datasette_token(workdir: Path, secret: str) -> str:
    """A Datasette API token for the root actor, signed with *secret*."""
    done = subprocess.run([str(workdir / "venv" / "bin" / "datasette"), "create-token", "root", "--secret", secret],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def command(peer: Peer, workdir: Path, data: Path, port: int) -> tuple[list[str], str]:
    """The argv that starts *peer* on 127.0.0.1:*port* over *data*, and the Authorization header
    its requests carry ("" for none)."""
    host = ["--host", "127.0.0.1", "--port", str(port)]
    if peer.name == "minimal":
        return [sys.executable, str(HERE / "minimal.py"), str(data), *host], ""
    if peer.name == "fastapi":
        return [str(workdir / "venv" / "bin" / "uvicorn"), "heroes:app", "--app-dir", str(HERE), *host], ""
    if peer.name == "datasette":
        secret = secrets.token_hex(16)  # Datasette names the database after the file: peer_datasette
        return ([str(workdir / "venv" / "bin" / "datasette"), "serve", str(data), *host, "--secret", secret,
                 "--root"], f"Bearer {datasette_token(workdir, secret)}")
    if peer.name == "json-server":
        return [str(workdir / "npm" / "node_modules" / ".bin" / "json-server"), str(data), *host, "--quiet"], ""
    raise ValueError(peer.name)


def environment(peer: Peer, data: Path) -> dict[str, str]:
    """What the peer's process adds to the environment (the FastAPI app reads its file here)."""
    return {"BENCH_PEER_DB": str(data)} if peer.name == "fastapi" else {}


def wait_for_port(port: int, proc: subprocess.Popen[Any], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited early ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"did not listen on {port} in {seconds:g} s")


def check(peer: Peer, url: str, auth: str, task_id: int = 1, value: int = 7) -> dict[str, Any]:
    """One request of the workload: the peer must answer 200 with the changed record."""
    headers = {"Content-Type": "application/json"} | ({"Authorization": auth} if auth else {})
    request = urllib.request.Request(url + peer.path % task_id, data=(peer.body % (value, value)).encode(),
                                     method=peer.method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.loads(answer.read())
    record = body["rows"][0] if peer.name == "datasette" else body
    wanted = {"id": task_id, "percent_complete": value, "progress": f"step {value}"}
    if {k: record.get(k) for k in wanted} != wanted:
        raise RuntimeError(f"{peer.name} did not answer with the changed record: {body}")
    return dict(record)
