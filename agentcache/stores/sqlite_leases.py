"""Leases for ``sqlite://`` stores: a ``claims`` table in the cache file, written with the entries.

Claims and releases are micro-batched and ride the store's group commit (``SQLiteStore._submit``):
1,000 concurrent misses claim their keys in one statement of one transaction, not 1,000. A claim
is an upsert that only replaces an expired row; reading the rows back in the same transaction
tells each claimant whether its token won. There is no cross-process notification in SQLite, so
waiters poll (``LeasePolicy``: short first, doubling); releases made by this process wake this
process's waiters at once. Expiry is wall-clock time, shared by the processes of one machine.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

import aiosqlite

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = ["SQLiteLeases"]

_BATCH = 400  # keys per statement: well under SQLite's bound-parameter limit
_CREATE = (
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL)"
)
_CLAIM = (
    "INSERT INTO claims (key, token, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
    "SET token = excluded.token, expires_at = excluded.expires_at WHERE claims.expires_at <= ?"
)
_RELEASE = "DELETE FROM claims WHERE key = ? AND token = ?"
_RENEW = "UPDATE claims SET expires_at = ? WHERE key = ? AND token = ?"


class SQLiteLeases:
    """The LeaseStore of one SQLiteStore (get it with ``store.leases()``)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._table_ready = False
        # Touched only from the event loop's thread: claims waiting for the next batch.
        self._claims: list[tuple[str, str, float, asyncio.Future[bool]]] = []
        self._claiming: asyncio.Task[None] | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    async def claim(self, key: str, ttl: float) -> str | None:
        """A token if we now hold ``key``'s lease (none held, or the holder's expired), else ``None``."""
        token = secrets.token_hex(8)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._claims.append((key, token, ttl, future))
        if self._claiming is None:
            self._claiming = asyncio.ensure_future(self._drain_claims())
        return token if await future else None

    async def _drain_claims(self) -> None:
        try:
            while self._claims:
                batch, self._claims = self._claims[:_BATCH], self._claims[_BATCH:]
                try:
                    owners = await self._store._submit(self._claim_job(batch))
                except BaseException as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for key, token, _, future in batch:
                    if not future.done():
                        future.set_result(owners.get(key) == token)
        finally:
            self._claiming = None

    def _claim_job(self, batch: list[tuple[str, str, float, asyncio.Future[bool]]]) -> Any:
        async def job(conn: aiosqlite.Connection) -> dict[str, str]:
            await self._ensure_table(conn)
            now = time.time()
            await conn.executemany(_CLAIM, [(k, t, now + ttl, now) for k, t, ttl, _ in batch])
            keys = list({k for k, *_ in batch})
            marks = ",".join("?" * len(keys))
            rows = await conn.execute_fetchall(f"SELECT key, token FROM claims WHERE key IN ({marks})", keys)
            return {row[0]: row[1] for row in rows}

        return job

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

    async def release(self, key: str, token: str) -> None:
        """Delete our claim (if still ours) and wake this process's waiters on ``key``."""

        async def job(conn: aiosqlite.Connection) -> None:
            await self._ensure_table(conn)
            await conn.execute(_RELEASE, (key, token))

        try:
            await self._store._submit(job)
        finally:
            for event in self._waiters.get(key, ()):
                event.set()

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
