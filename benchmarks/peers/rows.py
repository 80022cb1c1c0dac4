"""Measure the hot rows of the comparison: in-memory hits, persistent hits and writes, flights.

Contenders take turns within each round (``interleaved``), so load that drifts during the run
weighs on all of them alike. Every timed loop is checked for doing what it claims (a hit returns
the stored answer; a write is read back after a reopen), so a broken adapter fails loudly instead
of reporting a fast miss.
"""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import workload
from ..measure import interleaved
from .available import missing
from .flights import FLIGHT_CONTENDERS, UPSTREAM_SECONDS, FlightContender, Upstream
from .memory import MEMORY_CONTENDERS
from .persistent import PERSISTENT_CONTENDERS, Persistent
from .results import Result, Row

__all__ = ["Config", "Runner", "log", "slug"]

Pairs = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Config:
    """How big the run is; ``quick`` is for tests of the harness itself."""

    keys: int = 10_000
    repeats: int = 5
    concurrency: int = 1_000
    sequential: int = 2_000
    writes: int = 500
    cold_entries: int = 100_000

    @classmethod
    def quick(cls) -> Config:
        """A run of a few seconds that exercises every path."""
        return cls(keys=300, repeats=2, concurrency=50, sequential=100, writes=50, cold_entries=500)


