"""The SQLite store: persistence, batching, bookkeeping, and files it must never touch."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning, NotACacheFileError
from agentcache.explain import fingerprints_of
from agentcache.stores.sqlite import SQLiteStore
from tests.helpers import FakeClock, Upstream, raiser


async def test_a_new_process_gets_every_answer_from_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'suite.db'}"
    async with AgentCache(url) as cache:
        await asyncio.gather(*(cache.get_or_call(f"case {i}", Upstream()) for i in range(200)))
    script = textwrap.dedent(
        f"""
        import asyncio
        from agentcache import AgentCache

        async def never(key):
            raise SystemExit("called upstream for " + key)

        async def main():
            async with AgentCache({url!r}) as cache:
                answers = await asyncio.gather(
                    *(cache.get_or_call(f"case {{i}}", never) for i in range(200))
                )
                assert answers == [f"answer to case {{i}}" for i in range(200)]
                print(cache.stats.hits, cache.stats.misses)

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await child.communicate()
    assert child.returncode == 0
    assert stdout.decode().split() == ["200", "0"]


async def test_the_file_and_folder_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cache.db"
    async with AgentCache(f"sqlite:///{path}") as cache:
        await cache.get_or_call("k", Upstream())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = db.execute("SELECT value FROM agentcache_meta WHERE name='schema_version'")
        assert version.fetchone()[0] == "1"


async def test_concurrent_reads_share_one_query(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url) as cache:
        for i in range(300):
            await cache.set(f"k{i}", i)
    store = SQLiteStore(tmp_path / "cache.db")
    await store.open()
    selects: list[str] = []
    await store._file.reader.set_trace_callback(
        lambda sql: selects.append(sql) if sql.startswith("SELECT key") else None
    )
    async with AgentCache(store) as cache:
        values = await asyncio.gather(*(cache.get_or_call(f"k{i}", Upstream()) for i in range(300)))
    assert values == list(range(300))
    assert len(selects) <= 2  # one batch, maybe a second for callers that arrived mid-query


async def test_concurrent_writes_share_one_transaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "cache.db")
    await store.open()
    commits: list[str] = []
    await store._file.writer.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    async with AgentCache(store) as cache:
        await asyncio.gather(*(cache.get_or_call(f"k{i}", Upstream()) for i in range(300)))
        assert cache.stats.stores == 300
    assert 1 <= len(commits) <= 3


