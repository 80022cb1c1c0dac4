"""Benchmark: explaining a miss by fingerprint index vs comparing against every stored entry.

Fills a SQLite store with N entries (half single-turn requests of one eval suite, half plain
prompts), then times, in the same run, ``explain`` for a request that differs from a stored one
only in its temperature, and the naive baseline: scan the namespace and diff every entry. Prints
medians of 5 and the ratio. Run: ``python -m benchmarks.explain [N]`` (default 20,000).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentcache import AgentCache
from agentcache._diff import diff
from agentcache.explain import explain, material_of
from agentcache.keys import normalize, stored_key
from agentcache.stores.sqlite import SQLiteStore

SYSTEM = "You are a careful assistant. Cite your sources. " * 30


def request(case: int, temperature: float = 0.0) -> dict[str, Any]:
    return {
        "model": "openai:gpt-4o",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"case {case}: summarise report number {case}"},
        ],
        "settings": {"temperature": temperature},
    }


async def answer(key: object) -> str:
    return "an answer " * 50


async def fill(path: Path, n: int) -> None:
    async with AgentCache(f"sqlite:///{path}", l1_max_entries=0) as cache:
        for start in range(0, n, 1000):
            keys = [
                request(i) if i % 2 else f"prompt {i}: " + "x" * 400
                for i in range(start, min(n, start + 1000))
            ]
            await asyncio.gather(*(cache.get_or_call(key, answer) for key in keys))


async def naive(store: SQLiteStore, normal: Any) -> int:
    """What explain would cost without an index: diff the material of every entry."""
    best = 1 << 30
    async for _key, entry in store.scan("default"):
        other = material_of(entry)
        if type(other) is type(normal):
            best = min(best, len(diff(other, normal)))
    return best


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cache.db"
        started = time.perf_counter()
        await fill(path, n)
        print(f"filled {n:,} entries in {time.perf_counter() - started:.1f} s")
        wanted = request(7, temperature=0.5)
        key, normal = stored_key(wanted, "default"), normalize(wanted)
        store = SQLiteStore(path)
        try:
            indexed, scanned = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                result = await explain(store, key, normal)
                t1 = time.perf_counter()
                await naive(store, normal)
                t2 = time.perf_counter()
                indexed.append(t1 - t0)
                scanned.append(t2 - t1)
        finally:
            await store.aclose()
        assert result.nearest[0].key == stored_key(request(7), "default")
        fast, slow = statistics.median(indexed), statistics.median(scanned)
        print(f"explain via the fingerprint index: {fast * 1000:8.1f} ms (median of 5)")
        print(f"baseline, diff every entry:        {slow * 1000:8.1f} ms (median of 5)")
        print(f"ratio: {slow / fast:.0f}x faster")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
