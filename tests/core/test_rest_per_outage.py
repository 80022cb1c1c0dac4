"""Calls already under way when an outage begins neither lengthen its rest nor the next one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentcache._notices import Notices
from tests.core.test_outage import Clock, Flaky, guard_over, probe_held


async def test_ten_concurrent_failures_rest_the_store_once(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    clock = Clock()
    guard = guard_over(store, clock)
    assert await guard.read(["k"], 0.0, None, Notices()) == [None]  # open and healthy
    store.broken = True
    store.gate = asyncio.Event()
    failing = [asyncio.ensure_future(guard.read(["k"], 0.0, None, Notices())) for _ in range(10)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*failing) == [None] * 10
    assert guard._read_rest_until - clock.now == 1.0
    assert guard._rest == 2.0
    await guard.aclose()


async def test_a_cancelled_read_probe_leaves_writes_able_to_probe(tmp_path: Path) -> None:
    store = Flaky(tmp_path / "c.db")
    guard, caller = await probe_held(store)  # the read failure rested reads and writes
    assert guard._probe is not None
    guard._probe.cancel()  # as a closing event loop does
    await asyncio.gather(caller, return_exceptions=True)
    assert guard._write_rest_until != float("inf")
    assert store.gate is not None
    store.gate.set()
    await guard.aclose()
