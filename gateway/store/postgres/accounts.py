"""Users, tokens and OAuth clients in PostgreSQL, and the cache of token rows.

The rows and rules of the SQLite store's accounts (:mod:`gateway.store.sqlite.accounts`):
each change is one transaction; a refused one is a Conflict worded as SQLite words it
(``UNIQUE constraint failed: users.name``, ``FOREIGN KEY constraint failed``), so that
every style answers the same on both backends. Found token rows are remembered for at
most :data:`TOKEN_CACHE_SECONDS`; every change made through this store empties the cache,
and notifies every other gateway's store (:mod:`.notify`), which empties its own: a change
shows in this process at once, in another gateway as soon as the notification lands, and
within that bound whatever happens to notifications. It
stores hashes only, and must not hash, check passwords or decide who may do what.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from gateway import errors
from gateway.clock import now_iso
from gateway.model import OAuthClient, TokenInfo, TokenRow, User
from gateway.store.postgres.connection import Database
from gateway.store.postgres.notify import NOTIFY_SQL
from gateway.store.postgres.sql import storable

__all__ = ["Accounts", "TOKEN_CACHE_SECONDS", "TOKEN_CACHE_SIZE", "conflict"]

#: the longest another gateway's change to users or tokens can go unseen here
TOKEN_CACHE_SECONDS = 1.0
TOKEN_CACHE_SIZE = 4096

Statement = tuple[str, Sequence[Any]]


def conflict(exc: asyncpg.IntegrityConstraintViolationError) -> errors.Conflict:
    """The Conflict of a refused row, in SQLite's words."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        found = re.match(r"Key \(([^)]*)\)", getattr(exc, "detail", "") or "")
        columns = [c.strip().strip('"') for c in found.group(1).split(",")] if found else ["?"]
        table = getattr(exc, "table_name", "") or "?"
        return errors.Conflict("UNIQUE constraint failed: " + ", ".join(f"{table}.{c}" for c in columns))
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return errors.Conflict("FOREIGN KEY constraint failed")
    return errors.Conflict(f"{type(exc).__name__}: {exc}")


def _token_insert(user: str, token_hash: str, read_only: bool, expires: int | None, source: str) -> Statement:
    return ('INSERT INTO tokens (hash, "user", read_only, expires, source, created) VALUES ($1, $2, $3, $4, $5, $6)',
            (token_hash, user, bool(read_only), expires, source, now_iso()))


def _user(row: Sequence[Any]) -> User:
    name, role, password_hash, associate_id, disabled = row
    return User(name, role, password_hash, associate_id, bool(disabled))


