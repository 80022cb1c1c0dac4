"""SIGKILL of a writer at random moments loses nothing that ``get_or_call`` had returned.

A child process (``crash_writer.py``) runs bursts of concurrent misses against one SQLite file and
acknowledges every returned value in a side file. The parent kills it with SIGKILL at a random
moment (sometimes before it has even opened the store, mostly in the middle of writing), again and
again, on the same file. After every kill: ``PRAGMA integrity_check`` is ok and every acknowledged
key is stored with the right answer; the next writer opens the crashed file without help; at the
end a fresh cache serves every acknowledged key from the store.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentcache import AgentCache, codec
from agentcache.keys import stored_key
from tests.reliability.crash_writer import expected

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def acknowledged(ack: Path) -> list[str]:
    """Keys whose value the writer had received before it died (complete lines only)."""
    lines = ack.read_text().splitlines(keepends=True)
    wrong = [line for line in lines if line.startswith("WRONG")]
    assert not wrong, f"the writer was served wrong answers: {wrong[:5]}"
    return [line.strip() for line in lines if line.endswith("\n")]


def check_file(db: Path, keys: set[str]) -> None:
    """Integrity ok, and every acknowledged key stored with its right answer."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = dict(conn.execute("SELECT key, value FROM entries").fetchall())
    finally:
        conn.close()
    missing = [k for k in keys if stored_key(k, "default") not in stored]
    assert not missing, f"{len(missing)} acknowledged values lost, e.g. {missing[:3]}"
    for k in keys:
        assert codec.decode(stored[stored_key(k, "default")]) == expected(k)


def kill_writers(db: Path, ack: Path, kills: int, seed: int) -> int:
    """Start and SIGKILL ``kills`` writers on ``db``; return how many were killed mid-writing."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mid_writing = 0
    for n in range(kills):
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(db), str(ack), str(seed * 1000 + n)],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            if rng.random() < 0.15:
                # Anywhere from process start: during import, file creation or schema setup.
                time.sleep(rng.uniform(0, 0.3))
            else:
                assert proc.stdout is not None
                assert proc.stdout.readline() == b"ready\n", f"writer {n} could not open the store"
                time.sleep(rng.uniform(0.005, 0.12))
                mid_writing += 1
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, f"writer {n} exited on its own: {proc.returncode}"
        if n % 2 == 0 and db.exists():
            # Every other time the parent checks first; otherwise the next writer is the first to
            # open the crashed file (and must do so without help).
            check_file(db, set(acknowledged(ack)))
    return mid_writing


async def crash_and_verify(tmp_path: Path, kills: int, seed: int) -> None:
    db, ack = tmp_path / "crash.db", tmp_path / "acks.txt"
    ack.touch()
    mid_writing = kill_writers(db, ack, kills, seed)
    keys = set(acknowledged(ack))
    assert mid_writing >= kills // 2
    assert len(keys) > kills * 10, "the writers acknowledged too little to prove anything"
    # The first opener after the last kill is a cache, not sqlite3: it must serve every value.
    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0) as cache:
        for k in sorted(keys):
            assert await cache.get(k) == expected(k), f"lost or wrong after {kills} kills: {k}"
        assert cache.stats.errors == 0
    check_file(db, keys)


async def test_sigkill_of_a_writer_20_times_loses_no_returned_value(tmp_path: Path) -> None:
    await crash_and_verify(tmp_path, kills=20, seed=7)


@pytest.mark.slow
async def test_sigkill_of_a_writer_100_times_loses_no_returned_value(tmp_path: Path) -> None:
    await crash_and_verify(tmp_path, kills=100, seed=11)