async def test_hits_are_counted_in_batches_not_written_per_hit(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("k", "v")
    store = SQLiteStore(tmp_path / "cache.db")
    await store.open()
    writes: list[str] = []
    await store._file.writer.set_trace_callback(lambda sql: writes.append(sql))
    async with AgentCache(store) as cache:
        for _ in range(50):
            await cache.get_or_call("k", Upstream())
        assert not [sql for sql in writes if sql.startswith("UPDATE")]
    assert len([sql for sql in writes if sql == "COMMIT"]) == 1  # the flush on close
    with sqlite3.connect(tmp_path / "cache.db") as db:
        assert db.execute("SELECT hits FROM entries").fetchone()[0] == 50


async def test_entries_record_what_the_cli_needs(db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    async with AgentCache(db_url, clock=clock) as cache:
        await cache.get_or_call({"prompt": "p"}, Upstream(lambda _k: "x" * 1000), ttl=60, label="a")
    with sqlite3.connect(tmp_path / "cache.db") as db:
        row = db.execute(
            "SELECT namespace, created_at, expires_at, call_seconds, size, material, meta FROM entries"
        ).fetchone()
    assert row[0] == "default"
    assert row[1] == clock.now
    assert row[2] == clock.now + 60
    assert row[3] >= 0
    assert 0 < row[4] < 1000  # compressed
    assert row[5] == '{"prompt":"p"}'
    assert json.loads(row[6]) == {"label": "a", **fingerprints_of({"prompt": "p"})}


async def test_key_material_can_be_kept_out_of_the_store(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url, store_key_material=False) as cache:
        await cache.get_or_call({"prompt": "private"}, Upstream(lambda _k: "answer"))
    with sqlite3.connect(tmp_path / "cache.db") as db:
        assert db.execute("SELECT material FROM entries").fetchone()[0] is None
    assert b"private" not in (tmp_path / "cache.db").read_bytes()


async def test_two_instances_on_one_file_both_work(db_url: str) -> None:
    upstream = Upstream()
    async with AgentCache(db_url) as one, AgentCache(db_url) as two:
        await asyncio.gather(
            *(one.get_or_call(f"a{i}", upstream) for i in range(100)),
            *(two.get_or_call(f"b{i}", upstream) for i in range(100)),
        )
        assert await two.get("a5") == "answer to a5"
        assert await one.get("b7") == "answer to b7"
        assert one.stats.errors == two.stats.errors == 0


async def test_a_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('ada')")
    before = path.read_bytes()
    async with AgentCache(f"sqlite:///{path}") as cache:
        with pytest.raises(NotACacheFileError, match=r"app\.db.*users"):
            await cache.get_or_call("k", Upstream())
    assert path.read_bytes() == before


async def test_a_file_that_is_not_sqlite_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my precious notes, not a database\n")
    before = path.read_bytes()
    async with AgentCache(f"sqlite:///{path}") as cache:
        with pytest.raises(NotACacheFileError, match=r"notes\.txt.*not a SQLite database"):
            await cache.get_or_call("k", Upstream())
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


async def test_a_corrupt_entry_is_a_miss_that_is_removed_with_a_warning(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("k", {"a": 1})
    with sqlite3.connect(tmp_path / "cache.db") as db:
        db.execute("UPDATE entries SET value = x'7a00ff'")  # 'z' + garbage: not zlib
    async with AgentCache(db_url) as cache:
        with pytest.warns(AgentCacheWarning, match="could not decode"):
            assert await cache.get_or_call("k", Upstream(lambda _k: {"a": 2})) == {"a": 2}
        assert cache.stats.errors == 1
    async with AgentCache(db_url) as cache:
        assert await cache.get_or_call("k", raiser(AssertionError())) == {"a": 2}


async def test_a_newer_schema_is_refused(db_url: str, tmp_path: Path) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("k", 1)
    with sqlite3.connect(tmp_path / "cache.db") as db:
        db.execute("UPDATE agentcache_meta SET value = '99' WHERE name = 'schema_version'")
    async with AgentCache(db_url) as cache:
        with pytest.raises(Exception, match="newer agentcache"):
            await cache.get("k")


async def test_a_process_that_crashes_with_the_cache_open_still_exits(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from agentcache import AgentCache

        async def main():
            cache = AgentCache("sqlite:///{tmp_path / "c.db"}")
            async def call(key):
                return "v"
            await cache.get_or_call("k", call)
            raise SystemExit(3)  # unwinds past the open cache, as a crash would

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    # A hang here (aiosqlite's non-daemon worker threads) would fail this test by timeout.
    assert await asyncio.wait_for(child.wait(), timeout=60) == 3
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 1


async def _traced_store(tmp_path: Path) -> tuple[SQLiteStore, list[str]]:
    store = SQLiteStore(tmp_path / "cache.db")
    await store.open()
    selects: list[str] = []
    await store._file.reader.set_trace_callback(
        lambda sql: selects.append(sql) if sql.startswith("SELECT key") else None
    )
    return store, selects


async def test_a_stampede_of_identical_cold_callers_reads_the_store_at_most_twice(
    db_url: str, tmp_path: Path
) -> None:
    async with AgentCache(db_url) as cache:
        await cache.set("stored", "v")
    for key, expected_calls in (("stored", 0), ("missing", 1)):
        store, selects = await _traced_store(tmp_path)
        upstream = Upstream()
        async with AgentCache(store) as cache:
            values = await asyncio.gather(*(cache.get_or_call(key, upstream) for _ in range(200)))
            assert cache.stats.lookups == 200
        assert set(values) == {"v" if expected_calls == 0 else "answer to missing"}
        assert upstream.calls == expected_calls
        # The first caller reads in its own task; everyone arriving meanwhile joins one flight
        # (which reads once more) instead of each issuing a read of its own.
        assert len(selects) <= 2


async def test_both_connections_write_ahead_with_normal_sync_and_the_busy_timeout(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "cache.db", busy_timeout=0.75)
    try:
        await store.open()
        for conn in (store._file.writer, store._file.reader):
            settings = [
                next(iter(await conn.execute_fetchall(f"PRAGMA {name}")))[0]
                for name in ("journal_mode", "synchronous", "busy_timeout")
            ]
            assert settings == ["wal", 1, 750]  # synchronous=NORMAL is 1; busy_timeout in ms
    finally:
        await store.aclose()
