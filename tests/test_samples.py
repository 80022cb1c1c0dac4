"""samples=N on get_or_call/fetch: N answers per key, filled first, then served in rotation."""

from __future__ import annotations

import pytest

from agentcache import AgentCache, ConfigurationError
from tests.helpers import Upstream


def counting() -> Upstream:
    upstream = Upstream()
    upstream.answer = lambda key: f"{key} #{upstream.calls}"
    return upstream


async def test_slots_fill_first_then_rotate() -> None:
    upstream = counting()
    async with AgentCache("memory://") as cache:
        got = [await cache.get_or_call("roll", upstream, samples=3) for _ in range(7)]
    assert upstream.calls == 3
    assert got == ["roll #1", "roll #2", "roll #3"] * 2 + ["roll #1"]


async def test_call_fn_receives_the_callers_own_key() -> None:
    seen: list[object] = []

    async def call(key: object) -> str:
        seen.append(key)
        return "x"

    async with AgentCache("memory://") as cache:
        for _ in range(2):
            await cache.get_or_call({"q": 1}, call, samples=2)
    assert seen == [{"q": 1}, {"q": 1}]


async def test_the_first_slot_is_the_plain_key() -> None:
    upstream = counting()
    async with AgentCache("memory://") as cache:
        await cache.get_or_call("roll", upstream)
        first = await cache.fetch("roll", upstream, samples=2)
        second = await cache.fetch("roll", upstream, samples=2)
    assert first.value == "roll #1"
    assert first.key == cache.key("roll")
    assert first.source == "l1"
    assert second.source == "call"
    assert second.key != first.key


async def test_samples_persist_across_cache_instances(db_url: str) -> None:
    upstream = counting()
    async with AgentCache(db_url) as cache:
        for _ in range(2):
            await cache.get_or_call("roll", upstream, samples=2)
    async with AgentCache(db_url) as cache:
        got = [await cache.get_or_call("roll", upstream, samples=2) for _ in range(2)]
    assert got == ["roll #1", "roll #2"]
    assert upstream.calls == 2


@pytest.mark.parametrize("samples", [0, -1, 2.0, "3"])
async def test_a_bad_sample_count_is_a_configuration_error(samples: object) -> None:
    async with AgentCache("memory://") as cache:
        with pytest.raises(ConfigurationError, match="samples"):
            await cache.get_or_call("k", counting(), samples=samples)  # type: ignore[arg-type]
