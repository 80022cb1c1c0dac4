"""What leases cost, counted in transactions, and that the cheaper paths keep them correct.

A miss under a lease claims the key, calls, stores the value and releases the lease. Concurrent
misses share each step: one transaction claims every key, and the value's upsert deletes the claim
in its own transaction. Counted with the writer connection's trace callback (each ``COMMIT``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from agentcache import AgentCache
from agentcache.leasing import LeasePolicy
from agentcache.stores import open_store
from agentcache.stores.capabilities import LeaseStore, leases_of
from agentcache.stores.redis import RedisLeases, RedisStore
from agentcache.stores.sqlite import SQLiteStore

from .conftest import REDIS_URL


async def _traced(store: SQLiteStore) -> list[str]:
    """Every statement the store's writer connection runs from now on."""
    statements: list[str] = []
    await store._file.writer.set_trace_callback(statements.append)
    return statements


def _commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def _leases(store: SQLiteStore) -> LeaseStore:
    found = leases_of(store)
    assert found is not None
    return found


async def test_a_thousand_concurrent_misses_commit_twice_claims_then_values_with_releases(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "cache.db")
    async with AgentCache(store) as cache:
        await cache.get("opens the store")
        statements = await _traced(store)

        async def call(prompt: str) -> str:
            return prompt.upper()

        prompts = [f"prompt {i}" for i in range(1_000)]
        answers = await asyncio.gather(*(cache.get_or_call(p, call) for p in prompts))
        assert answers == [p.upper() for p in prompts]
        assert cache.stats.misses == cache.stats.stores == 1_000
        # One transaction claims all 1,000 keys; one stores all values and deletes all claims.
        assert _commits(statements) == 2
        assert sum(s.startswith("DELETE FROM claims") for s in statements) == 1_000
        left = await store._file.reader.execute_fetchall("SELECT count(*) FROM claims")
        assert list(left) == [(0,)]


async def test_a_failed_call_still_releases_its_lease_on_its_own(tmp_path: Path) -> None:
    store, other = SQLiteStore(tmp_path / "cache.db"), SQLiteStore(tmp_path / "cache.db")
    async with AgentCache(store) as cache:

        async def fails(prompt: str) -> str:
            raise RuntimeError(prompt)

        try:
            await cache.get_or_call("prompt", fails)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the call's exception was swallowed")
        assert await _leases(other).claim(cache.key("prompt"), "other", 30) is True
    await other.aclose()


async def test_only_the_holders_own_write_releases_its_lease(tmp_path: Path) -> None:
    store, other = SQLiteStore(tmp_path / "cache.db"), SQLiteStore(tmp_path / "cache.db")
    async with AgentCache(store) as cache:
        called, proceed = asyncio.Event(), asyncio.Event()

        async def slow(prompt: str) -> str:
            called.set()
            await proceed.wait()
            return "from the call"

        flight = asyncio.ensure_future(cache.get_or_call("prompt", slow))
        await called.wait()
        # Another task writes the same key: its transaction must not take the holder's lease.
        await cache.set("prompt", "from set")
        assert await _leases(other).claim(cache.key("prompt"), "other", 30) is False
        proceed.set()
        assert await flight == "from the call"
        assert await _leases(other).claim(cache.key("prompt"), "other", 30) is True  # released with the value
    await other.aclose()


async def test_a_long_call_keeps_its_lease_by_renewal(tmp_path: Path) -> None:
    store, other = SQLiteStore(tmp_path / "cache.db"), SQLiteStore(tmp_path / "cache.db")
    policy = LeasePolicy(ttl=0.6)
    async with AgentCache(store, lease=policy) as cache:
        called, proceed = asyncio.Event(), asyncio.Event()

        async def slow(prompt: str) -> str:
            called.set()
            await proceed.wait()
            return "answer"

        flights = [asyncio.ensure_future(cache.get_or_call(f"prompt {i}", slow)) for i in range(3)]
        await called.wait()
        # Four lease lifetimes: unrenewed, each lease would have expired and been claimable.
        await asyncio.sleep(4 * policy.ttl)
        for i in range(3):
            assert await _leases(other).claim(cache.key(f"prompt {i}"), "other", 30) is False
        proceed.set()
        assert await asyncio.gather(*flights) == ["answer"] * 3
    await other.aclose()


async def test_redis_releases_leases_in_the_transaction_that_stores_the_values(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(redis_url)
    assert isinstance(store, RedisStore)
    separate_releases: list[int] = []
    release_batch = RedisLeases._release_batch

    async def counted(self: RedisLeases, batch: list[tuple[str, str]]) -> list[None]:
        separate_releases.append(len(batch))
        return await release_batch(self, batch)

    monkeypatch.setattr(RedisLeases, "_release_batch", counted)
    async with AgentCache(store) as cache:

        async def call(prompt: str) -> str:
            return prompt.upper()

        prompts = [f"prompt {i}" for i in range(200)]
        assert await asyncio.gather(*(cache.get_or_call(p, call) for p in prompts)) == [
            p.upper() for p in prompts
        ]
        assert separate_releases == []
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert [k async for k in client.scan_iter(match=f"{store.prefix}l:*")] == []
    finally:
        await client.aclose()
