"""SQLiteStore: the ``Store`` protocol and the optional abilities over one SQLite file.

A facade over its named parts: the file and its connections (``SQLiteFile``), the writes
(``GroupCommit``), the reads (``BatchedReader``) and the leases (``SQLiteLeases``). It holds no
connection of its own; every statement goes through one of them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import aiosqlite

from ...errors import BackendError, ConfigurationError
from ...keys import validate_namespace
from ..base import Entry
from ..capabilities import Lease, release_keys
from ._commit import GroupCommit
from ._connection import DEFAULT_BUSY_TIMEOUT, SQLiteFile
from ._leases import SQLiteLeases
from ._reader import BatchedReader
from ._schema import (
    DELETE_ALL,
    DELETE_KEYS,
    DELETE_NAMESPACE,
    RELATED,
    SCAN_ALL,
    SCAN_NAMESPACE,
    chunks,
    entry_of,
    entry_row,
)

__all__ = ["SQLiteStore", "from_url"]

log = logging.getLogger(__name__)


class SQLiteStore:
    """Entries in one SQLite file; safe to share between instances and processes.

    ``path``: ``~`` is expanded and a relative path is resolved against the working directory
    now, so ``path``, ``url`` and ``repr`` name the absolute file. ``busy_timeout``: seconds a write
    waits for another process's write lock before it fails (``DEFAULT_BUSY_TIMEOUT``).
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = Path(os.path.abspath(Path(path).expanduser()))
        self.busy_timeout = _checked_busy_timeout(busy_timeout)
        self.url = _url_of(self.path, self.busy_timeout)
        self._file = SQLiteFile(self.path, self.busy_timeout)
        self._commit = GroupCommit(self._file)
        self._reader = BatchedReader(self._file)
        self._leases = SQLiteLeases(self._commit, self._reader)
        # Count a hit in memory; written with the next transaction or within a second. Bound here
        # rather than delegated: it runs on every hit, even L1 hits.
        self.note_hit: Callable[[str, float], None] = self._commit.note_hit

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, {'open' if self._file.is_open else 'closed'})"

    def leases(self) -> SQLiteLeases:
        """Cross-process leases on this file's keys (a ``claims`` table beside the entries)."""
        return self._leases

    # -- lifetime --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the folder, file and schema if needed, and connect; idempotent."""
        await self._file.open(create=True)

    async def open_existing(self) -> None:
        """Connect to the file as it is, creating nothing; ``StoreMissingError`` if there is no cache."""
        await self._file.open(create=False)

    async def aclose(self) -> None:
        """Write pending hit counts, wait for queued work, close both connections; idempotent."""
        self._file.follow_loop()
        if not self._file.is_open and not self._commit.has_hits:
            return
        try:
            await self._commit.flush_hits()
        except BackendError as exc:
            self._commit.discard_hits()  # else every later close would try again
            log.debug("the hit counts of %s were not written on close: %s", self.path, exc)
        await self._leases.settle()  # its claims and releases are writes too
        await self._commit.wait_idle()
        await self._reader.wait_idle()
        await self._file.close()

    # -- entries ---------------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        """Entries of ``keys`` (``None`` if missing or expired), read together with concurrent calls."""
        return await self._reader.read(keys, now)

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        """Insert or replace; returns once committed (with concurrent writers, and ``release``)."""
        rows = [entry_row(key, entry) for key, entry in items]
        held = None if release is None else release_keys(release, [key for key, _ in items])
        if held is None:
            await self._commit.upsert(rows)
            return
        await self._commit.upsert(rows, (held.key, held.token))
        held.released = True
        self._leases.wake(held.key)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete entries; return how many existed."""
        pieces = chunks(list(keys))

        async def job(conn: aiosqlite.Connection) -> int:
            deleted = 0
            for chunk in pieces:
                cursor = await conn.execute(DELETE_KEYS.format(",".join("?" * len(chunk))), chunk)
                deleted += cursor.rowcount
            return deleted

        return int(await self._commit.run(job))

    async def clear(self, namespace: str | None) -> int:
        """Delete every entry of ``namespace`` (``None``: all); refuses a bad namespace."""
        if namespace is not None:
            validate_namespace(namespace)

        async def job(conn: aiosqlite.Connection) -> int:
            if namespace is None:
                cursor = await conn.execute(DELETE_ALL)
            else:
                cursor = await conn.execute(DELETE_NAMESPACE, (namespace,))
            return cursor.rowcount

        return int(await self._commit.run(job))

    def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        """Every entry (expired ones included), newest first, read in pages of one query."""
        if namespace is not None:
            validate_namespace(namespace)  # here, not at the first iteration
        return self._scan(namespace)

    async def _scan(self, namespace: str | None) -> AsyncIterator[tuple[str, Entry]]:
        query = SCAN_ALL if namespace is None else SCAN_NAMESPACE
        params = () if namespace is None else (namespace,)
        pages = self._reader.pages(query, params)
        try:
            async for page in pages:
                for row in page:
                    yield row[0], entry_of(row)
        finally:
            await pages.aclose()

    # -- optional abilities (capabilities.py) ----------------------------------------------------

    async def find_related(
        self, namespace: str, facet: str, fingerprint: str, limit: int
    ) -> list[tuple[str, Entry]]:
        """Up to ``limit`` entries of ``namespace`` whose ``meta[facet]`` is ``fingerprint``, newest
        first, with their key material (an index lookup: explain never scans the table)."""
        if facet not in RELATED:
            raise ValueError(f"unknown fingerprint {facet!r}; known: {sorted(RELATED)}")
        rows = await self._reader.rows(RELATED[facet], (namespace, fingerprint, limit))
        return [(row[0], entry_of(row)) for row in rows]

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
        await self._commit.flush_hits()

        async def job(conn: aiosqlite.Connection) -> None:
            # Outside the group commit's transactions (VACUUM cannot run inside one), in order
            # with them: a write submitted meanwhile waits for it.
            await conn.execute("VACUUM")
            await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._commit.run_outside(job)


def _checked_busy_timeout(value: object) -> float:
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    raise ConfigurationError(f"busy_timeout must be a finite number of seconds >= 0, not {value!r}")


def _url_of(path: Path, busy_timeout: float) -> str:
    # Only what urlsplit would misread is quoted: the URL stays readable in messages.
    text = str(path).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    query = "" if busy_timeout == DEFAULT_BUSY_TIMEOUT else f"?busy_timeout={busy_timeout!r}"
    return f"sqlite:///{text}{query}"


def from_url(parts: SplitResult) -> SQLiteStore:
    """``sqlite:///relative.db`` (to the working directory), ``sqlite:////abs.db``, ``sqlite:///~/x.db``.

    ``?busy_timeout=SECONDS`` sets the store's busy timeout (default ``DEFAULT_BUSY_TIMEOUT``).
    """
    from .. import query_options, redact_url

    if parts.netloc:
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
    busy_timeout = options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT)
    return SQLiteStore(raw[1:], busy_timeout=_checked_busy_timeout(busy_timeout))
