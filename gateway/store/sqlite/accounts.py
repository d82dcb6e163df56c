"""Users, tokens and OAuth clients, and the cache of token rows.

Owns the ``users``, ``tokens`` and ``oauth_clients`` rows. Lookups run through the
point reader (:class:`.reads.Lookup`); changes are small admin transactions, each run
whole on the writer's thread. Every request looks its token up, so found token rows are
remembered for at most :data:`TOKEN_CACHE_SECONDS`; every account change made through
this store empties that cache when it commits, so revoking a token, disabling, deleting
or re-passwording a user shows in this process at once and in another one within
:data:`TOKEN_CACHE_SECONDS`. It stores hashes only, and must not
hash, check passwords or decide who may do what: :mod:`gateway.auth` does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from gateway import errors
from gateway.clock import now_iso
from gateway.model import OAuthClient, TokenInfo, TokenRow, User
from gateway.store.sqlite.write_connection import WriteConnection

__all__ = ["Accounts", "TOKEN_CACHE_SECONDS", "TOKEN_CACHE_SIZE"]

#: how long a token row found by :meth:`Accounts.find_token` is reused without asking
#: SQLite again: the longest another process's change to users or tokens can go unseen
TOKEN_CACHE_SECONDS = 1.0
TOKEN_CACHE_SIZE = 4096

Statement = tuple[str, Sequence[Any]]
Rows = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


def _token_insert(user: str, token_hash: str, read_only: bool, expires: int | None, source: str) -> Statement:
    return ("INSERT INTO tokens (hash, user, read_only, expires, source, created) VALUES (?, ?, ?, ?, ?, ?)",
            (token_hash, user, int(read_only), expires, source, now_iso()))


class Accounts:
    """Account rows: *lookup* reads by key, *rows* reads on the reader, *writer* changes them;
    *committed* is called after each change commits."""

    def __init__(self, writer: WriteConnection, lookup: Rows, rows: Rows, committed: Callable[[], None]) -> None:
        self._writer = writer
        self._lookup = lookup
        self._rows = rows
        self._committed = committed
        self._tokens: dict[str, tuple[float, TokenRow]] = {}
        self._tokens_generation = 0

    async def _write(self, statements: Iterable[Statement]) -> list[int]:
        """One transaction of *statements*, and how many rows each changed; Conflict when a
        constraint refuses one."""
        def run(conn: sqlite3.Connection) -> list[int]:
            return [conn.execute(statement, params).rowcount for statement, params in statements]
        self.forget_tokens()
        try:
            changed = await self._writer.transaction(run)
        except sqlite3.IntegrityError as exc:
            raise errors.Conflict(str(exc)) from None
        finally:
            self.forget_tokens()  # also drops what a read during the transaction saw
        self._committed()
        return changed

    def forget_tokens(self) -> None:
        self._tokens.clear()
        self._tokens_generation += 1

    async def count_users(self) -> int:
        (n,), = await self._rows("SELECT count(*) FROM users", ())
        return int(n)

    async def add_user(self, name: str, role: str, password_hash: str | None,
                       token: tuple[str, bool, int | None, str] | None = None, *,
                       associate_id: int | None = None) -> None:
        statements: list[Statement] = [(
            "INSERT INTO users (name, role, password_hash, created, associate_id) VALUES (?, ?, ?, ?, ?)",
            (name, role, password_hash, now_iso(), associate_id))]
        if token is not None:
            statements.append(_token_insert(name, *token))
        await self._write(statements)

    async def get_user(self, name: str) -> User | None:
        found = await self._lookup("SELECT name, role, password_hash, associate_id, disabled FROM users WHERE name = ?",
                                   (name,))
        return _user(found[0]) if found else None

    async def set_password(self, name: str, password_hash: str | None) -> bool:
        # a browser session was won with the old password: it ends with it
        changed = await self._write([
            ("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)),
            ("DELETE FROM tokens WHERE user = ? AND source = 'session'", (name,))])
        return changed[0] > 0

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        changed = await self._write([("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))])
        return changed[0] > 0

    async def delete_user(self, name: str) -> bool:
        # tokens and OAuth clients go with it (ON DELETE CASCADE); tasks and audit rows stay
        changed = await self._write([("DELETE FROM users WHERE name = ?", (name,))])
        return changed[0] > 0

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None:
        statements = [_token_insert(user, token_hash, read_only, expires, source)]
        if purge_before is not None:
            statements.append(("DELETE FROM tokens WHERE expires IS NOT NULL AND expires < ?", (purge_before,)))
        await self._write(statements)

    async def find_token(self, token_hash: str) -> TokenRow | None:
        """Found rows are remembered for at most :data:`TOKEN_CACHE_SECONDS`. Any change to
        users or tokens made through this store empties the cache at once; one made by
        another process shows within that bound. Callers check ``expires`` themselves."""
        cached = self._tokens.get(token_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        generation = self._tokens_generation
        found = await self._find_token(token_hash)
        if found is not None and generation == self._tokens_generation:  # no change raced the read
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            self._tokens[token_hash] = (time.monotonic() + TOKEN_CACHE_SECONDS, found)
        return found

    async def _find_token(self, token_hash: str) -> TokenRow | None:
        found = await self._lookup(
            "SELECT t.read_only, t.expires, u.name, u.role, u.password_hash, u.associate_id, u.disabled "
            "FROM tokens t JOIN users u ON u.name = t.user WHERE t.hash = ?", (token_hash,))
        if not found:
            return None
        read_only, expires, *user = found[0]
        return TokenRow(_user(user), bool(read_only), expires)

    async def delete_token(self, token_hash: str) -> None:
        await self._write([("DELETE FROM tokens WHERE hash = ?", (token_hash,))])

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        where, params = ("WHERE user = ? ", (user,)) if user is not None else ("", ())
        found = await self._rows(f"SELECT hash, user, read_only, expires, source, created FROM tokens {where}"
                                 "ORDER BY created, hash", params)
        return [TokenInfo(h, u, bool(ro), exp, src, created) for h, u, ro, exp, src, created in found]

    async def add_oauth_client(self, client_id: str, secret_hash: str, user: str) -> None:
        await self._write([("INSERT INTO oauth_clients (client_id, secret_hash, user, created) VALUES (?, ?, ?, ?)",
                            (client_id, secret_hash, user, now_iso()))])

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        found = await self._lookup("SELECT client_id, secret_hash, user FROM oauth_clients WHERE client_id = ?",
                                   (client_id,))
        return OAuthClient(*found[0]) if found else None

    async def list_oauth_clients(self) -> list[OAuthClient]:
        found = await self._rows("SELECT client_id, secret_hash, user FROM oauth_clients ORDER BY client_id", ())
        return [OAuthClient(*row) for row in found]

    async def delete_oauth_client(self, client_id: str) -> bool:
        changed = await self._write([("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,))])
        return changed[0] > 0


def _user(row: Sequence[Any]) -> User:
    name, role, password_hash, associate_id, disabled = row
    return User(name, role, password_hash, associate_id, bool(disabled))
