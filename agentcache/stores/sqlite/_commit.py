"""GroupCommit: every write to the file goes through one writer connection, batched into shared transactions.

Writes submitted while a transaction is being prepared or committed share the next one
(``BEGIN IMMEDIATE ... COMMIT``), and each submitter returns only once its rows are committed:
1,000 concurrent misses cost a couple of commits, not 1,000. Consecutive upserts of a batch are
merged into one ``executemany`` (the thread hop costs more than the insert), and a lease released
with its value (``Upsert.release``) is deleted by the same transaction. Other writes are jobs run
in submission order inside the transaction (a delete sees the upsert queued before it); a job that
cannot run inside a transaction (``VACUUM``) runs between transactions, in order too.

Hit bookkeeping rides along: ``note_hit`` only counts in memory, and the counts are written by the
next transaction, or by one of their own ``HIT_FLUSH_SECONDS`` after the first uncounted hit if no
write comes; never one write per hit. Counts of a transaction that fails are dropped (logged).

Each batch is bracketed by ``SQLiteFile.verify``: nothing is written into a file that was deleted,
replaced or overwritten, and a batch is acknowledged only once the file it went into is still the
one the path names (so an answer reported stored is in the file the next process opens). That is
one ``stat`` and one 100-byte read per batch, never per read.

The claims table of the leases is created by the first transaction that needs it
(``claims_table``), so files made before leases existed gain it too (and a file that replaced the
one opened is not assumed to have it).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, final

import aiosqlite

from ..._loops import LoopBinding
from ...errors import BackendError
from .._batch import MicroBatcher
from ._connect import settle, translated
from ._connection import SQLiteFile
from ._schema import CLAIMS_TABLE, NOTE_HITS, RELEASE, UPSERT

__all__ = ["HIT_FLUSH_SECONDS", "GroupCommit", "Outside", "Upsert", "WriteJob"]

log = logging.getLogger(__name__)

HIT_FLUSH_SECONDS = 1.0

WriteJob = Callable[[aiosqlite.Connection], Awaitable[Any]]
"""A write run inside the shared transaction on the writer connection; its result is returned."""


@final
class Upsert:
    """Rows to insert or replace, merged with the upserts next to it; ``release``: a claim to delete."""

    __slots__ = ("release", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], release: tuple[str, str] | None) -> None:
        self.rows = rows
        self.release = release  # (key, token) of a lease released with these rows


@final
class Outside:
    """A job that must run outside any transaction (``VACUUM``), between the batch's transactions."""

    __slots__ = ("job",)

    def __init__(self, job: WriteJob) -> None:
        self.job = job


async def _nothing(conn: aiosqlite.Connection) -> None:
    """An empty job: a transaction of hit counts only."""


