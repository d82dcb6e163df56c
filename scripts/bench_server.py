"""The server processes scripts/bench measures: start one, wait until it serves, read its
CPU time and peak memory from /proc (its worker processes included), stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import bench_peers


class Server:
    """One server process on 127.0.0.1 and a free port; its peak RSS read before it stops.
    It prints ``BANNER listening on URL`` when ready, or, given *port*, it prints nothing
    of the kind (a peer) and is ready once that port takes connections."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, banner: str, log: Path,
                 port: int | None = None) -> None:
        self.log = open(log, "w")
        if port is not None:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, text=True)
            self.url = f"http://127.0.0.1:{port}"
            try:
                bench_peers.wait_for_port(port, self.proc)
            except RuntimeError as e:
                raise RuntimeError(f"{banner} {e}; see {log}") from None
            return
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.monotonic() + 120
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{argv[1:3]} exited early; see {log}")
            match = re.match(banner + r" listening on (http://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
                return
        raise RuntimeError(f"{argv[1:3]} did not start in time; see {log}")

    def pids(self) -> list[int]:
        """The server's process and, with serve --workers, its worker processes."""
        pid = self.proc.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *map(int, children)]

    def peak_rss_mib(self) -> float:
        """Peak resident memory, added up over the supervisor and its workers."""
        total = 0.0
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
        return total

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server so far, all its threads and worker processes included."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_")}

__all__ = ["Server", "_clean_env"]
