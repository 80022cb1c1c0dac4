"""SQLite: a lease passed to ``set_many(release=...)`` is released by the commit that stores its value."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentcache.stores import Entry
from agentcache.stores.capabilities import Lease, leases_of
from agentcache.stores.sqlite import SQLiteLeases, SQLiteStore

KEY = "ns:v1:k"
VALUE = Entry(b"v", 1.0)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    """Two stores over one file: the holder's, and another process's."""
    holder, other = SQLiteStore(tmp_path / "c.db"), SQLiteStore(tmp_path / "c.db")
    yield holder, other
    await holder.aclose()
    await other.aclose()


async def traced(store: SQLiteStore) -> list[str]:
    await store.open()
    statements: list[str] = []
    await store._file.writer.set_trace_callback(statements.append)
    return statements


def test_a_store_has_one_lease_store() -> None:
    store = SQLiteStore("c.db")
    assert isinstance(store.leases(), SQLiteLeases)
    assert store.leases() is store.leases() is leases_of(store)


async def test_the_value_and_the_release_share_one_commit_and_wake_the_waiters(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    holder, other = stores
    assert await holder.leases().claim(KEY, "mine", 30) is True
    statements = await traced(holder)
    waiter = asyncio.ensure_future(holder.leases().wait_released(KEY, 60))
    await asyncio.sleep(0)  # one turn: the waiter has registered and waits
    lease = Lease(KEY, "mine")
    await holder.set_many([(KEY, VALUE)], release=lease)
    assert lease.released
    assert statements.count("COMMIT") == 1
    assert sum(s.startswith("DELETE FROM claims") for s in statements) == 1
    await asyncio.wait_for(waiter, 5)  # woken, far before its 60 s
    assert await other.leases().claim(KEY, "theirs", 30) is True


async def test_a_lease_on_a_key_that_is_not_written_stays_held(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    holder, other = stores
    assert await holder.leases().claim(KEY, "mine", 30) is True
    lease = Lease(KEY, "mine")
    await holder.set_many([("ns:v1:another", VALUE)], release=lease)
    assert not lease.released
    assert await other.leases().claim(KEY, "theirs", 30) is False


async def test_a_lease_already_released_is_not_released_again(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    holder, _ = stores
    lease = Lease(KEY, "mine")
    lease.released = True
    statements = await traced(holder)
    await holder.set_many([(KEY, VALUE)], release=lease)
    assert not [s for s in statements if "claims" in s]


async def test_a_release_on_a_file_that_never_held_a_claim_still_stores_the_value(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fresh.db")
    lease = Lease(KEY, "mine")
    try:
        await store.set_many([(KEY, VALUE)], release=lease)  # no claims table yet
        assert lease.released
        (found,) = await store.get_many([KEY], 2.0)
        assert found is not None
    finally:
        await store.aclose()
