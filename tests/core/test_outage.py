"""A store outage stalls at most one call; the store is rested, probed once at a time, with backoff."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentcache import AgentCache, AgentCacheWarning, BackendError, BackendUnavailableError
from agentcache._guard import MAX_REST, StoreGuard
from agentcache._notices import Notices
from agentcache.stats import StatsRecorder
from agentcache.stores import Entry
from agentcache.stores.capabilities import Lease
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream


class CountingWrites(SQLiteStore):
    """A real SQLite store that counts the writes it is asked for."""

    writes = 0

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        self.writes += 1
        await super().set_many(items, release=release)


async def test_a_file_locked_by_another_process_stalls_one_call_not_each(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with AgentCache(f"sqlite:///{path}") as cache:
        await cache.set("ready", "yes")
    store = CountingWrites(path, busy_timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
    upstream = Upstream()
    try:
        async with AgentCache(store, store_retry=60) as cache:
            with pytest.warns(AgentCacheWarning, match=r"calling through without storing .*still served"):
                answers = [await cache.get_or_call(f"q{i}", upstream) for i in range(5)]
            assert await cache.get("ready") == "yes", "reads are still served during a write outage"
            assert answers == [f"answer to q{i}" for i in range(5)]
            assert cache.stats.errors == 1, "only the first call met the lock"
            assert store.writes == 0, "a call whose lease claim failed must not wait on the lock again"
    finally:
        other.execute("ROLLBACK")
        other.close()


class Flaky:
    """Store protocol over a real SQLite store, with a switch that makes every operation fail."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStore(path)
        self.url = self.inner.url
        self.broken = False
        self.gate: asyncio.Event | None = None
        self.attempts = 0

    async def _check(self) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise BackendUnavailableError("injected outage")

    async def open(self) -> None:
        await self._check()
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        await self._check()
        return await self.inner.get_many(keys, now)

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        await self._check()
        await self.inner.set_many(items, release=release)

    async def delete_many(self, keys: Sequence[str]) -> int:
        await self._check()
        return await self.inner.delete_many(keys)

    async def clear(self, namespace: str | None) -> int:
        await self._check()
        return await self.inner.clear(namespace)

    async def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        async for item in self.inner.scan(namespace):
            yield item

    def note_hit(self, key: str, now: float) -> None:
        self.inner.note_hit(key, now)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard_over(store: Flaky, clock: Clock, probe_wait: float = 60.0) -> StoreGuard:
    """A fail-open guard as a read_write cache builds it, with a first rest of one second.

    ``probe_wait``: how long a probing caller waits for its probe (long by default: these tests
    decide when a probe ends, not the clock).
    """
    return StoreGuard(
        store,
        strict=False,
        reads_only=False,
        writes=True,
        retry=1.0,
        stats=StatsRecorder(),
        monotonic=clock,
        probe_wait=probe_wait,
    )


async def probe_held(store: Flaky, probe_wait: float = 60.0) -> tuple[StoreGuard, asyncio.Future[Any]]:
    """A guard whose store failed once and came back; the first probe after the rest is held at
    ``store.gate`` (set it to let the probe go on); returned with the call that probes."""
    clock = Clock()
    guard = guard_over(store, clock, probe_wait)
    store.broken = True
    await guard.read(["k"], 0.0, None, Notices())
    clock.now += 1.0
    store.broken = False
    store.gate = asyncio.Event()
    probe = asyncio.ensure_future(guard.read(["k"], 0.0, None, Notices()))
    await asyncio.sleep(0)
    return guard, probe


