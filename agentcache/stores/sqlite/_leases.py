"""SQLiteLeases: cross-process leases on keys, as a ``claims`` table in the cache file.

Claims are micro-batched and ride the group commit: 1,000 concurrent misses claim their keys in
one statement of one transaction, not 1,000. A claim is an upsert that only replaces an expired
row: when the statement changed as many rows as it was given distinct keys, every claimant won;
otherwise reading the owners back in the same transaction tells each whether its token won. The
token is the caller's, chosen before the claim is sent, so a caller cancelled meanwhile can still
release what it may have won.

A holder's claim is deleted by the transaction that stores its value (``SQLiteStore.set_many``
with ``release=``), so a miss costs two group commits (claim, value) shared with every concurrent
miss; ``release`` writes only when no value was stored (the call failed, or was cancelled).
SQLite has no cross-process notification, so waiters poll (``leasing.LeasePolicy``: short first,
doubling); a waiter's repeated claim first reads the row and only writes once it is gone or
expired. Releases made by this process wake this process's waiters at once (``wake``). Expiry is
wall-clock time, shared by the processes of one machine.
"""

from __future__ import annotations

import asyncio
import time
from typing import final

import aiosqlite

from ...errors import BackendError
from .._lease_batches import LeaseBatches
from ._commit import GroupCommit, is_lock_timeout
from ._reader import BatchedReader
from ._schema import CLAIM, CLAIM_EXPIRY, CLAIM_OWNERS, RELEASE, RENEW, chunks

__all__ = ["SQLiteLeases"]


@final
class SQLiteLeases:
    """The ``LeaseStore`` of one SQLite store (``store.leases()``), writing through its group commit."""

    __slots__ = ("_batches", "_commit", "_reader", "_refused", "_waiters")

    def __init__(self, commit: GroupCommit, reader: BatchedReader) -> None:
        self._commit = commit
        self._reader = reader
        self._batches = LeaseBatches(
            self._claim_batch,
            self._release_batch,
            shares_outage=is_lock_timeout,
            loop_binding=commit.loop_binding,
        )
        # Who touches these: only the event loop's thread.
        self._refused: set[str] = set()  # keys whose last claim lost: the next one reads first
        self._waiters: dict[str, set[asyncio.Event]] = {}

    async def claim(self, key: str, token: str, ttl: float) -> bool:
        """Take ``key``'s lease for ``ttl`` seconds under ``token``; ``False`` if held elsewhere."""
        if key in self._refused and await self._held_elsewhere(key):
            return False  # a waiter's poll costs a read, not a write transaction
        won = await self._batches.claims.submit((key, token, ttl))
        if won:
            self._refused.discard(key)
        else:
            self._refused.add(key)
        return won

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Push our lease's expiry to now + ``ttl``; ``False`` if the lease is no longer ours."""

        async def job(conn: aiosqlite.Connection) -> int:
            await self._commit.claims_table(conn)
            cursor = await conn.execute(RENEW, (time.time() + ttl, key, token))
            return cursor.rowcount

        return bool(await self._commit.run(job))

    async def settle(self) -> None:
        """Return once no claim or release made on this loop is still on its way (before closing)."""
        await self._batches.settle()

    async def release(self, key: str, token: str) -> None:
        """Delete our claim (if it is still ours) and wake this process's waiters on ``key``."""
        try:
            await self._batches.releases.submit((key, token))
        finally:
            self.wake(key)

    async def wait_released(self, key: str, timeout: float) -> None:
        """Sleep up to ``timeout`` (waiters poll), cut short when this process releases ``key``."""
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

    def wake(self, key: str) -> None:
        """Wake this process's waiters on ``key`` (its lease was just released)."""
        for event in self._waiters.get(key, ()):
            event.set()

    async def _held_elsewhere(self, key: str) -> bool:
        try:
            rows = await self._reader.rows(CLAIM_EXPIRY, (key,))
        except BackendError:
            return False  # let the claim itself try, and report what fails
        return bool(rows) and rows[0][0] > time.time()

    async def _claim_batch(self, batch: list[tuple[str, str, float]]) -> list[bool]:
        async def job(conn: aiosqlite.Connection) -> dict[str, str] | None:
            await self._commit.claims_table(conn)
            now = time.time()
            cursor = await conn.executemany(CLAIM, [(k, t, now + ttl, now) for k, t, ttl in batch])
            keys = list({k for k, _, _ in batch})
            if cursor.rowcount == len(batch) == len(keys):
                return None  # each distinct key's upsert wrote its row: every claim won
            owners: dict[str, str] = {}
            for chunk in chunks(keys):
                rows = await conn.execute_fetchall(CLAIM_OWNERS.format(",".join("?" * len(chunk))), chunk)
                owners.update((row[0], row[1]) for row in rows)
            return owners

        owners = await self._commit.run(job)
        if owners is None:
            return [True] * len(batch)
        return [owners.get(key) == token for key, token, _ in batch]

    async def _release_batch(self, batch: list[tuple[str, str]]) -> list[None]:
        async def job(conn: aiosqlite.Connection) -> None:
            await self._commit.claims_table(conn)
            await conn.executemany(RELEASE, batch)

        await self._commit.run(job)
        return [None] * len(batch)
