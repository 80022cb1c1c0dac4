"""One cache, two event loops: loops that follow each other share it; two running at once are refused.

A cache's flight table and a store's connections and batches belong to the loop that made them.
A second loop that takes over once the first has stopped (``asyncio.run`` twice, one thread after
another) reconnects and sees every answer. A second loop running at the same time, in a thread of
its own, used to strand the first loop's queued work (SQLite hung, answers unstored) or feed it to
the wrong loop (Redis: "bound to a different event loop"); it is now refused with
``EventLoopConflictError`` before anything is touched, and the first loop carries on.

Every test here is a plain function that starts its own threads and loops, as a script would, and
orders them with ``threading.Event``s; a hang fails on a join timeout (and pytest-timeout).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcache import AgentCache, AgentCacheError, EventLoopConflictError
from agentcache.stores import open_store

from .conftest import REDIS_URL, delete_prefix, require_redis

JOIN = 60.0  # seconds a thread may take; far beyond what any of these needs


@pytest.fixture(params=["sqlite", "redis"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> Iterator[str]:
    """A URL of each persistent store (entries outlive the cache object)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cache.db'}"
    else:
        require_redis()
        yield f"{REDIS_URL}?prefix={redis_prefix}"
        asyncio.run(delete_prefix(redis_prefix))


class Calls:
    """An upstream that answers a key in upper case and records every call (from any thread)."""

    def __init__(self) -> None:
        self.keys: list[str] = []  # list.append is atomic: threads may share one

    async def __call__(self, key: str) -> str:
        self.keys.append(key)
        return key.upper()


class Worker(threading.Thread):
    """A daemon thread running ``work``; what it raises is kept for ``joined`` to re-raise."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:
            self.error = exc


def joined(*workers: Worker) -> None:
    """Join every worker within ``JOIN`` seconds and re-raise the first error any of them met."""
    for worker in workers:
        worker.join(JOIN)
    hung = [w.name for w in workers if w.is_alive()]
    assert not hung, f"threads still running after {JOIN:g}s (hung): {hung}"
    for worker in workers:
        if worker.error is not None:
            raise worker.error


async def refused(attempt: Awaitable[Any]) -> EventLoopConflictError:
    """The ``EventLoopConflictError`` that ``attempt`` raises (failing if it raises none)."""
    with pytest.raises(EventLoopConflictError) as caught:
        await attempt
    return caught.value


def test_a_second_running_loop_is_refused_and_the_first_keeps_every_answer(store_url: str) -> None:
    cache = AgentCache(store_url, l1_max_entries=0)  # every lookup reaches the store (and the flight)
    calls = Calls()
    owner_stored, intruder_done = threading.Event(), threading.Event()
    owner_answers: list[str] = []
    errors: list[EventLoopConflictError] = []

    async def owner() -> None:
        owner_answers.extend(await asyncio.gather(*(cache.get_or_call(f"a{i}", calls) for i in range(20))))
        owner_stored.set()
        await asyncio.to_thread(intruder_done.wait, JOIN)  # this loop keeps running meanwhile
        again = [cache.get_or_call(f"a{i}", calls) for i in range(20)]  # hits
        more = [cache.get_or_call(f"b{i}", calls) for i in range(10)]  # misses
        owner_answers.extend(await asyncio.gather(*again, *more))
        await cache.aclose()

    async def intruder() -> None:
        errors.append(await refused(cache.get_or_call("c0", calls)))
        if store_url != "memory://":  # memory's direct API touches no loop-bound state
            errors.append(await refused(cache.get("a0")))
            errors.append(await refused(cache.set("c1", "not stored")))
            errors.append(await refused(cache.delete("a1")))
        errors.append(await refused(cache.aclose()))

    def intrude() -> None:
        try:
            assert owner_stored.wait(JOIN)
            asyncio.run(intruder())
        finally:
            intruder_done.set()  # the owner goes on however the intruder ended

    first = Worker("owner", lambda: asyncio.run(owner()))
    second = Worker("intruder", intrude)
    joined(first, second)

    expected = [f"A{i}" for i in range(20)] * 2 + [f"B{i}" for i in range(10)]
    assert owner_answers == expected
    assert sorted(calls.keys) == sorted([f"a{i}" for i in range(20)] + [f"b{i}" for i in range(10)])
    assert cache.stats.errors == 0  # nothing failed open: the owner never noticed the intruder
    for exc in errors:
        assert isinstance(exc, AgentCacheError)
        assert isinstance(exc, RuntimeError)
        message = str(exc)
        assert "still running in thread 'owner'" in message, message
        assert "(thread 'intruder')" in message, message
        assert "Create one AgentCache per thread or event loop" in message, message
        assert "asyncio.run twice, is fine" in message, message
    assert "AgentCache(" in str(errors[0])  # a miss meets the cache's flight table first

    # Everything the owner stored is there (and nothing of the intruder's), read by a later loop.
    reader = cache if store_url == "memory://" else AgentCache(store_url)

    async def read_back() -> list[Any]:
        async with reader:
            keys = [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(10)] + ["c0", "c1"]
            return [await reader.get(key) for key in keys]

    assert asyncio.run(read_back()) == [*expected[20:], None, None]


def test_two_caches_over_one_store_object_cannot_share_it_between_running_loops(
    persistent_url: str,
) -> None:
    """The store refuses too: each cache has its own flight table, but they share the store's loop."""
    store = open_store(persistent_url)
    owner_cache, intruder_cache = AgentCache(store, l1_max_entries=0), AgentCache(store, l1_max_entries=0)
    calls = Calls()
    owner_stored, intruder_done = threading.Event(), threading.Event()
    errors: list[EventLoopConflictError] = []
    answers: list[str] = []

    async def owner() -> None:
        answers.extend(await asyncio.gather(*(owner_cache.get_or_call(f"a{i}", calls) for i in range(10))))
        owner_stored.set()
        await asyncio.to_thread(intruder_done.wait, JOIN)
        answers.extend(await asyncio.gather(*(owner_cache.get_or_call(f"b{i}", calls) for i in range(10))))
        await owner_cache.aclose()

    async def intruder() -> None:
        errors.append(await refused(intruder_cache.get_or_call("c0", calls)))
        errors.append(await refused(intruder_cache.set("c1", "not stored")))

    def intrude() -> None:
        try:
            assert owner_stored.wait(JOIN)
            asyncio.run(intruder())
        finally:
            intruder_done.set()

    joined(Worker("owner", lambda: asyncio.run(owner())), Worker("intruder", intrude))

    assert answers == [f"A{i}" for i in range(10)] + [f"B{i}" for i in range(10)]
    assert "c0" not in calls.keys  # refused before anything was paid for
    store_name = "SQLite store" if persistent_url.startswith("sqlite") else "Redis store"
    for exc in errors:
        assert str(exc).startswith(store_name), exc
        assert "still running in thread 'owner'" in str(exc)
    assert (owner_cache.stats.errors, intruder_cache.stats.errors) == (0, 0)  # refused, not failed open

    async def read_back() -> list[Any]:
        async with AgentCache(persistent_url) as reader:
            return [await reader.get(k) for k in ("a0", "a9", "b0", "b9", "c0", "c1")]

    assert asyncio.run(read_back()) == ["A0", "A9", "B0", "B9", None, None]


