"""Users, tokens, OAuth clients and the token cache."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.store.postgres import accounts as pg_accounts
from gateway.store.sqlite import SQLiteStore, accounts


async def test_users_tokens_and_clients(store: SQLiteStore):
    await store.add_user("ann", "admin", "hash", ("tokhash", True, 123, "cli"))
    assert (await store.get_user("ann")).role == "admin"
    row = await store.find_token("tokhash")
    assert (row.user.name, row.read_only, row.expires) == ("ann", True, 123)
    with pytest.raises(errors.Conflict):
        await store.add_user("ann", "user", None)
    with pytest.raises(errors.Conflict):  # a token for nobody
        await store.add_token("ghost", "h2", read_only=False, expires=None, source="cli")
    await store.add_oauth_client("cid", "sechash", "ann")
    assert (await store.get_oauth_client("cid")).user == "ann"
    await store.add_token("ann", "h3", read_only=False, expires=200, source="oauth", purge_before=150)
    assert await store.find_token("tokhash") is None  # expired at 123 < 150: purged
    assert await store.count_users() == 1


async def test_token_rows_are_remembered_until_users_or_tokens_change_through_the_store(
        store: SQLiteStore, backend: str, monkeypatch):
    # an hour, not the second it is: on a loaded machine a second can pass between two calls
    monkeypatch.setattr(pg_accounts if backend == "postgresql" else accounts, "TOKEN_CACHE_SECONDS", 3600.0)
    await store.add_user("u", "user", None, ("h1", False, None, "cli"))
    assert (await store.find_token("h1")).user.name == "u"
    await store.write_sql("DELETE FROM tokens WHERE hash = 'h1'")  # another process revokes the token
    assert await store.find_token("h1") is not None  # seen within TOKEN_CACHE_SECONDS, not at once
    store.forget_tokens()
    assert await store.find_token("h1") is None
    await store.add_token("u", "h2", read_only=True, expires=None, source="cli")
    assert (await store.find_token("h2")).read_only is True
    await store.delete_token("h2")  # through the store: refused at once
    assert await store.find_token("h2") is None


async def test_a_remembered_token_row_is_asked_for_again_after_token_cache_seconds(
        store: SQLiteStore, backend: str, monkeypatch):
    monkeypatch.setattr(pg_accounts if backend == "postgresql" else accounts, "TOKEN_CACHE_SECONDS", 0.0)
    await store.add_user("u", "user", None, ("h1", False, None, "cli"))
    assert await store.find_token("h1") is not None
    await store.write_sql("DELETE FROM tokens WHERE hash = 'h1'")  # another process revokes the token
    assert await store.find_token("h1") is None


async def test_a_refused_account_change_leaves_the_writer_free(store: SQLiteStore):
    await store.add_user("ann", "user", None)
    with pytest.raises(errors.Conflict, match="UNIQUE constraint failed: users.name"):
        await store.add_user("ann", "admin", None, ("h", False, None, "cli"))
    assert await store.find_token("h") is None  # the token of the refused user was not kept either
    await store.add_user("bob", "user", None)  # the write lock and the transaction were let go
    assert await store.count_users() == 2
