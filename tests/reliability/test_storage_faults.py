"""Storage faults: a full disk and a database locked by another process.

Every call still returns its answer (fail open, with a warning and ``stats.errors``), nothing is
stored half-way, nothing hangs, and caching resumes once the fault is gone.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning, codec
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream

GUARD = 60.0  # seconds: a hang becomes a failure


def big_answer(key: str) -> str:
    """About 16 KB that zlib cannot shrink much (so pages fill up fast)."""
    return key + ":" + os.urandom(12_000).hex()


def stored_rows(db: Path) -> dict[str, bytes]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return dict(conn.execute("SELECT key, value FROM entries").fetchall())
    finally:
        conn.close()


def assert_whole_or_absent(db: Path, cache: AgentCache, answers: dict[str, str]) -> int:
    """Every answer is either stored whole and right, or not at all; return how many are stored."""
    rows = stored_rows(db)
    for key, answer in answers.items():
        data = rows.get(cache.key(key))
        if data is not None:
            assert codec.decode(data) == answer, f"{key} stored half-way or wrong"
    return sum(cache.key(k) in rows for k in answers)


async def limit_pages(store: SQLiteStore, extra_pages: int | None) -> None:
    """Cap the writer's database size at its current size plus ``extra_pages`` (None: lift it)."""
    writer = store._file.writer
    if extra_pages is None:
        await writer.execute("PRAGMA max_page_count = 1073741823")
        return
    (count,) = next(iter(await writer.execute_fetchall("PRAGMA page_count")))
    await writer.execute(f"PRAGMA max_page_count = {count + extra_pages}")


@pytest.mark.usefixtures("patient_probes")
async def test_a_full_database_fails_open_stores_nothing_half_way_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "full.db"
    cache = AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0)
    store = cache.store
    assert isinstance(store, SQLiteStore)
    answers: dict[str, str] = {}

    async def call(key: str) -> str:
        answers[key] = big_answer(key)
        return answers[key]

    async with cache:
        await cache.get_or_call("first", call)
        await limit_pages(store, extra_pages=12)
        with pytest.warns(AgentCacheWarning, match="full") as record:
            for round_ in range(8):  # concurrent bursts: group commits that overflow mid-way
                keys = [f"r{round_}k{i}" for i in range(6)]
                got = await asyncio.gather(*(cache.get_or_call(k, call) for k in keys))
                assert got == [answers[k] for k in keys]
        assert len(record) == 1, "one warning per outage"
        assert cache.stats.errors > 0
        full_errors = cache.stats.errors
        stored_while_full = assert_whole_or_absent(db, cache, answers)
        assert stored_while_full < len(answers)

        await limit_pages(store, extra_pages=None)  # space returns
        with warnings.catch_warnings():
            warnings.simplefilter("error", AgentCacheWarning)
            later = {f"later{i}": await cache.get_or_call(f"later{i}", call) for i in range(10)}
        assert cache.stats.errors == full_errors
        never = Upstream()
        for key, answer in later.items():
            assert await cache.get_or_call(key, never) == answer  # served from the file
        assert never.calls == 0
    assert assert_whole_or_absent(db, cache, answers) == stored_while_full + len(later)


@pytest.mark.usefixtures("patient_probes")
async def test_a_full_filesystem_fails_open_and_caching_resumes_when_space_returns(
    small_disk: Path,
) -> None:
    db = small_disk / "cache" / "c.db"
    answers: dict[str, str] = {}

    async def call(key: str) -> str:
        answers[key] = big_answer(key)
        return answers[key]

    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0) as cache:
        await cache.get_or_call("first", call)
        filler = small_disk / "filler"
        with filler.open("wb") as f:  # take (almost) all the space that is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        with pytest.warns(AgentCacheWarning):
            for i in range(10):
                assert await cache.get_or_call(f"k{i}", call) == answers[f"k{i}"]
        assert cache.stats.errors > 0
        errors = cache.stats.errors
        filler.unlink()  # space returns
        with warnings.catch_warnings():
            warnings.simplefilter("error", AgentCacheWarning)
            for i in range(5):
                assert await cache.get_or_call(f"after{i}", call) == answers[f"after{i}"]
        assert cache.stats.errors == errors
    rows = stored_rows(db)
    assert all(cache.key(f"after{i}") in rows for i in range(5))
    assert_whole_or_absent(db, cache, answers)


# -- a database locked by another process ------------------------------------------------------

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive-mode":
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # in WAL mode this shuts readers out too
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE agentcache_meta SET value = value WHERE name = 'schema_version'")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class LockHolder:
    """Another process that holds a lock on the database until told to let go."""

    def __init__(self, db: Path, how: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), how],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "locked\n", "the holder could not take the lock"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        assert self.proc.wait(GUARD) == 0


async def assert_fails_open(cache: AgentCache, upstream: Upstream) -> None:
    with pytest.warns(AgentCacheWarning, match="locked"):
        got = await asyncio.wait_for(
            asyncio.gather(*(cache.get_or_call(f"k{i}", upstream) for i in range(20))), GUARD
        )
    assert got == [f"answer to k{i}" for i in range(20)]
    assert cache.stats.errors > 0


async def assert_caching_resumes(cache: AgentCache, upstream: Upstream) -> None:
    errors, calls = cache.stats.errors, upstream.calls
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgentCacheWarning)
        assert await cache.get_or_call("after", upstream) == "answer to after"
        assert await cache.get_or_call("after", upstream) == "answer to after"
        assert await cache.get_or_call("before", upstream) == "answer to before"
    assert (cache.stats.errors, upstream.calls) == (errors, calls + 1)


@pytest.mark.usefixtures("patient_probes")
async def test_a_write_lock_held_by_another_process_fails_open_without_hanging(tmp_path: Path) -> None:
    """BEGIN EXCLUSIVE elsewhere: reads go on (WAL), writes fail after the busy timeout."""
    db = tmp_path / "locked.db"
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{db}?busy_timeout=0.2", l1_max_entries=0, store_retry=0) as cache:
        await cache.get_or_call("before", upstream)
        holder = LockHolder(db, "write-lock")
        try:
            await assert_fails_open(cache, upstream)
        finally:
            holder.release()
        await assert_caching_resumes(cache, upstream)


@pytest.mark.usefixtures("patient_probes")
async def test_a_database_held_exclusively_at_open_fails_open_without_hanging(tmp_path: Path) -> None:
    """locking_mode=EXCLUSIVE elsewhere shuts out readers too: the open itself fails, once."""
    db = tmp_path / "locked.db"
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0) as cache:
        await cache.get_or_call("before", upstream)
    holder = LockHolder(db, "exclusive-mode")
    async with AgentCache(f"sqlite:///{db}?busy_timeout=0.2", l1_max_entries=0, store_retry=0) as cache:
        store = cache.store
        opens = 0
        real_open = store.open

        async def counted_open() -> None:
            nonlocal opens
            opens += 1
            await real_open()

        store.open = counted_open  # type: ignore[method-assign]
        try:
            await assert_fails_open(cache, upstream)
            # 20 concurrent first calls try the open once, not once each (20 busy timeouts).
            assert opens == 1
        finally:
            holder.release()
        await asyncio.sleep(0.1)  # the cache's store_retry: the rest before the next open attempt
        await assert_caching_resumes(cache, upstream)