class Accounts:
    """Account rows on *db*."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._tokens: dict[str, tuple[float, TokenRow]] = {}
        self._tokens_generation = 0
        self.name = secrets.token_hex(8)  # what its notifications carry

    def heard(self, sender: str | None) -> None:
        """Another store's notification of an account change (None: the listening session
        was lost, and notifications with it): the cache empties. Its own
        (it forgot at the change) leaves what was read since then alone: its arrival, at
        any moment after the commit, made a row just read seem revoked."""
        if sender != self.name:
            self.forget_tokens()

    async def _write(self, statements: Sequence[Statement]) -> list[int]:
        """One transaction of *statements*, and how many rows each changed."""
        self.forget_tokens()
        try:
            async with self._db.transaction() as conn:
                done = [await conn.execute(statement, *params) for statement, params in statements]
                await conn.execute(NOTIFY_SQL, self.name)  # every gateway's token cache empties at the commit
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise conflict(exc) from None
        finally:
            self.forget_tokens()  # also drops what a read during the transaction saw
        return [int(tag.rsplit(" ", 1)[-1]) if tag.rsplit(" ", 1)[-1].isdigit() else 0 for tag in done]

    def forget_tokens(self) -> None:
        self._tokens.clear()
        self._tokens_generation += 1

    async def count_users(self) -> int:
        return int((await self._db.fetch("SELECT count(*) FROM users"))[0][0])

    async def add_user(self, name: str, role: str, password_hash: str | None,
                       token: tuple[str, bool, int | None, str] | None = None, *,
                       associate_id: int | None = None) -> None:
        statements: list[Statement] = [(
            "INSERT INTO users (name, role, password_hash, created, associate_id) VALUES ($1, $2, $3, $4, $5)",
            (name, role, password_hash, now_iso(), associate_id))]
        if token is not None:
            statements.append(_token_insert(name, *token))
        await self._write(statements)

    async def get_user(self, name: str) -> User | None:
        if not storable(name):
            return None
        found = await self._db.fetch(
            "SELECT name, role, password_hash, associate_id, disabled FROM users WHERE name = $1", name)
        return _user(found[0]) if found else None

    async def set_password(self, name: str, password_hash: str | None) -> bool:
        if not storable(name):
            return False
        changed = await self._write([
            ("UPDATE users SET password_hash = $1 WHERE name = $2", (password_hash, name)),
            ("DELETE FROM tokens WHERE \"user\" = $1 AND source = 'session'", (name,))])
        return changed[0] > 0

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        if not storable(name):
            return False
        changed = await self._write([("UPDATE users SET disabled = $1 WHERE name = $2", (bool(disabled), name))])
        return changed[0] > 0

    async def delete_user(self, name: str) -> bool:
        if not storable(name):
            return False
        changed = await self._write([("DELETE FROM users WHERE name = $1", (name,))])
        return changed[0] > 0

    async def add_token(self, user: str, token_hash: str, *, read_only: bool, expires: int | None,
                        source: str, purge_before: int | None = None) -> None:
        statements = [_token_insert(user, token_hash, read_only, expires, source)]
        if purge_before is not None:
            statements.append(("DELETE FROM tokens WHERE expires IS NOT NULL AND expires < $1", (purge_before,)))
        await self._write(statements)

    async def find_token(self, token_hash: str) -> TokenRow | None:
        """As the SQLite store's: found rows are remembered for at most :data:`TOKEN_CACHE_SECONDS`."""
        if not storable(token_hash):
            return None
        cached = self._tokens.get(token_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        generation = self._tokens_generation
        found = await self._db.fetch(
            "SELECT t.read_only, t.expires, u.name, u.role, u.password_hash, u.associate_id, u.disabled "
            'FROM tokens t JOIN users u ON u.name = t."user" WHERE t.hash = $1', token_hash)
        if not found:
            return None
        read_only, expires, *user = found[0]
        row = TokenRow(_user(user), bool(read_only), expires)
        if generation == self._tokens_generation:  # no change raced the read
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            self._tokens[token_hash] = (time.monotonic() + TOKEN_CACHE_SECONDS, row)
        return row

    async def delete_token(self, token_hash: str) -> None:
        await self._write([("DELETE FROM tokens WHERE hash = $1", (token_hash,))])

    async def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        where, params = ('WHERE "user" = $1 ', (user,)) if user is not None else ("", ())
        found = await self._db.fetch(f'SELECT hash, "user", read_only, expires, source, created FROM tokens {where}'
                                     "ORDER BY created, hash", *params)
        return [TokenInfo(h, u, bool(ro), exp, src, created) for h, u, ro, exp, src, created in found]

    async def add_oauth_client(self, client_id: str, secret_hash: str, user: str) -> None:
        await self._write([('INSERT INTO oauth_clients (client_id, secret_hash, "user", created) '
                            "VALUES ($1, $2, $3, $4)", (client_id, secret_hash, user, now_iso()))])

    async def get_oauth_client(self, client_id: str) -> OAuthClient | None:
        if not storable(client_id):
            return None
        found = await self._db.fetch('SELECT client_id, secret_hash, "user" FROM oauth_clients WHERE client_id = $1',
                                     client_id)
        return OAuthClient(*found[0]) if found else None

    async def list_oauth_clients(self) -> list[OAuthClient]:
        found = await self._db.fetch('SELECT client_id, secret_hash, "user" FROM oauth_clients ORDER BY client_id')
        return [OAuthClient(*row) for row in found]

    async def delete_oauth_client(self, client_id: str) -> bool:
        if not storable(client_id):
            return False
        changed = await self._write([("DELETE FROM oauth_clients WHERE client_id = $1", (client_id,))])
        return changed[0] > 0
