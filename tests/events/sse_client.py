"""Reading a Server-Sent Events stream as a client does: frames, comments, ids.

Shared by the stream's tests in process and the end-to-end ones; it parses what the
server sends (field lines, blank-line ends, ``:`` comments) and asserts nothing itself.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = ["Frame", "SseReader"]


@dataclass
class Frame:
    """One event, or one comment (``comment`` set, nothing else)."""

    event: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)
    retry: str | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads("\n".join(self.data))


class SseReader:
    """The frames of one response body, in order."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def frame(self, timeout: float = 10.0) -> Frame | None:
        """The next frame (a comment line is a frame of its own); None at the end of the body."""
        current = Frame()
        seen = False
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return current if seen else None
                text = raw.decode("utf-8").rstrip("\n")
                if text.startswith(":"):
                    if seen:  # a comment inside an event: ignored, as the specification says
                        continue
                    return Frame(comment=text[1:].strip())
                if not text:
                    if seen:
                        return current
                    continue
                name, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                seen = True
                if name == "data":
                    current.data.append(value)
                elif name == "id":
                    current.id = value
                elif name == "event":
                    current.event = value
                elif name == "retry":
                    current.retry = value

    async def events(self, count: int, timeout: float = 10.0) -> list[Frame]:
        """The next *count* events (comments skipped)."""
        found: list[Frame] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                got = await self.frame(timeout)
                if got is None:
                    raise AssertionError(f"the stream ended after {len(found)} of {count} events")
                if got.comment is None and got.data:
                    found.append(got)
        return found

    async def rest(self, timeout: float = 10.0) -> list[Frame]:
        """Every frame until the end of the body (comments included)."""
        found: list[Frame] = []
        async with asyncio.timeout(timeout):
            while (got := await self.frame(timeout)) is not None:
                found.append(got)
        return found
