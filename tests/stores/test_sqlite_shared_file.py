"""Several connections (stores, processes) creating one new SQLite file at the same moment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agentcache.stores import Entry
from agentcache.stores.sqlite import SQLiteStore


async def test_several_stores_can_create_one_new_file_at_once(tmp_path: Path) -> None:
    stores = [SQLiteStore(tmp_path / "new.db") for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(s.set_many([(f"ns:v1:{i}", Entry(b"x", 1.0))]) for i, s in enumerate(stores)))
        found = await stores[0].get_many([f"ns:v1:{i}" for i in range(4)], 1.0)
        assert all(e is not None for e in found)
    finally:
        for s in stores:
            await s.aclose()
