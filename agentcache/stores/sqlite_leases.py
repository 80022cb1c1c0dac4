"""Leases for ``sqlite://`` stores: a ``claims`` table in the cache file, written with the entries.

Claims are micro-batched and ride the store's group commit (``SQLiteStore._submit``): 1,000
concurrent misses claim their keys in one statement of one transaction, not 1,000. A claim is an
upsert that only replaces an expired row: when the statement changed as many rows as it was given
distinct keys, every claimant won; otherwise reading the rows back in the same transaction tells
each whether its token won. A holder's claim is deleted by the transaction that stores its value
(``release_with``, called by ``SQLiteStore.set_many``), so a miss costs two group commits (claim,
value) shared with every concurrent miss; ``release`` writes only when no value was stored (the
call failed, or was cancelled). There is no cross-process notification in SQLite, so
waiters poll (``LeasePolicy``: short first, doubling); a waiter's repeated claim first reads the
row and only writes once it is gone or expired. Releases made by this process wake this process's
waiters at once. Expiry is wall-clock time, shared by the processes of one machine.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import aiosqlite

from ._batch import MicroBatcher
from .leases import HeldLease, held_lease, new_token

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = ["SQLiteLeases"]

_CHUNK = 400  # keys per SELECT: well under SQLite's bound-parameter limit
_NO_LIMIT = 1 << 62  # every claim waiting shares one transaction, however many there are
_CREATE = (
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL)"
)
_CLAIM = (
    "INSERT INTO claims (key, token, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
    "SET token = excluded.token, expires_at = excluded.expires_at WHERE claims.expires_at <= ?"
)
RELEASE = "DELETE FROM claims WHERE key = ? AND token = ?"
_OWNERS = "SELECT key, token FROM claims WHERE key IN ({})"
_RENEW = "UPDATE claims SET expires_at = ? WHERE key = ? AND token = ?"


class SQLiteLeases:
    """The LeaseStore of one SQLiteStore (get it with ``store.leases()``)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._table_ready = False
        self._claims: MicroBatcher[tuple[str, str, float], bool] = MicroBatcher(self._claim_batch, _NO_LIMIT)
        self._releases: MicroBatcher[tuple[str, str], None] = MicroBatcher(self._release_batch, _NO_LIMIT)
        # Keys whose claim was refused: the next attempt reads before it writes (see claim).
        self._refused: set[str] = set()
        self._waiters: dict[str, set[asyncio.Event]] = {}

    async def claim(self, key: str, ttl: float) -> str | None:
        """A token if we now hold ``key``'s lease (none held, or the holder's expired), else ``None``."""
        if key in self._refused and await self._held_elsewhere(key):
            return None  # a waiter's poll costs a read, not a write transaction
        token = new_token()
        won = await self._claims.submit((key, token, ttl))
        if won:
            self._refused.discard(key)
        else:
            self._refused.add(key)
        return token if won else None

    async def _held_elsewhere(self, key: str) -> bool:
        reader = self._store._reader
        if reader is None:
            return False
        try:
            rows = await reader.execute_fetchall("SELECT expires_at FROM claims WHERE key = ?", (key,))
        except sqlite3.Error:
            return False  # let the write path try, and translate its error
        return bool(rows) and next(iter(rows))[0] > time.time()

    async def _claim_batch(self, batch: list[tuple[str, str, float]]) -> list[bool]:
        async def job(conn: aiosqlite.Connection) -> dict[str, str] | None:
            await self._ensure_table(conn)
            now = time.time()
            cursor = await conn.executemany(_CLAIM, [(k, t, now + ttl, now) for k, t, ttl in batch])
            keys = list({k for k, _, _ in batch})
            if cursor.rowcount == len(batch) == len(keys):
                return None  # each distinct key's upsert wrote its row: every claim won
            owners: dict[str, str] = {}
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                rows = await conn.execute_fetchall(_OWNERS.format(",".join("?" * len(chunk))), chunk)
                owners.update((row[0], row[1]) for row in rows)
            return owners

        owners = await self._store._submit(job)
        if owners is None:
            return [True] * len(batch)
        return [owners.get(key) == token for key, token, _ in batch]

    async def _ensure_table(self, conn: aiosqlite.Connection) -> None:
        # Created on first use (inside the write transaction) so that files made before leases
        # existed gain the table too; the schema version of the entries is unaffected.
        if not self._table_ready:
            await conn.execute(_CREATE)
            self._table_ready = True

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Push our lease's expiry to now + ``ttl``; ``False`` if the lease is no longer ours."""

        async def job(conn: aiosqlite.Connection) -> int:
            await self._ensure_table(conn)
            cursor = await conn.execute(_RENEW, (time.time() + ttl, key, token))
            return cursor.rowcount

        return bool(await self._store._submit(job))

    def release_with(self, keys: Iterable[str]) -> HeldLease | None:
        """The running flight's lease if it is on one of ``keys`` (see ``leases.held_lease``).

        The store deletes its claim in the transaction that writes the keys' values, then calls
        ``released_with_value``, so that the holder has nothing left to release.
        """
        held = held_lease(self)
        return held if held is not None and held.key in keys else None

    def released_with_value(self, held: HeldLease) -> None:
        """The claim of ``held`` was deleted with its value (committed): wake the key's waiters."""
        held.released = True
        for event in self._waiters.get(held.key, ()):
            event.set()

    async def release(self, key: str, token: str) -> None:
        """Delete our claim (if still ours) and wake this process's waiters on ``key``."""
        try:
            await self._releases.submit((key, token))
        finally:
            for event in self._waiters.get(key, ()):
                event.set()

    async def _release_batch(self, batch: list[tuple[str, str]]) -> list[None]:
        async def job(conn: aiosqlite.Connection) -> None:
            await self._ensure_table(conn)
            await conn.executemany(RELEASE, batch)

        await self._store._submit(job)
        return [None] * len(batch)

    async def wait_released(self, key: str, timeout: float) -> None:
        """Sleep ``timeout`` (polling), cut short if this process releases ``key``."""
        event = asyncio.Event()
        waiters = self._waiters.setdefault(key, set())
        waiters.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters.discard(event)
            if not waiters:
                del self._waiters[key]
