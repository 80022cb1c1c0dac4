"""A second process asking for one key while the first holds its lease.

Run as ``python lease_waiter.py URL KEY``. It prints ``waiting`` when it first waits for another
process's lease (instead of calling), or ``calling`` if it calls upstream itself; then one JSON
line: the answer it got and whether it called.
"""

from __future__ import annotations

import asyncio
import json
import sys

from agentcache import AgentCache
from agentcache.stores.sqlite import SQLiteLeases

_wait_released = SQLiteLeases.wait_released
_said = False


async def _wait_saying_so(self: SQLiteLeases, key: str, timeout: float) -> None:
    global _said
    if not _said:
        _said = True
        print("waiting", flush=True)
    await _wait_released(self, key, timeout)


SQLiteLeases.wait_released = _wait_saying_so  # type: ignore[method-assign]


async def main(url: str, key: str) -> dict[str, object]:
    called = False

    async def call(key: str) -> str:
        nonlocal called
        called = True
        print("calling", flush=True)
        return f"answer of the second process to {key}"

    async with AgentCache(url) as cache:
        got = await cache.get_or_call(key, call)
    return {"answer": got, "called": called}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))), flush=True)
