"""The memory store counts hits without rebuilding entries, and forgets counts with their entries."""

from __future__ import annotations

from agentcache.stores.base import Entry
from agentcache.stores.memory import MemoryStore


def _entry(created_at: float = 1.0) -> Entry:
    return Entry(value=b"jx", created_at=created_at)


async def test_noted_hits_show_on_entries_read_out() -> None:
    store = MemoryStore()
    store.put("ns:v1:a", _entry())
    store.note_hit("ns:v1:a", 5.0)
    store.note_hit("ns:v1:a", 7.0)
    (entry,) = await store.get_many(["ns:v1:a"], now=8.0)
    assert entry is not None
    assert (entry.hits, entry.last_hit_at) == (2, 7.0)
    scanned = [e async for _k, e in store.scan()]
    assert [(e.hits, e.last_hit_at) for e in scanned] == [(2, 7.0)]


async def test_replacing_an_entry_starts_its_count_afresh() -> None:
    store = MemoryStore()
    store.put("ns:v1:a", _entry())
    store.note_hit("ns:v1:a", 5.0)
    store.put("ns:v1:a", _entry(2.0))
    (entry,) = await store.get_many(["ns:v1:a"], now=8.0)
    assert entry is not None
    assert entry.hits == 0


def test_hits_on_absent_or_evicted_keys_are_not_kept() -> None:
    store = MemoryStore(max_entries=2)
    store.note_hit("ns:v1:never", 1.0)
    for name in "abc":  # "a" is evicted by "c"
        store.put(f"ns:v1:{name}", _entry())
        store.note_hit(f"ns:v1:{name}", 1.0)
    store.discard("ns:v1:b")
    assert set(store._hits) == {"ns:v1:c"}  # the counters stay within the bound
