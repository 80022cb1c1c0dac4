"""A ttl no store can keep is refused when it is configured, the same on every store; 100 years is kept.

Redis refuses an expiry past ~2.9e15 seconds (``SET ... PX``): a ttl of 1e16 used to be accepted,
after which every write failed and nothing was ever stored. Every way of giving a ttl (the cache's,
a call's, ``set``'s, a decorator's, a pydantic-ai model's, a lease policy's) goes through one check.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from agentcache import AgentCache, ConfigurationError, LeasePolicy
from agentcache.stores import Store
from agentcache.stores.memory import MemoryStore
from tests.helpers import Upstream

HUNDRED_YEARS = 100 * 365.25 * 86400
TOO_LONG: list[object] = [1e16, 1e12, HUNDRED_YEARS * 1.001, timedelta(days=365 * 200)]


@pytest.mark.parametrize("ttl", TOO_LONG, ids=repr)
async def test_a_ttl_no_store_can_keep_is_refused_before_anything_runs(store_url: str, ttl: float) -> None:
    with pytest.raises(ConfigurationError, match=r"at most 3155760000 seconds \(100 years\).*None") as raised:
        AgentCache(store_url, ttl=ttl)
    assert "ttl" in str(raised.value)
    upstream = Upstream()
    async with AgentCache(store_url) as cache:
        with pytest.raises(ConfigurationError, match="at most"):
            await cache.get_or_call("k", upstream, ttl=ttl)
        with pytest.raises(ConfigurationError, match="at most"):
            await cache.set("k", "v", ttl=ttl)
        with pytest.raises(ConfigurationError, match="at most"):

            @cache.cached(ttl=ttl)
            async def decorated(question: str) -> str:
                return await upstream(question)

        assert await cache.get("k") is None
    assert upstream.calls == 0


async def test_the_longest_ttl_is_kept_by_every_store(store_url: str) -> None:
    store: str | Store = MemoryStore() if store_url == "memory://" else store_url  # one memory store for both
    upstream = Upstream()
    async with AgentCache(store, ttl=timedelta(days=36525), l1_max_entries=0) as cache:
        assert await cache.get_or_call("k", upstream) == "answer to k"
        assert cache.stats.stores == 1
        assert cache.stats.errors == 0
    async with AgentCache(store, l1_max_entries=0) as again:
        fetched = await again.fetch("k", upstream)
        assert fetched.source in ("store", "l1")  # memory:// is its own L1
        assert fetched.entry is not None
        assert fetched.entry.expires_at is not None
        assert fetched.entry.expires_at > time.time() + 99 * 365 * 86400
    assert upstream.calls == 1


def test_a_pydantic_ai_model_refuses_it_when_it_is_built() -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai.models.test import TestModel

    from agentcache.pydantic_ai import CacheCapability, CachedModel

    cache = AgentCache("memory://")
    with pytest.raises(ConfigurationError, match="at most"):
        CachedModel(TestModel(), cache=cache, ttl=1e16)
    with pytest.raises(ConfigurationError, match="at most"):
        CacheCapability(cache, ttl=1e16)


@pytest.mark.parametrize("ttl", [1e16, float("inf")])
def test_a_lease_ttl_no_store_can_keep_is_refused(ttl: float) -> None:
    with pytest.raises(ConfigurationError, match=r"LeasePolicy\.ttl"):
        LeasePolicy(ttl=ttl)
