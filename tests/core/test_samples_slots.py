"""Sample slots live in a key space no user key material can reach."""

from __future__ import annotations

from agentcache import AgentCache
from tests.helpers import Upstream


async def test_material_shaped_like_a_slot_is_not_served_that_slot() -> None:
    upstream = Upstream(lambda key: f"answer to {key!r}")
    async with AgentCache("memory://") as cache:
        await cache.get_or_call("k", upstream, samples=2)  # slot 0
        second = await cache.get_or_call("k", upstream, samples=2)  # slot 1
        lookalikes = [
            {"agentcache:sample": 1, "key": "k"},
            {"$sample": 1, "key": "k"},
            {"$$sample": 1, "key": "k"},
        ]
        answers = [await cache.get_or_call(material, upstream) for material in lookalikes]
    assert second == "answer to 'k'"
    assert answers == [f"answer to {material!r}" for material in lookalikes]
    assert upstream.calls == 2 + len(lookalikes)


async def test_a_slot_key_differs_from_every_plain_key() -> None:
    async with AgentCache("memory://") as cache:
        await cache.fetch("k", Upstream(), samples=2)
        slot = await cache.fetch("k", Upstream(), samples=2)
        assert slot.key not in {cache.key(m) for m in ({"$sample": 1, "key": "k"}, {"key": "k"}, "k")}
