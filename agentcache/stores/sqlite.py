"""``sqlite:///path``: entries in one SQLite file (aiosqlite), batched so that concurrency is cheap.

How it stays fast without blocking the event loop:

- **Reads are micro-batched.** Every ``get_many`` issued while a read is being prepared or is in
  flight joins the next ``SELECT ... WHERE key IN (...)``: 1,000 concurrent cold hits cost a couple
  of thread hops instead of 1,000.
- **Writes share a transaction (group commit).** Concurrent ``set_many`` calls are written by one
  ``BEGIN IMMEDIATE ... COMMIT``; each caller returns only once its rows are committed.
- **Hit bookkeeping is batched.** ``note_hit`` only counts in memory; the counts are written with the
  next write transaction or after ``HIT_FLUSH_SECONDS``, never one write per hit.

Two connections (one reads, one writes) in WAL mode with ``synchronous=NORMAL``: readers never
wait for the writer, and other processes can use the same file; the busy timeout absorbs their
write locks. The file and its folder are created on first use, private to the user (0600 / 0700).
A file that is not an agentcache database is never written to: ``NotACacheFileError``.

``get_many`` leaves ``Entry.material`` as ``None`` (it is for inspection; serving does not need
it); ``scan`` returns it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

import aiosqlite

from ..errors import (
    AgentCacheError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    NotACacheFileError,
)
from .base import Entry, namespace_of
from .sqlite_leases import RELEASE, SQLiteLeases

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "from_url"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
HIT_FLUSH_SECONDS = 1.0
STALE_JOIN_SECONDS = 1.0  # how long a connection left by a closed loop may take to finish its job
MAX_BATCH = 500  # keys per SELECT: well under SQLite's bound-parameter limit
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agentcache_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    key          TEXT PRIMARY KEY,
    namespace    TEXT NOT NULL,
    value        BLOB NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL,
    call_seconds REAL NOT NULL DEFAULT 0,
    size         INTEGER NOT NULL,
    material     TEXT,
    meta         TEXT,
    hits         INTEGER NOT NULL DEFAULT 0,
    last_hit_at  REAL
);
CREATE INDEX IF NOT EXISTS entries_by_namespace ON entries (namespace, created_at);
CREATE INDEX IF NOT EXISTS entries_by_family ON entries
    (namespace, CASE WHEN json_valid(meta) THEN json_extract(meta, '$.family') END, created_at);
CREATE INDEX IF NOT EXISTS entries_by_conversation ON entries
    (namespace, CASE WHEN json_valid(meta) THEN json_extract(meta, '$.conversation') END, created_at);
"""

