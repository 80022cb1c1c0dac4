"""Redis hits: AgentCache over redis:// (cold L1) against one plain redis-py GET per hit, same run.

Needs a Redis server at ``$AGENTCACHE_BENCH_REDIS`` (default ``redis://127.0.0.1:6379/14``); the
benchmark writes under its own key prefix and deletes it afterwards. Rows are µs per hit, medians
of ``REPEATS``; ``ratio`` is baseline / ours (above 1: ours is faster).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from agentcache import AgentCache

REDIS_URL = os.environ.get("AGENTCACHE_BENCH_REDIS", "redis://127.0.0.1:6379/14")
CONCURRENT = 1_000
SEQUENTIAL = 2_000
REPEATS = 5
SYSTEM = "You are a careful research assistant. " * 45  # ~1.7 KB shared system prompt


def prompt(i: int) -> str:
    return f"{SYSTEM}\nTask {i}: summarise document {i} in three sentences."


def answer(i: int) -> str:
    return f"Summary {i}: " + "lorem ipsum dolor sit amet " * 38  # ~1 KB


async def _median_us(run: Callable[[], Awaitable[Any]], ops: int) -> float:
    await run()  # warm: connections, scripts, caches of the client
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) / ops * 1e6


def _row(name: str, baseline: float, ours: float, note: str) -> dict[str, Any]:
    return {
        "name": name,
        "baseline": round(baseline, 1),
        "ours": round(ours, 1),
        "ratio": round(baseline / ours, 2),
        "note": note,
    }


async def run() -> list[dict[str, Any]]:
    """Concurrent and sequential hits, each against plain redis-py GETs of the same values."""
    prefix = f"agentcache-bench:{uuid.uuid4().hex[:8]}:"
    # The baseline's pool is configured like ours: a plain pool refuses a burst of 1,000 GETs
    # ("Too many connections"), so a blocking pool of 64 connections is the fair comparison.
    raw = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=64)
    )
    cache = AgentCache(f"{REDIS_URL}?prefix={prefix}", namespace="bench", l1_max_entries=0)
    try:
        n = max(CONCURRENT, SEQUENTIAL)
        # Fill both: the cache through its own path, the baseline as plain strings.
        for start in range(0, n, 500):
            batch = range(start, min(n, start + 500))
            await asyncio.gather(*(cache.set(prompt(i), answer(i)) for i in batch))
            await raw.mset({f"{prefix}plain:{i}": answer(i).encode() for i in batch})

        async def fail(_: str) -> str:
            raise AssertionError("a benchmark hit missed")

        async def ours_concurrent() -> None:
            await asyncio.gather(*(cache.get_or_call(prompt(i), fail) for i in range(CONCURRENT)))

        async def plain_concurrent() -> None:
            values = await asyncio.gather(*(raw.get(f"{prefix}plain:{i}") for i in range(CONCURRENT)))
            [v.decode() for v in values]

        store = cache.store
        skeys = [cache.key(prompt(i)) for i in range(CONCURRENT)]
        now = time.time()

        async def store_concurrent() -> None:
            await asyncio.gather(*(store.get_many([k], now) for k in skeys))

        async def ours_sequential() -> None:
            for i in range(SEQUENTIAL):
                await cache.get_or_call(prompt(i), fail)

        async def plain_sequential() -> None:
            for i in range(SEQUENTIAL):
                (await raw.get(f"{prefix}plain:{i}")).decode()

        rows = [
            _row(
                f"redis: {CONCURRENT:,} concurrent hits, cold L1 (µs/hit)",
                await _median_us(plain_concurrent, CONCURRENT),
                await _median_us(ours_concurrent, CONCURRENT),
                "baseline: one redis-py GET per hit, gathered (pool of 64); ours: get_or_call (key hashing, "
                "decode, stats), reads micro-batched into MGET pipelines",
            ),
            _row(
                f"redis store: {CONCURRENT:,} concurrent get_many (µs/hit)",
                await _median_us(plain_concurrent, CONCURRENT),
                await _median_us(store_concurrent, CONCURRENT),
                "the store alone (no key hashing, decoding or flights): micro-batched MGETs",
            ),
            _row(
                "redis: sequential hits, cold L1 (µs/hit)",
                await _median_us(plain_sequential, SEQUENTIAL),
                await _median_us(ours_sequential, SEQUENTIAL),
                "one awaited call at a time: a round trip each; ours adds a flight task and a batch per hit",
            ),
        ]
    finally:
        await cache.clear()
        await cache.aclose()
        doomed = [k async for k in raw.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(doomed), 1000):
            await raw.delete(*doomed[start : start + 1000])
        await raw.aclose()
    return rows


if __name__ == "__main__":
    for row in asyncio.run(run()):
        print(row)
