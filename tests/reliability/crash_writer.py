"""A writer process for the crash test: bursts of concurrent misses until it is killed.

Run as ``python crash_writer.py DB_PATH ACK_PATH SEED``. It prints ``ready`` once the store is
open, then loops over bursts of ``get_or_call``: new keys, an identical burst of one key, and keys
of earlier runs (hits). Every value ``get_or_call`` returned is acknowledged by appending its key
to ACK_PATH with one ``write`` system call, *after* the call returned: the parent kills this process
with SIGKILL at a random moment and then checks that every acknowledged key is in the store.
A returned value that is not the expected answer is acknowledged as ``WRONG <key>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
from typing import Any

from agentcache import AgentCache


def expected(key: str) -> dict[str, Any]:
    """The one right answer for ``key`` (deterministic, so any process can check it)."""
    return {"key": key, "answer": hashlib.sha256(key.encode()).hexdigest(), "words": key.split("-")}


def previous_acks(ack_path: str) -> list[str]:
    with open(ack_path) as f:
        return [line.strip() for line in f if line.endswith("\n") and not line.startswith("WRONG")]


async def main(db: str, ack_path: str, seed: int) -> None:
    rng = random.Random(seed)
    ack = os.open(ack_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    cache = AgentCache(f"sqlite:///{db}", l1_max_entries=0)
    await cache.get("warm-up: open the store")
    print("ready", flush=True)
    earlier = previous_acks(ack_path)  # keys acknowledged by earlier (killed) runs: hits now

    async def call(key: str) -> dict[str, Any]:
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
        return expected(key)

    async def one(key: str) -> None:
        value = await cache.get_or_call(key, call)
        line = key if value == expected(key) else f"WRONG {key}"
        os.write(ack, (line + "\n").encode())

    burst = 0
    while True:
        burst += 1
        keys = [f"s{seed}-b{burst}-k{i}" for i in range(rng.randrange(10, 60))]
        keys += [f"s{seed}-b{burst}-same"] * rng.randrange(2, 20)  # an identical burst
        keys += rng.sample(earlier, min(len(earlier), rng.randrange(10)))  # hits
        rng.shuffle(keys)
        await asyncio.gather(*(one(k) for k in keys))
        earlier.extend(keys[:5])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
