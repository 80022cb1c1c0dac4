"""SQLiteFile: one cache file and the two connections (writer, reader) serving the running event loop.

Everything that concerns the file rather than its rows happens here:

- **Preparing** (``open(create=True)``): the folder and the file are created private to the user
  (0700 / 0600) before SQLite creates them (SQLite copies the file's mode to ``-wal``/``-shm``). A
  file that is not SQLite, or a SQLite database whose tables agentcache did not create, is refused
  (``NotACacheFileError``) and never written to; a newer schema is refused. Only a new file is
  written at open: it is switched to WAL and given the schema under ``BEGIN IMMEDIATE``, so that
  processes creating one file at once do not race (the losers retry for up to the busy timeout).
- **Opening without creating** (``open(create=False)``, replay mode): no folder, file, schema or
  journal mode is created, and SQLite is told so too (``mode=rw``). A file that does not exist, is
  empty or holds no agentcache schema yet is ``StoreMissingError``, naming the absolute path.
- **Connecting**: aiosqlite connections with the busy timeout and ``synchronous=NORMAL``; the one
  boundary where sqlite3's errors become ours (``translated``).
- **Following the event loop**: connections serve the loop that made them. When another loop asks
  (a second ``asyncio.run``), the old ones are abandoned without awaiting anything on the dead loop
  and new ones are made lazily; ``on_new_loop`` tells collaborators holding per-loop state. The
  store's parts share one ``LoopBinding`` (``loop_binding``): a loop asking while the one served
  still runs (another thread) gets ``EventLoopConflictError`` from whichever part it reaches first.
- **Leaving no worker thread behind** that could post a result to a closed loop, which kills it
  with "Event loop is closed": a task cancelled with a statement in hand (``asyncio.run`` cancels
  what is left on its way out) waits for it to ``settle``; a connection that fails half-way
  through connecting is closed at once; the connections of a file collected while still open are
  stopped without any event loop, not by aiosqlite's finalizer (which binds its stop to whatever
  loop was set last, often a closed one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import final

import aiosqlite

from ..._loops import LoopBinding
from ...errors import (
    AgentCacheError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    NotACacheFileError,
    StoreMissingError,
)
from ._schema import RECORD_VERSION, SCHEMA, SCHEMA_VERSION, TABLES, VERSION

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SQLiteFile", "settle", "translated"]

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 2.0
"""Seconds a statement waits for another connection's write lock before failing (``busy_timeout``)."""
STALE_JOIN_SECONDS = 1.0  # how long a connection of a closed loop may take to finish its job
_SQLITE_HEADER = b"SQLite format 3\x00"


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """The one boundary where sqlite3's (and aiosqlite's) errors become agentcache errors."""
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


async def settle(conn: aiosqlite.Connection) -> None:
    """Wait until ``conn``'s worker thread has finished every statement handed to it so far.

    For a task cancelled while a statement is in hand: that statement runs to its end anyway,
    then posts its result to the loop. When the loop is ending (``asyncio.run`` cancels the tasks
    left), it could close before that, and the thread would die posting ("Event loop is closed").
    The thread runs statements in order, each posting before the next, so an empty statement
    queued now comes back after the one in hand has posted; waiting for it keeps the loop alive.
    """
    if _worker(conn).is_alive():
        with suppress(sqlite3.Error, ValueError):
            await conn.execute_fetchall("SELECT 1")


