"""Event-loop stall: what other tasks feel while one write waits for another process's lock.

A second process takes SQLite's write lock on the contender's file (``BEGIN IMMEDIATE``) and keeps
it for ``LOCK_SECONDS``. Meanwhile this process starts one write, and a ticker task that wakes
every millisecond records the longest gap between its wake-ups. A store that waits for the lock in
a thread leaves the loop free (gap ~1 ms); one that waits on the loop's own thread stalls every
task for as long as the lock is held. The write itself waits either way.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from ..measure import interleaved
from .available import missing
from .persistent import PERSISTENT_CONTENDERS, Persistent
from .results import Result, Row
from .rows import Runner, log, skipped, slug

__all__ = ["LOCK_SECONDS", "loop_stall"]

LOCK_SECONDS = 0.2

_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


async def _ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def _stall_once(store: Persistent, prompt: str, answer: str, waits: list[float]) -> float:
    """Longest ticker gap (ms) while one write waits for another process's write lock."""
    await store.open()
    try:
        lock_file = store.root / (store.lock_file or "")
        locker = None
        if store.lock_file is not None:
            locker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _LOCKER,
                str(lock_file),
                str(LOCK_SECONDS),
                stdout=asyncio.subprocess.PIPE,
            )
            assert locker.stdout is not None
            if (await locker.stdout.readline()).strip() != b"locked":
                raise RuntimeError(f"could not lock {lock_file}")
        gaps: list[float] = []
        stop = asyncio.Event()
        ticking = asyncio.ensure_future(_ticker(gaps, stop))
        await asyncio.sleep(0.005)  # the ticker is running before the write starts
        start = time.perf_counter()
        await store.set(prompt, answer)
        waits.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0.005)  # and sees the loop again after it
        stop.set()
        await ticking
        if locker is not None:
            await locker.wait()
    finally:
        await store.close()
    return max(gaps) * 1000


async def loop_stall(runner: Runner) -> Row:
    """One row: the longest event-loop stall while a write waits ``LOCK_SECONDS`` for a lock."""
    row = Row(
        "stall",
        f"Event-loop stall while a write waits {LOCK_SECONDS * 1000:.0f} ms for another process's lock",
        "ms",
    )
    row.explain = (
        "The longest gap between the wake-ups of a 1 ms ticker task while one write waits for a "
        "lock another process holds; ~1 ms means the loop stayed free"
    )
    stores: dict[str, Persistent] = {}
    waits: dict[str, list[float]] = {}
    contenders = [c for c in PERSISTENT_CONTENDERS if c.hot_rows and (c.lock_file or c.baseline)]
    for cls in contenders:
        if missing(cls.requires):
            continue
        store = cls(runner.scratch / "stall" / slug(cls.name))
        await store.open()
        await store.fill(runner.pairs[:10])  # creates the file and its schema
        await store.close()
        stores[cls.name] = store
        waits[cls.name] = []
    log("  loop stall: measuring")
    fresh = iter(runner.new_pairs(len(stores) * runner.config.repeats))

    def job(name: str) -> Callable[[], Awaitable[float]]:
        return lambda: _stall_once(stores[name], *next(fresh), waits[name])

    samples = await interleaved(runner.config.repeats, {name: job(name) for name in stores})
    for cls in contenders:
        flags = {
            "agentcache": cls.agentcache,
            "baseline": cls.baseline,
            "blocks_loop": cls.blocks_loop,
            "reference": cls.reference,
        }
        if cls.name not in samples:
            row.results.append(skipped(cls.name, missing(cls.requires), **flags))
            continue
        wait = sorted(waits[cls.name])[len(waits[cls.name]) // 2]
        note = "no lock (baseline)" if cls.baseline else f"the write itself took {wait:,.0f} ms"
        row.results.append(Result.of(cls.name, samples[cls.name], note=note, **flags))
    return row
