"""A SQLite store's connection threads: none is left behind, and none dies posting to a closed event loop.

aiosqlite runs each connection's statements on a worker thread that posts every result to the
event loop of the task that asked. A thread that posts to a loop that has closed dies with
"Event loop is closed" (pytest reports it as an unhandled thread exception). These tests watch
``threading.excepthook`` for exactly that.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from agentcache import BackendError
from agentcache.stores import Entry
from agentcache.stores.sqlite import SQLiteStore
from agentcache.stores.sqlite._connect import worker
from agentcache.stores.sqlite._connection import SQLiteFile


@pytest.fixture
def thread_deaths(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """The exceptions that killed threads during the test."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    return died


def connection_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "connection_worker" in t.name}


def still_running(threads: set[threading.Thread]) -> list[threading.Thread]:
    for thread in threads:
        thread.join(10)
    return [t for t in threads if t.is_alive()]


def test_a_store_collected_open_after_its_loop_closed_stops_its_threads_quietly(
    tmp_path: Path, thread_deaths: list[BaseException | None]
) -> None:
    before = connection_threads()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the closed loop stays the current one, as test runners leave it
    try:
        store = SQLiteStore(tmp_path / "c.db")
        loop.run_until_complete(store.open())  # and never closed
        loop.close()
        workers = connection_threads() - before
        assert len(workers) == 2
        del store
        gc.collect()
        assert still_running(workers) == []
    finally:
        asyncio.set_event_loop(None)
    assert thread_deaths == []


async def test_a_file_that_fails_while_connecting_leaves_no_thread_behind(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    content = b"SQLite format 3\x00" + bytes(range(256)) * 16  # the right header, then garbage
    path.write_bytes(content)
    before = connection_threads()
    store = SQLiteStore(path)
    for _ in range(3):
        with pytest.raises(BackendError, match="not a database"):
            await store.open()
    assert still_running(connection_threads() - before) == []
    assert path.read_bytes() == content


def test_a_run_that_ends_with_statements_in_flight_kills_no_connection_thread(
    tmp_path: Path, thread_deaths: list[BaseException | None]
) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    keys = [f"ns:v1:{i}" for i in range(200)]
    value = Entry(b"v" * 10_000, 1.0)
    left: list[asyncio.Future[Any]] = []

    async def leave_work_in_flight(round_: int) -> None:
        await store.open()
        # asyncio.run cancels these on its way out, while their statements are on the threads.
        for key in keys:
            left.append(asyncio.ensure_future(store.set_many([(f"{key}-{round_}", value)])))
            left.append(asyncio.ensure_future(store.get_many([key], 2.0)))
        await asyncio.sleep(0)

    async def use_again() -> list[Any]:
        found = await store.get_many([f"{keys[0]}-0"], 2.0)
        await store.aclose()
        return found

    for round_ in range(5):
        asyncio.run(leave_work_in_flight(round_))
    asyncio.run(use_again())  # the store reconnects in the next loop
    assert all(task.done() for task in left)
    assert thread_deaths == []


def test_a_store_serves_a_second_asyncio_run_without_being_closed_between(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    before = connection_threads()

    async def first() -> None:
        await store.set_many([("ns:v1:k", Entry(b"v", 1.0))])
        store.note_hit("ns:v1:k", 5.0)

    async def second() -> list[Entry | None]:
        found = await store.get_many(["ns:v1:k"], 2.0)
        await store.aclose()
        return found

    asyncio.run(first())
    (entry,) = asyncio.run(second())
    assert entry is not None
    assert entry.value == b"v"

    async def counted() -> int:
        hits = [e.hits async for _, e in store.scan()]
        await store.aclose()
        return hits[0]

    assert asyncio.run(counted()) == 1  # the first loop's hit count, written by the second
    assert still_running(connection_threads() - before) == []


# -- a write transaction left open by a loop that ended ------------------------------------------
#
# A loop closed without cancelling its tasks (``loop.close()`` after ``run_until_complete``) leaves
# the writer inside ``BEGIN IMMEDIATE ... executemany``. The task's frame, and with it the cursor of
# that ``executemany``, lives on until the garbage collector happens to collect it; sqlite3 only
# finalizes a statement when its cursor goes, and SQLite closes a connection that still has one as
# a "zombie" that keeps its transaction, and the write lock, until then. Here the test holds the
# cursor (as the uncollected frame does); the next loop's store must still be able to write.

UPSERT_META = "INSERT OR REPLACE INTO agentcache_meta (name, value) VALUES (?, ?)"


def write_lock_is_free(path: Path) -> bool:
    """Whether another connection can take the write lock at once (no busy wait)."""
    probe = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    else:
        probe.execute("ROLLBACK")
        return True
    finally:
        probe.close()


async def begin_a_write(file: SQLiteFile) -> aiosqlite.Cursor:
    await file.open(create=True)
    writer = file.writer
    await writer.execute("BEGIN IMMEDIATE")
    return await writer.executemany(UPSERT_META, [("a", "1"), ("b", "2")])


def test_a_write_left_open_by_an_ended_loop_does_not_keep_the_lock(
    tmp_path: Path, thread_deaths: list[BaseException | None]
) -> None:
    file = SQLiteFile(tmp_path / "c.db", busy_timeout=0.0)
    loop = asyncio.new_event_loop()
    left_open = loop.run_until_complete(begin_a_write(file))  # the cursor an uncollected frame holds
    loop.close()
    assert not write_lock_is_free(file.path)

    async def next_run() -> bool:
        file.follow_loop()  # drops the ended loop's connections
        free = write_lock_is_free(file.path)
        await file.close()
        return free

    assert asyncio.run(next_run())
    assert left_open is not None
    assert thread_deaths == []


def test_a_write_left_open_by_a_thread_that_died_does_not_keep_the_lock(
    tmp_path: Path, thread_deaths: list[BaseException | None]
) -> None:
    file = SQLiteFile(tmp_path / "c.db", busy_timeout=0.0)
    gate = threading.Event()
    loop = asyncio.new_event_loop()

    async def write_then_block() -> tuple[aiosqlite.Cursor, asyncio.Task[Any]]:
        cursor = await begin_a_write(file)
        await file.writer.create_function("gate", 0, lambda: gate.wait(10))
        pending = asyncio.ensure_future(file.writer.execute_fetchall("SELECT gate()"))
        await asyncio.sleep(0)  # the statement is handed to the thread, which now waits on the gate
        return cursor, pending

    left_open, pending = loop.run_until_complete(write_then_block())
    thread = worker(file.writer)
    loop.close()
    gate.set()  # the statement ends, and posting its result to the closed loop kills the thread
    thread.join(10)
    assert not thread.is_alive()
    assert [type(exc) for exc in thread_deaths] == [RuntimeError]
    assert not write_lock_is_free(file.path)

    async def next_run() -> bool:
        file.follow_loop()
        free = write_lock_is_free(file.path)
        await file.close()
        return free

    assert asyncio.run(next_run())
    assert left_open is not None
    assert not pending.done()
