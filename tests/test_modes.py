"""Modes: read_write, read_only, replay, refresh, off; and $AGENTCACHE_MODE / $AGENTCACHE_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcache import AgentCache, CacheMissError, ConfigurationError, Mode
from tests.helpers import Upstream


async def _record(url: str, key: str = "k", answer: str = "recorded") -> None:
    async with AgentCache(url) as cache:
        await cache.get_or_call(key, Upstream(lambda _k: answer))


async def test_read_only_serves_hits_and_stores_nothing(db_url: str) -> None:
    await _record(db_url)
    upstream = Upstream()
    async with AgentCache(db_url, mode="read_only") as cache:
        assert await cache.get_or_call("k", upstream) == "recorded"
        assert await cache.get_or_call("new", upstream) == "answer to new"
        assert await cache.get_or_call("new", upstream) == "answer to new"
        assert upstream.calls == 2
        assert cache.stats.stores == 0
        with pytest.raises(ConfigurationError, match="read_only"):
            await cache.set("x", 1)
    async with AgentCache(db_url) as cache:
        assert await cache.get("new") is None


async def test_replay_serves_hits_and_raises_on_a_miss_without_calling(db_url: str) -> None:
    await _record(db_url)
    upstream = Upstream()
    async with AgentCache(db_url, mode="replay") as cache:
        assert await cache.get_or_call("k", upstream) == "recorded"
        with pytest.raises(CacheMissError) as info:
            await cache.get_or_call({"prompt": "never recorded"}, upstream)
    assert upstream.calls == 0
    assert info.value.key == AgentCache("memory://").key({"prompt": "never recorded"})
    assert info.value.material == {"prompt": "never recorded"}
    assert info.value.key in str(info.value)


async def test_refresh_re_records_every_call(db_url: str) -> None:
    await _record(db_url, answer="old")
    async with AgentCache(db_url, mode="refresh") as cache:
        assert await cache.get_or_call("k", Upstream(lambda _k: "new")) == "new"
    async with AgentCache(db_url) as cache:
        assert await cache.get("k") == "new"


async def test_off_bypasses_everything(db_url: str) -> None:
    await _record(db_url)
    upstream = Upstream()
    async with AgentCache(db_url, mode=Mode.OFF) as cache:
        assert await cache.get_or_call("k", upstream) == "answer to k"
        assert await cache.get_or_call("k", upstream) == "answer to k"
        assert upstream.calls == 2
        assert cache.stats.lookups == 0


def test_an_unknown_mode_lists_the_modes() -> None:
    with pytest.raises(ConfigurationError, match=r"read_write.*replay"):
        AgentCache("memory://", mode="record")


async def test_the_environment_supplies_url_and_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    await _record(url)
    monkeypatch.setenv("AGENTCACHE_URL", url)
    monkeypatch.setenv("AGENTCACHE_MODE", "replay")
    async with AgentCache() as cache:
        assert cache.mode is Mode.REPLAY
        assert await cache.get_or_call("k", Upstream()) == "recorded"
    monkeypatch.setenv("AGENTCACHE_MODE", "bogus")
    with pytest.raises(ConfigurationError, match="AGENTCACHE_MODE"):
        AgentCache()


async def test_the_default_store_is_sqlite_under_dot_agentcache(tmp_path: Path) -> None:
    # conftest chdirs into tmp_path: the default path is relative to the working directory.
    async with AgentCache() as cache:
        await cache.get_or_call("k", Upstream())
    assert (tmp_path / ".agentcache" / "cache.db").is_file()
