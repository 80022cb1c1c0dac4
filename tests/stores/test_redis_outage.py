"""A Redis that stops answering (a pause, a partition) stalls a process once, for one timeout.

Each test pauses a redis-server of its own (``private_redis``, never the shared one) with SIGSTOP
and resumes it in a ``finally``. The connections stay open and the kernel still accepts new ones,
so every command waits for a reply that does not come: exactly what a partition does. Timing
assertions are upper bounds on a stall the design bounds (one ``DEFAULT_TIMEOUT``, 1 s), with a
margin well below a second stall; the code before this bound took 10 s per command (a 5 s socket
timeout, retried once) and stalled again on every probe, claim and release.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agentcache import AgentCache, AgentCacheWarning, ConfigurationError
from agentcache.stores import open_store
from agentcache.stores.redis import DEFAULT_TIMEOUT
from tests.stores.conftest import RedisServer
from tests.stores.test_leases import ClaimSpy, leases

pytestmark = pytest.mark.filterwarnings("ignore::agentcache.AgentCacheWarning")

ONE_STALL = DEFAULT_TIMEOUT * 1.75  # one timeout and scheduling slack; two stalls take 2 timeouts
STALLED = DEFAULT_TIMEOUT / 2  # a call slower than this (beyond its upstream) waited on the server


@contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    """SIGSTOP the server for the block; SIGCONT whatever happens."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


class Upstream:
    """An 'LLM' that takes ``seconds`` per call; ``before`` runs first (e.g. pauses the server)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls = 0
        self.before: Any = None

    async def __call__(self, key: str) -> str:
        self.calls += 1
        if self.before is not None:
            self.before()
        if self.seconds:
            await asyncio.sleep(self.seconds)
        return f"answer to {key}"


async def timed(cache: AgentCache, key: str, upstream: Upstream) -> float:
    """Seconds ``get_or_call`` took beyond its upstream time; its answer is checked."""
    started = time.perf_counter()
    assert await cache.get_or_call(key, upstream) == f"answer to {key}"
    return time.perf_counter() - started - upstream.seconds


async def test_a_paused_server_stalls_one_window_then_calls_go_straight_through(
    private_redis: RedisServer,
) -> None:
    upstream = Upstream(0.005)  # 200 sequential calls span several rests and probes
    # A short first rest, so that probes are tried (and fail) while the server is paused.
    async with AgentCache(f"{private_redis.url}?prefix=t:", store_retry=0.1) as cache:
        await cache.get_or_call("warm", upstream)  # connected, scripts loaded
        with paused(private_redis):
            started = time.perf_counter()
            burst = await asyncio.gather(*(timed(cache, f"c{i}", upstream) for i in range(20)))
            after = [await timed(cache, f"s{i}", upstream) for i in range(200)]
            overhead = time.perf_counter() - started - 201 * upstream.seconds
        assert max(burst) < ONE_STALL, "the burst shares one wait for the server"
        assert [s for s in after if s > STALLED] == [], "no call after it waits on the server"
        assert overhead < ONE_STALL, f"{overhead:.2f}s of 220 calls went to waiting on the server"
        assert cache.stats.errors >= 20

        # Probes bring it back: answers are stored again, and served from Redis.
        stored, deadline, i = cache.stats.stores, time.monotonic() + 15, 0
        while cache.stats.stores == stored:
            assert time.monotonic() < deadline, "the store never came back"
            await cache.get_or_call(f"back{i}", upstream)
            i += 1
            await asyncio.sleep(0.02)  # time for the rest to end; calls meanwhile go straight through
        last = f"back{i - 1}"
    async with AgentCache(f"{private_redis.url}?prefix=t:", l1_max_entries=0) as again:
        assert (await again.fetch(last, upstream)).source == "store"


async def test_sequential_calls_during_a_pause_stall_only_the_first(private_redis: RedisServer) -> None:
    upstream = Upstream(0.005)
    async with AgentCache(f"{private_redis.url}?prefix=t:", store_retry=0.1) as cache:
        await cache.get_or_call("warm", upstream)
        with paused(private_redis):
            stalls = [await timed(cache, f"s{i}", upstream) for i in range(200)]
    waited = [i for i, s in enumerate(stalls) if s > STALLED]
    assert waited == [0], f"calls {waited} waited on the paused server"
    assert stalls[0] < ONE_STALL


class PauseAtClaim(ClaimSpy):
    """The store's leases, pausing the server just before the first claim is sent."""

    def __init__(self, store: Any, server: RedisServer) -> None:
        super().__init__(store)
        self.server = server
        self.pause: Any = None

    async def claim(self, key: str, token: str, ttl: float) -> bool:
        if self.pause is None:
            self.pause = paused(self.server)
            self.pause.__enter__()
        return await super().claim(key, token, ttl)


