"""Measure each row of the comparison: the loops, the repeats and the correctness checks.

Every timed loop is preceded by a check that it measures what it claims (a hit returns the stored
answer; a write can be read back after a reopen), so a broken adapter fails loudly instead of
reporting a fast miss.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import workload
from ..measure import Sample, arepeat
from .available import missing
from .flights import FLIGHT_CONTENDERS, UPSTREAM_SECONDS, Upstream
from .memory import MEMORY_CONTENDERS
from .persistent import PERSISTENT_CONTENDERS, Persistent
from .results import Result, Row

__all__ = ["Config", "Runner"]


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


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _skipped(name: str, absent: list[str], **flags: Any) -> Result:
    return Result(name, error=f"not installed: {', '.join(absent)}", **flags)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Runs the rows under one scratch folder, with one workload held in memory."""

    def __init__(self, config: Config, scratch: Path) -> None:
        self.config = config
        self.scratch = scratch
        _log(f"building the workload ({config.keys} keys)...")
        self.pairs = list(workload.items(0, config.keys))
        self._fresh = config.keys  # next unused workload index, for writes and flights

    def _new_pairs(self, count: int) -> list[tuple[str, str]]:
        start, self._fresh = self._fresh, self._fresh + count
        return list(workload.items(start, start + count))

    # -- in-memory hits ---------------------------------------------------------------------

    async def memory_hits(self) -> Row:
        """Sequential awaited hits on a warm in-memory cache, every key once per repeat."""
        row = Row("memory_hits", "Hits, in memory (sequential)", "µs/op")
        prompts = [p for p, _v in self.pairs]
        expected = self.pairs[-1][1]
        for contender in MEMORY_CONTENDERS:
            flags = {"agentcache": contender.agentcache, "baseline": contender.baseline}
            absent = missing(contender.requires)
            if absent:
                row.results.append(_skipped(contender.name, absent, **flags))
                continue
            _log(f"  memory hits: {contender.name}")
            root = self.scratch / "memory" / _slug(contender.name)
            root.mkdir(parents=True, exist_ok=True)
            get, close = await contender.build(self.pairs, root)
            if await get(prompts[-1]) != expected:
                raise AssertionError(f"{contender.name}: a hit returned the wrong answer")

            async def once(get: Any = get) -> float:
                start = time.perf_counter()
                for prompt in prompts:
                    await get(prompt)
                return (time.perf_counter() - start) / len(prompts) * 1e6

            sample = await arepeat(self.config.repeats, once)
            await close()
            row.results.append(Result.of(contender.name, sample, note=contender.note, **flags))
        return row

    # -- persistent hits and writes ---------------------------------------------------------

    async def persistent(self) -> list[Row]:
        """Fill each store, then reopen it for sequential/concurrent hits and writes."""
        cfg = self.config
        rows = [
            Row("hits_seq", "Hits, persistent, sequential (store reopened)", "µs/op"),
            Row("hits_conc", f"Hits, persistent, {cfg.concurrency} concurrent", "µs/op"),
            Row("writes_seq", "Writes, durable, sequential", "µs/entry"),
            Row("writes_conc", f"Writes, durable, {cfg.concurrency} concurrent", "µs/entry"),
        ]
        seq_pairs = self.pairs[: cfg.sequential]
        conc_pairs = self.pairs[-cfg.concurrency :]
        write_batches = [
            (self._new_pairs(cfg.writes), self._new_pairs(cfg.concurrency))
            for _ in range(cfg.repeats)
        ]
        for cls in PERSISTENT_CONTENDERS:
            flags = {
                "agentcache": cls.agentcache,
                "baseline": cls.baseline,
                "blocks_loop": cls.blocks_loop,
                "note": cls.note,
            }
            absent = missing(cls.requires)
            if absent:
                for row in rows:
                    row.results.append(_skipped(cls.name, absent, **flags))
                continue
            _log(f"  persistent: {cls.name}")
            store = cls(self.scratch / "persistent" / _slug(cls.name))
            await store.open()
            await store.fill(self.pairs)
            await store.close()
            samples = await self._persistent_rows(store, seq_pairs, conc_pairs, write_batches)
            for row, sample in zip(rows, samples, strict=True):
                note = cls.note
                if row.key.startswith("writes") and cls.write_note:
                    note = f"{note}; {cls.write_note}".lstrip("; ")
                row.results.append(Result.of(cls.name, sample, **{**flags, "note": note}))
        rows[3].results.extend(await self._batched_references(write_batches))
        return rows

    async def _persistent_rows(
        self,
        store: Persistent,
        seq_pairs: Sequence[tuple[str, str]],
        conc_pairs: Sequence[tuple[str, str]],
        write_batches: Sequence[tuple[list[tuple[str, str]], list[tuple[str, str]]]],
    ) -> list[Sample]:
        async def reads(pairs: Sequence[tuple[str, str]], concurrent: bool) -> float:
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

        async def writes(which: int, concurrent: bool) -> float:
            pairs = write_batches[counter[which]][which]
            counter[which] += 1
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

        counter = [0, 0]
        repeats = self.config.repeats
        return [
            await arepeat(repeats, lambda: reads(seq_pairs, concurrent=False)),
            await arepeat(repeats, lambda: reads(conc_pairs, concurrent=True)),
            await arepeat(repeats, lambda: writes(0, concurrent=False)),
            await arepeat(repeats, lambda: writes(1, concurrent=True)),
        ]

    async def _batched_references(
        self, write_batches: Sequence[tuple[list[tuple[str, str]], list[tuple[str, str]]]]
    ) -> list[Result]:
        """What the DESIGN targets compare concurrent writes with: batched executemany, misses."""
        out: list[Result] = []
        if not missing(("aiosqlite",)):
            import aiosqlite

            path = self.scratch / "persistent" / "executemany.db"
            batches = iter([b for _seq, b in write_batches])

            async def executemany() -> float:
                pairs = next(batches)
                async with aiosqlite.connect(path) as db:
                    await db.execute("PRAGMA journal_mode=WAL")
                    await db.execute("PRAGMA synchronous=NORMAL")
                    await db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value)")
                    start = time.perf_counter()
                    for i in range(0, len(pairs), 100):
                        await db.executemany(
                            "INSERT OR REPLACE INTO kv VALUES (?, ?)",
                            [(workload.hashed_key(p), v) for p, v in pairs[i : i + 100]],
                        )
                        await db.commit()
                    return (time.perf_counter() - start) / len(pairs) * 1e6

            sample = await arepeat(self.config.repeats, executemany)
            out.append(Result.of("aiosqlite executemany, 100 per commit", sample, note="reference"))
        if not missing(("agentcache.cache",)):
            from agentcache import AgentCache

            root = self.scratch / "persistent" / "agentcache-misses"
            root.mkdir(parents=True, exist_ok=True)

            async def misses() -> float:
                pairs = self._new_pairs(self.config.concurrency)
                answers = dict(pairs)

                async def instant(prompt: str) -> str:
                    return answers[prompt]

                async with AgentCache(f"sqlite:///{root / 'cache.db'}") as cache:
                    start = time.perf_counter()
                    await asyncio.gather(*(cache.get_or_call(p, instant) for p, _v in pairs))
                    elapsed = time.perf_counter() - start
                async with AgentCache(f"sqlite:///{root / 'cache.db'}") as cache:
                    if await cache.get(pairs[-1][0]) != pairs[-1][1]:
                        raise AssertionError("agentcache: a missed answer was not stored")
                return elapsed / len(pairs) * 1e6

            sample = await arepeat(self.config.repeats, misses)
            out.append(
                Result.of(
                    "agentcache get_or_call misses (instant call)",
                    sample,
                    agentcache=True,
                    note="the miss path: flight + store",
                )
            )
        return out

    # -- concurrent identical calls ---------------------------------------------------------

    async def identical_calls(self) -> Row:
        """``concurrency`` tasks ask for one new prompt at once; count the upstream calls."""
        n = self.config.concurrency
        row = Row(
            "identical",
            f"{n} concurrent identical calls (upstream sleeps {UPSTREAM_SECONDS * 1000:.0f} ms)",
            "ms wall",
        )
        for contender in FLIGHT_CONTENDERS:
            flags = {"agentcache": contender.agentcache, "baseline": contender.baseline}
            absent = missing(contender.requires)
            if absent:
                row.results.append(_skipped(contender.name, absent, **flags))
                continue
            _log(f"  identical calls: {contender.name}")
            calls: list[int] = []
            error: list[str] = []
            root = self.scratch / "flights" / _slug(contender.name)

            async def once(contender: Any = contender, root: Path = root) -> float:
                upstream = Upstream()
                prompt = self._new_pairs(1)[0][0]
                call, close = await contender.build(upstream, root / str(len(calls)))
                start = time.perf_counter()
                outcome = await asyncio.gather(*(call(prompt) for _ in range(n)), return_exceptions=True)
                elapsed = time.perf_counter() - start
                await close()
                failures = [o for o in outcome if isinstance(o, BaseException)]
                if failures:
                    error.append(f"{type(failures[0]).__name__}: {failures[0]}")
                calls.append(upstream.calls)
                return elapsed * 1000

            (root).mkdir(parents=True, exist_ok=True)
            sample = await arepeat(self.config.repeats, once)
            result = Result.of(
                contender.name, sample, note=contender.note, extra={"upstream_calls": calls}, **flags
            )
            if error:  # a contender that cannot do the job has no time to report
                result.error = error[0][:120]
                result.values = []
            row.results.append(result)
        return row

    async def follower_cost(self, callers: int = 10_000) -> dict[str, Any] | None:
        """DESIGN target: µs added per follower when ``callers`` share one agentcache call."""
        if missing(("agentcache.cache",)):
            return None
        from agentcache import AgentCache

        async def wall(count: int) -> tuple[float, int]:
            upstream = Upstream()
            prompt = self._new_pairs(1)[0][0]
            async with AgentCache("memory://") as cache:
                start = time.perf_counter()
                await asyncio.gather(*(cache.get_or_call(prompt, upstream) for _ in range(count)))
                return time.perf_counter() - start, upstream.calls

        alone: list[float] = []
        crowd: list[float] = []
        calls: list[int] = []
        for _ in range(self.config.repeats):
            alone.append((await wall(1))[0])
            seconds, upstream_calls = await wall(callers)
            crowd.append(seconds)
            calls.append(upstream_calls)
        added = Sample(tuple((c - a) / (callers - 1) * 1e6 for a, c in zip(alone, crowd)))
        return {"callers": callers, "upstream_calls": calls, "us_per_follower": list(added.values)}

    # -- cold open and size -----------------------------------------------------------------

    async def cold_open_and_size(self) -> list[Row]:
        """Fill a ``cold_entries`` store per library; time fresh processes that open it and read."""
        cfg = self.config
        opened = Row("cold_open", f"Cold open of a {cfg.cold_entries:,}-entry store", "ms")
        opened.explain = "A fresh process starts, imports the library, opens the store, reads one entry, exits"
        size = Row("size", f"Store size on disk, {cfg.cold_entries:,} entries", "bytes/entry")
        _log(f"building {cfg.cold_entries:,} entries for the cold-open stores...")
        pairs = self.pairs + list(workload.items(len(self.pairs), cfg.cold_entries))
        pairs = pairs[: cfg.cold_entries]
        raw = sum(len(v.encode()) + 64 for _p, v in pairs) / len(pairs)
        size.results.append(
            Result("raw payload (answer + sha256 hex key)", [raw], baseline=True, note="baseline")
        )
        probe = self.scratch / "probe.txt"
        probe.write_text(pairs[len(pairs) // 2][0])

        def bare() -> float:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            return (time.perf_counter() - start) * 1000

        opened.results.append(
            Result.of(
                "bare interpreter (python -c pass)",
                await arepeat(cfg.repeats, _sync(bare)),
                baseline=True,
                note="baseline",
            )
        )
        for cls in PERSISTENT_CONTENDERS:
            if cls.cold_open is None:
                continue
            flags = {"agentcache": cls.agentcache}
            absent = missing(cls.requires)
            if absent:
                opened.results.append(_skipped(cls.name, absent, **flags))
                size.results.append(_skipped(cls.name, absent, **flags))
                continue
            _log(f"  cold open: {cls.name}")
            root = self.scratch / "cold" / _slug(cls.name)
            shutil.rmtree(root, ignore_errors=True)
            store = cls(root)
            await store.open()
            await store.fill(pairs)
            await store.close()
            code = cls.cold_open

            def run(code: str = code, root: Path = root) -> float:
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-W", "ignore", "-c", code, str(root), str(probe)], check=True
                )
                return (time.perf_counter() - start) * 1000

            opened.results.append(Result.of(cls.name, await arepeat(cfg.repeats, _sync(run)), **flags))
            total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
            size.results.append(
                Result(cls.name, [total / len(pairs)], extra={"total_bytes": total}, **flags)
            )
            shutil.rmtree(root, ignore_errors=True)  # ~150 MB each; keep the scratch small
        return [opened, size]


def _sync(fn: Callable[[], float]) -> Callable[[], Any]:
    async def run() -> float:
        return fn()

    return run


def python_version() -> str:
    """The interpreter, for the report."""
    return sys.version.split()[0] + (" (PYTHONHASHSEED set)" if os.environ.get("PYTHONHASHSEED") else "")
