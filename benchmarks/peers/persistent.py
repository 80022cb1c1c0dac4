"""Persistent contenders: a store in its own folder that can be filled, reopened, read and written.

Each adapter does what that library's user would write. Stores that would otherwise hold 2 KB keys
are keyed by the prompt's sha256 (diskcache, cashews, hand-written SQLite); LangChain's SQLiteCache
keeps the whole prompt, as it always does. ``blocks_loop`` marks adapters that run SQLite on the
event loop's own thread: they are fast while the disk is, and stall every other task meanwhile.
``cold_open`` is the body of a fresh process that imports the library, opens the store, and reads
one entry (``sys.argv[1]``: the folder, ``sys.argv[2]``: a file holding the prompt).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..workload import hashed_key
from .memory import LLM_STRING

__all__ = ["PERSISTENT_CONTENDERS", "Persistent"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class Persistent:
    """One library's store under ``root``; subclasses fill in the library calls."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    blocks_loop: ClassVar[bool] = False
    agentcache: ClassVar[bool] = False
    baseline: ClassVar[bool] = False
    reference: ClassVar[bool] = False  # hand-written, not a library
    note: ClassVar[str] = ""
    write_note: ClassVar[str] = ""
    hot_rows: ClassVar[bool] = True  # False: only in the cold-open and size rows
    lock_file: ClassVar[str | None] = None  # the SQLite file (under root) its writes lock
    cold_open: ClassVar[str | None] = None

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    async def open(self) -> None:
        """Open (or reopen) the store."""

    async def close(self) -> None:
        """Close it, leaving everything durable on disk."""

    async def get(self, prompt: str) -> Any:
        """The stored answer for ``prompt`` (None when absent)."""
        raise NotImplementedError

    async def set(self, prompt: str, value: str) -> None:
        """Store an answer; durable when it returns."""
        raise NotImplementedError

    async def fill(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Bulk-load entries as fast as the library allows (setup, not measured). Store is open."""
        for p, v in pairs:
            await self.set(p, v)


class DictBaseline(Persistent):
    """The baseline of every persistent row: a dict and a sha256 per op, same loop, no disk."""

    name = "dict + sha256 per op (no disk)"
    baseline = True
    note = "baseline"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.table: dict[str, str] = {}

    async def get(self, prompt: str) -> Any:
        return self.table.get(hashed_key(prompt))

    async def set(self, prompt: str, value: str) -> None:
        self.table[hashed_key(prompt)] = value


class AgentCacheSQLite(Persistent):
    name = "agentcache sqlite://"
    requires = ("agentcache.cache",)
    lock_file = "cache.db"
    agentcache = True
    note = "new AgentCache per repeat (empty L1)"
    write_note = "cache.set: one transaction per batch of concurrent sets"
    cold_open = """
import asyncio, sys
from agentcache import AgentCache
prompt = open(sys.argv[2]).read()
async def main():
    async with AgentCache(f"sqlite:///{sys.argv[1]}/cache.db") as cache:
        assert await cache.get(prompt) is not None
asyncio.run(main())
"""

    store_key_material: ClassVar[bool] = True

    async def open(self) -> None:
        from agentcache import AgentCache

        self.cache = AgentCache(
            f"sqlite:///{self.root / 'cache.db'}", store_key_material=self.store_key_material
        )
        await self.cache.__aenter__()
        # AgentCache opens its store lazily; the peers open theirs in their constructors. One
        # read of an absent key opens it here, so the timed loops measure hits, not the opening.
        await self.cache.get("open the store")

    async def close(self) -> None:
        await self.cache.aclose()

    async def get(self, prompt: str) -> Any:
        return await self.cache.get_or_call(prompt, _unexpected_miss)

    async def set(self, prompt: str, value: str) -> None:
        await self.cache.set(prompt, value)

    async def fill(self, pairs: Sequence[tuple[str, str]]) -> None:
        for start in range(0, len(pairs), 1000):  # concurrent sets share a transaction
            chunk = pairs[start : start + 1000]
            await asyncio.gather(*(self.cache.set(p, v) for p, v in chunk))


class AgentCacheSQLiteNoMaterial(AgentCacheSQLite):
    name = "agentcache sqlite://, store_key_material=False"
    note = "prompts not kept for inspection"
    hot_rows = False
    store_key_material = False


async def _unexpected_miss(prompt: str) -> str:
    raise AssertionError("a persistent hit was expected")


class _SQLiteBase(Persistent):
    """A hand-written table (sha256 key, text value), WAL + synchronous=NORMAL."""

    lock_file = "kv.db"

    def _connect_sync(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.root / "kv.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        return conn

    async def fill(self, pairs: Sequence[tuple[str, str]]) -> None:
        conn = self._connect_sync()
        with conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT OR REPLACE INTO kv VALUES (?, ?)", [(hashed_key(p), v) for p, v in pairs]
            )
        conn.close()


class Aiosqlite(_SQLiteBase):
    name = "aiosqlite, one query per op"
    requires = ("aiosqlite",)
    reference = True
    note = "hand-written, WAL"
    write_note = "autocommit per write"
    cold_open = """
import asyncio, hashlib, sys
import aiosqlite
prompt = open(sys.argv[2]).read()
async def main():
    async with aiosqlite.connect(f"{sys.argv[1]}/kv.db") as db:
        rows = await db.execute_fetchall(
            "SELECT value FROM kv WHERE key = ?", (hashlib.sha256(prompt.encode()).hexdigest(),))
        assert rows
asyncio.run(main())
"""

    async def open(self) -> None:
        import aiosqlite

        self.db = await aiosqlite.connect(self.root / "kv.db", isolation_level=None)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute(_SCHEMA)

    async def close(self) -> None:
        await self.db.close()

    async def get(self, prompt: str) -> Any:
        rows = await self.db.execute_fetchall("SELECT value FROM kv WHERE key = ?", (hashed_key(prompt),))
        return rows[0][0] if rows else None

    async def set(self, prompt: str, value: str) -> None:
        # isolation_level=None: each statement commits on its own (autocommit).
        await self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (hashed_key(prompt), value))


class SyncSQLite(_SQLiteBase):
    name = "stdlib sqlite3, on the loop"
    blocks_loop = True
    reference = True

    async def open(self) -> None:
        self.conn = self._connect_sync()

    async def close(self) -> None:
        self.conn.close()

    async def get(self, prompt: str) -> Any:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (hashed_key(prompt),)).fetchone()
        return None if row is None else row[0]

    async def set(self, prompt: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (hashed_key(prompt), value))


class _DiskcacheBase(Persistent):
    requires = ("diskcache",)
    lock_file = "cache.db"
    cold_open = """
import hashlib, sys
import diskcache
prompt = open(sys.argv[2]).read()
cache = diskcache.Cache(sys.argv[1])
assert cache.get(hashlib.sha256(prompt.encode()).hexdigest()) is not None
cache.close()
"""

    async def open(self) -> None:
        import diskcache

        self.cache = diskcache.Cache(str(self.root))

    async def close(self) -> None:
        self.cache.close()

    async def fill(self, pairs: Sequence[tuple[str, str]]) -> None:
        with self.cache.transact():
            for p, v in pairs:
                self.cache.set(hashed_key(p), v)


class DiskcacheSync(_DiskcacheBase):
    name = "diskcache, on the loop"
    blocks_loop = True

    async def get(self, prompt: str) -> Any:
        return self.cache.get(hashed_key(prompt))

    async def set(self, prompt: str, value: str) -> None:
        self.cache.set(hashed_key(prompt), value)


class DiskcacheThread(_DiskcacheBase):
    name = "diskcache via asyncio.to_thread"
    cold_open = None  # the same files and code path as "diskcache, on the loop"

    async def get(self, prompt: str) -> Any:
        return await asyncio.to_thread(self.cache.get, hashed_key(prompt))

    async def set(self, prompt: str, value: str) -> None:
        await asyncio.to_thread(self.cache.set, hashed_key(prompt), value)


class CashewsDisk(Persistent):
    name = "cashews disk://"
    requires = ("cashews", "diskcache")
    note = "diskcache (8 shards) through an executor"

    async def open(self) -> None:
        from cashews import Cache

        self.cache = Cache()
        self.cache.setup(f"disk://?directory={self.root}")
        await self.cache.init()

    async def close(self) -> None:
        await self.cache.close()

    async def get(self, prompt: str) -> Any:
        return await self.cache.get(hashed_key(prompt))

    async def set(self, prompt: str, value: str) -> None:
        await self.cache.set(hashed_key(prompt), value)


class LangChainSQLite(Persistent):
    name = "LangChain SQLiteCache (alookup/aupdate)"
    requires = ("langchain_community", "langchain_core", "sqlalchemy")
    lock_file = "langchain.db"
    note = "whole prompt as key"
    write_note = "default journal: fsync per write"
    cold_open = (
        "import sys\n"
        "from langchain_community.cache import SQLiteCache\n"
        "prompt = open(sys.argv[2]).read()\n"
        "cache = SQLiteCache(sys.argv[1] + '/langchain.db')\n"
        f"assert cache.lookup(prompt, {LLM_STRING!r}) is not None\n"
    )

    async def open(self) -> None:
        from langchain_community.cache import SQLiteCache

        self.cache = SQLiteCache(str(self.root / "langchain.db"))

    async def close(self) -> None:
        self.cache.engine.dispose()

    async def get(self, prompt: str) -> Any:
        found = await self.cache.alookup(prompt, LLM_STRING)
        return None if found is None else found[0].text

    async def set(self, prompt: str, value: str) -> None:
        from langchain_core.outputs import Generation

        await self.cache.aupdate(prompt, LLM_STRING, [Generation(text=value)])

    async def fill(self, pairs: Sequence[tuple[str, str]]) -> None:
        # One transaction into LangChain's own table, in its own serialisation (update() would
        # open a session and fsync per row: 100,000 of them is minutes of setup).
        from langchain_core.load import dumps
        from langchain_core.outputs import Generation

        conn = sqlite3.connect(self.root / "langchain.db")
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO full_llm_cache (prompt, llm, idx, response) VALUES (?, ?, 0, ?)",
                [(p, LLM_STRING, dumps(Generation(text=v))) for p, v in pairs],
            )
        conn.close()


PERSISTENT_CONTENDERS: tuple[type[Persistent], ...] = (
    DictBaseline,
    Aiosqlite,
    AgentCacheSQLite,
    AgentCacheSQLiteNoMaterial,
    SyncSQLite,
    DiskcacheSync,
    DiskcacheThread,
    CashewsDisk,
    LangChainSQLite,
)