async def test_a_claim_that_meets_a_paused_server_rests_reads_too(private_redis: RedisServer) -> None:
    store = open_store(f"{private_redis.url}?prefix=t:")
    spy = PauseAtClaim(store, private_redis)  # before the cache asks the store for its leases
    upstream = Upstream()
    try:
        async with AgentCache(store, store_retry=60) as cache:
            await cache.set("warm", "yes")  # connected
            first = await timed(cache, "q0", upstream)  # read, then a claim that gets no reply
            rest = [await timed(cache, f"q{i}", upstream) for i in range(1, 20)]
            assert first < ONE_STALL
            assert [s for s in rest if s > STALLED] == [], "a read after the failed claim waited too"
    finally:
        if spy.pause is not None:
            spy.pause.__exit__(None, None, None)


async def test_a_holder_whose_write_meets_a_paused_server_does_not_wait_on_its_release(
    private_redis: RedisServer,
) -> None:
    upstream = Upstream()
    pause = paused(private_redis)
    upstream.before = pause.__enter__  # the lease is held; the value and its release meet the pause
    try:
        async with AgentCache(f"{private_redis.url}?prefix=t:") as cache:
            await cache.set("warm", "yes")
            assert await timed(cache, "q", upstream) < ONE_STALL
            upstream.before = None
            assert await timed(cache, "r", upstream) < STALLED, "the store rests"
    finally:
        pause.__exit__(None, None, None)
    # The release was queued anyway: once the server answers, the lease is given back.
    other = open_store(f"{private_redis.url}?prefix=t:")
    async with AgentCache(other) as check:
        assert await leases(other).claim(check.key("q"), "other", 5) is True


async def test_a_waiter_whose_look_meets_a_paused_server_calls_through_at_once(
    private_redis: RedisServer,
) -> None:
    url = f"{private_redis.url}?prefix=t:"
    holder = open_store(url)
    store = open_store(url)
    spy = ClaimSpy(store)
    upstream = Upstream()
    async with AgentCache(holder) as other, AgentCache(store) as cache:
        assert await leases(holder).claim(other.key("q"), "another process", 60) is True
        waiter = asyncio.ensure_future(cache.get_or_call("q", upstream))
        await spy.refused.wait()  # it waits for the other process's answer, polling the store
        with paused(private_redis):
            started = time.perf_counter()
            with pytest.warns(AgentCacheWarning, match="calling through"):
                assert await waiter == "answer to q"
            waited = time.perf_counter() - started
    assert waited < ONE_STALL, f"the waiter waited {waited:.2f}s on the paused server"
    assert upstream.calls == 1


async def test_the_timeout_is_a_url_option(private_redis: RedisServer) -> None:
    upstream = Upstream()
    async with AgentCache(f"{private_redis.url}?prefix=t:&timeout=0.25&connect_timeout=0.25") as cache:
        await cache.set("warm", "yes")
        with paused(private_redis):
            assert await timed(cache, "q", upstream) < 0.25 * 1.75


@pytest.mark.parametrize("option", ["timeout=0", "timeout=-1", "timeout=nan", "connect_timeout=inf"])
def test_a_timeout_that_is_no_number_of_seconds_is_refused(option: str) -> None:
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        AgentCache(f"redis://127.0.0.1:6379/0?{option}")
