"""SQLiteFile: one cache file and the connections (writer, reader) serving the running event loop.

Everything that concerns the file rather than its rows happens here, or in the two modules this
one drives: ``_watch.py`` (the file as a file: created private, refused unless SQLite, watched
while open) and ``_connect.py`` (its connections, schema, read-only fallback, error translation).

- **Opening** (``open``): the watch first, then the connections. A file that is not an agentcache
  database is refused (``NotACacheFileError``) and never written to; without ``create`` (replay
  mode) nothing is created and a missing cache is ``StoreMissingError``. A cache file that cannot
  be written (a read-only mount, a full disk) is opened read-only: reads are served, and every
  write first tries the file for writing again (``writable``) before it fails.
- **A file that stops being this cache's** while open. Every group commit ``verify``\\s the file
  before it writes and after it commits (an answer is acknowledged only once it is in the file
  the path names):

  - *deleted, renamed or replaced*: the write-ahead log is emptied into the file it belongs to
    (ours, wherever it now is: the log keeps the path's name, and whatever file now sits at the
    path must not read our pages as its own), the connections close, and the next use opens the
    path afresh: a new cache, or, where another program's file now sits, a failure (fail-open).
  - *overwritten or damaged* (its header, or ``SQLITE_NOTADB``/``SQLITE_CORRUPT`` from any
    statement): the file is condemned. Its connections close writer first (see ``_connect``: then
    neither checkpoints, so not one page is put back into it) and it is never read or written
    again by this process; a different file at the path later is judged afresh.

  Both raise a ``BackendUnavailableError`` saying so, once per failure: the cache fails open.
- **Following the event loop**: connections serve the loop that made them. When another loop asks
  (a second ``asyncio.run``), the old ones are abandoned without awaiting anything on the dead loop
  and new ones are made lazily; ``on_new_loop`` tells collaborators holding per-loop state. The
  store's parts share one ``LoopBinding`` (``loop_binding``): a loop asking while the one served
  still runs (another thread) gets ``EventLoopConflictError`` from whichever part it reaches first.
- **Leaving no worker thread behind** that could post a result to a closed loop, which kills it
  with "Event loop is closed": a connection of a dead loop is stopped from a thread of its own; the
  connections of a file collected while still open are stopped without any event loop, not by
  aiosqlite's finalizer (which binds its stop to whatever loop was set last, often a closed one).
  Either way a transaction such a connection left open is rolled back before it closes: closed
  alone, it could keep the write lock, from every process, for as long as a cursor of the dead
  loop's tasks lives (``_release``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, final

import aiosqlite

from ..._loops import LoopBinding
from ...errors import BackendError, BackendUnavailableError, NotACacheFileError
from ._connect import STALE_JOIN_SECONDS, Connections, DamagedFileError, connect, translated, worker
from ._watch import FileWatch, Problem

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SQLiteFile"]

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 2.0
"""Seconds a statement waits for another connection's write lock before failing (``busy_timeout``)."""


@final
class _Held:
    """What a file holds open (connections, writer first, then its watch), shared with its finalizer."""

    __slots__ = ("conns", "watch")

    def __init__(self) -> None:
        self.conns: list[aiosqlite.Connection] = []
        self.watch: FileWatch | None = None


