"""Measure one size of the store: hit latency, write throughput, size, memory, open and scan time.

Every figure is taken through the public API a user calls (``AgentCache``), except the fill, which
writes the same records ``AgentCache.set`` would straight into the store, in big batches, because
filling is setup and not what is being measured.
"""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentcache import AgentCache, codec
from agentcache.keys import canonical_json
from agentcache.stores import Entry
from agentcache.stores.sqlite import SQLiteStore

from .. import workload
from ..measure import percentile

__all__ = ["L1_BOUND", "Point", "fill", "measure_point", "query_plans"]

L1_BOUND = 10_000
"""The cache's l1_max_entries in every probe; the hit pass touches twice as many keys."""

_COLD_OPEN = """
import asyncio, sys, time
start = time.perf_counter()
from agentcache import AgentCache
prompt = open(sys.argv[2]).read()
async def main():
    async with AgentCache("sqlite:///" + sys.argv[1]) as cache:
        assert await cache.get(prompt) is not None
asyncio.run(main())
"""


@dataclass
class Point:
    """The measurements at one store size (times in µs unless named otherwise)."""

    entries: int
    hit_p50: float = 0.0
    hit_p99: float = 0.0
    hits_concurrent_per_s: float = 0.0
    write_seq_us: float = 0.0
    writes_concurrent_per_s: float = 0.0
    bytes_per_entry: float = 0.0
    file_mib: float = 0.0
    rss_mib: float = 0.0
    l1_entries: int = 0
    open_ms: float = 0.0
    cold_process_ms: float = 0.0
    scan_first_ms: float = 0.0
    scan_namespace_first_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def rss_mib() -> float:
    """Resident memory of this process now (not the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def fill(path: Path, start: int, stop: int, namespace: str = "default") -> None:
    """Write entries ``start..stop`` as ``AgentCache.set`` would, 2,000 per transaction."""
    keyer = AgentCache("memory://", namespace=namespace)
    store = SQLiteStore(path)
    await store.open()
    try:
        now = time.time()
        for lo in range(start, stop, 2_000):
            batch = []
            for i, (prompt, answer) in enumerate(workload.items(lo, min(stop, lo + 2_000)), lo):
                # Distinct creation times, as real entries have (ties would distort the scans).
                entry = Entry(
                    value=codec.encode(answer),
                    created_at=now + i * 1e-4,
                    material=canonical_json(prompt),
                )
                batch.append((keyer.key(prompt), entry))
            await store.set_many(batch)
    finally:
        await store.aclose()


async def measure_point(
    path: Path, entries: int, fresh: int, samples: int, repeats: int, l1_bound: int = L1_BOUND
) -> Point:
    """Everything at one size; ``fresh`` is the first workload index not yet in the store."""
    url = f"sqlite:///{path}"
    point = Point(entries)
    rng = random.Random(entries)
    indices = rng.sample(range(entries), min(entries, 2 * l1_bound))
    probe_prompts = [workload.prompt(i) for i in indices]

    # Hit latency: a fresh cache (empty L1), keys spread over the whole store, one at a time.
    async def miss(_prompt: str) -> str:
        raise AssertionError("a hit was expected")

    latencies: list[float] = []
    opens: list[float] = []
    gc.collect()
    rss_before = rss_mib()
    for _ in range(repeats):
        start = time.perf_counter()
        cache = AgentCache(url, l1_max_entries=l1_bound)
        await cache.get(probe_prompts[0])
        opens.append((time.perf_counter() - start) * 1000)
        async with cache:
            for prompt in probe_prompts[1 : samples + 1]:
                start = time.perf_counter()
                await cache.get_or_call(prompt, miss)
                latencies.append((time.perf_counter() - start) * 1e6)
    latencies.sort()
    point.hit_p50 = percentile(latencies, 0.50)
    point.hit_p99 = percentile(latencies, 0.99)
    point.open_ms = sorted(opens)[len(opens) // 2]

    # Memory: one cache touches 2 x the L1 bound of distinct keys; the L1 must stay bounded.
    async with AgentCache(url, l1_max_entries=l1_bound) as cache:
        throughput = []
        for lo in range(0, len(probe_prompts), 1_000):
            chunk = probe_prompts[lo : lo + 1_000]
            start = time.perf_counter()
            await asyncio.gather(*(cache.get_or_call(p, miss) for p in chunk))
            throughput.append(len(chunk) / (time.perf_counter() - start))
        point.hits_concurrent_per_s = sorted(throughput)[len(throughput) // 2]
        # No public size of the L1; this private read is the only way to check its bound.
        point.l1_entries = len(cache._l1) if cache._l1 is not None else 0
        gc.collect()
        point.rss_mib = rss_mib()
    point.extra["rss_before_mib"] = rss_before

    # Writes through the API: sequential sets, then 1,000 concurrent sets per round.
    new = list(workload.items(fresh, fresh + 200 + 1_000 * repeats))
    async with AgentCache(url) as cache:
        start = time.perf_counter()
        for prompt, answer in new[:200]:
            await cache.set(prompt, answer)
        point.write_seq_us = (time.perf_counter() - start) / 200 * 1e6
        rates = []
        for r in range(repeats):
            chunk = new[200 + 1_000 * r : 200 + 1_000 * (r + 1)]
            start = time.perf_counter()
            await asyncio.gather(*(cache.set(p, v) for p, v in chunk))
            rates.append(len(chunk) / (time.perf_counter() - start))
        point.writes_concurrent_per_s = sorted(rates)[len(rates) // 2]
    point.extra["entries_after_writes"] = entries + len(new)

    # Listing (what the CLI does): time to the first entry of a newest-first scan.
    store = SQLiteStore(path)
    await store.open()
    try:
        for attr, namespace in (("scan_first_ms", None), ("scan_namespace_first_ms", "default")):
            start = time.perf_counter()
            async with aclosing(store.scan(namespace)) as entries_iter:
                async for _first in entries_iter:
                    break
            setattr(point, attr, (time.perf_counter() - start) * 1000)
    finally:
        await store.aclose()

    main_bytes, wal_bytes = _file_sizes(path)
    point.extra["wal_bytes"] = wal_bytes
    total = main_bytes + wal_bytes
    point.bytes_per_entry = total / (entries + len(new))
    point.file_mib = total / 2**20

    probe = path.with_name("probe.txt")
    probe.write_text(probe_prompts[0])
    colds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(  # noqa: ASYNC221 - timing the child; nothing else runs meanwhile
            [sys.executable, "-c", _COLD_OPEN, str(path), str(probe)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"the cold-open process failed:\n{done.stderr}")
        colds.append((time.perf_counter() - start) * 1000)
    point.cold_process_ms = sorted(colds)[len(colds) // 2]
    return point


def _file_sizes(path: Path) -> tuple[int, int]:
    """Bytes of the database file and of its write-ahead log (0 when checkpointed away)."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


