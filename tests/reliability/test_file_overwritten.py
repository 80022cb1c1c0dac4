"""A cache file overwritten in place while a cache has it open is never written again.

Another program writes over the file (the same file: same inode, other bytes). The cache finds
out (the header no longer reads as its database, or SQLite reports the file damaged), stops
reading and writing it, fails open with one warning for the whole outage, and leaves every byte
as the other program wrote it, closing included (no checkpoint puts our pages back).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import warnings
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream
from tests.reliability.file_faults import GUARD

KNOWN = 200


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def overwrite(db: Path, start: int) -> None:
    """Random bytes over the file from ``start`` on, in place."""
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(start)
        f.write(os.urandom(size - start))


async def page_size(store: SQLiteStore) -> int:
    rows = await store._file.reader.execute_fetchall("PRAGMA page_size")
    return int(next(iter(rows))[0])


@pytest.mark.parametrize("where", ["whole file", "past the first page"])
async def test_a_file_overwritten_in_place_is_never_written_again_and_warned_once(
    tmp_path: Path, where: str
) -> None:
    db = tmp_path / "cache.db"
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{db}", l1_max_entries=0, store_retry=0) as cache:
        store = cache.store
        assert isinstance(store, SQLiteStore)
        await asyncio.gather(*(cache.get_or_call(f"k{i}", upstream) for i in range(KNOWN)))
        await store._file.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file
        await asyncio.gather(*(cache.get_or_call(f"wal{i}", upstream) for i in range(20)))  # some in the log
        # The header intact: only SQLite's own errors can tell (SQLITE_CORRUPT / SQLITE_NOTADB).
        overwrite(db, 0 if where == "whole file" else await page_size(store))
        theirs = digest(db)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for i in range(100):  # misses and known keys, interleaved: every call answered
                got = await asyncio.wait_for(
                    asyncio.gather(
                        cache.get_or_call(f"new{i}", upstream), cache.get_or_call(f"k{i}", upstream)
                    ),
                    GUARD,
                )
                assert got == [f"answer to new{i}", f"answer to k{i}"]
                assert digest(db) == theirs
        assert cache.stats.errors >= 1
    assert digest(db) == theirs  # closing wrote nothing into it either
    messages = [str(w.message) for w in record if issubclass(w.category, AgentCacheWarning)]
    assert len(messages) == 1, messages  # one outage, one warning
    assert "stops using it" in messages[0]
