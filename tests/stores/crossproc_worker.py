"""A worker process for the cross-process tests: N concurrent identical calls through one AgentCache.

Usage: ``python crossproc_worker.py URL COUNT_FILE CALLS CALL_SECONDS LEASE_TTL``

It prints ``ready`` and waits for a line on stdin (the start barrier), then makes CALLS concurrent
``get_or_call`` of one prompt. Each upstream call appends a line to COUNT_FILE under ``flock`` (the
count all processes share) and prints ``calling``, then takes CALL_SECONDS. At the end it prints one
JSON line: the distinct answers it got and its stats.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sys

from agentcache import AgentCache
from agentcache.leasing import LeasePolicy


async def main(url: str, count_file: str, calls: int, call_seconds: float, lease_ttl: float) -> None:
    async def upstream(prompt: str) -> str:
        with open(count_file, "a") as f:  # noqa: ASYNC230 - a tiny append is the point
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(f"{os.getpid()}\n")
            f.flush()
        print("calling", flush=True)
        await asyncio.sleep(call_seconds)  # the simulated model latency
        return f"answer to {prompt}"

    cache = AgentCache(url, namespace="xproc", lease=LeasePolicy(ttl=lease_ttl, max_wait=60))
    async with cache:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        answers = await asyncio.gather(*(cache.get_or_call("the prompt", upstream) for _ in range(calls)))
        stats = cache.stats
    print(
        json.dumps(
            {
                "answers": sorted(set(answers)),
                "count": len(answers),
                "misses": stats.misses,
                "stores": stats.stores,
                "errors": stats.errors,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    url, count_file, calls, call_seconds, lease_ttl = sys.argv[1:6]
    asyncio.run(main(url, count_file, int(calls), float(call_seconds), float(lease_ttl)))
