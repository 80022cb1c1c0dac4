"""Cross-process dedup: P processes x C concurrent identical calls -> upstream calls and wall time.

Baseline: the same AgentCache with leases off (``lease=None``): single-flight inside each process
only, so every process pays. Ours: leases on, so one process calls and the others wait for its
value. Workers are real processes (this module run with ``--worker``), started together through a
stdin barrier; upstream calls are counted in a file they append to under ``flock``. Redis rows need
a server at ``$AGENTCACHE_BENCH_REDIS`` (default ``redis://127.0.0.1:6379/14``) and are skipped
(noted) when there is none.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PROCESSES = 4
CALLS = 250
CALL_SECONDS = 0.2  # simulated model latency
REPEATS = 3
REDIS_URL = os.environ.get("AGENTCACHE_BENCH_REDIS", "redis://127.0.0.1:6379/14")
ROOT = Path(__file__).resolve().parent.parent


def _trial(url: str, leases: bool) -> tuple[int, float]:
    """One run of PROCESSES workers: (upstream calls, wall seconds from the start signal)."""
    with tempfile.TemporaryDirectory() as tmp:
        count_file = Path(tmp) / "calls"
        count_file.touch()
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.crossprocess_bench", "--worker", url, str(count_file)]
                + (["leases"] if leases else []),
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        for w in workers:
            assert w.stdout is not None
            assert w.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        for w in workers:
            assert w.stdout is not None
            assert w.stdout.readline().strip() == "done"
        wall = time.perf_counter() - started
        for w in workers:
            w.communicate(timeout=30)
        if url.startswith("redis"):
            _delete_redis_prefix(url)
        return len(count_file.read_text().splitlines()), wall


def _delete_redis_prefix(url: str) -> None:
    from urllib.parse import parse_qs, urlsplit

    import redis

    prefix = parse_qs(urlsplit(url).query)["prefix"][0]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        doomed = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if doomed:
            client.delete(*doomed)
    finally:
        client.close()


def _rows_for(label: str, url_for: Any) -> list[dict[str, Any]]:
    results: dict[bool, list[tuple[int, float]]] = {False: [], True: []}
    for _ in range(REPEATS):
        for leases in (False, True):
            results[leases].append(_trial(url_for(), leases))
    calls = {k: statistics.median(c for c, _ in v) for k, v in results.items()}
    wall = {k: statistics.median(w for _, w in v) * 1000 for k, v in results.items()}
    return [
        {
            "name": f"cross-process {label}: {PROCESSES} procs x {CALLS} identical calls (upstream calls)",
            "baseline": calls[False],
            "ours": calls[True],
            "ratio": round(calls[False] / calls[True], 2),
            "note": f"wall ms, median of {REPEATS}: {wall[False]:.0f} without leases, {wall[True]:.0f} with "
            f"(upstream takes {CALL_SECONDS * 1000:.0f} ms)",
        }
    ]


def _redis_reachable() -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1.0):
            return True
    except OSError:
        return False


async def run() -> list[dict[str, Any]]:
    """SQLite and Redis rows (processes are started from a thread: the loop stays free)."""
    tmp = tempfile.TemporaryDirectory()
    try:

        def sqlite_url() -> str:
            return f"sqlite:///{tmp.name}/{uuid.uuid4().hex}.db"

        rows = await asyncio.to_thread(_rows_for, "sqlite", sqlite_url)
        if _redis_reachable():

            def redis_url() -> str:
                return f"{REDIS_URL}?prefix=agentcache-bench:{uuid.uuid4().hex[:8]}:"

            rows += await asyncio.to_thread(_rows_for, "redis", redis_url)
        else:
            rows.append(
                {
                    "name": "cross-process redis",
                    "baseline": None,
                    "ours": None,
                    "ratio": None,
                    "note": f"skipped: no Redis at {REDIS_URL}",
                }
            )
    finally:
        tmp.cleanup()
    return rows


async def _worker(url: str, count_file: str, leases: bool) -> None:
    from agentcache import AgentCache
    from agentcache.leasing import LeasePolicy

    async def upstream(prompt: str) -> str:
        with open(count_file, "a") as f:  # noqa: ASYNC230 - a tiny append, counted across processes
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write("call\n")
        await asyncio.sleep(CALL_SECONDS)
        return f"answer to {prompt}"

    async with AgentCache(url, namespace="bench", lease=LeasePolicy() if leases else None) as cache:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(*(cache.get_or_call("the prompt", upstream) for _ in range(CALLS)))
        print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(_worker(sys.argv[2], sys.argv[3], sys.argv[4:5] == ["leases"]))
    else:
        for row in asyncio.run(run()):
            print(json.dumps(row))
