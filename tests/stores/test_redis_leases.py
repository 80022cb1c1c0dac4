"""Redis leases released with their value: ``set_many(items, release=lease)`` in one MULTI/EXEC.

The holder of a lease stores its value and gives the lease back in the same transaction; the store
marks the lease released and wakes this process's waiters itself, so neither a second round trip
nor a pub/sub message is needed for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agentcache.stores import Entry, open_store
from agentcache.stores.capabilities import Lease
from agentcache.stores.redis import RedisLeases, RedisStore

from .conftest import REDIS_URL

NOW = 1_800_000_000.0
KEY = "ns:v1:k"


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two stores over one Redis: this process, and another one."""
    made = open_store(redis_url), open_store(redis_url)
    assert all(isinstance(store, RedisStore) for store in made)
    yield made  # type: ignore[misc]
    for store in made:
        await store.aclose()


@pytest.fixture
def no_separate_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a lease is released by a round trip of its own."""

    async def refuse(self: RedisLeases, batch: list[tuple[str, str]]) -> list[None]:
        raise AssertionError(f"released outside the value's transaction: {batch}")

    monkeypatch.setattr(RedisLeases, "_release_batch", refuse)


async def lease_key_exists(store: RedisStore, key: str) -> bool:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return bool(await client.exists(f"{store.prefix}l:{key}"))
    finally:
        await client.aclose()


@pytest.mark.usefixtures("no_separate_releases")
async def test_the_value_and_the_release_of_its_lease_land_in_one_transaction(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    mine, other = stores
    lease = Lease(KEY, "mine")
    assert await mine.leases().claim(KEY, lease.token, 30) is True
    assert await other.leases().claim(KEY, "other", 30) is False
    await mine.set_many([(KEY, Entry(b"answer", NOW))], release=lease)
    assert lease.released is True
    assert not await lease_key_exists(mine, KEY)
    (got,) = await other.get_many([KEY], NOW)
    assert got is not None
    assert got.value == b"answer"
    assert await other.leases().claim(KEY, "other", 30) is True


async def test_storing_the_value_wakes_this_processes_waiters_without_a_notification(
    stores: tuple[RedisStore, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RedisLeases, "_ensure_listener", lambda self: None)  # no pub/sub at all
    store, _ = stores
    lease = Lease(KEY, "mine")
    assert await store.leases().claim(KEY, lease.token, 30) is True
    registered = asyncio.Event()

    async def wait() -> None:
        registered.set()  # wait_released registers the waiter before it first suspends
        await store.leases().wait_released(KEY, 60)

    waiting = asyncio.ensure_future(wait())
    await registered.wait()
    await store.set_many([(KEY, Entry(b"answer", NOW))], release=lease)
    await asyncio.wait_for(waiting, 10)  # far before the 60 s it would otherwise sleep


@pytest.mark.usefixtures("no_separate_releases")
async def test_a_lease_on_a_key_that_is_not_written_stays_held(stores: tuple[RedisStore, RedisStore]) -> None:
    mine, other = stores
    lease = Lease(KEY, "mine")
    assert await mine.leases().claim(KEY, lease.token, 30) is True
    await mine.set_many([("ns:v1:another", Entry(b"answer", NOW))], release=lease)
    assert lease.released is False
    assert await other.leases().claim(KEY, "other", 30) is False


async def test_a_holder_that_lost_its_lease_does_not_release_the_new_holders(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    late, current = stores
    lease = Lease(KEY, "late")
    assert await late.leases().claim(KEY, lease.token, 0.05) is True
    deadline = time.monotonic() + 10
    while not await current.leases().claim(KEY, "current", 30):  # wait for the lapse itself
        assert time.monotonic() < deadline, "the lease never expired"
        await asyncio.sleep(0.01)
    await late.set_many([(KEY, Entry(b"late answer", NOW))], release=lease)
    assert await lease_key_exists(current, KEY)  # still the current holder's
    assert await late.leases().claim(KEY, "third", 30) is False
    await current.leases().release(KEY, "current")
    assert await late.leases().claim(KEY, "third", 30) is True


async def test_a_cancelled_writer_leaves_the_lease_to_its_own_release(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    """A writer cancelled before its batch ran never marks the lease released, so its holder does."""
    store, other = stores
    lease = Lease(KEY, "mine")
    assert await store.leases().claim(KEY, lease.token, 30) is True
    writing = asyncio.ensure_future(store.set_many([(KEY, Entry(b"answer", NOW))], release=lease))
    await asyncio.sleep(0)  # one loop pass: the write is queued and its caller awaits it
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert lease.released is False
    await store.leases().release(KEY, lease.token)  # what the holder's cleanup does
    assert await other.leases().claim(KEY, "other", 30) is True
