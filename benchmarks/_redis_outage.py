"""What a Redis that stops answering costs the calls made meanwhile: ``python -m benchmarks._redis_outage``.

Starts a redis-server of its own on a free port (``redis-server`` must be on the PATH), fills nothing,
connects one AgentCache (default options), pauses the server with SIGSTOP (a partition looks the
same to a client), and makes ``CONCURRENT`` concurrent calls and then ``SEQUENTIAL`` sequential
ones, each with an upstream of ``UPSTREAM`` seconds (a stand-in for an LLM call, so that the
sequence spans the guard's rests and probes). Then SIGCONT, and calls until an answer is stored
again. A call "stalled" when it took more than ``STALLED`` seconds beyond its upstream time.

Not a benchmark of the suite (a leading underscore keeps ``python -m benchmarks`` from running
it): it measures an outage, and takes a minute on code that stalls 10 s per command.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings

from agentcache import AgentCache

CONCURRENT = int(os.environ.get("OUTAGE_CONCURRENT", "20"))
SEQUENTIAL = int(os.environ.get("OUTAGE_SEQUENTIAL", "200"))
UPSTREAM = float(os.environ.get("OUTAGE_UPSTREAM", "0.025"))
STALLED = 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int, folder: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on the PATH")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", folder], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if b"Ready to accept connections" in line:
            return proc
    raise SystemExit("redis-server exited early")


async def _measure(url: str, pid: int) -> None:
    async def upstream(key: str) -> str:
        await asyncio.sleep(UPSTREAM)
        return f"answer {key}"

    async def one(cache: AgentCache, key: str) -> float:
        started = time.perf_counter()
        assert await cache.get_or_call(key, upstream) == f"answer {key}"
        return time.perf_counter() - started - UPSTREAM

    async with AgentCache(url) as cache:
        await cache.get_or_call("warm", upstream)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.perf_counter()
            burst = await asyncio.gather(*(one(cache, f"c{i}") for i in range(CONCURRENT)))
            burst_wall = time.perf_counter() - started
            after = [await one(cache, f"s{i}") for i in range(SEQUENTIAL)]
            total = time.perf_counter() - started
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed, stored, i = time.perf_counter(), cache.stats.stores, 0
        while cache.stats.stores == stored and time.perf_counter() - resumed < 60:
            await cache.get_or_call(f"back{i}", upstream)
            i += 1
            await asyncio.sleep(0.02)
        back = time.perf_counter() - resumed

    def stalls(seconds: list[float]) -> str:
        slow = [s for s in seconds if s > STALLED]
        return f"longest {max(seconds):.2f}s, stalled {len(slow)} of {len(seconds)}"

    print(f"concurrent {CONCURRENT}: wall {burst_wall:.2f}s; {stalls(burst)}")
    print(f"then sequential {SEQUENTIAL}: {stalls(after)} {[round(s, 2) for s in after if s > STALLED]}")
    upstream_time = (1 + SEQUENTIAL) * UPSTREAM
    print(
        f"all {CONCURRENT + SEQUENTIAL} calls: {total:.2f}s, of which upstream {upstream_time:.2f}s, "
        f"waiting on the paused server {total - upstream_time:.2f}s"
    )
    print(f"stored again {back:.2f}s after SIGCONT")


def main() -> None:
    """Start the server, measure, stop it."""
    warnings.simplefilter("ignore")  # the outage warning is expected
    with tempfile.TemporaryDirectory() as folder:
        port = _free_port()
        proc = _start(port, folder)
        try:
            asyncio.run(_measure(f"redis://127.0.0.1:{port}/0", proc.pid))
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
