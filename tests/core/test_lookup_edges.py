"""Edges of the one lookup path: who warns, who is counted, what L1 may keep, what closing waits for."""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning, CacheMissError
from tests.helpers import Upstream


async def test_a_warning_of_a_call_whose_leader_left_reaches_the_caller_still_waiting() -> None:
    gate, started = asyncio.Event(), asyncio.Event()

    async def unstorable(_key: object) -> set[int]:
        started.set()
        await gate.wait()
        return {1, 2}

    async with AgentCache("memory://") as cache:
        leader = asyncio.ensure_future(cache.get_or_call("k", unstorable))
        await started.wait()
        joiner = asyncio.ensure_future(cache.get_or_call("k", unstorable))
        await asyncio.sleep(0)
        leader.cancel()
        await asyncio.gather(leader, return_exceptions=True)
        with pytest.warns(AgentCacheWarning, match="could not store"):
            gate.set()
            assert await joiner == {1, 2}


async def test_a_paid_call_is_counted_a_miss_even_when_its_leader_left() -> None:
    upstream = Upstream().gated()
    async with AgentCache("memory://") as cache:
        leader = asyncio.ensure_future(cache.get_or_call("k", upstream))
        await upstream.started.wait()
        joiner = asyncio.ensure_future(cache.get_or_call("k", upstream))
        await asyncio.sleep(0)
        leader.cancel()
        await asyncio.gather(leader, return_exceptions=True)
        assert upstream.gate is not None
        upstream.gate.set()
        await joiner
        stats = cache.stats
    assert upstream.calls == 1
    assert (stats.misses, stats.coalesced, stats.hit_rate) == (1, 1, 0.5)


async def test_callers_sharing_an_unstorable_answer_each_get_their_own_copy() -> None:
    gate = asyncio.Event()

    async def unstorable(_key: object) -> set[int]:
        await gate.wait()
        return {1}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AgentCacheWarning)
        async with AgentCache("memory://") as cache:
            callers = [asyncio.ensure_future(cache.get_or_call("k", unstorable)) for _ in range(2)]
            await asyncio.sleep(0)
            gate.set()
            first, second = await asyncio.gather(*callers)
    first.add(2)
    assert second == {1}


async def test_equal_value_types_built_per_call_share_one_call() -> None:
    upstream = Upstream(lambda key: [1, 2]).gated()
    async with AgentCache("memory://") as cache:
        callers = [
            asyncio.ensure_future(cache.get_or_call("k", upstream, value_type=list[int])) for _ in range(10)
        ]
        await upstream.started.wait()
        assert upstream.gate is not None
        upstream.gate.set()
        assert await asyncio.gather(*callers) == [[1, 2]] * 10
    assert upstream.calls == 1


async def test_a_read_landing_after_a_delete_does_not_bring_the_entry_back(db_url: str) -> None:
    async with AgentCache(db_url) as writer:
        await writer.set("k", "old")
    async with AgentCache(db_url) as cache:
        reading = asyncio.ensure_future(cache.get("k"))
        await asyncio.sleep(0)  # the read is on its way to the file
        assert await cache.delete("k")
        await reading
        assert await cache.get("k") is None
        assert await cache.get_or_call("k", Upstream()) == "answer to k"


async def test_an_l1_hit_returns_what_a_store_hit_returns(db_url: str) -> None:
    async def integral(_key: object) -> float:
        return 1  # type: ignore[return-value]

    async with AgentCache(db_url) as cache:
        await cache.get_or_call("k", integral, value_type=float)
        from_l1 = await cache.fetch("k", integral, value_type=float)
    async with AgentCache(db_url) as cache:
        from_store = await cache.fetch("k", integral, value_type=float)
    assert from_l1.source == "l1"
    assert from_store.source == "store"
    assert type(from_l1.value) is type(from_store.value) is float


async def test_replay_never_deletes_even_a_damaged_entry(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("k", "good")
    with sqlite3.connect(tmp_path / "cache.db") as db:
        db.execute("UPDATE entries SET value = ?", (b"\x07damaged",))
    async with AgentCache(db_url, mode="replay") as cache:
        with pytest.warns(AgentCacheWarning, match="could not decode"), pytest.raises(CacheMissError):
            await cache.get_or_call("k", Upstream())
    with sqlite3.connect(tmp_path / "cache.db") as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 1


async def test_closing_with_a_leased_call_in_flight_hands_the_lease_back_first(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    upstream = Upstream().gated()
    cache = AgentCache(f"sqlite:///{path}")
    caller = asyncio.ensure_future(cache.get_or_call("k", upstream))
    await upstream.started.wait()  # the lease is held, the call is in flight
    await cache.aclose()
    await asyncio.gather(caller, return_exceptions=True)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    assert not cache._guard.is_open  # type: ignore[union-attr]
