"""A stored value of another value_type is a miss for that caller: never deleted, never overwritten."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from agentcache import AgentCache, AgentCacheWarning


class Summary(BaseModel):
    title: str


class Verdict(BaseModel):
    score: int


async def test_two_app_versions_sharing_a_store_keep_each_others_entries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    old_calls: list[str] = []
    new_calls: list[str] = []

    async def old_app(key: object) -> Summary:
        old_calls.append(str(key))
        return Summary(title="from the old version")

    async def new_app(key: object) -> Verdict:
        new_calls.append(str(key))
        return Verdict(score=7)

    async with AgentCache(url) as old:
        assert await old.get_or_call("doc", old_app, value_type=Summary) == Summary(
            title="from the old version"
        )
    async with AgentCache(url) as new:
        with pytest.warns(AgentCacheWarning, match="left in place"):
            got = await new.get_or_call("doc", new_app, value_type=Verdict)
        assert got == Verdict(score=7)
        with pytest.warns(AgentCacheWarning, match="left in place"):
            assert await new.get("doc", value_type=Verdict) is None
    async with AgentCache(url) as old:
        assert await old.get_or_call("doc", old_app, value_type=Summary) == Summary(
            title="from the old version"
        )
    assert old_calls == ["doc"], "the old version's entry was deleted or overwritten"
    assert new_calls == ["doc"]


async def test_a_mismatch_in_the_l1_leaves_the_entry_for_its_own_type() -> None:
    async with AgentCache("memory://") as cache:

        async def summary(_key: object) -> Summary:
            return Summary(title="t")

        async def verdict(_key: object) -> Verdict:
            return Verdict(score=1)

        await cache.get_or_call("k", summary, value_type=Summary)
        with pytest.warns(AgentCacheWarning, match="left in place"):
            assert await cache.get_or_call("k", verdict, value_type=Verdict) == Verdict(score=1)
        assert (await cache.fetch("k", summary, value_type=Summary)).source == "l1"


async def test_concurrent_callers_of_different_value_types_each_get_their_own_type() -> None:
    gate = asyncio.Event()

    async def summary(_key: object) -> Summary:
        await gate.wait()
        return Summary(title="t")

    async def verdict(_key: object) -> Verdict:
        await gate.wait()
        return Verdict(score=1)

    async with AgentCache("memory://") as cache:
        tasks = [
            asyncio.ensure_future(cache.get_or_call("k", summary, value_type=Summary)),
            asyncio.ensure_future(cache.get_or_call("k", verdict, value_type=Verdict)),
        ]
        await asyncio.sleep(0)
        gate.set()
        first, second = await asyncio.gather(*tasks)
    assert type(first) is Summary
    assert type(second) is Verdict


async def test_bytes_that_are_not_a_value_are_still_deleted(db_url: str, tmp_path: Path) -> None:
    async def call(_key: object) -> str:
        return "fresh"

    async with AgentCache(db_url) as cache:
        await cache.set("k", "good")
    with sqlite3.connect(tmp_path / "cache.db") as db:
        db.execute("UPDATE entries SET value = ?", (b"\x07garbage",))
    async with AgentCache(db_url) as cache:
        with pytest.warns(AgentCacheWarning, match="could not decode"):
            assert await cache.get_or_call("k", call) == "fresh"
    async with AgentCache(db_url) as cache:
        assert await cache.get("k") == "fresh"
