"""Leases: the LeaseStore contract (SQLite, Redis) and how AgentCache uses it on a miss.

Several store objects over one file / one Redis stand in for several processes here (each has its
own connections, batches and L1); test_crossprocess.py does the same with real processes.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning, ConfigurationError
from agentcache.leasing import LeasePolicy
from agentcache.stores import Store, open_store
from agentcache.stores.capabilities import LeaseStore, leases_of
from agentcache.stores.memory import MemoryStore

from .conftest import REDIS_URL, delete_prefix, require_redis

Opener = Callable[[], Store]


@pytest.fixture(params=["sqlite", "redis"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> AsyncIterator[Opener]:
    """Makes independent store objects over the same data (one per simulated process)."""
    made: list[Store] = []
    if request.param == "redis":
        require_redis()
        url = f"{REDIS_URL}?prefix={redis_prefix}"
    else:
        url = f"sqlite:///{tmp_path / 'leases.db'}"

    def make() -> Store:
        made.append(open_store(url))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()
    if request.param == "redis":
        await delete_prefix(redis_prefix)


def leases(store: Store) -> LeaseStore:
    found = leases_of(store)
    assert isinstance(found, LeaseStore)
    return found


# -- the LeaseStore contract ---------------------------------------------------------------------


async def test_a_lease_is_exclusive_until_released(opener: Opener) -> None:
    a, b = leases(opener()), leases(opener())
    assert await a.claim("ns:v1:k", "a", 30) is True
    assert await b.claim("ns:v1:k", "b", 30) is False
    assert await a.claim("ns:v1:k", "a2", 30) is False  # not re-entrant either
    assert await b.claim("ns:v1:other", "b", 30) is True  # other keys are independent
    await a.release("ns:v1:k", "a")
    assert await b.claim("ns:v1:k", "b", 30) is True


async def test_only_the_holder_can_renew_or_release(opener: Opener) -> None:
    a, b = leases(opener()), leases(opener())
    assert await a.claim("ns:v1:k", "a", 30) is True
    assert await b.renew("ns:v1:k", "not-the-token", 30) is False
    await b.release("ns:v1:k", "not-the-token")
    assert await b.claim("ns:v1:k", "b", 30) is False
    assert await a.renew("ns:v1:k", "a", 30) is True


async def test_an_unrenewed_lease_expires_and_exactly_one_claimant_wins(opener: Opener) -> None:
    a = leases(opener())
    others = [leases(opener()) for _ in range(3)]
    assert await a.claim("ns:v1:k", "a", 0.2) is True
    deadline = time.monotonic() + 10
    while True:  # wait for the expiry itself, not for a guessed duration
        claims = [o.claim("ns:v1:k", f"{n}.{i}", 30) for n, o in enumerate(others) for i in range(5)]
        won = [w for w in await asyncio.gather(*claims) if w]
        if won:
            break
        assert time.monotonic() < deadline, "the lease never expired"
        await asyncio.sleep(0.02)
    assert len(won) == 1


async def test_a_renewed_lease_does_not_expire(opener: Opener) -> None:
    a, b = leases(opener()), leases(opener())
    assert await a.claim("ns:v1:k", "a", 0.3) is True
    for _ in range(4):
        assert await a.renew("ns:v1:k", "a", 30) is True
    assert await b.claim("ns:v1:k", "b", 30) is False


async def test_concurrent_claims_of_one_key_have_one_winner(opener: Opener) -> None:
    stores = [leases(opener()) for _ in range(3)]
    won = await asyncio.gather(
        *(s.claim("ns:v1:k", f"{n}.{i}", 30) for n, s in enumerate(stores) for i in range(100))
    )
    assert sum(won) == 1


async def test_a_release_wakes_a_waiter_before_its_timeout(opener: Opener) -> None:
    a = leases(opener())
    assert await a.claim("ns:v1:k", "a", 30) is True
    waiter = a
    started = asyncio.Event()

    async def wait() -> None:
        started.set()
        await waiter.wait_released("ns:v1:k", 60)

    task = asyncio.ensure_future(wait())
    await started.wait()
    await _until_subscribed(waiter)
    await a.release("ns:v1:k", "a")
    await asyncio.wait_for(task, 10)  # far below the 60 s it would otherwise sleep


async def _until_subscribed(store: LeaseStore) -> None:
    """Redis: wait until the pub/sub subscription is live (observable on the server)."""
    from agentcache.stores.redis import RedisLeases

    if not isinstance(store, RedisLeases):
        await asyncio.sleep(0)  # SQLite: the waiter registered itself synchronously
        return
    import redis.asyncio as aioredis

    channel = store.channel

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + 10
        while dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0) < 1:
            assert time.monotonic() < deadline, "never subscribed"
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()


def test_memory_stores_have_no_leases() -> None:
    assert leases_of(MemoryStore()) is None


def test_a_lease_policy_rejects_nonsense() -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        LeasePolicy(ttl=0)
    with pytest.raises(ConfigurationError, match="poll_min"):
        LeasePolicy(poll_min=1, poll_max=0.5)


# -- AgentCache on top of leases -----------------------------------------------------------------


class Upstream:
    """Counts calls; each call waits until the test releases it (or raises what it is told)."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()
        self.proceed = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self, prompt: str) -> dict[str, str]:
        self.calls += 1
        self.called.set()
        await self.proceed.wait()
        if self.error is not None:
            raise self.error
        return {"answer": prompt}


FAST = LeasePolicy(ttl=5, max_wait=30, poll_min=0.002, poll_max=0.02)


