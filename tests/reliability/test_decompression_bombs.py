"""Decompression bombs: a stored entry that inflates without end is a warned miss at bounded cost.

A shared store (Redis) is writable by others, and a 1 MB zlib stream inflates to 1 GiB. Reading
one must cost at most ``max_value_bytes`` of inflating, be counted and warned like an undecodable
entry, and call upstream once, whose answer then replaces the bomb. (``agentcache import``
refusing one is tested with the other import refusals.)
"""

from __future__ import annotations

import sqlite3
import struct
import time
import tracemalloc
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentcache import AgentCache, AgentCacheWarning, ConfigurationError, codec
from agentcache.stores.base import Entry
from agentcache.stores.memory import MemoryStore
from tests.helpers import Upstream
from tests.stores.conftest import REDIS_URL, delete_prefix, require_redis

INFLATED = 1 << 30  # what the stored megabyte inflates to
KEY = "the question"


def zlib_bomb(inflated: int, block: int = 1 << 20) -> bytes:
    """A zlib stream of ``inflated`` bytes of ``a``, about ``inflated / 1000`` bytes long.

    Built without compressing a gigabyte: after a full flush, deflate's output for another block of
    the same run depends only on that block, so one compressed block is repeated.
    """
    run = b"a" * block
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: header and checksum added here
    first = deflate.compress(run) + deflate.flush(zlib.Z_FULL_FLUSH)
    repeated = deflate.compress(run) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(run) + deflate.flush(zlib.Z_FULL_FLUSH) == repeated
    end = deflate.flush()
    blocks = inflated // block
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(run, adler)
    return b"\x78\xda" + first + repeated * (blocks - 1) + end + struct.pack(">I", adler)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A stored value (raw bytes, compressed) of about 1 MB that inflates to 1 GiB."""
    stream = zlib_bomb(INFLATED)
    assert len(stream) < 2 * 1024 * 1024
    return b"c" + stream


Planter = Callable[[str, bytes], Awaitable[None]]


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[tuple[str, Planter]]:
    """(url, plant): ``plant(stored_key, value)`` overwrites an entry's value behind the cache's back."""
    if request.param == "sqlite":
        path = db_url.removeprefix("sqlite:///")

        async def plant_sqlite(skey: str, value: bytes) -> None:
            conn = sqlite3.connect(path)
            with conn:
                assert conn.execute("UPDATE entries SET value = ? WHERE key = ?", (value, skey)).rowcount == 1
            conn.close()

        yield db_url, plant_sqlite
        return
    require_redis()
    import redis.asyncio as aioredis

    from agentcache.stores.redis._envelope import pack

    prefix = f"agentcache-test:{uuid.uuid4().hex[:12]}:"

    async def plant_redis(skey: str, value: bytes) -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            assert await client.set(f"{prefix}e:{skey}", pack(Entry(value, created_at=time.time())), xx=True)
        finally:
            await client.aclose()

    try:
        yield f"{REDIS_URL}?prefix={prefix}", plant_redis
    finally:
        await delete_prefix(prefix)


async def planted(url: str, plant: Planter, value: bytes) -> None:
    async with AgentCache(url) as cache:
        await cache.set(KEY, "a small answer")
        skey = cache.key(KEY)
    await plant(skey, value)


async def measured(work: Awaitable[Any]) -> tuple[Any, int, float]:
    """``work``'s result, the peak of Python memory it allocated (bytes) and its seconds."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.perf_counter()
        result = await work
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak, elapsed


async def test_a_decompression_bomb_is_a_warned_miss_read_at_bounded_cost(
    store: tuple[str, Planter], bomb: bytes
) -> None:
    url, plant = store
    await planted(url, plant, bomb)
    upstream = Upstream()
    async with AgentCache(url) as cache:  # a fresh cache: a cold hit, as another process has it
        with pytest.warns(AgentCacheWarning, match="larger than max_value_bytes"):
            value, peak, seconds = await measured(cache.get_or_call(KEY, upstream))
        assert value == f"answer to {KEY}"
        assert upstream.calls == 1
        assert cache.stats.errors == 1
        assert cache.stats.misses == 1
    # The old code allocated the whole gigabyte (3 GB RSS) and took 12-25 s.
    assert peak < 3 * codec.MAX_VALUE_BYTES, f"peak {peak / 2**20:.0f} MiB"
    assert seconds < 5.0
    async with AgentCache(url) as cache:  # the answer called then replaced the bomb
        assert await cache.get_or_call(KEY, upstream) == f"answer to {KEY}"
    assert upstream.calls == 1


async def test_a_smaller_limit_bounds_the_cost_further(store: tuple[str, Planter], bomb: bytes) -> None:
    url, plant = store
    await planted(url, plant, bomb)
    async with AgentCache(url, max_value_bytes=1024 * 1024) as cache:
        with pytest.warns(AgentCacheWarning, match="larger than max_value_bytes=1048576"):
            value, peak, _ = await measured(cache.get(KEY, "absent"))
    assert value == "absent"
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_an_entry_over_a_readers_limit_is_left_for_the_cache_that_wrote_it(
    kind: str, db_url: str
) -> None:
    url: str | MemoryStore = MemoryStore() if kind == "memory" else db_url  # memory: one store, two caches
    big = {"text": "x" * (2 * 1024 * 1024)}  # a dict: decoded from the stored bytes on every read
    async with AgentCache(url, max_value_bytes=4 * 1024 * 1024) as writer:
        await writer.set(KEY, big)
    upstream = Upstream(lambda key: big)
    async with AgentCache(url, max_value_bytes=1024 * 1024) as reader:
        with pytest.warns(AgentCacheWarning) as warned:
            assert await reader.get_or_call(KEY, upstream) == big  # still returned
    messages = [str(w.message) for w in warned]
    assert any("larger than max_value_bytes=1048576" in m for m in messages), messages
    assert any("could not store" in m and "max_value_bytes=1048576" in m for m in messages), messages
    assert upstream.calls == 1
    async with AgentCache(url, max_value_bytes=4 * 1024 * 1024) as writer:
        assert await writer.get(KEY) == big  # neither deleted nor overwritten


def test_the_limit_is_checked_at_configuration() -> None:
    for bad in (0, -1, 1.5, True, "64MiB", None):
        with pytest.raises(ConfigurationError, match="max_value_bytes"):
            AgentCache("memory://", max_value_bytes=bad)  # type: ignore[arg-type]


def test_the_bomb_inflates_to_its_size() -> None:
    assert zlib.decompress(zlib_bomb(8 * 1024 * 1024)) == b"a" * (8 * 1024 * 1024)
