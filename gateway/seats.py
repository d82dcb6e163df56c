"""Seats for long-lived streams: how many a process holds open, in all and per user.

A stream (a dashboard page's live updates, a ``GET /events`` stream) holds a connection
for as long as its client likes, and every commit costs something for each one open. So a
process holds at most a number of them in all, and each user at most a number of its own:
one beyond the first is refused with 503 (the service is full: try later), one beyond the
second with 429 (this user has enough: close one). The counts follow the streams open, not
the users ever seen.

Owns the counts; knows nothing of what a stream carries.
"""

from __future__ import annotations

from gateway import errors

__all__ = ["Seats"]


class Seats:
    """At most *total* streams open (0: none) and *per_user* per user name (0: no limit
    per user); *what* names them in the refusals ("live pages", "event streams")."""

    def __init__(self, total: int, per_user: int, what: str) -> None:
        self.total, self.per_user, self.what = total, per_user, what
        self.open = 0
        self._mine: dict[str, int] = {}  # a user's name → the streams it has open (entries live while > 0)

    def take(self, user: str) -> None:
        """One seat for *user*, or ServiceUnavailable / TooManyRequests, taking none."""
        if self.open >= self.total:
            raise errors.ServiceUnavailable(f"{self.total} {self.what} are open already; try again later")
        mine = self._mine.get(user, 0)
        if self.per_user and mine >= self.per_user:
            raise errors.TooManyRequests(f"you have {mine} {self.what} open already, the most one user may; "
                                         "close one and try again")
        self._mine[user] = mine + 1
        self.open += 1

    def give_back(self, user: str) -> None:
        """The seat of one of *user*'s streams, which has ended."""
        left = self._mine.pop(user, 1) - 1
        if left:
            self._mine[user] = left
        self.open -= 1
