"""Where a SQLite store's file is: ``~`` is the home folder; a relative path is fixed when it is built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentcache.stores import Entry, open_store
from agentcache.stores.sqlite import SQLiteStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.mark.parametrize(
    "make", [lambda: open_store("sqlite:///~/cache.db"), lambda: SQLiteStore("~/cache.db")]
)
async def test_a_tilde_is_the_home_folder_not_a_folder_named_tilde(
    home: Path, make: Callable[[], object]
) -> None:
    store = make()
    assert isinstance(store, SQLiteStore)
    assert store.path == home / "cache.db"
    try:
        await store.set_many([("ns:v1:k", Entry(b"v", 1.0))])
    finally:
        await store.aclose()
    assert (home / "cache.db").exists()
    assert not (home.parent / "~").exists()


async def test_a_relative_path_is_resolved_against_the_folder_the_store_was_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built_in, later = tmp_path / "project", tmp_path / "elsewhere"
    built_in.mkdir()
    later.mkdir()
    monkeypatch.chdir(built_in)
    store = open_store("sqlite:///.agentcache/cache.db")
    expected = built_in / ".agentcache" / "cache.db"
    assert isinstance(store, SQLiteStore)
    assert store.path == expected
    assert store.url == f"sqlite:///{expected}"  # four slashes: an absolute path
    assert repr(store) == f"SQLiteStore({str(expected)!r}, closed)"
    monkeypatch.chdir(later)
    try:
        await store.open()
        assert repr(store) == f"SQLiteStore({str(expected)!r}, open)"
    finally:
        await store.aclose()
    assert expected.exists()
    assert list(later.iterdir()) == []


def test_the_url_of_a_store_opens_the_same_file(tmp_path: Path) -> None:
    odd = tmp_path / "50% of?#it" / "cache.db"
    store = SQLiteStore(odd, busy_timeout=0.5)
    again = open_store(store.url)
    assert isinstance(again, SQLiteStore)
    assert (again.path, again.busy_timeout) == (odd, 0.5)
