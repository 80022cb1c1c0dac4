"""SingleFlight: one upstream call per key, shielded waiters, and no leftovers."""

from __future__ import annotations

import asyncio

import pytest

from agentcache.flight import SingleFlight
from tests.helpers import Upstream, settle


async def test_concurrent_callers_share_one_call_and_learn_they_shared() -> None:
    flight: SingleFlight[str] = SingleFlight()
    upstream = Upstream().gated()
    tasks = [asyncio.ensure_future(flight.do("k", lambda: upstream("k"))) for _ in range(1000)]
    await upstream.started.wait()
    await settle()
    upstream.gate.set()  # type: ignore[union-attr]
    results = await asyncio.gather(*tasks)
    assert upstream.calls == 1
    assert {value for value, _ in results} == {"answer to k"}
    assert [shared for _, shared in results].count(False) == 1
    assert len(flight) == 0


async def test_cancelling_one_waiter_keeps_the_call_alive() -> None:
    flight: SingleFlight[str] = SingleFlight()
    upstream = Upstream().gated()
    first = asyncio.ensure_future(flight.do("k", lambda: upstream("k")))
    second = asyncio.ensure_future(flight.do("k", lambda: upstream("k")))
    await upstream.started.wait()
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    upstream.gate.set()  # type: ignore[union-attr]
    assert await second == ("answer to k", True)
    assert upstream.cancelled == 0


async def test_cancelling_every_waiter_cancels_the_call_and_frees_the_key() -> None:
    flight: SingleFlight[str] = SingleFlight()
    upstream = Upstream().gated()
    tasks = [asyncio.ensure_future(flight.do("k", lambda: upstream("k"))) for _ in range(3)]
    await upstream.started.wait()
    await settle()
    for task in tasks:
        task.cancel()
    await settle()
    assert upstream.cancelled == 1
    assert "k" not in flight
    # A new caller starts afresh instead of joining the dead flight.
    upstream.gate.set()  # type: ignore[union-attr]
    assert await flight.do("k", lambda: upstream("k")) == ("answer to k", False)
    assert upstream.calls == 2


async def test_the_exception_reaches_every_waiter_and_is_not_kept() -> None:
    flight: SingleFlight[str] = SingleFlight()
    gate = asyncio.Event()
    boom = ValueError("upstream failed")
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise boom

    tasks = [asyncio.ensure_future(flight.do("k", failing)) for _ in range(5)]
    await settle()
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results == [boom] * 5
    assert calls == 1
    assert len(flight) == 0

    async def ok() -> str:
        return "recovered"

    assert await flight.do("k", ok) == ("recovered", False)


async def test_a_late_finisher_never_removes_a_newer_flight() -> None:
    flight: SingleFlight[str] = SingleFlight()
    old_gate, new_gate = asyncio.Event(), asyncio.Event()

    async def old() -> str:
        try:
            await old_gate.wait()
        finally:
            await asyncio.sleep(0)  # finishes after the newer flight has started
        return "old"

    async def new() -> str:
        await new_gate.wait()
        return "new"

    first = asyncio.ensure_future(flight.do("k", old))
    await settle()
    first.cancel()  # the last waiter leaves: the old call is cancelled and the key dropped
    second = asyncio.ensure_future(flight.do("k", new))
    await settle()
    assert "k" in flight  # the old task's completion callback did not remove the new flight
    new_gate.set()
    assert await second == ("new", False)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_different_keys_fly_separately() -> None:
    flight: SingleFlight[str] = SingleFlight()
    upstream = Upstream()
    results = await asyncio.gather(*(flight.do(k, lambda k=k: upstream(k)) for k in "abc"))
    assert [value for value, _ in results] == ["answer to a", "answer to b", "answer to c"]
    assert upstream.calls == 3