_SELECT = (
    "SELECT key, value, created_at, expires_at, call_seconds, meta, hits, last_hit_at "
    "FROM entries WHERE key IN ({})"
)
_UPSERT = (
    "INSERT OR REPLACE INTO entries (key, namespace, value, created_at, expires_at, "
    "call_seconds, size, material, meta, hits, last_hit_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
# One statement per fingerprint (explain.py), each repeating its index's expression exactly; the
# json_valid guard keeps a damaged meta from failing writes (an index expression runs on write).
_RELATED = {
    "conversation": "SELECT key, value, created_at, expires_at, call_seconds, meta, hits, "
    "last_hit_at, material FROM entries WHERE namespace = ? AND CASE WHEN json_valid(meta) THEN "
    "json_extract(meta, '$.conversation') END = ? ORDER BY created_at DESC LIMIT ?",
    "family": "SELECT key, value, created_at, expires_at, call_seconds, meta, hits, "
    "last_hit_at, material FROM entries WHERE namespace = ? AND CASE WHEN json_valid(meta) THEN "
    "json_extract(meta, '$.family') END = ? ORDER BY created_at DESC LIMIT ?",
}
_NOTE_HITS = (
    "UPDATE entries SET hits = hits + ?, last_hit_at = max(coalesce(last_hit_at, 0), ?) WHERE key = ?"
)

T = TypeVar("T")
_WriteJob = Callable[[aiosqlite.Connection], Awaitable[Any]]


@contextmanager
def _translated(path: Path) -> Any:
    """The one boundary where sqlite3 errors become agentcache errors."""
    try:
        yield
    except AgentCacheError:
        raise
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "unable to open" in text or "readonly" in text or "disk i/o" in text:
            raise BackendUnavailableError(f"SQLite store {path}: {exc}") from exc
        raise BackendError(f"SQLite store {path}: {exc}") from exc
    except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite's "no active connection"
        raise BackendError(f"SQLite store {path}: {exc}") from exc


class SQLiteStore:
    """Entries in one SQLite file; safe to share between instances and processes."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.url = f"sqlite:///{self.path}"
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the connections serve
        # Touched only from the event loop's thread:
        self._pending_reads: list[tuple[Sequence[str], float, asyncio.Future[list[Entry | None]]]] = []
        self._read_task: asyncio.Task[None] | None = None
        self._pending_writes: list[tuple[_WriteJob, asyncio.Future[Any]]] = []
        self._write_task: asyncio.Task[None] | None = None
        self._hit_counts: dict[str, list[float]] = {}  # key -> [count, last_hit_at]
        self._hit_timer: asyncio.TimerHandle | None = None
        self._leases: SQLiteLeases | None = None

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteStore({str(self.path)!r}, {state})"

    def leases(self) -> SQLiteLeases:
        """Cross-process leases on this file's keys (a ``claims`` table beside the entries)."""
        if self._leases is None:
            self._leases = SQLiteLeases(self)
        return self._leases

    # -- lifetime ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the folder, file and schema if needed, and connect; idempotent."""
        self._follow_loop()
        if self._writer is not None:
            return
        async with self._open_lock:
            if self._writer is not None:
                return
            self._prepare_file()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.busy_timeout
            backoff = 0.005
            while True:
                try:
                    with _translated(self.path):
                        self._writer, self._reader = await self._connect_both()
                    break
                except BackendError as exc:
                    # Processes creating one new file at once: the one that switches it to WAL
                    # makes the others' first transaction fail with "locked" without waiting on
                    # the busy handler. Reconnecting sees the finished schema.
                    if "locked" not in str(exc) or loop.time() + backoff > deadline:
                        raise
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.2)
            log.debug("opened %s", self.path)

    async def _connect_both(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        writer = reader = None
        try:
            writer = await self._connect()
            if not await self._check_is_ours(writer):
                # Only a new file is written to at open: an existing cache opens even on a
                # read-only disk, serving hits while writes fail open.
                await writer.execute("PRAGMA journal_mode=WAL")
                await self._create_schema(writer)
            reader = await self._connect()
        except BaseException:
            for conn in (reader, writer):
                if conn is not None:
                    await conn.close()
            raise
        return writer, reader

    async def aclose(self) -> None:
        """Write pending hit counts, wait for queued writes, close both connections."""
        self._follow_loop()
        if self._writer is None and not self._hit_counts:
            return
        if self._hit_timer is not None:
            self._hit_timer.cancel()
            self._hit_timer = None
        if self._hit_counts:
            try:
                await self._submit(self._flush_hits_job())
            except BackendError as exc:
                log.debug("dropping hit counts on close: %s", exc)
        for task in (self._write_task, self._read_task):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        for conn in (reader, writer):
            if conn is not None:
                await conn.close()
        log.debug("closed %s", self.path)

    def _follow_loop(self) -> None:
        """Forget what belongs to an event loop that is no longer running us; reconnect lazily.

        One store may serve several loops in turn (two ``asyncio.run`` calls). A loop that ended
        can leave batches whose futures nobody will ever see, a transaction left open, and
        aiosqlite threads that died posting a result to the closed loop (queueing more work for
        them would wait forever). None of that is usable from the new loop, and none of it was
        acknowledged to anyone (values are committed before they are returned), so drop it all;
        hit counts stay and are written by the new connections.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._open_lock = asyncio.Lock()  # asyncio locks bind to the first loop that waits
        stale = (self._reader, self._writer)
        self._reader = self._writer = None
        self._pending_reads, self._pending_writes = [], []
        self._read_task = self._write_task = None
        if self._hit_timer is not None:
            self._hit_timer.cancel()
            self._hit_timer = None
        for conn in stale:
            if conn is not None:
                _abandon(conn)

    def _prepare_file(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.path.exists():
                self._check_header()
            else:
                # Create it private before SQLite does (SQLite copies the mode to -wal/-shm).
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise BackendUnavailableError(f"cannot create SQLite store {self.path}: {exc}") from exc

    def _check_header(self) -> None:
        with self.path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
        if header and header != _SQLITE_HEADER:
            raise NotACacheFileError(
                f"{self.path} exists and is not a SQLite database; agentcache will not overwrite "
                "it. Point the cache at another path (url='sqlite:///other.db')."
            )

    async def _connect(self) -> aiosqlite.Connection:
        conn = aiosqlite.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        # aiosqlite's worker thread is not a daemon: a cache left open (an exception unwinding
        # past `async with`, a forgotten aclose) would keep the interpreter from exiting. Every
        # answer is committed before it is returned, so nothing is lost by not waiting for it.
        worker = getattr(conn, "_thread", None)
        if worker is not None and not worker.is_alive():
            worker.daemon = True
        await conn
        await conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    async def _check_is_ours(self, conn: aiosqlite.Connection) -> bool:
        """True if the file already holds the current schema; raise if it is someone else's."""
        rows = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type='table'")
        tables = {row[0] for row in rows}
        if tables and "agentcache_meta" not in tables:
            raise NotACacheFileError(
                f"{self.path} is a SQLite database that agentcache did not create (tables: "
                f"{', '.join(sorted(tables))}); it was left untouched. Point the cache at "
                "another path."
            )
        if "agentcache_meta" in tables:
            found = await conn.execute_fetchall(
                "SELECT value FROM agentcache_meta WHERE name='schema_version'"
            )
            version = int(next(iter(found))[0]) if found else 0
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path} was written by a newer agentcache (schema {version}, this one "
                    f"reads {SCHEMA_VERSION}); upgrade agentcache or use another path"
                )
            return version == SCHEMA_VERSION
        return False

    async def _create_schema(self, conn: aiosqlite.Connection) -> None:
        # Under BEGIN IMMEDIATE so that processes opening a new file at once do not race.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                await conn.execute(statement)
            await conn.execute(
                "INSERT OR IGNORE INTO agentcache_meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise

    # -- reads (micro-batched) ---------------------------------------------------------------

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        """Entries of ``keys`` (``None`` if missing or expired), read together with concurrent calls."""
        if self._loop is not asyncio.get_running_loop():
            self._follow_loop()
        if self._reader is None:
            await self.open()
        future: asyncio.Future[list[Entry | None]] = asyncio.get_running_loop().create_future()
        self._pending_reads.append((keys, now, future))
        if self._read_task is None:
            self._read_task = asyncio.ensure_future(self._drain_reads())
        return await future

    async def _drain_reads(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending_reads:
                batch, self._pending_reads = self._pending_reads, []
                try:
                    rows = await self._select({k for keys, _, _ in batch for k in keys})
                except GeneratorExit:
                    raise  # destroyed with a dead loop: take no batch of the live one
                except BaseException as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for keys, now, future in batch:
                    if not future.done():
                        found = (rows.get(k) for k in keys)
                        future.set_result([e if e and not e.is_expired(now) else None for e in found])
        finally:
            if self._read_task is me:  # not a newer drain (of another loop, after _follow_loop)
                self._read_task = None

    async def _select(self, keys: set[str]) -> dict[str, Entry]:
        reader = self._reader
        if reader is None:
            raise BackendError(f"SQLite store {self.path} is closed")
        ordered = list(keys)
        found: dict[str, Entry] = {}
        with _translated(self.path):
            for start in range(0, len(ordered), MAX_BATCH):
                chunk = ordered[start : start + MAX_BATCH]
                sql = _SELECT.format(",".join("?" * len(chunk)))
                for row in await reader.execute_fetchall(sql, chunk):
                    found[row[0]] = Entry(
                        value=row[1],
                        created_at=row[2],
                        expires_at=row[3],
                        call_seconds=row[4],
                        meta=_meta(row[5]),
                        hits=row[6],
                        last_hit_at=row[7],
                    )
        return found

    # -- writes (group commit) ---------------------------------------------------------------

    async def set_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        """Insert or replace; returns once committed (together with concurrent writers)."""
        upsert = _Upsert([_row(key, entry) for key, entry in items])
        leases = self._leases
        # A flight holding a key's lease releases it with the key's value: no commit of its own.
        if leases is None or (held := leases.release_with(key for key, _ in items)) is None:
            await self._submit(upsert)
            return
        upsert.releases = [(held.key, held.token)]
        await self._submit(upsert)
        leases.released_with_value(held)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete entries; return how many existed."""
        keys = list(keys)

        async def job(conn: aiosqlite.Connection) -> int:
            deleted = 0
            for start in range(0, len(keys), MAX_BATCH):
                chunk = keys[start : start + MAX_BATCH]
                cursor = await conn.execute(
                    f"DELETE FROM entries WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                deleted += cursor.rowcount
            return deleted

        return int(await self._submit(job))

    async def clear(self, namespace: str | None) -> int:
        """Delete every entry of ``namespace`` (``None``: all)."""

        async def job(conn: aiosqlite.Connection) -> int:
            if namespace is None:
                cursor = await conn.execute("DELETE FROM entries")
            else:
                cursor = await conn.execute("DELETE FROM entries WHERE namespace = ?", (namespace,))
            return cursor.rowcount

        return int(await self._submit(job))

    async def _submit(self, job: _WriteJob) -> Any:
        if self._loop is not asyncio.get_running_loop():
            self._follow_loop()
        if self._writer is None:
            await self.open()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending_writes.append((job, future))
        if self._write_task is None:
            self._write_task = asyncio.ensure_future(self._drain_writes())
        return await future

    async def _drain_writes(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending_writes:
                batch, self._pending_writes = self._pending_writes, []
                if self._hit_counts:
                    # Nobody awaits the hit counts' future: a failure is only logged, never left
                    # as an exception that was never retrieved.
                    counted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                    counted.add_done_callback(_log_failure)
                    batch.append((self._flush_hits_job(), counted))
                try:
                    results = await self._commit(batch)
                except GeneratorExit:
                    raise  # destroyed with a dead loop: take no batch of the live one
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            if self._write_task is me:
                self._write_task = None

    async def _commit(self, batch: list[tuple[_WriteJob, asyncio.Future[Any]]]) -> list[Any]:
        writer = self._writer
        if writer is None:
            raise BackendError(f"SQLite store {self.path} is closed")
        with _translated(self.path):
            await writer.execute("BEGIN IMMEDIATE")
            try:
                results: list[Any] = []
                rows: list[tuple[Any, ...]] = []
                releases: list[tuple[str, str]] = []
                for job, _ in batch:
                    # Consecutive upserts share one executemany: one thread hop for the whole
                    # group, not one per concurrent miss (the hop costs more than the insert).
                    if isinstance(job, _Upsert):
                        rows.extend(job.rows)
                        releases.extend(job.releases)
                        results.append(None)
                        continue
                    if rows:
                        await writer.executemany(_UPSERT, rows)
                        rows = []
                    results.append(await job(writer))
                if rows:
                    await writer.executemany(_UPSERT, rows)
                if releases:
                    await writer.executemany(RELEASE, releases)
                await writer.execute("COMMIT")
            except BaseException:
                if writer.in_transaction:
                    await writer.execute("ROLLBACK")
                raise
        return results

    # -- hit bookkeeping ---------------------------------------------------------------------

    def note_hit(self, key: str, now: float) -> None:
        """Count a hit in memory; written with the next transaction or within a second."""
        counted = self._hit_counts.get(key)
        if counted is None:
            self._hit_counts[key] = [1, now]
        else:
            counted[0] += 1
            counted[1] = now
        if self._hit_timer is None and self._writer is not None:
            self._hit_timer = asyncio.get_running_loop().call_later(HIT_FLUSH_SECONDS, self._flush_hits_soon)

    def _flush_hits_soon(self) -> None:
        self._hit_timer = None
        if self._hit_counts and self._writer is not None and self._write_task is None:
            # An empty job: the drain appends the hit counts to the transaction by itself.
            async def nothing(conn: aiosqlite.Connection) -> None:
                return None

            task = asyncio.ensure_future(self._submit(nothing))
            task.add_done_callback(_log_failure)

    def _flush_hits_job(self) -> _WriteJob:
        counts, self._hit_counts = self._hit_counts, {}
        rows = [(int(n), last, key) for key, (n, last) in counts.items()]

        async def job(conn: aiosqlite.Connection) -> None:
            await conn.executemany(_NOTE_HITS, rows)

        return job

    # -- scanning ----------------------------------------------------------------------------

    async def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        """Every entry (expired ones included), newest first, read in pages of one query."""
        self._follow_loop()
        if self._reader is None:
            await self.open()
        reader = self._reader
        assert reader is not None
        sql = (
            "SELECT key, value, created_at, expires_at, call_seconds, meta, hits, last_hit_at, "
            "material FROM entries {} ORDER BY created_at DESC, key DESC"
        )
        where, params = ("WHERE namespace = ?", (namespace,)) if namespace else ("", ())
        with _translated(self.path):
            cursor = await reader.execute(sql.format(where), params)
        try:
            while True:
                with _translated(self.path):
                    rows = await cursor.fetchmany(MAX_BATCH)
                if not rows:
                    return
                for row in rows:
                    yield (
                        row[0],
                        Entry(
                            value=row[1],
                            created_at=row[2],
                            expires_at=row[3],
                            call_seconds=row[4],
                            meta=_meta(row[5]),
                            hits=row[6],
                            last_hit_at=row[7],
                            material=row[8],
                        ),
                    )
        finally:
            await cursor.close()

    # -- optional capabilities (explain and the agentcache command; see admin.py) -------------

    async def find_related(
        self, namespace: str, facet: str, fingerprint: str, limit: int
    ) -> list[tuple[str, Entry]]:
        """Up to ``limit`` entries of ``namespace`` whose ``meta[facet]`` is ``fingerprint``,
        newest first, with their key material (an index lookup: explain never scans the table)."""
        if facet not in _RELATED:
            raise ValueError(f"unknown fingerprint {facet!r}; known: {sorted(_RELATED)}")
        if self._reader is None:
            await self.open()
        assert self._reader is not None
        with _translated(self.path):
            rows = await self._reader.execute_fetchall(_RELATED[facet], (namespace, fingerprint, limit))
        return [
            (
                row[0],
                Entry(
                    value=row[1],
                    created_at=row[2],
                    expires_at=row[3],
                    call_seconds=row[4],
                    meta=json.loads(row[5]) if row[5] else {},
                    hits=row[6],
                    last_hit_at=row[7],
                    material=row[8],
                ),
            )
            for row in rows
        ]

    async def disk_usage(self) -> int:
        """Bytes of the database file and its WAL and shared-memory files."""
        return await asyncio.to_thread(self._disk_usage)

    def _disk_usage(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    async def vacuum(self) -> None:
        """Rewrite the file without the space of deleted entries, and empty the WAL."""
        await self.open()
        if self._hit_counts:
            await self._submit(self._flush_hits_job())
        if self._write_task is not None:
            await asyncio.gather(self._write_task, return_exceptions=True)
        writer = self._writer
        assert writer is not None
        # VACUUM cannot run inside the group-commit transaction; aiosqlite runs this connection's
        # statements one at a time, so a write submitted meanwhile simply waits for it.
        with _translated(self.path):
            await writer.execute("VACUUM")
            await writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class _Upsert:
    """A write job that only inserts or replaces rows, so that ``_commit`` can merge it with others.

    ``releases``: the leases (key, token) to release with these rows (sqlite_leases.py).
    """

    __slots__ = ("releases", "rows")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.releases: list[tuple[str, str]] = []

    async def __call__(self, conn: aiosqlite.Connection) -> None:
        await conn.executemany(_UPSERT, self.rows)
        if self.releases:
            await conn.executemany(RELEASE, self.releases)


def _row(key: str, entry: Entry) -> tuple[Any, ...]:
    return (
        key,
        namespace_of(key),
        entry.value,
        entry.created_at,
        entry.expires_at,
        entry.call_seconds,
        len(entry.value),
        entry.material,
        json.dumps(dict(entry.meta), separators=(",", ":")) if entry.meta else None,
        entry.hits,
        entry.last_hit_at,
    )


def _meta(raw: str | bytes | None) -> dict[str, Any]:
    """An entry's metadata; unreadable metadata (damaged, foreign) is none, never a failed read."""
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        log.debug("ignoring unreadable entry metadata %r", raw[:80])
        return {}
    return meta if isinstance(meta, dict) else {}


def _worker(conn: aiosqlite.Connection) -> threading.Thread:
    """aiosqlite's worker thread of ``conn`` (before aiosqlite 0.21 the connection was one)."""
    thread = getattr(conn, "_thread", conn)
    assert isinstance(thread, threading.Thread)
    return thread


def _abandon(conn: aiosqlite.Connection) -> None:
    """Close a connection of a loop that is gone, whether or not its thread survived that."""
    worker = _worker(conn)
    if worker.is_alive():
        conn.stop()  # its thread closes it (rolling back) after the job in hand...
        worker.join(STALE_JOIN_SECONDS)  # ...unless posting that job's result kills it
    if not worker.is_alive() and conn._connection is not None:
        # Nobody else can touch it now, and an open transaction would hold the write lock (and
        # every other process's writes) until the garbage collector happened to close it.
        conn._connection.close()
        conn._connection = None


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("background hit-count flush failed: %s", task.exception())


def from_url(parts: SplitResult) -> SQLiteStore:
    """``sqlite:///relative.db`` (relative to the working directory) or ``sqlite:////abs.db``."""
    from . import query_options

    if parts.netloc:
        from . import redact_url

        host = urlsplit(redact_url(parts.geturl())).netloc  # never echo a password
        raise ConfigurationError(
            f"sqlite URL has a host part {host!r}; write sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (three or four slashes)"
        )
    raw = unquote(parts.path)
    if not raw or raw == "/":
        raise ConfigurationError("sqlite URL names no file; e.g. sqlite:///.agentcache/cache.db")
    if "\0" in raw:
        raise ConfigurationError("sqlite URL path contains a NUL character (%00); no file can be named so")
    options = query_options(parts, {"busy_timeout": float})
    timeout = options.get("busy_timeout", 1.0)
    if not (isinstance(timeout, float) and math.isfinite(timeout) and timeout >= 0):
        raise ConfigurationError(f"busy_timeout must be a finite number of seconds >= 0, not {timeout!r}")
    return SQLiteStore(raw[1:], **options)  # type: ignore[arg-type]