def slug(name: str) -> str:
    """A folder name for a contender."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def skipped(name: str, absent: list[str], **flags: Any) -> Result:
    """The result of a contender whose packages are not installed."""
    return Result(name, error=f"not installed: {', '.join(absent)}", **flags)


_STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress, on stderr, with the seconds since the run started."""
    print(f"[{time.perf_counter() - _STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


class Runner:
    """Runs the rows under one scratch folder, with one workload held in memory."""

    def __init__(self, config: Config, scratch: Path) -> None:
        self.config = config
        self.scratch = scratch
        log(f"building the workload ({config.keys:,} keys)...")
        self.pairs = list(workload.items(0, config.keys))
        self._fresh = config.keys  # next unused workload index, for writes and flights

    def new_pairs(self, count: int) -> list[tuple[str, str]]:
        """Workload entries no store has seen yet."""
        start, self._fresh = self._fresh, self._fresh + count
        return list(workload.items(start, start + count))

    # -- in-memory hits ---------------------------------------------------------------------

    async def memory_hits(self) -> Row:
        """Sequential awaited hits on a warm in-memory cache, every key once per repeat."""
        row = Row("memory_hits", "Hits, in memory (sequential)", "µs/op")
        prompts = [p for p, _v in self.pairs]
        expected = self.pairs[-1][1]
        jobs: dict[str, Callable[[], Awaitable[float]]] = {}
        closers = []
        for contender in MEMORY_CONTENDERS:
            absent = missing(contender.requires)
            if absent:
                continue
            log(f"  memory: filling {contender.name}")
            root = self.scratch / "memory" / slug(contender.name)
            root.mkdir(parents=True, exist_ok=True)
            get, close = await contender.build(self.pairs, root)
            closers.append(close)
            if await get(prompts[-1]) != expected:
                raise AssertionError(f"{contender.name}: a hit returned the wrong answer")

            async def once(get: Any = get) -> float:
                start = time.perf_counter()
                for prompt in prompts:
                    await get(prompt)
                return (time.perf_counter() - start) / len(prompts) * 1e6

            jobs[contender.name] = once
        log("  memory: measuring")
        samples = await interleaved(self.config.repeats, jobs)
        for close in closers:
            await close()
        for contender in MEMORY_CONTENDERS:
            flags = {
                "agentcache": contender.agentcache,
                "baseline": contender.baseline,
                "reference": contender.reference,
            }
            if contender.name in samples:
                result = Result.of(contender.name, samples[contender.name], note=contender.note, **flags)
            else:
                result = skipped(contender.name, missing(contender.requires), **flags)
            row.results.append(result)
        return row

    # -- persistent hits and writes ---------------------------------------------------------

    async def persistent(self) -> list[Row]:
        """Fill each store, then reopen it for sequential/concurrent hits and writes."""
        cfg = self.config
        rows = [
            Row("hits_seq", "Hits, persistent, sequential (store reopened)", "µs/op"),
            Row("hits_conc", f"Hits, persistent, {cfg.concurrency:,} concurrent", "µs/op"),
            Row("writes_seq", "Writes, durable, sequential", "µs/entry"),
            Row("writes_conc", f"Writes, durable, {cfg.concurrency:,} concurrent", "µs/entry"),
        ]
        contenders = [cls for cls in PERSISTENT_CONTENDERS if cls.hot_rows]
        stores: dict[str, Persistent] = {}
        for cls in contenders:
            if missing(cls.requires):
                continue
            log(f"  persistent: filling {cls.name}")
            store = cls(self.scratch / "persistent" / slug(cls.name))
            await store.open()
            await store.fill(self.pairs)
            await store.close()
            stores[cls.name] = store
        seq_pairs = self.pairs[: cfg.sequential]
        conc_pairs = self.pairs[-cfg.concurrency :]
        rounds = [(self.new_pairs(cfg.writes), self.new_pairs(cfg.concurrency)) for _ in range(cfg.repeats)]
        used: dict[tuple[str, int], int] = {}

        def next_batch(name: str, which: int) -> Pairs:
            turn = used.get((name, which), 0)
            used[name, which] = turn + 1
            return rounds[turn][which]  # every store gets the same new entries in a round

        measures: list[Callable[[Persistent], Callable[[], Awaitable[float]]]] = [
            lambda s: lambda: _reads(s, seq_pairs, concurrent=False),
            lambda s: lambda: _reads(s, conc_pairs, concurrent=True),
            lambda s: lambda: _writes(s, next_batch(s.name, 0), concurrent=False),
            lambda s: lambda: _writes(s, next_batch(s.name, 1), concurrent=True),
        ]
        for row, measure in zip(rows, measures, strict=True):
            log(f"  persistent: measuring {row.title}")
            jobs = {name: measure(store) for name, store in stores.items()}
            samples = await interleaved(cfg.repeats, jobs)
            for cls in contenders:
                flags: dict[str, Any] = {
                    "agentcache": cls.agentcache,
                    "baseline": cls.baseline,
                    "blocks_loop": cls.blocks_loop,
                    "reference": cls.reference,
                    "note": cls.note,
                }
                if row.key.startswith("writes") and cls.write_note:
                    flags["note"] = f"{cls.note}; {cls.write_note}".lstrip("; ")
                if cls.name in samples:
                    row.results.append(Result.of(cls.name, samples[cls.name], **flags))
                else:
                    row.results.append(skipped(cls.name, missing(cls.requires), **flags))
        rows[3].results.extend(await self._write_references())
        return rows

    async def _write_references(self) -> list[Result]:
        """What the DESIGN targets compare concurrent writes with: batched executemany, misses."""
        jobs: dict[str, Callable[[], Awaitable[float]]] = {}
        n = self.config.concurrency
        if not missing(("aiosqlite",)):
            path = self.scratch / "persistent" / "executemany.db"
            jobs["aiosqlite executemany, 100 per commit"] = lambda: _executemany(path, self.new_pairs(n))
        if not missing(("agentcache.cache",)):
            root = self.scratch / "persistent" / "agentcache-misses"
            root.mkdir(parents=True, exist_ok=True)
            jobs["agentcache get_or_call misses (instant call)"] = lambda: _misses(root, self.new_pairs(n))
        samples = await interleaved(self.config.repeats, jobs)
        notes = {
            "aiosqlite executemany, 100 per commit": "reference for the DESIGN target",
            "agentcache get_or_call misses (instant call)": "the miss path: flight, encode, store",
        }
        return [
            Result.of(
                name,
                sample,
                agentcache=name.startswith("agentcache"),
                reference=not name.startswith("agentcache"),
                note=notes[name],
            )
            for name, sample in samples.items()
        ]

    # -- concurrent identical calls ---------------------------------------------------------

    async def identical_calls(self, contenders: Sequence[FlightContender] = FLIGHT_CONTENDERS) -> Row:
        """``concurrency`` tasks ask for one new prompt at once; count the upstream calls."""
        n = self.config.concurrency
        title = f"{n:,} concurrent identical calls (upstream sleeps {UPSTREAM_SECONDS * 1000:.0f} ms)"
        row = Row("identical", title, "ms wall")
        calls: dict[str, list[int]] = {}
        errors: dict[str, str] = {}
        jobs: dict[str, Callable[[], Awaitable[float]]] = {}
        for contender in contenders:
            if missing(contender.requires):
                continue
            root = self.scratch / "flights" / slug(contender.name)
            root.mkdir(parents=True, exist_ok=True)
            calls[contender.name] = []

            async def once(contender: Any = contender, root: Path = root) -> float:
                upstream = Upstream()
                prompt = self.new_pairs(1)[0][0]
                mine = calls[contender.name]
                call, close = await contender.build(upstream, root / str(len(mine)))
                start = time.perf_counter()
                outcome = await asyncio.gather(*(call(prompt) for _ in range(n)), return_exceptions=True)
                elapsed = time.perf_counter() - start
                await close()
                failed = [o for o in outcome if isinstance(o, BaseException)]
                if failed:
                    errors[contender.name] = f"fails: {type(failed[0]).__name__}: {failed[0]}"[:120]
                mine.append(upstream.calls)
                return elapsed * 1000

            jobs[contender.name] = once
        log("  identical calls: measuring")
        samples = await interleaved(self.config.repeats, jobs)
        for contender in contenders:
            flags = {"agentcache": contender.agentcache, "baseline": contender.baseline}
            if contender.name not in samples:
                row.results.append(skipped(contender.name, missing(contender.requires), **flags))
                continue
            result = Result.of(
                contender.name,
                samples[contender.name],
                note=contender.note,
                extra={"upstream_calls": calls[contender.name]},
                **flags,
            )
            if contender.name in errors:  # a contender that cannot do the job has no time
                result.error, result.values = errors[contender.name], []
            row.results.append(result)
        return row

    async def follower_cost(self, callers: int) -> dict[str, Any] | None:
        """DESIGN target: what agentcache adds per follower when ``callers`` share one call.

        Each caller is a task (what ``gather`` makes), so the floor is ``callers`` tasks awaiting
        one shared future: measured in the same round and subtracted.
        """
        if missing(("agentcache.cache",)):
            return None
        from agentcache import AgentCache

        async def crowd() -> tuple[float, int]:
            upstream = Upstream()
            prompt = self.new_pairs(1)[0][0]
            async with AgentCache("memory://") as cache:
                start = time.perf_counter()
                await asyncio.gather(*(cache.get_or_call(prompt, upstream) for _ in range(callers)))
                return time.perf_counter() - start, upstream.calls

        async def floor() -> float:
            shared = asyncio.get_running_loop().create_future()

            async def wait() -> Any:
                return await shared

            asyncio.get_running_loop().call_later(UPSTREAM_SECONDS, shared.set_result, "answer")
            start = time.perf_counter()
            await asyncio.gather(*(wait() for _ in range(callers)))
            return time.perf_counter() - start

        added: list[float] = []
        raw: list[float] = []
        calls: list[int] = []
        for _ in range(self.config.repeats):
            gc.collect()
            base = await floor()
            gc.collect()
            seconds, upstream_calls = await crowd()
            calls.append(upstream_calls)
            raw.append((seconds - UPSTREAM_SECONDS) / callers * 1e6)
            added.append((seconds - base) / callers * 1e6)
        return {
            "callers": callers,
            "upstream_calls": calls,
            "us_per_follower": added,
            "us_per_follower_raw": raw,
        }


async def _reads(store: Persistent, pairs: Pairs, concurrent: bool) -> float:
    await store.open()
    try:
        start = time.perf_counter()
        if concurrent:
            got = await asyncio.gather(*(store.get(p) for p, _v in pairs))
        else:
            got = [await store.get(p) for p, _v in pairs]
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    if got[0] != pairs[0][1] or got[-1] != pairs[-1][1]:
        raise AssertionError(f"{store.name}: a persistent hit returned the wrong answer")
    return elapsed / len(pairs) * 1e6


async def _writes(store: Persistent, pairs: Pairs, concurrent: bool) -> float:
    await store.open()
    try:
        start = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(store.set(p, v) for p, v in pairs))
        else:
            for p, v in pairs:
                await store.set(p, v)
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    await store.open()  # durable: readable after a reopen
    try:
        if await store.get(pairs[-1][0]) != pairs[-1][1]:
            raise AssertionError(f"{store.name}: a written entry was not read back")
    finally:
        await store.close()
    return elapsed / len(pairs) * 1e6


async def _executemany(path: Path, pairs: Pairs) -> float:
    import aiosqlite

    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value)")
        start = time.perf_counter()
        for i in range(0, len(pairs), 100):
            rows = [(workload.hashed_key(p), v) for p, v in pairs[i : i + 100]]
            await db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", rows)
            await db.commit()
        return (time.perf_counter() - start) / len(pairs) * 1e6


async def _misses(root: Path, pairs: Pairs) -> float:
    from agentcache import AgentCache

    answers = dict(pairs)

    async def instant(prompt: str) -> str:
        return answers[prompt]

    url = f"sqlite:///{root / 'cache.db'}"
    async with AgentCache(url) as cache:
        start = time.perf_counter()
        await asyncio.gather(*(cache.get_or_call(p, instant) for p, _v in pairs))
        elapsed = time.perf_counter() - start
    async with AgentCache(url) as cache:
        if await cache.get(pairs[-1][0]) != pairs[-1][1]:
            raise AssertionError("agentcache: a missed answer was not stored")
    return elapsed / len(pairs) * 1e6
