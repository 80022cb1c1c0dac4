"""Connecting to a cache file: its writer and reader, its schema, a read-only fallback, and sqlite3's errors.

- **Connections** (``connect``): aiosqlite connections with the busy timeout and
  ``synchronous=NORMAL``: a writer, and a reader opened ``mode=ro`` (it never writes, so it never
  checkpoints, not even when it closes last). The reader takes the file's shared lock at once and
  keeps it (WAL mode): the writer, closed while the reader is open, is then not the last connection
  and does not checkpoint either, which is how a file that stopped being ours is left untouched.
- **Schema**: only a new file is written at open: switched to WAL and given the schema under
  ``BEGIN IMMEDIATE``, so that processes creating one file at once do not race (the losers retry
  for up to the busy timeout). A SQLite database whose tables agentcache did not create is
  refused (``NotACacheFileError``), a newer schema too. Without ``create`` (replay mode) SQLite is
  told not to create anything either (``mode=rw``), and a file without a schema is
  ``StoreMissingError``.
- **Read-only fallback**: a cache file that cannot be opened for writing (a read-only mount, a
  full disk without room for the ``-shm`` file, a file this user may only read) is opened with
  the reader alone (``Connections.read_only`` says why), so that stored answers are still served.
  Where SQLite cannot even read it normally (it would have to create or grow ``-shm``), and the
  write-ahead log holds nothing it would miss, the reader opens it ``immutable`` (no locks, no
  log): right for a read-only mount or a full disk, which nobody else writes either. Should
  another process write the file meanwhile, this one may read it as it was, or fail a read
  (fail-open), until a write finds the file writable and reopens it normally.
- **Errors** (``translated``): the one boundary where sqlite3's errors become agentcache's. A file
  that is not a database or whose pages are damaged (``SQLITE_NOTADB``, ``SQLITE_CORRUPT``) is a
  ``DamagedFileError``, which the file's owner hears of (``on_damage``) so as to stop using it.
- **No thread left behind**: a connection that fails half-way through connecting is closed at once
  and its worker thread joined (``discard``); ``settle`` waits out a statement that a cancelled task
  had handed to a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import final

import aiosqlite

from ...errors import (
    AgentCacheError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    NotACacheFileError,
    StoreMissingError,
)
from ._schema import RECORD_VERSION, SCHEMA, SCHEMA_VERSION, TABLES, VERSION

__all__ = [
    "STALE_JOIN_SECONDS",
    "Connections",
    "DamagedFileError",
    "connect",
    "discard",
    "settle",
    "translated",
    "worker",
]

log = logging.getLogger(__name__)

STALE_JOIN_SECONDS = 1.0  # how long a connection's worker thread may take to finish its job
_DAMAGE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)


class DamagedFileError(BackendUnavailableError):
    """The file is not a SQLite database (any more), or its pages are damaged."""


@contextmanager
def translated(path: Path, on_damage: Callable[[DamagedFileError], None] | None = None) -> Iterator[None]:
    """The one boundary where sqlite3's (and aiosqlite's) errors become agentcache errors."""
    try:
        yield
    except AgentCacheError:
        raise
    except sqlite3.DatabaseError as exc:
        if _is_damage(exc):
            damage = DamagedFileError(
                f"SQLite store {path} is damaged or was overwritten by another program ({exc}); "
                "agentcache stops using it. Move it away, with its -wal and -shm files, to start "
                "a new cache."
            )
            if on_damage is not None:
                on_damage(damage)
            raise damage from exc
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError) and (
            "unable to open" in text or "readonly" in text or "disk i/o" in text
        ):
            raise BackendUnavailableError(f"SQLite store {path}: {exc}") from exc
        raise BackendError(f"SQLite store {path}: {exc}") from exc
    except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite's "no active connection"
        raise BackendError(f"SQLite store {path}: {exc}") from exc


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    text = str(exc)  # Python 3.10: the messages of exactly those two codes
    return "file is not a database" in text or "database disk image is malformed" in text


async def settle(conn: aiosqlite.Connection) -> None:
    """Wait until ``conn``'s worker thread has finished every statement handed to it so far.

    For a task cancelled while a statement is in hand: that statement runs to its end anyway,
    then posts its result to the loop. When the loop is ending (``asyncio.run`` cancels the tasks
    left), it could close before that, and the thread would die posting ("Event loop is closed").
    The thread runs statements in order, each posting before the next, so an empty statement
    queued now comes back after the one in hand has posted; waiting for it keeps the loop alive.
    """
    if worker(conn).is_alive():
        with suppress(sqlite3.Error, ValueError):
            await conn.execute_fetchall("SELECT 1")


@final
class Connections:
    """The connections of one file for one event loop; ``writer`` is ``None`` where it is read-only."""

    __slots__ = ("immutable", "read_only", "reader", "writer")

    def __init__(
        self,
        writer: aiosqlite.Connection | None,
        reader: aiosqlite.Connection,
        read_only: str | None = None,
        *,
        immutable: bool = False,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.read_only = read_only  # why the file could not be opened for writing
        self.immutable = immutable  # read without locks or log: its errors may be torn reads


async def connect(path: Path, busy_timeout: float, *, create: bool, fallback: bool = True) -> Connections:
    """The writer and reader of ``path``; where it cannot be written (and ``fallback``), the reader alone."""
    try:
        if create:
            writer, reader = await _connect_retrying(path, busy_timeout)
        else:
            with translated(path):
                writer, reader = await _connect_pair(path, busy_timeout, create=False)
        return Connections(writer, reader)
    except (StoreMissingError, DamagedFileError):
        raise
    except BackendUnavailableError as exc:
        if not fallback:
            raise
        cannot_write = exc
    reader, immutable = await _connect_read_only(path, busy_timeout, cannot_write)
    log.debug("opened %s read-only: %s", path, cannot_write)
    return Connections(None, reader, str(cannot_write.__cause__ or cannot_write), immutable=immutable)


async def _connect_retrying(
    path: Path, busy_timeout: float
) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + busy_timeout
    backoff = 0.005
    while True:
        try:
            with translated(path):
                return await _connect_pair(path, busy_timeout, create=True)
        except BackendError as exc:
            # Processes creating one new file at once: the one that switches it to WAL makes
            # the others' first transaction fail with "locked" without waiting on the busy
            # handler. Connecting again sees the finished schema.
            if "locked" not in str(exc) or loop.time() + backoff > deadline:
                raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.2)


async def _connect_pair(
    path: Path, busy_timeout: float, *, create: bool
) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
    writer = await _connect(path, busy_timeout, _writer_uri(path, create=create))
    try:
        version = await _schema_version(writer, path)
        if version < SCHEMA_VERSION:
            if not create:
                raise StoreMissingError(
                    f"SQLite store {path} holds no agentcache entries yet (no schema); "
                    "nothing has been recorded there"
                )
            # Only a new file is written to at open: an existing cache opens even on a
            # read-only disk, serving hits while writes fail open.
            await writer.execute("PRAGMA journal_mode=WAL")
            await _create_schema(writer)
        reader = await _connect(path, busy_timeout, _reader_uri(path, immutable=False))
    except BaseException:
        await discard(writer)
        raise
    try:
        await reader.execute_fetchall("PRAGMA schema_version")  # takes the shared lock, for good
    except BaseException:
        await discard(reader)
        await discard(writer)
        raise
    return writer, reader


async def _connect_read_only(
    path: Path, busy_timeout: float, cannot_write: BackendUnavailableError
) -> tuple[aiosqlite.Connection, bool]:
    """The reader alone (and whether it is immutable); ``cannot_write`` if the file cannot be read either."""
    try:
        return await _read_only_reader(path, busy_timeout, cannot_write, immutable=False), False
    except BackendUnavailableError:
        if _log_has_content(path):
            raise cannot_write from None  # read without its log, the file would be out of date
    try:
        return await _read_only_reader(path, busy_timeout, cannot_write, immutable=True), True
    except BackendUnavailableError:
        raise cannot_write from None


async def _read_only_reader(
    path: Path, busy_timeout: float, cannot_write: BackendUnavailableError, *, immutable: bool
) -> aiosqlite.Connection:
    with translated(path):
        reader = await _connect(path, busy_timeout, _reader_uri(path, immutable=immutable))
        try:
            if await _schema_version(reader, path) < SCHEMA_VERSION:
                raise cannot_write  # no cache in it yet: nothing to serve
        except BaseException:
            await discard(reader)
            raise
    return reader


def _log_has_content(path: Path) -> bool:
    try:
        return os.stat(f"{path}-wal").st_size > 0
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume it holds entries the file does not


def _writer_uri(path: Path, *, create: bool) -> str:
    # Without create, SQLite must not create the file either (it may have gone since it was checked).
    return f"{path.as_uri()}?mode={'rwc' if create else 'rw'}"


def _reader_uri(path: Path, *, immutable: bool) -> str:
    return f"{path.as_uri()}?mode=ro{'&immutable=1' if immutable else ''}"


async def _connect(path: Path, busy_timeout: float, uri: str) -> aiosqlite.Connection:
    conn = aiosqlite.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    # aiosqlite's worker thread is not a daemon: a cache left open (an exception unwinding past
    # `async with`, a forgotten aclose) would keep the interpreter from exiting. Every answer is
    # committed before it is returned, so nothing is lost by not waiting for it.
    thread = worker(conn)
    if not thread.is_alive():
        thread.daemon = True
    try:
        await conn
        await conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        # Left to the garbage collector, this connection's thread would live on (holding the file
        # open), or post its stop to whatever loop is current then, perhaps a closed one.
        await discard(conn)
        raise
    return conn


async def _schema_version(conn: aiosqlite.Connection, path: Path) -> int:
    """The file's schema version (0: none yet); raise if the file is someone else's or newer."""
    tables = {row[0] for row in await conn.execute_fetchall(TABLES)}
    if tables and "agentcache_meta" not in tables:
        raise NotACacheFileError(
            f"{path} is a SQLite database that agentcache did not create (tables: "
            f"{', '.join(sorted(tables))}); it was left untouched. Point the cache at another path."
        )
    if "agentcache_meta" not in tables:
        return 0
    found = list(await conn.execute_fetchall(VERSION))
    version = int(found[0][0]) if found else 0
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"{path} was written by a newer agentcache (schema {version}, this one reads "
            f"{SCHEMA_VERSION}); upgrade agentcache or use another path"
        )
    return version


async def _create_schema(conn: aiosqlite.Connection) -> None:
    # Under BEGIN IMMEDIATE so that processes opening a new file at once do not race.
    await conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA:
            await conn.execute(statement)
        await conn.execute(RECORD_VERSION, (str(SCHEMA_VERSION),))
        await conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error, ValueError):
            await conn.execute("ROLLBACK")
        raise


async def discard(conn: aiosqlite.Connection) -> None:
    """Close a connection that failed to connect, and wait until its worker thread has ended."""
    with suppress(sqlite3.Error, ValueError):
        await conn.close()
    thread = worker(conn)
    if thread.is_alive():  # aiosqlite stopped it itself (a failed connect): wait for that
        await asyncio.to_thread(thread.join, STALE_JOIN_SECONDS)


def worker(conn: aiosqlite.Connection) -> threading.Thread:
    """aiosqlite's worker thread of ``conn`` (before aiosqlite 0.21 the connection was one)."""
    thread = getattr(conn, "_thread", conn)
    assert isinstance(thread, threading.Thread)
    return thread
