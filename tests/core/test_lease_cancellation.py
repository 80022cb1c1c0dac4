"""A caller cancelled at any await of the leased miss path leaves no lease behind."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agentcache import AgentCache
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream
from tests.stores.test_leases import ClaimSpy


def claims_in(path: Path) -> int:
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        return db.execute("SELECT count(*) FROM claims").fetchone()[0] if "claims" in tables else 0


async def test_a_caller_cancelled_while_its_claim_commits_releases_it(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    spy = ClaimSpy(store)  # before the cache: it asks the store for its leases once
    upstream = Upstream()
    async with AgentCache(store) as cache:
        caller = asyncio.ensure_future(cache.get_or_call("q", upstream))
        await spy.sent.wait()
        caller.cancel()  # the claim is on its way to the file, and will win
        await asyncio.gather(caller, return_exceptions=True)
        await spy.settle()  # the claim landed (and won), and what followed it
        assert claims_in(path) == 0, "an orphaned lease would make every other process wait its ttl"
        assert upstream.calls == 0
        # Another caller is not made to wait: it claims at once and calls.
        assert await asyncio.wait_for(cache.get_or_call("q", upstream), 5) == "answer to q"