@final
class SQLiteFile:
    """One SQLite file and its writer and reader connections for the running event loop."""

    __slots__ = (
        "__weakref__",
        "_creates",
        "_live",
        "_lock",
        "_loop",
        "_new_loop_callbacks",
        "_reader",
        "_writer",
        "busy_timeout",
        "loop_binding",
        "path",
    )

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        # Who touches these: only the thread of the event loop the connections serve.
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop every part of the store serves (this file, the group commit, the reader, the
        # leases): shared, so that no part adopts a loop the others refuse.
        self.loop_binding = LoopBinding(f"SQLite store {path}")
        self._lock = asyncio.Lock()  # replaced per loop: an asyncio lock binds to the loop it waits on
        self._creates = True  # how a lazy (re)connection opens: as the last explicit open did
        self._new_loop_callbacks: list[Callable[[], None]] = []
        # The open connections, shared with the finalizer (which must not refer to self).
        self._live: list[aiosqlite.Connection] = []
        weakref.finalize(self, _stop_left_open, self._live, str(path)).atexit = False

    def __repr__(self) -> str:
        return f"SQLiteFile({str(self.path)!r}, {'open' if self.is_open else 'closed'})"

    @property
    def is_open(self) -> bool:
        """True while connections are open (for the loop that opened them)."""
        return self._writer is not None

    @property
    def writer(self) -> aiosqlite.Connection:
        """The connection that writes (``BackendError`` if the file is not open)."""
        if self._writer is None:
            raise BackendError(f"SQLite store {self.path} is closed")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        """The connection that reads (``BackendError`` if the file is not open)."""
        if self._reader is None:
            raise BackendError(f"SQLite store {self.path} is closed")
        return self._reader

    def on_new_loop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the connections of a previous event loop are dropped."""
        self._new_loop_callbacks.append(callback)

    async def ready(self) -> None:
        """Connect for the running loop unless connected (creating or not, as the last open chose)."""
        if self._writer is None or self._loop is not asyncio.get_running_loop():
            await self.open(create=self._creates)

    async def open(self, *, create: bool) -> None:
        """Connect (and, if ``create``, make the folder, file and schema as needed); idempotent."""
        self._creates = create
        self.follow_loop()
        if self._writer is not None:
            return
        async with self._lock:
            if self._writer is not None:
                return
            if create:
                _prepare(self.path)
                writer, reader = await self._connect_retrying()
            else:
                _check_exists(self.path)
                with translated(self.path):
                    writer, reader = await self._connect_both(create=False)
            self._writer, self._reader = writer, reader
            self._live.extend((writer, reader))
        log.debug("opened %s", self.path)

    async def close(self) -> None:
        """Close both connections; idempotent (closing failures are only logged)."""
        self.follow_loop()
        closing = [conn for conn in (self._reader, self._writer) if conn is not None]
        self._writer = self._reader = None
        for conn in closing:
            self._live.remove(conn)
            try:
                await conn.close()
            except (sqlite3.Error, ValueError) as exc:
                log.debug("closing a connection to %s failed: %s", self.path, exc)
        if closing:
            log.debug("closed %s", self.path)

    def follow_loop(self) -> None:
        """Adopt the running loop: drop the connections of a previous one (it has stopped).

        ``EventLoopConflictError`` if the loop served so far is still running (another thread).
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self.loop_binding.bind(loop)  # before the connections of the loop served so far are dropped
        stale = self._loop is not None
        self._loop = loop
        self._lock = asyncio.Lock()
        for conn in (self._writer, self._reader):
            if conn is not None:
                self._live.remove(conn)
                _abandon(conn)
        self._writer = self._reader = None
        if stale:
            for callback in self._new_loop_callbacks:
                callback()

    async def _connect_retrying(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_timeout
        backoff = 0.005
        while True:
            try:
                with translated(self.path):
                    return await self._connect_both(create=True)
            except BackendError as exc:
                # Processes creating one new file at once: the one that switches it to WAL makes
                # the others' first transaction fail with "locked" without waiting on the busy
                # handler. Connecting again sees the finished schema.
                if "locked" not in str(exc) or loop.time() + backoff > deadline:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.2)

    async def _connect_both(self, *, create: bool) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        writer = await _connect(self.path, self.busy_timeout, create=create)
        try:
            version = await _schema_version(writer, self.path)
            if version < SCHEMA_VERSION:
                if not create:
                    raise StoreMissingError(
                        f"SQLite store {self.path} holds no agentcache entries yet (no schema); "
                        "nothing has been recorded there"
                    )
                # Only a new file is written to at open: an existing cache opens even on a
                # read-only disk, serving hits while writes fail open.
                await writer.execute("PRAGMA journal_mode=WAL")
                await _create_schema(writer)
            reader = await _connect(self.path, self.busy_timeout, create=create)
        except BaseException:
            await _discard(writer)
            raise
        return writer, reader


def _prepare(path: Path) -> None:
    """Create the folder and an empty private file unless they exist; refuse a file that is not SQLite."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            _check_header(path)
        else:
            # Private before SQLite creates it (SQLite copies the mode to -wal/-shm).
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise BackendUnavailableError(f"cannot create SQLite store {path}: {exc}") from exc


def _check_exists(path: Path) -> None:
    """Refuse, creating nothing, a file that is missing, empty or not SQLite."""
    try:
        size = path.stat().st_size
        if size:
            _check_header(path)
    except FileNotFoundError:
        raise StoreMissingError(
            f"SQLite store {path} does not exist; nothing has been recorded there"
        ) from None
    except OSError as exc:
        raise BackendUnavailableError(f"cannot read SQLite store {path}: {exc}") from exc
    if not size:
        raise StoreMissingError(f"SQLite store {path} is empty; nothing has been recorded there")


def _check_header(path: Path) -> None:
    with path.open("rb") as f:
        header = f.read(len(_SQLITE_HEADER))
    if header and header != _SQLITE_HEADER:
        raise NotACacheFileError(
            f"{path} exists and is not a SQLite database; agentcache will not overwrite it. "
            "Point the cache at another path (url='sqlite:///other.db')."
        )


async def _connect(path: Path, busy_timeout: float, *, create: bool) -> aiosqlite.Connection:
    # Without create, SQLite must not create the file either (it may have gone since it was checked).
    database = str(path) if create else f"{path.as_uri()}?mode=rw"
    conn = aiosqlite.connect(
        database, uri=not create, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    # aiosqlite's worker thread is not a daemon: a cache left open (an exception unwinding past
    # `async with`, a forgotten aclose) would keep the interpreter from exiting. Every answer is
    # committed before it is returned, so nothing is lost by not waiting for it.
    worker = _worker(conn)
    if not worker.is_alive():
        worker.daemon = True
    try:
        await conn
        await conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        # Left to the garbage collector, this connection's thread would live on (holding the file
        # open), or post its stop to whatever loop is current then, perhaps a closed one.
        await _discard(conn)
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


async def _discard(conn: aiosqlite.Connection) -> None:
    """Close a connection that failed to connect, and wait until its worker thread has ended."""
    with suppress(sqlite3.Error, ValueError):
        await conn.close()
    worker = _worker(conn)
    if worker.is_alive():  # aiosqlite stopped it itself (a failed connect): wait for that
        await asyncio.to_thread(worker.join, STALE_JOIN_SECONDS)


def _abandon(conn: aiosqlite.Connection) -> None:
    """Close a connection of a loop that is gone, whether or not its thread survived that."""
    worker = _worker(conn)
    if worker.is_alive():
        _stop_unawaited(conn)  # its thread closes it (rolling back) after the job in hand...
    if not worker.is_alive() and conn._connection is not None:
        # ...unless posting that job's result to the closed loop killed it. Nobody else can touch
        # the connection now, and an open transaction would hold the write lock (and every other
        # process's writes) until the garbage collector happened to close it.
        conn._connection.close()
        conn._connection = None


def _stop_unawaited(conn: aiosqlite.Connection) -> None:
    """Stop ``conn``'s worker thread, closing the connection, from code that cannot await.

    aiosqlite's ``stop`` binds its completion future to ``asyncio.get_event_loop()``. In a
    finalizer, or once a loop has ended, that is whichever loop was set last, often a closed one,
    and the worker thread then dies posting the completion there ("Event loop is closed"). Called
    from a thread that has no event loop, ``stop`` asks for no completion at all.
    """
    stopper = threading.Thread(target=conn.stop, name="agentcache-sqlite-stop", daemon=True)
    stopper.start()
    stopper.join()
    worker = _worker(conn)
    if worker is not threading.current_thread():  # a finalizer may run on any thread
        worker.join(STALE_JOIN_SECONDS)


def _stop_left_open(live: list[aiosqlite.Connection], path: str) -> None:
    """The finalizer of a ``SQLiteFile``: stop the connections it still had open.

    Not a warning: whoever left the store open (a cache that was never closed) warns about that
    itself, and a warning raised by a finalizer, under a filter that makes it an error, is lost.
    """
    if not live:
        return
    left, live[:] = list(live), []
    for conn in left:
        _stop_unawaited(conn)
    log.debug("closed the connections of %s, which was never closed", path)


def _worker(conn: aiosqlite.Connection) -> threading.Thread:
    """aiosqlite's worker thread of ``conn`` (before aiosqlite 0.21 the connection was one)."""
    thread = getattr(conn, "_thread", conn)
    assert isinstance(thread, threading.Thread)
    return thread
