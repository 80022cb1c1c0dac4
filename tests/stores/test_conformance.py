"""The Store contract, run against every backend alike: memory, SQLite, Redis.

Each test gets a fresh store from ``make_store``; ``reopen`` closes it and builds a new one over the
same data (a new object for SQLite and Redis, the same object for memory, whose data lives in it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentcache import ConfigurationError
from agentcache.stores import Entry, Store, open_store
from agentcache.stores.memory import MemoryStore

from .conftest import REDIS_URL, delete_prefix, require_redis

NOW = 1_800_000_000.0

Factory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Factory]:
    """Builds (and opens) the store under test; called again, it reopens the same data."""
    kind = request.param
    made: list[Store] = []
    memory = MemoryStore()
    if kind == "redis":
        require_redis()

    async def make() -> Store:
        if made:
            await made[-1].aclose()
        if kind == "memory":
            store: Store = memory
        elif kind == "sqlite":
            store = open_store(f"sqlite:///{tmp_path / 'conformance.db'}")
        else:
            store = open_store(f"{REDIS_URL}?prefix={redis_prefix}")
        await store.open()
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()
    if kind == "redis":
        await delete_prefix(redis_prefix)


def entry(value: bytes = b"answer", **fields: Any) -> Entry:
    fields.setdefault("created_at", NOW)
    return Entry(value=value, **fields)


async def listed(store: Store, namespace: str | None = None) -> list[tuple[str, Entry]]:
    return [item async for item in store.scan(namespace)]


async def test_missing_keys_come_back_as_none_in_order(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:b", entry(b"B"))])
    got = await store.get_many(["ns:v1:a", "ns:v1:b", "ns:v1:c"], NOW)
    assert [e.value if e else None for e in got] == [None, b"B", None]
    assert await store.get_many([], NOW) == []


async def test_an_entry_round_trips_with_its_metadata(make_store: Factory) -> None:
    store = await make_store()
    meta = {"model": "gpt-4o", "input_tokens": 12, "cost": 0.25, "label": "researcher", "x": [1, {"y": None}]}
    original = entry(
        bytes(range(256)) * 40,
        expires_at=NOW + 60,
        call_seconds=1.25,
        material='{"prompt":"hi"}',
        meta=meta,
    )
    await store.set_many([("ns:v1:k", original)])
    (got,) = await store.get_many(["ns:v1:k"], NOW)
    assert got is not None
    assert (got.value, got.created_at, got.expires_at, got.call_seconds) == (
        original.value,
        NOW,
        NOW + 60,
        1.25,
    )
    assert dict(got.meta) == meta
    ((key, scanned),) = await listed(store)
    assert key == "ns:v1:k"
    assert scanned.material == '{"prompt":"hi"}'
    assert dict(scanned.meta) == meta


async def test_data_survives_closing_and_reopening(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:k", entry(b"kept", meta={"model": "m"}))])
    store = await make_store()
    (got,) = await store.get_many(["ns:v1:k"], NOW)
    assert got is not None
    assert got.value == b"kept"
    assert dict(got.meta) == {"model": "m"}


async def test_set_many_replaces_an_existing_entry(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:k", entry(b"old", meta={"model": "a"}))])
    await store.set_many([("ns:v1:k", entry(b"new", created_at=NOW + 1))])
    (got,) = await store.get_many(["ns:v1:k"], NOW + 1)
    assert got is not None
    assert got.value == b"new"
    assert dict(got.meta) == {}
    assert len(await listed(store)) == 1


async def test_an_entry_is_expired_at_its_expiry_but_still_listed(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:k", entry(expires_at=NOW + 30))])
    assert (await store.get_many(["ns:v1:k"], NOW + 29.9))[0] is not None
    # Listed until someone reads it expired (the memory store drops it then; others keep it).
    assert [k for k, _ in await listed(store)] == ["ns:v1:k"]
    assert await store.get_many(["ns:v1:k"], NOW + 30) == [None]


async def test_an_entry_without_expiry_never_expires(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:k", entry())])
    (got,) = await store.get_many(["ns:v1:k"], NOW + 10 * 365 * 86400)
    assert got is not None
    assert got.expires_at is None


async def test_delete_many_counts_only_what_existed(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:a", entry(b"A")), ("ns:v1:b", entry(b"B"))])
    assert await store.delete_many(["ns:v1:a", "ns:v1:missing"]) == 1
    got = await store.get_many(["ns:v1:a", "ns:v1:b"], NOW)
    assert [e.value if e else None for e in got] == [None, b"B"]
    assert await store.delete_many([]) == 0


async def test_clear_removes_one_namespace_and_counts_it(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many(
        [("one:v1:a", entry()), ("one:v1:b", entry()), ("two:v1:a", entry()), ("onex:v1:a", entry())]
    )
    assert await store.clear("one") == 2
    assert sorted(k for k, _ in await listed(store)) == ["onex:v1:a", "two:v1:a"]
    assert await store.clear(None) == 2
    assert await listed(store) == []


@pytest.mark.parametrize("pattern", ["*", "one*", "?ne", "[ot]ne", "one%", "", "one:v1"])
async def test_a_namespace_that_is_a_pattern_is_refused_by_clear_and_scan(
    make_store: Factory, pattern: str
) -> None:
    store = await make_store()
    await store.set_many([("one:v1:a", entry()), ("two:v1:b", entry())])
    with pytest.raises(ConfigurationError, match="namespace"):
        await store.clear(pattern)
    with pytest.raises(ConfigurationError, match="namespace"):
        store.scan(pattern)  # at the call, before anything is iterated
    assert sorted(k for k, _ in await listed(store)) == ["one:v1:a", "two:v1:b"]


async def test_scan_lists_newest_first_and_filters_by_namespace(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many(
        [
            ("ns:v1:old", entry(created_at=NOW)),
            ("ns:v1:new", entry(created_at=NOW + 2)),
            ("other:v1:mid", entry(created_at=NOW + 1)),
        ]
    )
    assert [k for k, _ in await listed(store)] == ["ns:v1:new", "other:v1:mid", "ns:v1:old"]
    assert [k for k, _ in await listed(store, "ns")] == ["ns:v1:new", "ns:v1:old"]


async def test_scan_pages_through_many_entries(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([(f"ns:v1:{i:04d}", entry(created_at=NOW + i)) for i in range(1_200)])
    keys = [k for k, _ in await listed(store, "ns")]
    assert keys == [f"ns:v1:{i:04d}" for i in reversed(range(1_200))]


async def test_hits_are_recorded_and_survive_a_reopen(make_store: Factory) -> None:
    store = await make_store()
    await store.set_many([("ns:v1:k", entry()), ("ns:v1:cold", entry())])
    for t in (1.0, 2.0, 3.0):
        store.note_hit("ns:v1:k", NOW + t)
    store = await make_store()  # closing flushes the batched bookkeeping
    found = dict(await listed(store))
    assert (found["ns:v1:k"].hits, found["ns:v1:k"].last_hit_at) == (3, NOW + 3.0)
    assert (found["ns:v1:cold"].hits, found["ns:v1:cold"].last_hit_at) == (0, None)


async def test_a_hit_on_a_missing_key_is_harmless(make_store: Factory) -> None:
    store = await make_store()
    store.note_hit("ns:v1:nothing", NOW)
    store = await make_store()
    assert await listed(store) == []


async def test_concurrent_reads_and_writes_each_get_their_own_answer(make_store: Factory) -> None:
    store = await make_store()
    keys = [f"ns:v1:{i}" for i in range(300)]
    await asyncio.gather(*(store.set_many([(k, entry(k.encode()))]) for k in keys))
    results = await asyncio.gather(*(store.get_many([k, "ns:v1:none"], NOW) for k in keys))
    assert [(r[0].value if r[0] else None, r[1]) for r in results] == [(k.encode(), None) for k in keys]


async def test_open_and_aclose_are_idempotent(make_store: Factory) -> None:
    store = await make_store()
    await store.open()
    await store.set_many([("ns:v1:k", entry())])
    await store.aclose()
    await store.aclose()
    await store.open()
    assert (await store.get_many(["ns:v1:k"], NOW))[0] is not None
