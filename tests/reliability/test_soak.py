"""A soak: hundreds of thousands of ``get_or_call``s of a mixed workload against SQLite.

Waves of concurrent tasks mix hits, misses, identical bursts, upstream exceptions, cancellations
and timeouts over a skewed key space; between waves some keys are overwritten with ``set``. A
reference model (a dict of what may be stored per key) checks every answer a caller receives.
At the end: no flight is left, no "exception was never retrieved", L1 within its bound, the file
passes ``integrity_check``, and a fresh cache serves every modelled key with the modelled value.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentcache import AgentCache

L1_MAX = 300


class Flaky(Exception):
    """An upstream failure: passes through unchanged, never stored."""


@dataclass
class Tally:
    """What the soak did and saw."""

    operations: int = 0
    answered: int = 0
    upstream_calls: int = 0
    raised: int = 0
    cancelled: int = 0
    timed_out: int = 0
    overwritten: int = 0
    wrong: list[str] = field(default_factory=list)


class Model:
    """Per key, the values the store may hold: one once confirmed, several while uncertain.

    A value becomes certain when a caller receives it (values are committed before they are
    returned). A call whose every caller left may or may not have stored its value: then both
    the old and the new value are allowed until a caller sees one of them.
    """

    def __init__(self) -> None:
        self.allowed: dict[str, set[str]] = {}

    def check_and_confirm(self, key: str, value: str, tally: Tally) -> None:
        allowed = self.allowed.get(key)
        if not value.startswith(f"{key} "):
            tally.wrong.append(f"{key}: got {value!r}, another key's answer")
        elif allowed is not None and value not in allowed:
            tally.wrong.append(f"{key}: got {value!r}, model allows {sorted(allowed)!r}")
        self.allowed[key] = {value}

    def maybe_stored(self, key: str, value: str) -> None:
        self.allowed.setdefault(key, set()).add(value)


async def soak(db_url: str, operations: int, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    model = Model()
    keys = [f"prompt {i}" for i in range(max(200, operations // 8))]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(keys))]  # skewed: hot keys hit often
    generation = 0
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))

    async with AgentCache(db_url, l1_max_entries=L1_MAX) as cache:

        async def call(key: str) -> str:
            tally.upstream_calls += 1
            value = f"{key} @ {generation}.{tally.upstream_calls}"
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            if rng.random() < 0.05:
                await asyncio.sleep(0.002)  # slow enough for some timeouts to fire
            if rng.random() < 0.08:
                raise Flaky(key)
            model.maybe_stored(key, value)  # it may be stored even if every caller leaves
            return value

        async def one(key: str, timeout: float | None) -> None:
            try:
                if timeout is None:
                    value = await cache.get_or_call(key, call)
                else:
                    value = await asyncio.wait_for(cache.get_or_call(key, call), timeout)
            except Flaky as exc:
                if exc.args != (key,):  # it must be the upstream's own exception, unchanged
                    tally.wrong.append(f"{key}: raised {exc!r}")
                tally.raised += 1
                return
            except asyncio.TimeoutError:
                tally.timed_out += 1
                return
            tally.answered += 1
            model.check_and_confirm(key, value, tally)

        while tally.operations < operations:
            generation += 1
            wave = min(rng.randrange(50, 400), operations - tally.operations)
            chosen = rng.choices(keys, weights, k=wave)
            burst_key = rng.choice(keys)
            same = rng.randrange(wave // 4 + 1)
            chosen[:same] = [burst_key] * same  # an identical burst
            tasks = []
            for key in chosen:
                timeout = 0.001 if rng.random() < 0.03 else None
                tasks.append(asyncio.ensure_future(one(key, timeout)))
            tally.operations += wave
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            for task in rng.sample(tasks, k=wave // 20):  # random cancellations
                task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, asyncio.CancelledError):
                    tally.cancelled += 1
                elif isinstance(outcome, BaseException):
                    raise outcome
            if rng.random() < 0.2:  # overwrite a few keys between waves
                for key in rng.sample(keys, k=5):
                    value = f"{key} set @ {generation}"
                    await cache.set(key, value)
                    model.allowed[key] = {value}
                    tally.overwritten += 1
            assert len(cache._l1 or ()) <= L1_MAX

        assert len(cache._lookup) == 0, "a flight was left in the table"

    gc.collect()
    await asyncio.sleep(0)
    assert unretrieved == [], unretrieved[:3]
    assert tally.wrong == [], tally.wrong[:5]

    path = Path(db_url.removeprefix("sqlite:///"))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    never_called: list[str] = []

    async def must_not_call(key: str) -> str:
        never_called.append(key)
        return "recomputed"

    async with AgentCache(db_url, l1_max_entries=0) as fresh:
        for key, allowed in model.allowed.items():
            if len(allowed) == 1:
                (expected,) = allowed
                assert await fresh.get_or_call(key, must_not_call) == expected, key
        assert never_called == [], f"{len(never_called)} modelled values lost"
    return tally


async def test_a_20_000_call_soak_loses_nothing_and_serves_nothing_wrong(db_url: str) -> None:
    tally = await soak(db_url, 20_000, seed=1)
    assert tally.answered > 15_000
    assert min(tally.raised, tally.cancelled, tally.timed_out, tally.overwritten) > 0


@pytest.mark.slow
async def test_a_200_000_call_soak_loses_nothing_and_serves_nothing_wrong(db_url: str) -> None:
    tally = await soak(db_url, 200_000, seed=2)
    assert tally.answered > 150_000
    assert min(tally.raised, tally.cancelled, tally.timed_out, tally.overwritten) > 0