_SCAN_COLUMNS = "key, value, created_at, expires_at, call_seconds, meta, hits, last_hit_at, material"


def query_plans(path: Path) -> list[tuple[str, str]]:
    """SQLite's plan for each statement the store runs: a SCAN of entries is a full-table pass."""
    import sqlite3

    from agentcache.stores.sqlite import _schema as module

    statements = [
        ("hit (get_many)", module.SELECT_KEYS.format("?"), ("k",)),
        ("hit bookkeeping (note_hit flush)", module.NOTE_HITS, (1, 0.0, "k")),
        ("delete one key", "DELETE FROM entries WHERE key IN (?)", ("k",)),
        ("clear(namespace)", "DELETE FROM entries WHERE namespace = ?", ("ns",)),
        (
            "scan() newest first, all namespaces",
            f"SELECT {_SCAN_COLUMNS} FROM entries ORDER BY created_at DESC, key DESC",
            (),
        ),
        (
            "scan(namespace) newest first",
            f"SELECT {_SCAN_COLUMNS} FROM entries WHERE namespace = ? ORDER BY created_at DESC, key DESC",
            ("ns",),
        ),
    ]
    conn = sqlite3.connect(path)
    try:
        return [
            (name, "; ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)))
            for name, sql, params in statements
        ]
    finally:
        conn.close()
