"""A fresh cache met by a crowd opens its store once and reads it in few batches, with few tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from agentcache import AgentCache
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream


class CountingOpens(SQLiteStore):
    opens = 0

    async def open(self) -> None:
        CountingOpens.opens += 1
        await super().open()


async def test_a_thousand_cold_hits_open_once_and_start_no_task_each(tmp_path: Path) -> None:
    path = tmp_path / "filled.db"
    prompts = [f"prompt {i}" for i in range(1000)]
    async with AgentCache(f"sqlite:///{path}") as cache:
        for prompt in prompts:
            await cache.set(prompt, f"answer {prompt}")

    loop = asyncio.get_running_loop()
    created = 0
    default_factory = loop.get_task_factory()

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kw: Any) -> Any:
        nonlocal created
        created += 1
        if default_factory is not None:
            return default_factory(loop, coro, **kw)
        return asyncio.Task(coro, loop=loop, **kw)

    upstream = Upstream()
    cache = AgentCache(CountingOpens(path))
    callers = [asyncio.ensure_future(cache.get_or_call(p, upstream)) for p in prompts]
    loop.set_task_factory(counting_factory)
    try:
        answers = await asyncio.gather(*callers)
    finally:
        loop.set_task_factory(default_factory)
        await cache.aclose()
    assert answers == [f"answer {p}" for p in prompts]
    assert upstream.calls == 0
    assert CountingOpens.opens == 1
    assert created < 50, f"{created} tasks for 1,000 cold hits"
