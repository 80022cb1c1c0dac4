"""A caller cancelled at any await of the leased miss path leaves no lease behind."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from agentcache import AgentCache
from agentcache.stores.capabilities import LeaseStore
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream


class ClaimSeen:
    """The real leases of a store, telling the test when a claim has been sent."""

    def __init__(self, inner: LeaseStore) -> None:
        self.inner = inner
        self.sent = asyncio.Event()

    async def claim(self, key: str, token: str, ttl: float) -> bool:
        self.sent.set()
        return await self.inner.claim(key, token, ttl)

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        return await self.inner.renew(key, token, ttl)

    async def release(self, key: str, token: str) -> None:
        await self.inner.release(key, token)

    async def wait_released(self, key: str, timeout: float) -> None:
        await self.inner.wait_released(key, timeout)

    async def settle(self) -> None:
        await self.inner.settle()


class WatchedClaims(SQLiteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.watched = ClaimSeen(super().leases())

    def leases(self) -> Any:
        return self.watched


def claims_in(path: Path) -> int:
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        return db.execute("SELECT count(*) FROM claims").fetchone()[0] if "claims" in tables else 0


async def test_a_caller_cancelled_while_its_claim_commits_releases_it(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = WatchedClaims(path)
    upstream = Upstream()
    async with AgentCache(store) as cache:
        caller = asyncio.ensure_future(cache.get_or_call("q", upstream))
        await store.watched.sent.wait()
        caller.cancel()  # the claim is on its way to the file, and will win
        await asyncio.gather(caller, return_exceptions=True)
        await store.watched.settle()  # the claim landed (and won), and what followed it
        assert claims_in(path) == 0, "an orphaned lease would make every other process wait its ttl"
        assert upstream.calls == 0
        # Another caller is not made to wait: it claims at once and calls.
        assert await asyncio.wait_for(cache.get_or_call("q", upstream), 5) == "answer to q"
