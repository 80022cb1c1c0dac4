"""Helpers of the file-fault tests: filling a disk, a fresh process's figures, what a file holds."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcache import AgentCache
from tests.reliability.file_fault_worker import answer

WORKER = Path(__file__).with_name("file_fault_worker.py")
GUARD = 60.0  # seconds: a hang becomes a failure


@dataclass
class ReadOnlyFolder:
    """A folder that ``freeze()`` makes read-only for the processes ``python`` starts."""

    path: Path
    freeze: Callable[[], None]
    python: list[str]


def fill_up(folder: Path) -> None:
    """Take every byte left on the filesystem of ``folder`` (smaller and smaller writes)."""
    with (folder / "filler").open("wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


def run_fresh_process(
    python: list[str], url: str, known: int, new: int, store_retry: float = 0.0, mode: str = "read_write"
) -> dict[str, Any]:
    """``file_fault_worker.py`` in a fresh process: what it served of ``known`` stored keys."""
    done = subprocess.run(
        [*python, str(WORKER), url, str(known), str(new), str(store_retry), mode],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


async def store_known(url: str, known: int) -> None:
    """Store the answers of ``k0``... (as ``file_fault_worker.py`` expects them), then close."""

    async def call(key: str) -> str:
        return answer(key)

    async with AgentCache(url) as cache:
        await asyncio.gather(*(cache.get_or_call(f"k{i}", call) for i in range(known)))
        assert cache.stats.stores == known


def stored_keys(db: Path) -> set[str]:
    """The keys stored in the cache file ``db``, read as the next process reads them (log included)."""
    conn = sqlite3.connect(f"{db.as_uri()}?mode=rw", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT key FROM entries")}
    finally:
        conn.close()
