"""A cache file deleted, renamed away or replaced while a cache has it open.

The cache notices at its next commit (the path's device and inode are no longer the file it
opened), warns once, writes nothing more into the old file, and opens the path afresh: a new cache
file, or, where another program's file now sits, a fail-open outage that never writes to it. No
answer whose call counted as stored is missing from the file the next process opens, and a second
process opening the path shares the first one's leases again.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import warnings
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning
from tests.helpers import Upstream
from tests.reliability.file_faults import GUARD, stored_keys

WAITER = Path(__file__).with_name("lease_waiter.py")
BURSTS = 10
PER_BURST = 20


async def acknowledged(cache: AgentCache, keys: list[str]) -> list[str]:
    """Ask for ``keys`` at once (each a miss); return those whose answer counted as stored."""
    upstream = Upstream()
    got = await asyncio.wait_for(
        asyncio.gather(*(cache.get_or_call(key, upstream, label=key) for key in keys)), GUARD
    )
    assert got == [f"answer to {key}" for key in keys]
    return [key for key in keys if cache.stats.by_label[key].stores == 1]


async def bursts_after_the_fault(cache: AgentCache) -> tuple[list[list[str]], list[str]]:
    """Bursts of misses after the fault: the acknowledged keys of each, and the warnings met."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        acked = []
        for burst in range(BURSTS):
            acked.append(await acknowledged(cache, [f"after{burst}-{i}" for i in range(PER_BURST)]))
    return acked, [str(w.message) for w in record if issubclass(w.category, AgentCacheWarning)]


def assert_warned_once(messages: list[str], cache: AgentCache) -> None:
    assert len(messages) == 1, messages
    assert "deleted, renamed or replaced" in messages[0]
    assert cache.stats.errors >= 1


def remove(db: Path, suffixes: tuple[str, ...] = ("", "-wal", "-shm")) -> None:
    for suffix in suffixes:
        os.unlink(f"{db}{suffix}")


async def test_a_deleted_file_is_noticed_and_a_new_one_made_at_the_path(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0) as cache:
        assert len(await acknowledged(cache, [f"before{i}" for i in range(PER_BURST)])) == PER_BURST
        remove(db)
        acked, warned = await bursts_after_the_fault(cache)
        keys = {cache.key(key) for burst in acked for key in burst}
    assert keys <= stored_keys(db)  # no acknowledged answer is lost
    assert len(acked[-1]) == PER_BURST  # caching resumed, in the new file
    assert_warned_once(warned, cache)


async def test_a_file_renamed_away_keeps_what_it_had_and_a_new_one_is_made(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    moved = tmp_path / "moved.db"
    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0) as cache:
        before = await acknowledged(cache, [f"before{i}" for i in range(PER_BURST)])
        os.rename(db, moved)  # the -wal and -shm files keep the old name
        acked, warned = await bursts_after_the_fault(cache)
        after = {cache.key(key) for burst in acked for key in burst}
        earlier = {cache.key(key) for key in before}
    assert db.exists()
    assert after <= stored_keys(db)  # no acknowledged answer is lost
    assert len(acked[-1]) == PER_BURST
    assert_warned_once(warned, cache)
    # The log left under the path's name was emptied into the moved file: that file holds all it
    # had, on its own, and the new file at the path did not take the old pages as its own.
    assert earlier <= stored_keys(moved)
    assert not earlier & stored_keys(db)


def another_programs_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
    conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("foreign", ["sqlite", "text"])
async def test_another_file_renamed_over_the_path_is_never_written_to(tmp_path: Path, foreign: str) -> None:
    db = tmp_path / "cache.db"
    theirs = tmp_path / "theirs.db"
    if foreign == "sqlite":
        another_programs_database(theirs)
    else:
        theirs.write_text("my notes, not a database\n")
    content = theirs.read_bytes()
    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0) as cache:
        await acknowledged(cache, [f"before{i}" for i in range(PER_BURST)])
        os.rename(theirs, db)
        acked, warned = await bursts_after_the_fault(cache)  # every call answered: fail-open
        assert db.read_bytes() == content
    assert db.read_bytes() == content  # closing did not write to it either
    if foreign == "sqlite":
        assert tables(db) == {"users"}  # our log's pages did not become part of their database
    assert acked == [[]] * BURSTS  # nothing counts as stored: there is no cache file now
    assert_warned_once(warned, cache)


@pytest.mark.usefixtures("patient_probes")
async def test_a_second_process_after_the_file_is_replaced_shares_the_first_ones_leases(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cache.db"
    url = f"sqlite:///{db}"
    async with AgentCache(url, l1_max_entries=0, store_retry=0) as cache:
        await cache.get_or_call("before", Upstream())
        remove(db)
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            await cache.get_or_call("noticed", Upstream())  # its commit finds the file gone
            await cache.get_or_call("reopened", Upstream())  # a new file at the path
        upstream = Upstream().gated()
        held = asyncio.ensure_future(cache.get_or_call("shared", upstream))
        await asyncio.wait_for(upstream.started.wait(), GUARD)  # its lease is held, in the new file
        second = await asyncio.create_subprocess_exec(
            sys.executable, str(WAITER), url, "shared", stdout=asyncio.subprocess.PIPE
        )
        assert second.stdout is not None
        try:
            said = await asyncio.wait_for(second.stdout.readline(), GUARD)
            assert said == b"waiting\n", "the second process did not meet the first one's lease"
            assert upstream.gate is not None
            upstream.gate.set()
            assert await asyncio.wait_for(held, GUARD) == "answer to shared"
            result = json.loads(await asyncio.wait_for(second.stdout.readline(), GUARD))
        finally:
            if second.returncode is None:
                second.kill()
            await second.wait()
        assert result == {"answer": "answer to shared", "called": False}
    assert_warned_once([str(w.message) for w in warned], cache)
