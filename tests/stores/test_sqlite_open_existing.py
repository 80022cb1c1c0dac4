"""Opening a SQLite store without creating anything (replay mode): what is missing is said, nothing made."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentcache import ConfigurationError, NotACacheFileError
from agentcache.errors import StoreMissingError
from agentcache.stores import Entry
from agentcache.stores.capabilities import opens_existing
from agentcache.stores.sqlite import SQLiteStore


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


async def test_a_missing_file_is_reported_by_its_absolute_path_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("never/recorded/cache.db")
    with pytest.raises(StoreMissingError, match=rf"{tmp_path}/never/recorded/cache\.db does not exist"):
        await store.open_existing()
    assert files_under(tmp_path) == []


async def test_a_store_that_was_only_ever_opened_existing_never_creates_it_later(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "cache.db")
    with pytest.raises(StoreMissingError):
        await store.open_existing()
    # Reads connect lazily, the way the last open chose: still without creating anything.
    with pytest.raises(StoreMissingError):
        await store.get_many(["ns:v1:k"], 0.0)
    with pytest.raises(StoreMissingError):
        _ = [item async for item in store.scan()]
    await store.aclose()
    assert files_under(tmp_path) == []


async def test_an_empty_file_is_missing_and_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.touch()
    with pytest.raises(StoreMissingError, match="is empty"):
        await SQLiteStore(path).open_existing()
    assert files_under(tmp_path) == ["cache.db"]
    assert path.stat().st_size == 0


async def test_a_database_without_the_schema_is_missing_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")  # a SQLite file with a header and no tables
    before = path.read_bytes()
    store = SQLiteStore(path)
    with pytest.raises(StoreMissingError, match="no agentcache entries yet"):
        await store.open_existing()
    await store.aclose()
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL


async def test_another_programs_database_is_not_a_cache_file(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(NotACacheFileError, match="users"):
        await SQLiteStore(path).open_existing()
    assert path.read_bytes() == before


async def test_a_file_that_is_not_sqlite_is_not_a_cache_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes")
    with pytest.raises(NotACacheFileError, match="not a SQLite database"):
        await SQLiteStore(path).open_existing()
    assert files_under(tmp_path) == ["notes.db"]


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    store = SQLiteStore(path)
    await store.open()
    await store.aclose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE agentcache_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(ConfigurationError, match="newer agentcache"):
        await SQLiteStore(path).open_existing()


async def test_an_existing_cache_opens_and_serves_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    writer = SQLiteStore(path)
    await writer.set_many([("ns:v1:k", Entry(b"v", 1.0))])
    await writer.aclose()
    reader = SQLiteStore(path)
    assert opens_existing(reader) is reader
    try:
        await reader.open_existing()
        found = await reader.get_many(["ns:v1:k", "ns:v1:other"], 2.0)
        assert [e.value if e else None for e in found] == [b"v", None]
    finally:
        await reader.aclose()
