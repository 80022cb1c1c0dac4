"""Lifetime faults: closing with calls in flight, two event loops, a dead loop, never closing at all.

None of these may hang, lose an answer a caller received, or leave a thread behind.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from agentcache import AgentCache
from tests.helpers import Upstream

GUARD = 60.0  # seconds: a hang turns into a test failure instead of a stuck suite


def run_guarded(coro: Any) -> Any:
    """``asyncio.run`` with a hang guard."""

    async def guarded() -> Any:
        return await asyncio.wait_for(coro, GUARD)

    return asyncio.run(guarded())


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` that do not end (closing lets them finish on their own)."""
    started = [t for t in threading.enumerate() if t not in before]
    for thread in started:
        thread.join(10)
    return [t for t in started if t.is_alive()]


async def upper(key: str) -> str:
    return key.upper()


def burst(cache: AgentCache, tag: str, n: int = 40) -> Any:
    """n concurrent misses then n concurrent hits (store reads when L1 is off)."""

    async def go() -> list[str]:
        first = await asyncio.gather(*(cache.get_or_call(f"{tag}{i}", upper) for i in range(n)))
        again = await asyncio.gather(*(cache.get_or_call(f"{tag}{i}", upper) for i in range(n)))
        assert first == again == [f"{tag}{i}".upper() for i in range(n)]
        return first

    return go()


# -- closing -----------------------------------------------------------------------------------


async def test_closing_twice_is_harmless_and_the_cache_reopens_lazily(db_url: str) -> None:
    cache = AgentCache(db_url, l1_max_entries=0)
    assert await cache.get_or_call("q", upper) == "Q"
    await cache.aclose()
    await cache.aclose()
    assert await cache.get_or_call("q", Upstream()) == "Q"  # reopened, served from the file
    await cache.aclose()
    await cache.aclose()


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, 8, 13, 21, 34])
async def test_closing_with_calls_in_flight_loses_no_answer_a_caller_received(
    db_url: str, turns: int
) -> None:
    """Close after a varying number of loop turns: callers get their answer or are cancelled."""
    cache = AgentCache(db_url, l1_max_entries=0)
    await cache.get("open the store")
    tasks = [asyncio.ensure_future(cache.get_or_call(f"k{i}", upper)) for i in range(60)]
    tasks += [asyncio.ensure_future(cache.get_or_call("same", upper)) for _ in range(20)]
    for _ in range(turns):
        await asyncio.sleep(0)
    await cache.aclose()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    answered = {}
    for task, result in zip(tasks, done, strict=True):
        if isinstance(result, BaseException):
            assert isinstance(result, asyncio.CancelledError), result
            assert task.cancelled()
        else:
            answered[result.lower()] = result
    assert not len(cache._lookup), "a flight was left in the table"
    # Every answer a caller received was committed before it was returned: a new cache has it.
    async with AgentCache(db_url, l1_max_entries=0) as again:
        never = Upstream(lambda key: "recomputed")
        for key, value in answered.items():
            assert await again.get_or_call(key, never) == value
        assert never.calls == 0
    await cache.aclose()  # callers that arrived after the first close reopened it


async def test_closing_while_an_upstream_call_waits_cancels_it_cleanly(db_url: str) -> None:
    upstream = Upstream().gated()
    cache = AgentCache(db_url)
    task = asyncio.ensure_future(cache.get_or_call("slow", upstream))
    await upstream.started.wait()
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert upstream.cancelled == 1
    upstream.gate = None
    assert await cache.get_or_call("slow", upstream) == "answer to slow"  # usable again
    await cache.aclose()


async def test_pending_hit_counts_are_flushed_on_close(db_url: str) -> None:
    async with AgentCache(db_url) as cache:
        await cache.get_or_call("q", upper)
        for _ in range(5):
            await cache.get_or_call("q", upper)  # L1 hits: counted in memory only
    async with AgentCache(db_url) as cache:
        entries = [entry async for _, entry in cache.store.scan()]
    assert [e.hits for e in entries] == [5]


UNCLOSED = """
import asyncio, gc, sys, warnings
from agentcache import AgentCache

async def upper(key):
    return key.upper()

async def main():
    cache = AgentCache(sys.argv[1])
    await cache.get_or_call("q", upper)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        del cache
        gc.collect()
    print([str(w.message) for w in record if w.category is ResourceWarning])

asyncio.run(main())
"""


# Collecting an unclosed aiosqlite connection stops its worker thread, which may then try to
# report to the event loop this test already closed: aiosqlite's own noise, not agentcache's.
def test_a_cache_garbage_collected_unclosed_warns(db_url: str) -> None:
    """In a child: aiosqlite's own cleanup of the collected connections is noisy after the loop."""
    proc = subprocess.run(
        [sys.executable, "-c", UNCLOSED, db_url], capture_output=True, text=True, timeout=GUARD, check=False
    )
    assert proc.returncode == 0, proc.stderr
    messages = proc.stdout.strip()
    assert "AgentCache(" in messages
    assert "garbage-collected unclosed" in messages
    assert "aclose()" in messages


