"""A hypothesis state machine drives AgentCache against a reference model: a plain dict.

The model holds what the cache stored (value, expiry) per (namespace, key). Every rule runs the
real cache (memory:// or a SQLite file, a tiny L1 so entries move between L1 and the file, a fake
clock for TTLs) and checks it against the model: hits return the modelled value without calling,
misses call exactly once and store, TTLs expire, delete/clear/set do what the model says, and a
reopened SQLite cache still has every live entry.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agentcache import AgentCache
from tests.helpers import FakeClock

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"]) | st.fixed_dictionaries(
    {"prompt": st.sampled_from(["x", "y"]), "t": st.sampled_from([0, 0.5, 1.0])}
)
NAMESPACES = st.sampled_from(["default", "other"])
VALUES = st.one_of(
    st.text(max_size=5),
    st.integers(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.booleans(), max_size=2),
    st.none(),
)
TTLS = st.none() | st.sampled_from([1.0, 5.0, 30.0])


class CacheMachine(RuleBasedStateMachine):
    url_kind = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="agentcache-stateful-"))
        self.clock = FakeClock()
        self.model: dict[tuple[str, str], tuple[Any, float | None]] = {}
        self.cache = self.open_cache()
        self.calls = 0

    def open_cache(self) -> AgentCache:
        url = "memory://" if self.url_kind == "memory" else f"sqlite:///{self.folder / 'c.db'}"
        return AgentCache(url, l1_max_entries=2, clock=self.clock)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def model_key(self, key: Any, namespace: str) -> tuple[str, str]:
        return namespace, self.cache.key(key, namespace)

    def live(self, mkey: tuple[str, str]) -> tuple[Any, float | None] | None:
        found = self.model.get(mkey)
        if found is None:
            return None
        if found[1] is not None and self.clock.now >= found[1]:
            del self.model[mkey]  # expired: the cache must treat it as absent too
            return None
        return found

    @initialize()
    def start(self) -> None:
        self.calls = 0

    @rule(key=KEYS, namespace=NAMESPACES, value=VALUES, ttl=TTLS)
    def get_or_call(self, key: Any, namespace: str, value: Any, ttl: float | None) -> None:
        mkey = self.model_key(key, namespace)
        expected = self.live(mkey)
        called: list[Any] = []

        async def call(material: Any) -> Any:
            called.append(material)
            return value

        got = self.run(self.cache.get_or_call(key, call, namespace=namespace, ttl=ttl))
        if expected is not None:
            assert called == [], "a hit must not call"
            assert got == expected[0]
        else:
            assert called == [key]
            assert got == value
            expires = None if ttl is None else self.clock.now + ttl
            self.model[mkey] = (value, expires)

    @rule(key=KEYS, namespace=NAMESPACES)
    def get(self, key: Any, namespace: str) -> None:
        expected = self.live(self.model_key(key, namespace))
        got = self.run(self.cache.get(key, "<absent>", namespace=namespace))
        assert got == (expected[0] if expected is not None else "<absent>")

    @rule(key=KEYS, namespace=NAMESPACES, value=VALUES, ttl=TTLS)
    def set(self, key: Any, namespace: str, value: Any, ttl: float | None) -> None:
        self.run(self.cache.set(key, value, namespace=namespace, ttl=ttl))
        self.model[self.model_key(key, namespace)] = (value, None if ttl is None else self.clock.now + ttl)

    @rule(key=KEYS, namespace=NAMESPACES)
    def delete(self, key: Any, namespace: str) -> None:
        mkey = self.model_key(key, namespace)
        was_live = self.live(mkey) is not None
        removed = self.run(self.cache.delete(key, namespace=namespace))
        self.model.pop(mkey, None)
        if was_live:
            assert removed is True
        # (an expired entry may still be in the file: deleting it may report True)

    @rule(namespace=NAMESPACES)
    def clear(self, namespace: str) -> None:
        self.run(self.cache.clear(namespace))
        for mkey in [m for m in self.model if m[0] == namespace]:
            del self.model[mkey]

    @rule(seconds=st.sampled_from([0.5, 1.0, 4.0, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.url_kind == "sqlite")
    @rule()
    def reopen(self) -> None:
        """Everything live survives a close and a new cache on the same file."""
        self.run(self.cache.aclose())
        self.cache = self.open_cache()

    @invariant()
    def l1_stays_within_its_bound(self) -> None:
        l1 = self.cache._l1
        assert l1 is None or len(l1) <= 2 or self.url_kind == "memory"

    @invariant()
    def no_flight_is_left(self) -> None:
        assert len(self.cache._lookup) == 0

    def teardown(self) -> None:
        try:
            self.run(self.cache.aclose())
        finally:
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)


class MemoryCacheMachine(CacheMachine):
    url_kind = "memory"

    def open_cache(self) -> AgentCache:
        # memory:// is its own L1: give it room for every key so that nothing is evicted
        # (eviction is a bounded LRU's right, and the model does not model it).
        return AgentCache("memory://?max_entries=1000", clock=self.clock)


STATEFUL = settings(max_examples=60, stateful_step_count=40, deadline=None)

TestSQLiteCacheAgainstTheModel = CacheMachine.TestCase
TestSQLiteCacheAgainstTheModel.settings = STATEFUL
TestMemoryCacheAgainstTheModel = MemoryCacheMachine.TestCase
TestMemoryCacheAgainstTheModel.settings = STATEFUL


@pytest.mark.slow
def test_the_sqlite_cache_matches_the_model_over_many_more_steps() -> None:
    CacheMachine.TestCase.settings = settings(max_examples=400, stateful_step_count=80, deadline=None)
    try:
        CacheMachine.TestCase().runTest()
    finally:
        CacheMachine.TestCase.settings = STATEFUL
