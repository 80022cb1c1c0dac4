"""The busy timeout: one setting with one default, and what a write does while another holds the lock."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agentcache import BackendError, ConfigurationError
from agentcache.stores import Entry, open_store
from agentcache.stores.sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteStore, from_url


def test_the_url_and_the_constructor_share_one_default() -> None:
    assert DEFAULT_BUSY_TIMEOUT == 2.0
    from_the_url = from_url(urlsplit("sqlite:///cache.db"))
    assert from_the_url.busy_timeout == SQLiteStore("cache.db").busy_timeout == DEFAULT_BUSY_TIMEOUT


def test_the_url_option_sets_it_and_the_url_shows_it() -> None:
    store = open_store("sqlite:////tmp/c.db?busy_timeout=0.25")
    assert isinstance(store, SQLiteStore)
    assert store.busy_timeout == 0.25
    assert store.url == "sqlite:////tmp/c.db?busy_timeout=0.25"
    assert open_store("sqlite:////tmp/c.db").url == "sqlite:////tmp/c.db"


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "1"])
def test_a_busy_timeout_that_is_no_duration_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SQLiteStore("cache.db", busy_timeout=bad)  # type: ignore[arg-type]


@pytest.fixture
async def held_write_lock(tmp_path: Path) -> AsyncIterator[Path]:
    """A cache file whose write lock another connection holds (BEGIN IMMEDIATE) until the test ends."""
    path = tmp_path / "locked.db"
    await _create(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield path
    finally:
        other.execute("ROLLBACK")
        other.close()


async def _create(path: Path) -> None:
    store = SQLiteStore(path)
    await store.set_many([("ns:v1:ready", Entry(b"yes", 1.0))])
    await store.aclose()


@pytest.mark.parametrize("how", ["constructor", "url"])
async def test_a_write_fails_after_the_busy_timeout_while_another_connection_holds_the_lock(
    held_write_lock: Path, how: str
) -> None:
    timeout = 0.2
    store = (
        SQLiteStore(held_write_lock, busy_timeout=timeout)
        if how == "constructor"
        else open_store(f"sqlite:///{held_write_lock}?busy_timeout={timeout}")
    )
    try:
        found = await store.get_many(["ns:v1:ready"], 2.0)  # reads never wait for the writer
        assert found[0] is not None
        started = time.monotonic()
        with pytest.raises(BackendError, match="locked"):
            await store.set_many([("ns:v1:k", Entry(b"v", 1.0))])
        waited = time.monotonic() - started
        assert timeout * 0.5 <= waited < 10, f"waited {waited:.2f}s with a busy timeout of {timeout}s"
    finally:
        await store.aclose()


async def test_a_write_succeeds_once_the_other_connection_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await _create(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    store = SQLiteStore(path, busy_timeout=0.05)
    try:
        with pytest.raises(BackendError):
            await store.set_many([("ns:v1:k", Entry(b"v", 1.0))])
        other.execute("ROLLBACK")
        await store.set_many([("ns:v1:k", Entry(b"v", 1.0))])
        found = await store.get_many(["ns:v1:k"], 2.0)
        assert found[0] is not None
    finally:
        other.close()
        await store.aclose()