@pytest.mark.parametrize("l1_max_entries", [0, 100], ids=["store-reads", "l1-hits"])
def test_asyncio_run_twice_with_one_module_level_cache_keeps_working(
    store_url: str, l1_max_entries: int
) -> None:
    """A script's (or a test suite's) pattern: one cache, several ``asyncio.run`` in turn."""
    cache = AgentCache(store_url, l1_max_entries=l1_max_entries)
    calls = Calls()

    async def burst(keys: list[str]) -> list[str]:
        return await asyncio.gather(*(cache.get_or_call(key, calls) for key in keys))

    first = [f"a{i}" for i in range(20)]
    assert asyncio.run(burst(first)) == [k.upper() for k in first]
    # The first run's answers are hits in the second (and a new key is stored there).
    assert asyncio.run(burst([*first, "b0"])) == [k.upper() for k in [*first, "b0"]]
    assert asyncio.run(cache.get("b0")) == "B0"
    asyncio.run(cache.aclose())
    assert sorted(calls.keys) == sorted([*first, "b0"])
    assert (cache.stats.hits, cache.stats.errors) == (20, 0)


def test_a_thread_takes_the_cache_over_once_the_first_threads_loop_has_stopped(store_url: str) -> None:
    """Loops left open between runs (as sync wrappers leave them), taking turns in two threads."""
    cache = AgentCache(store_url, l1_max_entries=0)
    calls = Calls()
    turns = [threading.Event() for _ in range(3)]
    answers: dict[str, list[str]] = {}

    async def burst(keys: list[str]) -> list[str]:
        return await asyncio.gather(*(cache.get_or_call(key, calls) for key in keys))

    def take_turns(name: str, mine: list[int]) -> None:
        loop = asyncio.new_event_loop()  # never closed between turns: stopped, not closed
        try:
            for turn in mine:
                if turn:
                    assert turns[turn - 1].wait(JOIN)
                keys = [f"a{i}" for i in range(10)] + [f"{name}{turn}"]
                answers[f"{name}{turn}"] = loop.run_until_complete(burst(keys))
                turns[turn].set()
            if name == "x":
                loop.run_until_complete(cache.aclose())
        finally:
            for event in turns:  # a failed turn must not leave the other thread waiting
                event.set()
            loop.close()

    # x runs turns 0 and 2, y runs turn 1: each waits for the one before it to finish.
    joined(Worker("x", lambda: take_turns("x", [0, 2])), Worker("y", lambda: take_turns("y", [1])))
    for turn, name in [(0, "x"), (1, "y"), (2, "x")]:
        assert answers[f"{name}{turn}"] == [f"A{i}" for i in range(10)] + [f"{name}{turn}".upper()]
    assert sorted(calls.keys) == sorted([f"a{i}" for i in range(10)] + ["x0", "y1", "x2"])
    assert cache.stats.errors == 0
