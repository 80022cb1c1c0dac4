"""Group commit in the SQLite store: concurrent upserts share one executemany, in submission order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentcache import AgentCache
from agentcache.stores import Entry
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream


async def test_concurrent_misses_are_written_by_one_executemany(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "cache.db")
    await store.open()
    writer = store._file.writer
    real = writer.executemany
    batches: list[int] = []

    async def counting(sql: str, rows: Any) -> Any:
        rows = list(rows)
        if "INTO entries" in sql:
            batches.append(len(rows))
        return await real(sql, rows)

    writer.executemany = counting  # type: ignore[method-assign]
    async with AgentCache(store) as cache:
        await asyncio.gather(*(cache.get_or_call(f"k{i}", Upstream()) for i in range(300)))
        assert cache.stats.stores == 300
    assert sum(batches) == 300
    assert len(batches) <= 2  # one group, maybe a second for misses that arrived mid-commit


async def test_writes_in_one_transaction_apply_in_submission_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "cache.db")
    first = Entry(value=b'j"first"', created_at=1.0)
    second = Entry(value=b'j"second"', created_at=2.0)
    try:
        await store.open()
        _, deleted, _, _ = await asyncio.gather(
            store.set_many([("default:v1:a", first)]),
            store.delete_many(["default:v1:a"]),  # sees the upsert queued before it
            store.set_many([("default:v1:a", second), ("default:v1:b", first)]),
            store.set_many([("default:v1:b", second)]),  # replaces the row merged before it
        )
        assert deleted == 1
        a, b = await store.get_many(["default:v1:a", "default:v1:b"], now=3.0)
        assert a is not None
        assert a.value == second.value
        assert b is not None
        assert b.value == second.value
    finally:
        await store.aclose()