async def test_two_caches_with_their_own_l1_share_one_call(opener: Opener) -> None:
    upstream = Upstream()
    a = AgentCache(opener(), lease=FAST)
    b = AgentCache(opener(), lease=FAST)
    async with a, b:
        calls = [c.get_or_call("prompt", upstream) for c in (a, b) for _ in range(250)]
        gathered = asyncio.gather(*calls)
        await upstream.called.wait()
        upstream.proceed.set()
        answers = await gathered
    assert upstream.calls == 1
    assert answers == [{"answer": "prompt"}] * 500
    assert a.stats.stores + b.stats.stores == 1


async def test_without_leases_each_cache_calls(opener: Opener) -> None:
    upstream = Upstream()
    a, b = AgentCache(opener(), lease=None), AgentCache(opener(), lease=None)
    async with a, b:
        gathered = asyncio.gather(a.get_or_call("prompt", upstream), b.get_or_call("prompt", upstream))
        deadline = time.monotonic() + 10
        while upstream.calls < 2:  # both called while the first call is still running
            assert time.monotonic() < deadline, "the second cache never called"
            await asyncio.sleep(0.005)
        upstream.proceed.set()
        await gathered


async def test_a_failed_call_hands_the_lease_to_exactly_one_waiter(opener: Opener) -> None:
    first, rest = Upstream(), Upstream()
    rest.proceed.set()
    holder = AgentCache(opener(), lease=FAST)
    stores = [opener() for _ in range(3)]
    spies = [ClaimSpy(store) for store in stores]
    waiters = [AgentCache(store, lease=FAST) for store in stores]
    async with holder:
        failing = asyncio.ensure_future(holder.get_or_call("prompt", first))
        await first.called.wait()
        waiting = asyncio.gather(*(w.get_or_call("prompt", rest) for w in waiters))
        for spy in spies:
            await spy.refused.wait()  # every waiter is now waiting on the holder
        first.error = RuntimeError("upstream is down")
        first.proceed.set()
        with pytest.raises(RuntimeError, match="upstream is down"):
            await failing
        answers = await waiting
    for w in waiters:
        await w.aclose()
    assert rest.calls == 1
    assert answers == [{"answer": "prompt"}] * 3


class ClaimSpy:
    """Wraps a store's leases to tell the test when a claim was sent, and when one was refused."""

    def __init__(self, store: Store) -> None:
        self.inner = leases(store)
        self.refused = asyncio.Event()
        self.sent = asyncio.Event()
        store.leases = lambda: self  # type: ignore[attr-defined]

    async def claim(self, key: str, token: str, ttl: float) -> bool:
        self.sent.set()
        won = await self.inner.claim(key, token, ttl)
        if not won:
            self.refused.set()
        return won

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        return await self.inner.renew(key, token, ttl)

    async def release(self, key: str, token: str) -> None:
        await self.inner.release(key, token)

    async def wait_released(self, key: str, timeout: float) -> None:
        await self.inner.wait_released(key, timeout)

    async def settle(self) -> None:
        await self.inner.settle()


async def test_a_waiter_calls_through_after_the_bounded_wait(opener: Opener) -> None:
    stuck = leases(opener())
    cache = AgentCache(opener(), lease=LeasePolicy(ttl=60, max_wait=0.1, poll_min=0.01, poll_max=0.02))
    async with cache:
        assert await stuck.claim(cache.key("prompt"), "stuck", 60) is True  # a holder that never finishes
        upstream = Upstream()
        upstream.proceed.set()
        with pytest.warns(AgentCacheWarning, match="calling through"):
            answer = await cache.get_or_call("prompt", upstream)
    assert answer == {"answer": "prompt"}
    assert upstream.calls == 1


async def test_a_cancelled_call_releases_its_lease(opener: Opener) -> None:
    upstream = Upstream()
    cache = AgentCache(opener(), lease=LeasePolicy(ttl=120))
    other = leases(opener())
    async with cache:
        task = asyncio.ensure_future(cache.get_or_call("prompt", upstream))
        await upstream.called.wait()
        assert await other.claim(cache.key("prompt"), "other", 30) is False
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The flight winds down in its own task; its release lands soon, far before the 120 s ttl.
        deadline = time.monotonic() + 10
        while not await other.claim(cache.key("prompt"), "other", 30):
            assert time.monotonic() < deadline, "the cancelled call kept its lease"
            await asyncio.sleep(0.01)


async def test_refresh_and_read_only_modes_take_no_lease(opener: Opener) -> None:
    stuck = leases(opener())
    for mode in ("refresh", "read_only"):
        cache = AgentCache(opener(), mode=mode, lease=LeasePolicy(max_wait=30))
        async with cache:
            assert await stuck.claim(cache.key(mode), "stuck", 60) is True
            upstream = Upstream()
            upstream.proceed.set()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert await cache.get_or_call(mode, upstream) == {"answer": mode}


async def test_lost_notifications_cost_latency_not_answers(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcache.stores.redis import RedisLeases

    monkeypatch.setattr(RedisLeases, "_ensure_listener", lambda self: None)  # no pub/sub at all
    upstream = Upstream()
    a = AgentCache(redis_url, lease=FAST)
    b_store = open_store(redis_url)
    spy = ClaimSpy(b_store)  # before the cache asks the store for its leases
    b = AgentCache(b_store, lease=FAST)
    async with a, b:
        first = asyncio.ensure_future(a.get_or_call("prompt", upstream))
        await upstream.called.wait()
        second = asyncio.ensure_future(b.get_or_call("prompt", upstream))
        await spy.refused.wait()  # b is waiting, and no message will ever wake it
        upstream.proceed.set()
        assert await asyncio.gather(first, second) == [{"answer": "prompt"}] * 2
    assert upstream.calls == 1
