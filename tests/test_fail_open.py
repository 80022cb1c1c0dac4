"""Store failures never become pipeline failures: call through, warn once per outage, count."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from agentcache import (
    AgentCache,
    AgentCacheWarning,
    BackendError,
    BackendUnavailableError,
    CacheMissError,
    ConfigurationError,
)
from agentcache.stores import Entry
from agentcache.stores.capabilities import Lease
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import Upstream


class FlakyStore:
    """A real SQLite store with a switch that makes every operation fail (fault injection)."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStore(path)
        self.url = self.inner.url
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise BackendUnavailableError("injected outage")

    async def open(self) -> None:
        self._check()
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        self._check()
        return await self.inner.get_many(keys, now)

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        self._check()
        await self.inner.set_many(items, release=release)

    async def delete_many(self, keys: Sequence[str]) -> int:
        self._check()
        return await self.inner.delete_many(keys)

    async def clear(self, namespace: str | None) -> int:
        self._check()
        return await self.inner.clear(namespace)

    async def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        self._check()
        async for item in self.inner.scan(namespace):
            yield item

    def note_hit(self, key: str, now: float) -> None:
        self.inner.note_hit(key, now)


@pytest.mark.usefixtures("patient_probes")
async def test_an_outage_calls_through_warns_once_and_counts(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "c.db")
    upstream = Upstream()
    async with AgentCache(store, l1_max_entries=0, store_retry=0) as cache:
        await cache.get_or_call("before", upstream)
        store.broken = True
        with pytest.warns(AgentCacheWarning, match="injected outage") as record:
            for i in range(5):
                assert await cache.get_or_call(f"during {i}", upstream) == f"answer to during {i}"
        assert len(record) == 1
        assert cache.stats.errors == 5  # one per call: a call that met the outage does not retry it
        store.broken = False
        assert await cache.get_or_call("before", upstream) == "answer to before"
        assert upstream.calls == 6
        await cache.get_or_call("after", upstream)
        assert await cache.get("after") == "answer to after"
        # A second outage warns again.
        store.broken = True
        with pytest.warns(AgentCacheWarning):
            await cache.get_or_call("again", upstream)


async def test_strict_caches_raise_on_store_errors(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "c.db")
    async with AgentCache(store, on_store_error="raise") as cache:
        await cache.get_or_call("k", Upstream())
        store.broken = True
        with pytest.raises(BackendError, match="injected"):
            await cache.get_or_call("other", Upstream())


async def test_replay_mode_raises_on_store_errors(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "c.db")
    store.broken = True
    async with AgentCache(store, mode="replay") as cache:
        with pytest.raises(BackendError):
            await cache.get_or_call("k", Upstream())


async def test_replay_mode_with_a_working_store_raises_cache_miss(tmp_path: Path) -> None:
    async with AgentCache(FlakyStore(tmp_path / "c.db"), mode="replay") as cache:
        with pytest.raises(CacheMissError):
            await cache.get_or_call("k", Upstream())


async def test_a_folder_that_cannot_be_created_fails_open(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{blocker}/sub/cache.db") as cache:
        with pytest.warns(AgentCacheWarning, match="cannot create"):
            assert await cache.get_or_call("k", upstream) == "answer to k"
        # Within the process the L1 still saves the repeat call.
        assert await cache.get_or_call("k", upstream) == "answer to k"
        assert upstream.calls == 1
        assert cache.stats.errors == 1


@pytest.mark.usefixtures("patient_probes")
async def test_a_store_that_comes_back_is_used_again(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "c.db")
    store.broken = True
    async with AgentCache(store, l1_max_entries=0, store_retry=0) as cache:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AgentCacheWarning)
            await cache.get_or_call("k", Upstream())
        store.broken = False
        await cache.get_or_call("k", Upstream())
        upstream = Upstream()
        await cache.get_or_call("k", upstream)
        assert upstream.calls == 0


async def test_a_read_only_database_still_serves_and_fails_open_on_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.db"
    async with AgentCache(f"sqlite:///{path}") as cache:
        await cache.set("old", "stored before")
    # Tests run as root, which ignores file modes: open the file through SQLite's read-only URI
    # mode instead, which refuses writes exactly as a read-only disk does.
    connect = aiosqlite.connect

    def read_only(database: str, **kwargs: Any) -> aiosqlite.Connection:
        database = database.split("?", 1)[0] if kwargs.pop("uri", False) else Path(database).as_uri()
        return connect(f"{database}?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr("agentcache.stores.sqlite._connection.aiosqlite.connect", read_only)
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{path}") as cache:
        assert await cache.get_or_call("old", upstream) == "stored before"
        with pytest.warns(AgentCacheWarning, match="readonly"):
            assert await cache.get_or_call("new", upstream) == "answer to new"
        assert upstream.calls == 1
        assert cache.stats.errors == 1


def test_unknown_schemes_list_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"memory://, sqlite://, redis://"):
        AgentCache("postgres://localhost/db")
    with pytest.raises(ConfigurationError, match="not a URL"):
        AgentCache("cache.db")
    with pytest.raises(ConfigurationError, match="max_entries"):
        AgentCache("memory://?max_entries=lots")
    with pytest.raises(ConfigurationError, match="unknown option"):
        AgentCache("memory://?size=3")
    with pytest.raises(ConfigurationError, match="three or four slashes"):
        AgentCache("sqlite://host/path.db")


async def test_a_failed_store_rests_so_an_outage_costs_no_call_a_timeout(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "c.db")
    upstream = Upstream()
    async with AgentCache(store, l1_max_entries=0) as cache:
        await cache.get_or_call("warm", upstream)
        store.broken = True
        with pytest.warns(AgentCacheWarning, match="injected outage"):
            await cache.get_or_call("first", upstream)
        errors = cache.stats.errors
        store.broken = False  # still resting: the next calls do not touch the store at all
        for i in range(5):
            assert await cache.get_or_call(f"during {i}", upstream) == f"answer to during {i}"
        assert cache.stats.errors == errors
        assert cache.stats.stores == 1
        assert upstream.calls == 7
