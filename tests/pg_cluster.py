"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a fresh folder, ``pg_ctl
start`` on a unix socket in it (no TCP port at all), ``pg_ctl stop`` and the folder removed
at the end.

PostgreSQL refuses to run as root, and the suite runs as root on CI: then the folder (under
the system's temporary folder, mode 0700) is given to the unprivileged user ``nobody`` and
``initdb``, ``pg_ctl`` and the server run as that user (``runuser``). For the tests the server
is made for speed, not durability (:data:`TEST_SETTINGS`: ``fsync``, ``synchronous_commit``
and ``full_page_writes`` off); ``scripts/bench --backend postgresql`` starts it with
:data:`DURABLE_SETTINGS` instead, as a real deployment runs. Either way it is in UTF-8 with
the C collation, so that text orders by bytes as SQLite's BINARY does.

Nothing is assumed to be running already, and nothing is skipped: when PostgreSQL cannot
be found or started, :meth:`Cluster.start` raises :class:`ClusterError` with the command
and what it wrote, and every test that needs the cluster fails with it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Cluster", "ClusterError", "find_bindir", "SUPERUSER", "TEST_SETTINGS", "DURABLE_SETTINGS"]

#: the cluster's superuser (``initdb -U``); every test database is made by it
SUPERUSER = "taskgate"
#: the unprivileged user that runs the cluster when the tests run as root
RUN_AS = "nobody"
#: the tests' server: fast, and nothing survives a crash of the machine (none is needed)
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                 "max_connections": "200", "shared_buffers": "32MB"}
#: the bench's server: every commit on disk before it is acknowledged (PostgreSQL's defaults
#: for durability, as SQLite's synchronous=FULL is for the SQLite store)
DURABLE_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
                    "max_connections": "200", "shared_buffers": "128MB"}


class ClusterError(RuntimeError):
    """PostgreSQL could not be found, initialised or started; the message says why."""


def find_bindir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: ``TASKGATE_PG_BIN`` when set, else the
    newest of Debian's ``/usr/lib/postgresql/<version>/bin``, else the one on PATH."""
    given = os.environ.get("TASKGATE_PG_BIN")
    if given:
        return Path(given)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ClusterError("PostgreSQL's initdb was not found (install PostgreSQL, e.g. Debian's postgresql "
                       "package, or set TASKGATE_PG_BIN to the folder of initdb and pg_ctl)")


class Cluster:
    """One cluster in a folder of its own; :meth:`start`, then :meth:`dsn`, then :meth:`stop`."""

    def __init__(self, bindir: Path | None = None, settings: dict[str, str] | None = None) -> None:
        self._bindir = bindir
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.folder: Path | None = None
        self.start_seconds = 0.0  # how long initdb and the start took

    @property
    def socket_dir(self) -> Path:
        assert self.folder is not None
        return self.folder

    def dsn(self, database: str = "postgres") -> str:
        """The URL of *database* on this cluster, through its socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def _run(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:  # PostgreSQL refuses root: run it as an unprivileged user
            command = ["runuser", "-u", RUN_AS, "--", *command]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  cwd=self.folder, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"{' '.join(command)} could not run: {exc}") from exc
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr}{done.stdout}"
                               + self._server_log())
        return done

    def server_pid(self) -> int:
        """The postmaster's process id (the first line of its pid file)."""
        assert self.folder is not None
        return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])

    def _server_log(self) -> str:
        log = self.folder / "server.log" if self.folder is not None else None
        if log is None or not log.exists():
            return ""
        return "\nserver.log:\n" + log.read_text(errors="replace")[-4000:]

    def start(self) -> Cluster:
        """initdb and start; ClusterError (with what PostgreSQL wrote) when either fails."""
        started = time.monotonic()
        bindir = self._bindir if self._bindir is not None else find_bindir()
        for tool in ("initdb", "pg_ctl"):
            if not (bindir / tool).is_file():
                raise ClusterError(f"PostgreSQL's {tool} is not in {bindir}")
        # under the system's temporary folder, never a root-only one: the server's user reads it
        self.folder = Path(tempfile.mkdtemp(prefix="taskgate-pg-", dir=os.environ.get("TASKGATE_PG_TMP", "/tmp")))
        os.chmod(self.folder, 0o700)
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        data = self.folder / "data"
        try:
            self._run(bindir / "initdb", "-D", data, "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
                      "--auth=trust", "--no-sync")
            options = " ".join([
                "-c listen_addresses=''", f"-c unix_socket_directories='{self.socket_dir}'",
                *(f"-c {name}={value}" for name, value in self.settings.items())])
            self._options = options
            self._pg_ctl = bindir / "pg_ctl"
            self._server_start()
        except BaseException:
            self._remove()
            raise
        self._psql = bindir / "psql"
        self.start_seconds = time.monotonic() - started
        return self

    def _server_start(self) -> None:
        assert self.folder is not None
        self._run(self._pg_ctl, "start", "-w", "-t", "60", "-D", self.folder / "data", "-l", self.folder / "server.log",
                  "-o", self._options, timeout=90)

    def pause(self) -> None:
        """Stop the server (fast shutdown: sessions are ended), keeping its data."""
        assert self.folder is not None
        self._run(self._pg_ctl, "stop", "-w", "-m", "fast", "-D", self.folder / "data")

    def resume(self) -> None:
        """Start the server again on its data, after :meth:`pause`."""
        self._server_start()

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with ``psql`` (as the cluster's superuser, on its socket); its output."""
        assert self.folder is not None
        try:
            done = subprocess.run([str(self._psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                   "-h", str(self.socket_dir), "-U", SUPERUSER, "-d", database, "-c", statement],
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"psql could not run: {exc}") from exc
        if done.returncode != 0:
            raise ClusterError(f"psql {statement!r} failed (exit {done.returncode}):\n{done.stderr}")
        return done.stdout

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder; never raises."""
        if self.folder is None:
            return
        with contextlib.suppress(ClusterError):
            self._run(self._pg_ctl, "stop", "-w", "-m", "fast", "-D", self.folder / "data")
        self._remove()

    def _remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
