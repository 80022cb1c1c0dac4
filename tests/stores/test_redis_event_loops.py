"""One Redis store across several event loops: each ``asyncio.run`` reconnects and sees the same data.

Scripts, notebooks and test runners run one store (or one AgentCache) under several event loops in
turn. redis-py's connections belong to the loop that opened them; the store drops them when a new
loop takes over and connects again, never raising "Event loop is closed". These tests are plain
functions that call ``asyncio.run`` themselves, as such a script would.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import warnings
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from agentcache import AgentCache, AgentCacheWarning
from agentcache.stores import Entry, open_store
from agentcache.stores.redis import RedisStore
from tests.helpers import Upstream

from .conftest import REDIS_URL, delete_prefix, require_redis

NOW = 1_800_000_000.0


@pytest.fixture
def url(redis_prefix: str) -> Iterator[str]:
    """A redis:// URL with this test's prefix (the fixture itself runs no event loop)."""
    require_redis()
    yield f"{REDIS_URL}?prefix={redis_prefix}"
    asyncio.run(delete_prefix(redis_prefix))


def redis_store(url: str) -> RedisStore:
    store = open_store(url)
    assert isinstance(store, RedisStore)
    return store


async def until_subscribed(channel: str) -> None:
    """Wait until someone listens on ``channel`` (observable on the server)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + 10
        while dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0) < 1:
            assert time.monotonic() < deadline, "never subscribed"
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()


def test_one_store_serves_a_second_asyncio_run_with_the_first_runs_entries(url: str) -> None:
    store = redis_store(url)

    async def first() -> None:
        await store.open()
        await store.set_many([("ns:v1:k", Entry(b"from the first run", NOW))])
        store.note_hit("ns:v1:k", NOW + 1)  # its flush timer dies with this loop; the count stays

    async def second() -> tuple[list[Entry | None], list[tuple[str, Entry]]]:
        got = await store.get_many(["ns:v1:k"], NOW)
        await store.set_many([("ns:v1:other", Entry(b"from the second run", NOW + 2))])
        await store.aclose()  # flushes the first run's hit from this loop
        return got, [item async for item in store.scan("ns")]

    asyncio.run(first())
    got, listed = asyncio.run(second())
    assert [e.value if e else None for e in got] == [b"from the first run"]
    assert [(k, e.value) for k, e in listed] == [
        ("ns:v1:other", b"from the second run"),
        ("ns:v1:k", b"from the first run"),
    ]
    assert (listed[1][1].hits, listed[1][1].last_hit_at) == (1, NOW + 1)


def test_an_agent_cache_on_redis_serves_a_second_asyncio_run_without_calling(url: str) -> None:
    upstream = Upstream()
    cache = AgentCache(url, l1_max_entries=0)  # every hit is a Redis read
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgentCacheWarning)  # no fail-open either: it just works
        assert asyncio.run(cache.get_or_call("q", upstream)) == "answer to q"
        assert asyncio.run(cache.get_or_call("q", upstream)) == "answer to q"
        asyncio.run(cache.aclose())
    assert upstream.calls == 1
    assert cache.stats.errors == 0
    assert cache.stats.hits == 1


def test_a_loop_closed_with_work_pending_is_left_alone(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop closed without cancelling its tasks (no ``asyncio.run``) leaves a listener behind."""
    unraisable: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: unraisable.append(f"{u.exc_value!r} in {u.object!r}")
    )
    store, other = redis_store(url), redis_store(url)
    leases = store.leases()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(store.set_many([("ns:v1:k", Entry(b"v", NOW))]))
        loop.run_until_complete(leases.wait_released("ns:v1:k", 0.01))  # starts the listener
        loop.run_until_complete(until_subscribed(leases.channel))
    finally:
        loop.close()  # the listener's task, and the pooled connections, are still open on it

    async def later() -> None:
        assert await leases.claim("ns:v1:k", "mine", 30) is True
        gc.collect()  # what the old loop left is destroyed now, never awaited on
        assert unraisable == []
        waiting = asyncio.ensure_future(other.leases().wait_released("ns:v1:k", 60))
        await until_subscribed(other.leases().channel)
        await leases.release("ns:v1:k", "mine")
        await asyncio.wait_for(waiting, 10)  # woken by the notification, far before 60 s
        (got,) = await store.get_many(["ns:v1:k"], NOW)
        assert got is not None
        assert got.value == b"v"
        await store.aclose()
        await other.aclose()

    asyncio.run(later())


def test_a_loop_closed_with_a_hit_flush_pending_is_left_alone(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hit-bookkeeping flush of a loop closed without cancelling it dies quietly, counts kept."""
    unraisable: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: unraisable.append(f"{u.exc_value!r} in {u.object!r}")
    )
    store = redis_store(url)

    async def store_and_hit() -> None:
        await store.set_many([("ns:v1:k", Entry(b"v", NOW))])
        store.note_hit("ns:v1:k", NOW + 1)  # starts the flush task, which sleeps a second first

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(store_and_hit())
    finally:
        loop.close()  # the flush task is still sleeping on it
    del loop

    async def later() -> list[tuple[str, Entry]]:
        await store.aclose()  # drops the closed loop's flush task; flushes the hit it counted
        return [item async for item in store.scan("ns")]

    ((_, entry),) = asyncio.run(later())
    assert (entry.hits, entry.last_hit_at) == (1, NOW + 1)
    gc.collect()  # the dropped task's coroutine is closed now, with no event loop running
    assert unraisable == []


def test_release_notifications_reach_a_second_asyncio_runs_waiters(url: str) -> None:
    waiter, holder = redis_store(url), redis_store(url)

    async def first() -> None:
        await waiter.leases().wait_released("ns:v1:k", 0.01)  # listens on this loop

    async def second() -> None:
        assert await holder.leases().claim("ns:v1:k", "holder", 30) is True
        waiting = asyncio.ensure_future(waiter.leases().wait_released("ns:v1:k", 60))
        await until_subscribed(waiter.leases().channel)
        await holder.leases().release("ns:v1:k", "holder")
        await asyncio.wait_for(waiting, 10)
        await waiter.aclose()
        await holder.aclose()

    asyncio.run(first())
    asyncio.run(second())