async def test_failed_probes_double_the_rest_up_to_a_bound(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    store.broken = True
    clock = Clock()
    guard = guard_over(store, clock)
    rests = []
    for _ in range(8):
        before = store.attempts
        assert await guard.read(["k"], 0.0, None, Notices()) is None
        assert store.attempts == before + 1, "each probe tries the store once"
        until = guard._read_rest_until
        rests.append(until - clock.now)
        assert await guard.read(["k"], 0.0, None, Notices()) is None
        assert store.attempts == before + 1, "a resting store is not touched"
        clock.now = until
    assert rests == [1, 2, 4, 8, 16, MAX_REST, MAX_REST, MAX_REST]
    store.broken = False
    assert await guard.read(["k"], 0.0, None, Notices()) == [None]
    assert guard.healthy
    await guard.aclose()


async def test_while_one_call_probes_the_others_go_straight_through(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    guard, probe = await probe_held(store)
    others = await asyncio.gather(*(guard.read(["k"], 0.0, None, Notices()) for _ in range(10)))
    assert others == [None] * 10
    assert store.attempts == 2
    assert store.gate is not None
    store.gate.set()
    assert await probe == [None]
    assert guard.healthy
    await guard.aclose()


async def test_a_probe_whose_caller_is_cancelled_still_ends_the_outage(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    guard, caller = await probe_held(store)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert store.gate is not None
    store.gate.set()
    assert guard._probe is not None
    await guard._probe  # the probe runs on without its caller
    assert guard.healthy
    assert await guard.read(["k"], 0.0, None, Notices()) == [None]
    await guard.aclose()


async def test_a_cancelled_probe_lets_the_next_caller_probe(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    guard, caller = await probe_held(store)
    assert guard._probe is not None
    guard._probe.cancel()  # as a closing event loop does
    assert await caller is None, "its caller goes straight through"
    assert store.gate is not None
    store.gate.set()
    assert await guard.read(["k"], 0.0, None, Notices()) == [None], "the next caller probes"
    await guard.aclose()


async def test_a_probe_that_does_not_answer_in_time_stalls_nobody(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    guard, caller = await probe_held(store, probe_wait=0.0)
    notices = Notices()
    assert await caller is None, "the probing call went straight through"
    assert await guard.read(["k"], 0.0, None, notices) is None, "so does everyone else meanwhile"
    assert not notices.store_failed
    assert store.gate is not None
    store.gate.set()
    assert guard._probe is not None
    await guard._probe
    assert guard.healthy, "the probe ended the outage without a caller waiting for it"
    assert await guard.read(["k"], 0.0, None, Notices()) == [None]
    await guard.aclose()


async def test_a_probing_call_that_went_on_does_not_touch_the_store_again(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    clock = Clock()
    guard = guard_over(store, clock, probe_wait=0.0)
    store.broken = True
    await guard.read(["k"], 0.0, None, Notices())
    clock.now += 1.0
    store.gate = asyncio.Event()  # the probe does not answer
    notices = Notices()
    assert await guard.read(["k"], 0.0, None, notices) is None
    assert notices.store_failed, "its lookup leaves the store alone: no claim, no write"
    assert await guard.write([("k", Entry(b"v", 0.0))], None, notices) is False
    assert guard.leases(notices) is None
    store.gate.set()
    await guard.aclose()
    assert store.attempts == 2, "the failure and the probe; nothing for the write"


async def test_a_strict_cache_that_recovered_serves_cold_hits_without_a_task_each(tmp_path: Path) -> None:
    prompts = [f"p{i}" for i in range(200)]
    async with AgentCache(f"sqlite:///{tmp_path / 'c.db'}") as filler:
        for prompt in prompts:
            await filler.set(prompt, "stored")
    store = Flaky(tmp_path / "c.db")
    store.broken = True
    cache = AgentCache(store, on_store_error="raise")
    with pytest.raises(BackendError):
        await cache.get_or_call("first", Upstream())
    store.broken = False

    loop = asyncio.get_running_loop()
    created = 0

    def counting(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kw: Any) -> Any:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kw)

    callers = [asyncio.ensure_future(cache.get_or_call(p, Upstream())) for p in prompts]
    loop.set_task_factory(counting)
    try:
        answers = await asyncio.gather(*callers)
    finally:
        loop.set_task_factory(None)
        await cache.aclose()
    assert answers == ["stored"] * len(prompts)
    assert created < 20, f"{created} tasks for {len(prompts)} cold hits"