@final
class GroupCommit:
    """The writer connection of one file, and the batcher of everything written through it."""

    __slots__ = ("_claims_created", "_claims_ready", "_file", "_hit_timer", "_hits", "_writes")

    def __init__(self, file: SQLiteFile) -> None:
        self._file = file
        # A write that waited out the busy timeout on another process's lock: the writes queued
        # behind it would each wait it out again, so they fail with it (the cache rests the store).
        self._writes: MicroBatcher[Upsert | Outside | WriteJob, Any] = MicroBatcher(
            self._commit, shares_outage=is_lock_timeout, loop_binding=file.loop_binding
        )
        # Who touches these: only the event loop's thread, between awaits.
        self._hits: dict[str, list[float]] = {}  # key -> [count, last hit]
        self._hit_timer: asyncio.TimerHandle | None = None
        self._claims_ready = False  # the claims table is known to exist (a transaction made sure)
        self._claims_created = False  # the transaction in progress made sure of it
        file.on_new_loop(self._forget_hit_timer)
        file.on_replaced(self._forget_claims_table)

    @property
    def loop_binding(self) -> LoopBinding:
        """The store's ``LoopBinding`` (the file's), for the batchers that write through this one."""
        return self._file.loop_binding

    async def upsert(self, rows: list[tuple[Any, ...]], release: tuple[str, str] | None = None) -> None:
        """Insert or replace ``rows`` (and delete the claim ``release``); returns once committed."""
        await self._writes.submit(Upsert(rows, release))

    async def run(self, job: WriteJob) -> Any:
        """Run ``job`` inside the next shared transaction; return its result once committed."""
        return await self._writes.submit(job)

    async def run_outside(self, job: WriteJob) -> Any:
        """Run ``job`` in order with the other writes, but outside any transaction."""
        return await self._writes.submit(Outside(job))

    async def claims_table(self, conn: aiosqlite.Connection) -> None:
        """Make sure the claims table exists (called by lease jobs inside the transaction)."""
        if not self._claims_ready and not self._claims_created:
            await conn.execute(CLAIMS_TABLE)
            self._claims_created = True

    # -- hit bookkeeping -------------------------------------------------------------------------

    @property
    def has_hits(self) -> bool:
        """True while counted hits wait to be written."""
        return bool(self._hits)

    def note_hit(self, key: str, now: float) -> None:
        """Count a hit in memory; written with the next transaction or within ``HIT_FLUSH_SECONDS``."""
        counted = self._hits.get(key)
        if counted is None:
            self._hits[key] = [1, now]
        else:
            counted[0] += 1
            counted[1] = now
        if self._hit_timer is None and self._file.is_open:
            loop = asyncio.get_running_loop()
            # Refused here, to the caller: a flush scheduled on a refused loop would fail unseen.
            self._file.loop_binding.check(loop)
            self._hit_timer = loop.call_later(HIT_FLUSH_SECONDS, self._flush_hits_soon)

    def discard_hits(self) -> None:
        """Drop the counted hits (the file cannot take them)."""
        self._forget_hit_timer()
        self._hits = {}

    async def flush_hits(self) -> None:
        """Write the counted hits now (in a transaction shared with any queued writes)."""
        self._forget_hit_timer()
        if self._hits:
            await self._writes.submit(_nothing)

    async def wait_idle(self) -> None:
        """Return once every queued write has landed (committed or failed)."""
        await self._writes.wait_idle()

    def _flush_hits_soon(self) -> None:
        self._hit_timer = None
        # Nobody awaits this write, so a failure would only be logged: a file that was replaced or
        # overwritten is left for the next awaited write to find (and report, and reopen).
        if self._hits and not self._writes.busy and self._file.can_write():
            self._writes.submit_detached(_nothing)

    def _forget_hit_timer(self) -> None:
        if self._hit_timer is not None:
            self._hit_timer.cancel()
            self._hit_timer = None

    def _forget_claims_table(self) -> None:
        self._claims_ready = False  # the next file opened is another one: it may have none

    def _take_hits(self) -> list[tuple[int, float, str]]:
        counts, self._hits = self._hits, {}
        return [(int(n), last, key) for key, (n, last) in counts.items()]

    # -- the batch -------------------------------------------------------------------------------

    async def _commit(self, batch: list[Upsert | Outside | WriteJob]) -> list[Any]:
        writer = await self._file.writable()
        await self._file.verify()  # nothing is written into a file that stopped being this cache
        results: list[Any] = []
        inside: list[Upsert | WriteJob] = []
        try:
            with translated(self._file.path, self._file.damaged):
                for job in batch:
                    if isinstance(job, Outside):
                        if inside:
                            results += await self._transaction(writer, inside)
                            inside = []
                        results.append(await job.job(writer))
                    else:
                        inside.append(job)
                if inside or self._hits:
                    results += await self._transaction(writer, inside)
        except asyncio.CancelledError:
            await settle(writer)
            raise
        # Acknowledged only once it is known to be in the file the path names: a commit into a
        # file deleted or replaced meanwhile is reported failed, never "stored".
        await self._file.verify()
        return results

    async def _transaction(
        self, writer: aiosqlite.Connection, jobs: Sequence[Upsert | WriteJob]
    ) -> list[Any]:
        hits = self._take_hits()
        self._claims_created = False
        try:
            await writer.execute("BEGIN IMMEDIATE")
            results: list[Any] = []
            rows: list[tuple[Any, ...]] = []
            releases: list[tuple[str, str]] = []
            for job in jobs:
                if isinstance(job, Upsert):
                    rows.extend(job.rows)
                    if job.release is not None:
                        releases.append(job.release)
                    results.append(None)
                    continue
                if rows:
                    await writer.executemany(UPSERT, rows)
                    rows = []
                results.append(await job(writer))
            if rows:
                await writer.executemany(UPSERT, rows)
            if releases:
                await self.claims_table(writer)
                await writer.executemany(RELEASE, releases)
            if hits:
                await writer.executemany(NOTE_HITS, hits)
            await writer.execute("COMMIT")
        except GeneratorExit:
            raise  # destroyed with a loop that has closed: nothing can be awaited any more
        except BaseException:
            if hits:
                log.debug("dropping the hit counts of %d keys with a failed transaction", len(hits))
            # Only once the statement in hand has run is it known whether a transaction is open
            # (a BEGIN whose caller was cancelled still runs).
            await settle(writer)
            with suppress(sqlite3.Error, ValueError):
                if writer.in_transaction:
                    await writer.execute("ROLLBACK")
            raise
        self._claims_ready = self._claims_ready or self._claims_created
        return results


def is_lock_timeout(exc: Exception) -> bool:
    """A write that failed because another connection held the lock past the busy timeout."""
    return isinstance(exc, BackendError) and ("locked" in str(exc) or "busy" in str(exc))
