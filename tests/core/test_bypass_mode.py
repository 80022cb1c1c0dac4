"""mode="off" bypasses the cache entirely: nothing is read, called twice, or written."""

from __future__ import annotations

from agentcache import AgentCache
from tests.helpers import Upstream


async def test_off_mode_writes_nothing_through_set_delete_or_clear(db_url: str) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("kept", "original")
    async with AgentCache(db_url, mode="off") as off:
        await off.set("new", "value")
        await off.set("kept", "overwritten")
        assert await off.delete("kept") is False
        assert await off.clear() == 0
    async with AgentCache(db_url) as cache:
        assert await cache.get("kept") == "original"
        assert await cache.get("new") is None


async def test_off_mode_calls_every_time_and_counts_nothing() -> None:
    upstream = Upstream()
    async with AgentCache("memory://", mode="off") as cache:
        await cache.get_or_call("q", upstream)
        await cache.get_or_call("q", upstream)
        assert upstream.calls == 2
        assert cache.stats.lookups == 0
