"""describe() metadata never breaks a hit, whatever it holds; a failing describe() never loses an answer."""

from __future__ import annotations

from typing import Any

import pytest

from agentcache import AgentCache, AgentCacheWarning


@pytest.mark.parametrize(
    "meta",
    [
        {"cost": "n/a"},
        {"input_tokens": "many", "output_tokens": None},
        {"cost": [1], "input_tokens": {"x": 1}},
        {"cost": float("nan")},
    ],
)
async def test_hits_of_entries_with_odd_metadata_are_served(meta: dict[str, Any], db_url: str) -> None:
    async def call(_key: object) -> str:
        return "answer"

    async with AgentCache(db_url) as cache:
        await cache.get_or_call("q", call, describe=lambda _answer: meta)
        assert await cache.get_or_call("q", call) == "answer"
    async with AgentCache(db_url) as cache:  # a cold hit reads the stored metadata back
        assert await cache.get_or_call("q", call) == "answer"
        assert cache.stats.hits == 1


async def test_a_describe_that_raises_keeps_the_paid_answer() -> None:
    calls = 0

    async def call(_key: object) -> str:
        nonlocal calls
        calls += 1
        return "paid"

    def describe(_answer: str) -> dict[str, Any]:
        raise RuntimeError("bug in describe")

    async with AgentCache("memory://") as cache:
        with pytest.warns(AgentCacheWarning, match="describe"):
            assert await cache.get_or_call("q", call, describe=describe) == "paid"
        assert await cache.get_or_call("q", call) == "paid"
    assert calls == 1
