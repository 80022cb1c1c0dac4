"""A fresh process meeting a cache file under a fault: how much of what is stored it still serves.

Run as ``python file_fault_worker.py URL KNOWN NEW [STORE_RETRY [MODE]]``. It asks for the KNOWN
keys ``k0``... (stored earlier, with ``answer()``) one at a time, each followed by one of NEW keys
never stored (a miss, whose write meets the fault), through a cache with ``store_retry``
STORE_RETRY (default 0: every write tries the store again) and ``mode`` MODE (default
``read_write``). It prints one JSON line: how many known keys were served without calling, which
new answers were acknowledged as stored (``stats.stores`` grew), the longest single call (the
stall), ``stats.errors`` and the warnings, in order.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import warnings
from typing import Any

from agentcache import AgentCache


def answer(key: str) -> str:
    """The one right answer for ``key``."""
    return f"answer to {key}"


async def main(url: str, known: int, new: int, store_retry: float, mode: str) -> dict[str, Any]:
    called: set[str] = set()

    async def call(key: str) -> str:
        called.add(key)
        return answer(key)

    longest = 0.0
    acked: list[str] = []
    keys = [f"k{i}" for i in range(known)]
    news = [f"new{i}" for i in range(new)]
    order = (
        [key for pair in zip(keys, news, strict=False) for key in pair]
        + keys[len(news) :]
        + news[len(keys) :]
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with AgentCache(url, store_retry=store_retry, mode=mode) as cache:
            for key in order:
                stores = cache.stats.stores
                started = time.perf_counter()
                got = await cache.get_or_call(key, call)
                longest = max(longest, time.perf_counter() - started)
                assert got == answer(key), (key, got)
                if cache.stats.stores > stores:
                    acked.append(key)  # its call returned "stored": it must be in the file
            stats = cache.stats
    return {
        "served": sum(key not in called for key in keys),
        "known": known,
        "acked": acked,
        "new": new,
        "longest_stall": round(longest, 4),
        "errors": stats.errors,
        "warnings": [str(w.message) for w in record],
    }


if __name__ == "__main__":
    url, known, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store_retry = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    mode = sys.argv[5] if len(sys.argv) > 5 else "read_write"
    print(json.dumps(asyncio.run(main(url, known, new, store_retry, mode))), flush=True)
