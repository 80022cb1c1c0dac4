"""AgentCache: hits, misses, single-flight through the cache, values, TTL, namespaces, stats."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from pydantic import BaseModel

from agentcache import AgentCache, AgentCacheWarning, ConfigurationError, UnstorableValueError
from tests.helpers import FakeClock, Upstream, raiser, settle


class Summary(BaseModel):
    title: str
    points: list[str]


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, db_url: str) -> str:
    return "memory://" if request.param == "memory" else db_url


async def test_a_miss_calls_once_and_a_hit_calls_nothing(url: str) -> None:
    upstream = Upstream()
    async with AgentCache(url) as cache:
        assert await cache.get_or_call("q", upstream) == "answer to q"
        assert await cache.get_or_call("q", upstream) == "answer to q"
        assert upstream.calls == 1
        stats = cache.stats
    assert (stats.hits, stats.misses, stats.coalesced, stats.stores) == (1, 1, 0, 1)
    assert stats.hit_rate == 0.5
    assert stats.saved_calls == 1


async def test_call_fn_receives_the_key_material(url: str) -> None:
    seen = []

    async def call(material: object) -> str:
        seen.append(material)
        return "ok"

    async with AgentCache(url) as cache:
        await cache.get_or_call({"prompt": "hi", "t": 0.0}, call)
    assert seen == [{"prompt": "hi", "t": 0.0}]


async def test_a_thousand_concurrent_identical_calls_make_one_upstream_call(url: str) -> None:
    upstream = Upstream().gated()
    async with AgentCache(url) as cache:
        tasks = [asyncio.ensure_future(cache.get_or_call("same", upstream)) for _ in range(1000)]
        await upstream.started.wait()
        await settle()
        upstream.gate.set()  # type: ignore[union-attr]
        results = await asyncio.gather(*tasks)
        stats = cache.stats
    assert upstream.calls == 1
    assert set(results) == {"answer to same"}
    assert (stats.misses, stats.coalesced, stats.hits) == (1, 999, 0)


async def test_cancelling_one_caller_still_answers_the_others(url: str) -> None:
    upstream = Upstream().gated()
    async with AgentCache(url) as cache:
        first = asyncio.ensure_future(cache.get_or_call("k", upstream))
        rest = [asyncio.ensure_future(cache.get_or_call("k", upstream)) for _ in range(3)]
        await upstream.started.wait()
        await settle()
        first.cancel()
        upstream.gate.set()  # type: ignore[union-attr]
        assert await asyncio.gather(*rest) == ["answer to k"] * 3
        assert first.cancelled()
        assert upstream.cancelled == 0


async def test_cancelling_every_caller_cancels_the_upstream_call(url: str) -> None:
    upstream = Upstream().gated()
    async with AgentCache(url) as cache:
        tasks = [asyncio.ensure_future(cache.get_or_call("k", upstream)) for _ in range(5)]
        await upstream.started.wait()
        await settle()
        for task in tasks:
            task.cancel()
        await settle()
        assert upstream.cancelled == 1
        assert await cache.get("k") is None


async def test_an_exception_reaches_every_caller_and_is_not_stored(url: str) -> None:
    gate = asyncio.Event()
    calls = 0

    async def failing(_key: object) -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise RuntimeError("rate limited")

    async with AgentCache(url) as cache:
        tasks = [asyncio.ensure_future(cache.get_or_call("k", failing)) for _ in range(4)]
        await settle()
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and str(r) == "rate limited" for r in results)
        assert calls == 1
        assert await cache.get("k", "nothing") == "nothing"
        assert await cache.get_or_call("k", Upstream()) == "answer to k"


async def test_followers_get_their_own_copy_of_a_mutable_answer(url: str) -> None:
    upstream = Upstream(lambda key: {"items": [1, 2]}).gated()
    async with AgentCache(url) as cache:
        tasks = [asyncio.ensure_future(cache.get_or_call("k", upstream)) for _ in range(3)]
        await upstream.started.wait()
        upstream.gate.set()  # type: ignore[union-attr]
        a, b, c = await asyncio.gather(*tasks)
        a["items"].append(3)
        assert b == c == {"items": [1, 2]}
        assert b is not c
        hit = await cache.get_or_call("k", upstream)
        hit["items"].clear()
        assert await cache.get_or_call("k", upstream) == {"items": [1, 2]}


async def test_plain_json_values_round_trip_exactly(url: str) -> None:
    value = {"text": "ünïcode ✓", "n": 3, "f": 0.1, "ok": True, "none": None, "list": [1, [2]]}
    async with AgentCache(url) as cache:
        await cache.get_or_call("k", Upstream(lambda _k: value))
        assert await cache.get_or_call("k", raiser(AssertionError("must not call"))) == value
    if url != "memory://":  # and from disk, in a fresh instance
        async with AgentCache(url) as cache:
            assert await cache.get_or_call("k", raiser(AssertionError("must not call"))) == value


@pytest.mark.parametrize(
    ("value", "value_type"),
    [
        (Summary(title="t", points=["a", "b"]), Summary),
        (Point(1, 2), Point),
        ((1, "two"), tuple[int, str]),
        ([Summary(title="x", points=[])], list[Summary]),
    ],
)
async def test_typed_values_come_back_as_the_same_type(
    db_url: str, value: object, value_type: object
) -> None:
    async with AgentCache(db_url) as cache:
        assert await cache.get_or_call("k", Upstream(lambda _k: value), value_type=value_type) == value
    async with AgentCache(db_url) as cache:
        hit = await cache.get_or_call("k", raiser(AssertionError()), value_type=value_type)
    assert hit == value
    assert type(hit) is type(value)


async def test_an_unstorable_value_is_returned_warned_about_and_counted(url: str) -> None:
    upstream = Upstream(lambda _k: (1, 2)).gated()
    async with AgentCache(url) as cache:
        tasks = [asyncio.ensure_future(cache.get_or_call("k", upstream)) for _ in range(3)]
        await upstream.started.wait()
        upstream.gate.set()  # type: ignore[union-attr]
        with pytest.warns(AgentCacheWarning, match=r"tuple.*value_type="):
            results = await asyncio.gather(*tasks)
        assert results == [(1, 2)] * 3
        assert cache.stats.errors == 1
        assert cache.stats.stores == 0
        assert await cache.get("k") is None


async def test_set_refuses_an_unstorable_value_with_the_fix() -> None:
    async with AgentCache("memory://") as cache:
        with pytest.raises(UnstorableValueError, match="value_type=set"):
            await cache.set("k", {1, 2})
        await cache.set("k", {1, 2}, value_type=set[int])
        assert await cache.get("k", value_type=set[int]) == {1, 2}


async def test_ttl_expires_entries_on_the_injected_clock(url: str, clock: FakeClock) -> None:
    upstream = Upstream()
    async with AgentCache(url, ttl=10, clock=clock) as cache:
        await cache.get_or_call("k", upstream)
        clock.advance(9.9)
        await cache.get_or_call("k", upstream)
        assert upstream.calls == 1
        clock.advance(0.1)
        await cache.get_or_call("k", upstream)
        assert upstream.calls == 2
        # A per-call TTL overrides the cache's.
        await cache.get_or_call("short", upstream, ttl=timedelta(seconds=1))
        clock.advance(1)
        await cache.get_or_call("short", upstream)
        assert upstream.calls == 4


async def test_a_fresh_instance_honours_stored_expiry(db_url: str, clock: FakeClock) -> None:
    async with AgentCache(db_url, clock=clock) as cache:
        await cache.get_or_call("k", Upstream(), ttl=5)
    clock.advance(6)
    async with AgentCache(db_url, clock=clock) as cache:
        upstream = Upstream()
        await cache.get_or_call("k", upstream)
        assert upstream.calls == 1


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True])
def test_bad_ttls_are_refused_with_the_fix(ttl: object) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        AgentCache("memory://", ttl=ttl)  # type: ignore[arg-type]


async def test_namespaces_never_serve_each_other(url: str) -> None:
    async with AgentCache(url) as cache, AgentCache(url, namespace="other") as other:
        await cache.get_or_call("k", Upstream(lambda _k: "default answer"))
        await cache.get_or_call("k", Upstream(lambda _k: "eval answer"), namespace="eval")
        assert await cache.get("k") == "default answer"
        assert await cache.get("k", namespace="eval") == "eval answer"
        if url != "memory://":  # two memory:// caches are two separate stores
            assert await other.get("k") is None
            assert await other.get("k", namespace="default") == "default answer"
        assert cache.key("k") != cache.key("k", namespace="eval")
        assert await cache.clear(namespace="eval") == 1
        assert await cache.get("k") == "default answer"


@pytest.mark.parametrize("namespace", ["", "a:b", "has space", "x*", 'q"', 3])
def test_unusable_namespaces_are_refused(namespace: object) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        AgentCache("memory://", namespace=namespace)  # type: ignore[arg-type]


async def test_get_set_delete_clear_and_key(url: str) -> None:
    async with AgentCache(url) as cache:
        assert cache.key("k").startswith("default:v1:")
        assert len(cache.key("k").rsplit(":", 1)[1]) == 64
        assert await cache.get("k", default="d") == "d"
        await cache.set("k", ["v"])
        await cache.set("k2", "v2")
        assert await cache.get("k") == ["v"]
        assert await cache.delete("k") is True
        assert await cache.delete("k") is False
        assert await cache.get("k") is None
        assert await cache.clear() == 1
        assert await cache.get("k2") is None


async def test_a_stored_none_is_a_hit_not_a_miss(url: str) -> None:
    upstream = Upstream(lambda _k: None)
    async with AgentCache(url) as cache:
        assert await cache.get_or_call("k", upstream) is None
        assert await cache.get_or_call("k", upstream) is None
        assert upstream.calls == 1


async def test_stats_count_saved_seconds_and_labels(url: str) -> None:
    async with AgentCache(url) as cache:
        await cache.get_or_call("k", Upstream(), label="researcher")
        await cache.get_or_call("k", Upstream(), label="researcher")
        await cache.get_or_call("k", Upstream(), label="writer")
        await cache.get_or_call("j", Upstream(), describe=lambda v: {"input_tokens": 10, "cost": 0.5})
        await cache.get_or_call("j", Upstream())
        stats = cache.stats
    assert stats.hits == 3
    assert stats.saved_seconds > 0
    assert stats.saved_input_tokens == 10
    assert stats.saved_cost == 0.5
    assert stats.by_label["researcher"].hits == 1
    assert stats.by_label["researcher"].misses == 1
    assert stats.by_label["writer"].hits == 1
    assert stats.as_dict()["by_label"]["writer"]["hit_rate"] == 1.0


async def test_fetch_says_where_the_answer_came_from(db_url: str) -> None:
    async with AgentCache(db_url) as cache:
        assert (await cache.fetch("k", Upstream())).source == "call"
        assert (await cache.fetch("k", Upstream())).source == "l1"
    async with AgentCache(db_url) as cache:
        fetched = await cache.fetch("k", Upstream())
        assert fetched.source == "store"
        assert fetched.hit
        assert fetched.key == cache.key("k")