@final
class SQLiteFile:
    """One SQLite file and its writer and reader connections for the running event loop."""

    __slots__ = (
        "__weakref__",
        "_condemned",
        "_creates",
        "_held",
        "_immutable",
        "_lock",
        "_loop",
        "_new_loop_callbacks",
        "_read_only",
        "_reader",
        "_replaced_callbacks",
        "_writer",
        "busy_timeout",
        "loop_binding",
        "path",
    )

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        # Who touches these: only the thread of the event loop the connections serve.
        self._writer: aiosqlite.Connection | None = None  # None while closed, or open read-only
        self._reader: aiosqlite.Connection | None = None  # None while closed
        self._read_only: str | None = None  # why the open file could not be opened for writing
        self._immutable = False  # the reader reads without locks or log (see _connect)
        # The file found damaged or overwritten (its device and inode) and the error saying so:
        # never read or written again while the path names it.
        self._condemned: tuple[tuple[int, int] | None, DamagedFileError] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop every part of the store serves (this file, the group commit, the reader, the
        # leases): shared, so that no part adopts a loop the others refuse.
        self.loop_binding = LoopBinding(f"SQLite store {path}")
        self._lock = asyncio.Lock()  # replaced per loop: an asyncio lock binds to the loop it waits on
        self._creates = True  # how a lazy (re)connection opens: as the last explicit open did
        self._new_loop_callbacks: list[Callable[[], None]] = []
        self._replaced_callbacks: list[Callable[[], None]] = []
        self._held = _Held()  # shared with the finalizer, which must not refer to self
        weakref.finalize(self, _stop_left_open, self._held, str(path)).atexit = False

    def __repr__(self) -> str:
        return f"SQLiteFile({str(self.path)!r}, {'open' if self.is_open else 'closed'})"

    @property
    def is_open(self) -> bool:
        """True while connections are open (for the loop that opened them), read-only ones included."""
        return self._reader is not None

    @property
    def writer(self) -> aiosqlite.Connection:
        """The connection that writes (``BackendError`` if the file is closed or open read-only)."""
        if self._writer is None:
            if self._read_only is not None:
                raise self._read_only_error()
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

    def on_replaced(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the file is found replaced (the next one opened is another file)."""
        self._replaced_callbacks.append(callback)

    # -- using the file ----------------------------------------------------------------------------

    async def ready(self) -> None:
        """Connect for the running loop unless connected (read-only will do); raise what prevents it."""
        if (
            self._reader is None
            or self._condemned is not None
            or self._loop is not asyncio.get_running_loop()
        ):
            await self._reconnect()

    async def writable(self) -> aiosqlite.Connection:
        """The writer for the running loop; a file open read-only is first tried for writing again."""
        await self.ready()
        if self._writer is None:
            await self._reopen_for_writing()
        return self.writer

    def can_write(self) -> bool:
        """Open for writing, and the path still names the file opened (for writes nobody awaits)."""
        watch = self._held.watch
        return self._writer is not None and watch is not None and watch.problem() is None

    async def verify(self) -> None:
        """Raise, having stopped using the file, if the path names another or it no longer reads as SQLite."""
        watch = self._held.watch
        problem = None if watch is None else watch.problem()
        if problem is None:
            return
        if problem is Problem.OVERWRITTEN:
            self.damaged(
                DamagedFileError(
                    f"SQLite store {self.path} was {problem.value}; agentcache stops using it. "
                    "Move it away, with its -wal and -shm files, to start a new cache."
                )
            )
            await self._close_condemned()
        await self._let_go_of_replaced()

    def damaged(self, exc: DamagedFileError) -> None:
        """Hear that a statement found the file damaged: it is condemned (see the module docstring)."""
        if self._immutable or self._condemned is not None:
            return  # an immutable reader may read a page torn by a writer elsewhere: not damage
        watch = self._held.watch
        self._condemned = (None if watch is None else watch.identity, exc)

    # -- lifetime ----------------------------------------------------------------------------------

    async def open(self, *, create: bool) -> None:
        """Connect (and, if ``create``, make the folder, file and schema as needed); idempotent."""
        self._creates = create
        self.follow_loop()
        if self._reader is not None:
            return
        async with self._lock:
            if self._reader is not None:
                return
            self._refuse_condemned()
            watch = FileWatch.start(self.path, create=create)
            try:
                conns = await connect(self.path, self.busy_timeout, create=create)
            except DamagedFileError as exc:
                self._condemned = (watch.identity, exc)
                watch.end()
                raise
            except BaseException:
                watch.end()
                raise
            self._install(conns, watch)
        log.debug("opened %s%s", self.path, "" if conns.writer is not None else " read-only")

    async def close(self) -> None:
        """Close both connections; idempotent (closing failures are only logged)."""
        self.follow_loop()
        await self._close(writer_first=self._condemned is not None)

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
        held = self._held
        for conn in (self._writer, self._reader):  # the writer first: then neither checkpoints
            if conn is not None:
                held.conns.remove(conn)
                _abandon(conn)
        self._writer = self._reader = None
        self._read_only, self._immutable = None, False
        watch, held.watch = held.watch, None
        if watch is not None:
            watch.end()
        if stale:
            for callback in self._new_loop_callbacks:
                callback()

    # -- the parts -----------------------------------------------------------------------------

    def _install(self, conns: Connections, watch: FileWatch) -> None:
        self._writer, self._reader = conns.writer, conns.reader
        self._read_only, self._immutable = conns.read_only, conns.immutable
        self._held.conns.extend(c for c in (conns.writer, conns.reader) if c is not None)
        self._held.watch = watch

    async def _reconnect(self) -> None:
        self.follow_loop()
        if self._condemned is not None and self._reader is not None:
            await self._close_condemned()
        if self._reader is None:
            try:
                await self.open(create=self._creates)
            except NotACacheFileError as exc:
                # Found when reconnecting: another program's file now sits at the path. Not a
                # setting to correct but an outage: fail open (and never write to it).
                raise BackendUnavailableError(str(exc)) from exc

    async def _reopen_for_writing(self) -> None:
        async with self._lock:
            if self._writer is not None or self._reader is None:
                return
            try:
                conns = await connect(self.path, self.busy_timeout, create=self._creates, fallback=False)
            except BackendError as exc:
                raise self._read_only_error() from exc
            except NotACacheFileError as exc:
                raise BackendUnavailableError(str(exc)) from exc
            assert conns.writer is not None
            stale, self._reader = self._reader, conns.reader
            self._held.conns.remove(stale)
            self._writer, self._read_only, self._immutable = conns.writer, None, False
            self._held.conns.extend((conns.writer, conns.reader))
        await _close_quietly(stale, self.path)
        log.debug("%s can be written again", self.path)

    def _read_only_error(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"SQLite store {self.path} is open read-only (opening it for writing failed: "
            f"{self._read_only}); stored answers are served, new ones are not stored"
        )

    def _refuse_condemned(self) -> None:
        if self._condemned is None:
            return
        identity, damage = self._condemned
        try:
            now = os.stat(self.path)
        except OSError:
            found = None
        else:
            found = (now.st_dev, now.st_ino)
        if identity is None or found == identity:
            raise DamagedFileError(str(damage))
        self._condemned = None  # another file sits at the path now: judged afresh

    async def _close_condemned(self) -> NoReturn:
        assert self._condemned is not None
        await self._close(writer_first=True)
        raise DamagedFileError(str(self._condemned[1]))

    async def _let_go_of_replaced(self) -> NoReturn:
        writer = self._writer
        if writer is not None:
            try:
                with translated(self.path):
                    await writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except BackendError as exc:
                log.debug("emptying the log of %s, which was replaced, failed: %s", self.path, exc)
        await self._close(writer_first=False)
        for callback in self._replaced_callbacks:
            callback()
        raise BackendUnavailableError(
            f"SQLite store {self.path} was {Problem.REPLACED.value}; what was committed stays in "
            "the file it was, nothing more is written there, and the cache opens the path afresh"
        )

    async def _close(self, *, writer_first: bool) -> None:
        # Normally the reader first: the writer, closing last, checkpoints and removes the log.
        order = (self._writer, self._reader) if writer_first else (self._reader, self._writer)
        self._writer = self._reader = None
        self._read_only, self._immutable = None, False
        held = self._held
        watch, held.watch = held.watch, None
        try:
            for conn in order:
                if conn is not None:
                    held.conns.remove(conn)
                    await _close_quietly(conn, self.path)
        finally:
            if watch is not None:
                watch.end()  # after the connections: closing its descriptor drops their locks
        if any(order):
            log.debug("closed %s", self.path)


async def _close_quietly(conn: aiosqlite.Connection, path: Path) -> None:
    try:
        await conn.close()
    except (sqlite3.Error, ValueError) as exc:
        log.debug("closing a connection to %s failed: %s", path, exc)


def _abandon(conn: aiosqlite.Connection) -> None:
    """Close a connection of a loop that is gone (rolling back what it left open), thread alive or not."""
    _stop_unawaited(conn)


def _stop_unawaited(conn: aiosqlite.Connection) -> None:
    """Stop ``conn``'s worker thread and close the connection, rolled back, from code that cannot await.

    aiosqlite's ``stop`` binds its completion future to ``asyncio.get_event_loop()``. In a
    finalizer, or once a loop has ended, that is whichever loop was set last, often a closed one,
    and the worker thread then dies posting the completion there ("Event loop is closed"). Called
    from a thread that has no event loop, ``stop`` asks for no completion at all.

    The thread may also die posting the result of the statement it had in hand when the loop
    closed, before it reaches the stop; the connection is then released here once it has ended
    (nobody else can touch it then), or, should it still be busy after ``STALE_JOIN_SECONDS``, by a
    reaper thread waiting for it to end.
    """
    thread = worker(conn)
    if thread.is_alive():
        stopper = threading.Thread(target=_post_stop, args=(conn,), name="agentcache-sqlite-stop")
        stopper.daemon = True
        stopper.start()
        stopper.join()
        if thread is threading.current_thread():  # a finalizer may run on any thread
            return  # the stop is queued behind the statement this very thread is running
        thread.join(STALE_JOIN_SECONDS)
    if not thread.is_alive():
        _release(conn)
    else:
        reaper = threading.Thread(target=_release_once_ended, args=(conn,), name="agentcache-sqlite-reap")
        reaper.daemon = True
        reaper.start()


def _post_stop(conn: aiosqlite.Connection) -> None:
    """Queue the release of ``conn`` and then aiosqlite's stop (run on a thread without an event loop)."""
    if not isinstance(conn, threading.Thread):
        # aiosqlite >= 0.22: its stop closes the connection on the worker thread, without rolling
        # back, and takes jobs that post no result. (Before, stop only ends the thread, and the
        # connection is released by whoever waited for that.)
        conn._tx.put_nowait((None, functools.partial(_release, conn)))
    conn.stop()


def _release(conn: aiosqlite.Connection) -> None:
    """Roll back the transaction ``conn`` left open, and close it, on a thread nobody else is using it from.

    Closing alone is not enough: a statement whose cursor is still referenced (by the frame of a
    task destroyed with its loop, until the garbage collector gets to it) is not finalized, and
    SQLite then keeps the connection as a "zombie" with its transaction, and the write lock that
    every other connection of every process waits on, until it is.
    """
    sqlite_conn, conn._connection = conn._connection, None
    if sqlite_conn is None:
        return
    try:
        if sqlite_conn.in_transaction:
            sqlite_conn.rollback()
    except sqlite3.Error as exc:
        log.debug("rolling back an abandoned connection failed: %s", exc)
    finally:
        try:
            sqlite_conn.close()
        except sqlite3.Error as exc:
            log.debug("closing an abandoned connection failed: %s", exc)


def _release_once_ended(conn: aiosqlite.Connection) -> None:
    """Wait for a busy worker thread to end (stopped or dead), then release its connection if still open."""
    worker(conn).join()
    _release(conn)


def _stop_left_open(held: _Held, path: str) -> None:
    """The finalizer of a ``SQLiteFile``: stop the connections it still had open, then its watch.

    Not a warning: whoever left the store open (a cache that was never closed) warns about that
    itself, and a warning raised by a finalizer, under a filter that makes it an error, is lost.
    """
    left, held.conns = held.conns, []
    watch, held.watch = held.watch, None
    for conn in left:
        _stop_unawaited(conn)
    if watch is not None:
        watch.end()
    if left:
        log.debug("closed the connections of %s, which was never closed", path)
