"""Cold open and size: fill a large store per library, then time fresh processes that read it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from .. import workload
from ..measure import interleaved
from .available import missing
from .persistent import PERSISTENT_CONTENDERS
from .results import Result, Row
from .rows import Runner, log, skipped, slug

__all__ = ["cold_open_and_size"]


def _timed(argv: list[str]) -> Callable[[], Awaitable[float]]:
    async def once() -> float:
        start = time.perf_counter()
        # Blocking on purpose: the child is the only thing running while it is timed.
        done = subprocess.run(argv, capture_output=True, text=True)  # noqa: ASYNC221
        if done.returncode != 0:
            raise RuntimeError(f"{argv[-3:]} failed:\n{done.stderr}")
        return (time.perf_counter() - start) * 1000

    return once


async def cold_open_and_size(runner: Runner) -> list[Row]:
    """Two rows: ms for a fresh process to open a ``cold_entries`` store and read; bytes per entry."""
    cfg = runner.config
    entries = cfg.cold_entries
    opened = Row("cold_open", f"Cold open of a {entries:,}-entry store", "ms")
    opened.explain = (
        "A fresh process starts, imports the library, opens the store, reads one entry and exits; "
        "the OS page cache is warm"
    )
    size = Row("size", f"Store size on disk, {entries:,} entries", "bytes/entry")
    log(f"building {entries:,} entries for the cold-open stores...")
    pairs = runner.pairs[:entries] + list(workload.items(len(runner.pairs), entries))
    raw = sum(len(v.encode()) + 64 for _p, v in pairs) / len(pairs)
    size.results.append(
        Result("raw payload (answer + sha256 hex key)", [raw], baseline=True, note="baseline")
    )
    probe = runner.scratch / "probe.txt"
    probe.write_text(pairs[len(pairs) // 2][0])

    jobs = {"bare interpreter (python -c pass)": _timed([sys.executable, "-c", "pass"])}
    roots: list[Path] = []
    contenders = [cls for cls in PERSISTENT_CONTENDERS if cls.cold_open is not None]
    for cls in contenders:
        if missing(cls.requires):
            continue
        log(f"  cold open: filling {cls.name}")
        root = runner.scratch / "cold" / slug(cls.name)
        roots.append(root)
        store = cls(root)
        await store.open()
        await store.fill(pairs)
        await store.close()
        total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        size.results.append(
            Result(
                cls.name,
                [total / len(pairs)],
                agentcache=cls.agentcache,
                reference=cls.reference,
                note=f"{total / 2**20:,.0f} MiB in all",
                extra={"total_bytes": total},
            )
        )
        code = cls.cold_open or ""
        jobs[cls.name] = _timed([sys.executable, "-W", "ignore", "-c", code, str(root), str(probe)])
    log("  cold open: measuring")
    samples = await interleaved(cfg.repeats, jobs)
    for root in roots:  # ~150 MB each; keep the scratch folder small
        shutil.rmtree(root, ignore_errors=True)
    opened.results.append(
        Result.of(
            "bare interpreter (python -c pass)",
            samples.pop("bare interpreter (python -c pass)"),
            baseline=True,
            note="baseline",
        )
    )
    for cls in contenders:
        if cls.name in samples:
            opened.results.append(
                Result.of(cls.name, samples[cls.name], agentcache=cls.agentcache, reference=cls.reference)
            )
        else:
            absent = missing(cls.requires)
            opened.results.append(skipped(cls.name, absent, agentcache=cls.agentcache))
            size.results.append(skipped(cls.name, absent, agentcache=cls.agentcache))
    return [opened, size]