async def test_a_memory_cache_or_a_closed_one_needs_no_closing(db_url: str) -> None:
    memory = AgentCache("memory://")
    await memory.get_or_call("q", upper)
    closed = AgentCache(db_url)
    await closed.get_or_call("q", upper)
    await closed.aclose()
    never_opened = AgentCache(db_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del memory, closed, never_opened
        gc.collect()


def open_sqlite_connections() -> int:
    """SQLite connections alive in this process and not closed (aiosqlite's among them)."""
    gc.collect()
    alive = 0
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                obj.total_changes  # noqa: B018 - raises on a closed connection
            except sqlite3.ProgrammingError:
                continue
            alive += 1
    return alive


async def test_closing_a_cache_closes_its_store_opened_only_through_cache_store(db_url: str) -> None:
    """A scan through ``cache.store`` opens the store past the guard: ``aclose`` closes it all the same.

    Left open, its two connections (and their threads) outlive the test, and whichever later test
    collects them meets their ResourceWarning (Python 3.13 warns for an unclosed connection).
    """
    async with AgentCache(db_url) as filled:
        await filled.set("q", "Q")
    threads = set(threading.enumerate())
    before = open_sqlite_connections()
    cache = AgentCache(db_url)
    assert [entry.value async for _, entry in cache.store.scan()] != []
    assert open_sqlite_connections() == before + 2  # the writer and the reader, opened by the scan
    await cache.aclose()
    assert open_sqlite_connections() == before
    assert not new_threads(threads), "a connection thread was left running"


def test_a_process_that_never_closes_its_cache_still_exits(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from agentcache import AgentCache

        cache = AgentCache("sqlite:///{tmp_path / "c.db"}")

        async def upper(key):
            return key.upper()

        async def main():
            assert await cache.get_or_call("q", upper) == "Q"

        asyncio.run(main())
        print("done")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=GUARD, check=False
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "done"), proc.stderr


# -- two event loops ---------------------------------------------------------------------------


def test_one_cache_serves_two_asyncio_runs_without_closing_between(db_url: str) -> None:
    threads = set(threading.enumerate())
    cache = AgentCache(db_url, l1_max_entries=0)
    run_guarded(burst(cache, "a"))
    run_guarded(burst(cache, "b"))
    run_guarded(burst(cache, "a"))  # hits of the first run, read in the third
    assert (cache.stats.misses, cache.stats.errors) == (80, 0)
    run_guarded(cache.aclose())
    assert not new_threads(threads), "a connection thread was left running"


def test_one_cache_reopens_in_a_second_asyncio_run_after_closing(db_url: str) -> None:
    threads = set(threading.enumerate())
    cache = AgentCache(db_url, l1_max_entries=0)

    async def use_and_close(tag: str) -> None:
        async with cache:
            await burst(cache, tag)  # 40 concurrent first calls contend for the open

    run_guarded(use_and_close("a"))
    run_guarded(use_and_close("b"))
    run_guarded(use_and_close("a"))
    assert (cache.stats.misses, cache.stats.errors) == (80, 0)
    assert not new_threads(threads)


# aiosqlite threads that finish a job after asyncio.run closed its loop die reporting it (that is
# why the store reconnects in the next loop); their report is the scenario, not a failure.
def test_a_run_that_ends_with_calls_in_flight_leaves_the_cache_usable(db_url: str) -> None:
    """asyncio.run cancels what is left; the aiosqlite threads must survive that."""
    cache = AgentCache(db_url, l1_max_entries=0)
    upstream = Upstream().gated()
    started: list[asyncio.Task[Any]] = []

    async def leave_work_behind() -> None:
        await cache.get("open")
        started.extend(asyncio.ensure_future(cache.get_or_call(f"x{i}", upper)) for i in range(30))
        started.append(asyncio.ensure_future(cache.get_or_call("gated", upstream)))
        await asyncio.sleep(0)  # some are reading the store, one waits upstream

    run_guarded(leave_work_behind())
    assert all(task.done() for task in started)
    run_guarded(burst(cache, "after"))
    assert cache.stats.errors == 0
    run_guarded(cache.aclose())


ABANDON = """
import asyncio, sys
from agentcache import AgentCache

async def upper(key):
    return key.upper()

async def burst(cache, tag):
    first = await asyncio.gather(*(cache.get_or_call(f"{tag}{i}", upper) for i in range(30)))
    again = await asyncio.gather(*(cache.get_or_call(f"{tag}{i}", upper) for i in range(30)))
    assert first == again == [f"{tag}{i}".upper() for i in range(30)]

cache = AgentCache(sys.argv[1], l1_max_entries=0)

async def abandon(tag, turns):
    await cache.get("open")
    for i in range(30):
        asyncio.ensure_future(cache.get_or_call(f"{tag}{i}", upper))
    for _ in range(turns):
        await asyncio.sleep(0)

for round, turns in enumerate(map(int, sys.argv[2].split(","))):
    loop = asyncio.new_event_loop()
    loop.run_until_complete(abandon(f"r{round}-", turns))
    loop.close()  # without cancelling: the pending tasks are simply destroyed
    asyncio.run(burst(cache, f"r{round}-"))  # the same keys: no stale flight may capture them
asyncio.run(cache.aclose())
assert cache.stats.errors == 0, cache.stats  # no stale lock made the store fail
print("ok")
"""


@pytest.mark.parametrize("turns", ["0,1,2,3,4,5,6", "7,8,9,10,11,12,13", "6,6,6,6,6,6,8,8,8,8,8,8"])
def test_a_loop_closed_abruptly_mid_write_does_not_hang_the_next_one(db_url: str, turns: str) -> None:
    """Pending tasks destroyed without cleanup (``loop.close()`` after ``run_until_complete``).

    In a child process: destroying them makes Python print what their cleanup could not do
    ("Task was destroyed but it is pending"), which is the abuse under test; a hang is what must
    not happen.
    """
    proc = subprocess.run(
        [sys.executable, "-c", ABANDON, db_url, turns],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr[-3000:]
