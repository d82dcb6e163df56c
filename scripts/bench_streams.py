"""Stream clients for scripts/bench --streams: N GET /events streams held open beside a measurement.

Run by scripts/bench_run.py beside a taskgate server while a scenario is measured, in a
process of its own: ``bench_streams.py URL AUTHORIZATION N QUERY``. N - 1 streams read
whatever the server sends (with QUERY ``task={task}``, each client follows a task of its
own, ``{task}`` being the SailPoint id of the client's number, 1 to N - 1: the changes the
scenario makes to that task; ``task=none``, heartbeats only; an empty QUERY, every change
the scenario makes): plain sockets under one selector, large reads, events counted by
their ``id:`` lines, so that the clients take as little of the shared machine as they can.
The last one asks for every event, sends its request and never reads (a small receive
buffer), as the issue's acceptance has it: whatever the others follow, it falls behind.
On SIGTERM it closes them and prints one line,
``STREAMS {"opened": …, "events": …, "bytes": …, "ended": …, "stalled": {"bytes": …,
"end": …, "closed": …}}``, the never-reading client's part read after the run: ``end`` is
the ``event: end`` frame's data it was sent (``{"reason": "behind", "last_id": …}`` once
the feed passed it) if that reached it, and ``closed`` is ``reset`` (the server aborted
it), ``eof`` or ``open``.
"""

from __future__ import annotations

import json
import selectors
import signal
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

_EVENT = b"\nid: "  # every event frame starts a line with its id (after a blank line or a chunk size)
_READ = 1 << 18


def _open(url: str, auth: str, query: str, receive_buffer: int | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.sendall(f"GET /events?{query} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {auth}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    return sock


def _drain(sock: socket.socket) -> dict[str, Any]:
    """What the never-reading client was sent, read now: its size and the end frame's data."""
    sock.settimeout(2.0)
    raw = bytearray()
    closed = "open"
    try:
        while chunk := sock.recv(1 << 20):
            raw += chunk
        closed = "eof"
    except ConnectionResetError:  # aborted by the server
        closed = "reset"
    except TimeoutError:  # still open: nothing more within the timeout
        pass
    sock.close()
    end = None
    at = raw.rfind(b"event: end\ndata: ")
    if at >= 0:
        try:
            end = json.loads(raw[at + 17:].split(b"\n", 1)[0])
        except ValueError:
            end = None
    return {"bytes": len(raw), "end": end, "closed": closed}


def main(url: str, auth: str, count: int, query: str) -> int:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    totals: dict[str, Any] = {"opened": 0, "events": 0, "bytes": 0, "ended": 0}
    stalled = _open(url, auth, "", receive_buffer=4096) if count > 0 else None
    selector = selectors.DefaultSelector()
    tails: dict[socket.socket, bytes] = {}
    heads: dict[socket.socket, bytes] = {}
    for number in range(1, count):
        sock = _open(url, auth, query.replace("{task}", f"{number:032x}"))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        heads[sock] = b""
    deadline = time.monotonic() + 60
    ready = False
    while not stopping:
        if not ready and not heads:
            print("READY", flush=True)
            ready = True
        if not ready and time.monotonic() > deadline:
            raise RuntimeError(f"{len(heads)} GET /events streams did not start within 60 s")
        for key, _ in selector.select(0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(_READ)
            except ConnectionError:
                data = b""
            if not data:
                totals["ended"] += 1
                selector.unregister(sock)
                sock.close()
                continue
            totals["bytes"] += len(data)
            if sock in heads:  # the answer's head first: a 200, or the run is off
                head = heads[sock] + data
                if b"\r\n\r\n" not in head:
                    heads[sock] = head
                    continue
                if not head.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError(f"GET /events: {head[:300]!r}")
                del heads[sock]
                totals["opened"] += 1
                data = head.partition(b"\r\n\r\n")[2]
            seen = tails.get(sock, b"") + data
            totals["events"] += seen.count(_EVENT)
            tails[sock] = seen[-(len(_EVENT) - 1):]  # too short to hold a whole marker: none is counted twice
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    if stalled is not None:
        totals["opened"] += 1
        totals["stalled"] = _drain(stalled)
    print("STREAMS " + json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
