"""Replay never writes: a missing store is reported as missing, and nothing is created."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentcache import AgentCache, CacheMissError
from tests.helpers import Upstream


async def test_replay_on_a_missing_store_says_so_and_creates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "never-recorded"
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{folder / 'cache.db'}", mode="replay") as cache:
        with pytest.raises(CacheMissError, match="nothing has been recorded") as caught:
            await cache.get_or_call("q", upstream)
        assert await cache.get("q", "default") == "default"
    assert "does not exist" in str(caught.value) or "missing" in str(caught.value)
    assert upstream.calls == 0
    assert not folder.exists()


async def test_replay_on_an_empty_store_says_it_is_empty(db_url: str) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("other namespace's entry", "x", namespace="elsewhere")
    async with AgentCache(db_url, mode="replay") as cache:
        with pytest.raises(CacheMissError, match="no entries"):
            await cache.get_or_call("q", Upstream())


async def test_replay_hits_leave_the_file_as_it_was(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("q", "recorded")
    with sqlite3.connect(tmp_path / "cache.db") as db:
        rows_before = db.execute("SELECT key, hits, last_hit_at FROM entries").fetchall()
    async with AgentCache(db_url, mode="replay") as cache:
        for _ in range(3):
            assert await cache.get_or_call("q", Upstream()) == "recorded"
    with sqlite3.connect(tmp_path / "cache.db") as db:
        assert db.execute("SELECT key, hits, last_hit_at FROM entries").fetchall() == rows_before
