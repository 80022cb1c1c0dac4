"""MicroBatcher: what concurrent submitters share, and what each gets back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agentcache import EventLoopConflictError
from agentcache.stores._batch import MicroBatcher

JOIN = 60.0  # seconds: a bound on what must never hang


async def test_concurrent_submissions_share_a_batch_and_get_their_own_result() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(run)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2, 3, 4]]


async def test_submissions_during_a_batch_form_the_next_one() -> None:
    gate, in_flight = asyncio.Event(), asyncio.Event()
    batches: list[list[str]] = []

    async def run(items: list[str]) -> list[str]:
        batches.append(items)
        if len(batches) == 1:
            in_flight.set()
            await gate.wait()
        return items

    batcher: MicroBatcher[str, str] = MicroBatcher(run)
    first = asyncio.ensure_future(batcher.submit("a"))
    await in_flight.wait()
    later = [asyncio.ensure_future(batcher.submit(x)) for x in "bc"]
    gate.set()
    assert await asyncio.gather(first, *later) == ["a", "b", "c"]
    assert batches == [["a"], ["b", "c"]]


async def test_a_failing_batch_fails_each_submitter_and_the_next_batch_still_runs() -> None:
    async def run(items: list[int]) -> list[int]:
        if 0 in items:
            raise ZeroDivisionError("boom")
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=2)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert [type(r) if isinstance(r, BaseException) else r for r in results] == [
        ZeroDivisionError,
        ZeroDivisionError,
        2,
        3,
    ]
    with pytest.raises(ZeroDivisionError):
        await batcher.submit(0)


async def test_a_run_that_miscounts_its_results_fails_its_batch_instead_of_stranding_it() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: MicroBatcher[int, int] = MicroBatcher(short)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_items_queued_behind_an_outage_fail_with_it_without_a_run_of_their_own() -> None:
    runs: list[list[int]] = []
    gate = asyncio.Event()

    async def locked(items: list[int]) -> list[int]:
        runs.append(items)
        await gate.wait()  # the first batch waits out another process's lock...
        raise TimeoutError("database is locked")

    batcher: MicroBatcher[int, int] = MicroBatcher(locked, shares_outage=lambda exc: "locked" in str(exc))
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    queued = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]  # ...while these queue behind it
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)
    assert runs == [[1]], "the queued items would only have waited out the same lock"


async def test_other_failures_do_not_fail_what_is_queued() -> None:
    async def flaky(items: list[int]) -> list[int]:
        if items == [1]:
            raise ValueError("this batch only")
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(flaky, shares_outage=lambda exc: "locked" in str(exc))
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(batcher.submit(2))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], ValueError)
    assert results[1] == 2


def test_a_second_running_loop_is_refused_and_the_first_loops_queue_still_lands() -> None:
    """Another thread's loop submitting meanwhile must not take over (and drop) what is queued."""
    gate, in_flight = threading.Event(), threading.Event()

    async def run(items: list[int]) -> list[int]:
        in_flight.set()
        await asyncio.to_thread(gate.wait, JOIN)
        return [i * 10 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=1)
    landed: list[int] = []

    async def owner() -> None:
        first, queued = batcher.submit(1), batcher.submit(2)  # 2 waits for the batch after 1's
        landed.extend(await asyncio.wait_for(asyncio.gather(first, queued), JOIN))

    async def intruder() -> None:
        try:
            with pytest.raises(EventLoopConflictError, match="a MicroBatcher is serving an event loop"):
                batcher.submit_nowait(3)
        finally:
            gate.set()

    thread = threading.Thread(target=lambda: asyncio.run(owner()), name="owner")
    thread.start()
    assert in_flight.wait(JOIN)  # the owner's loop is running, waiting on its first batch
    asyncio.run(intruder())
    thread.join(JOIN)
    assert not thread.is_alive()
    assert landed == [10, 20]
