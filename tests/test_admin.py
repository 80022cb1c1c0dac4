"""Store maintenance without a UI: parsing ages and sizes, resolving keys, planning a prune."""

from __future__ import annotations

import pytest

from agentcache._admin import parse_age, parse_size, plan_prune, resolve_keys
from agentcache.errors import ConfigurationError
from agentcache.stores.base import Entry
from agentcache.stores.memory import MemoryStore

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_ages_count_back_from_now(text: str, seconds_ago: float) -> None:
    assert parse_age(text, NOW) == NOW - seconds_ago


def test_an_iso_date_without_a_zone_is_utc() -> None:
    assert parse_age("2027-01-15T00:00", NOW) == parse_age("2027-01-15T00:00+00:00", NOW)
    assert parse_age("2027-01-15T01:00+01:00", NOW) == parse_age("2027-01-15T00:00", NOW)


def test_a_bad_age_says_what_is_accepted() -> None:
    with pytest.raises(ConfigurationError, match="30m, 2h, 7d"):
        parse_age("yesterday", NOW)


@pytest.mark.parametrize(
    ("text", "size"),
    [("500", 500), ("64k", 64_000), ("100MB", 100_000_000), ("1GiB", 1 << 30), ("1.5 kb", 1500)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_size_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a size"):
        parse_size("lots")


def _key(digest_start: str) -> str:
    return "default:v1:" + digest_start + "0" * (64 - len(digest_start))


async def test_a_prefix_shared_by_two_entries_is_ambiguous() -> None:
    store = MemoryStore()
    entry = Entry(value=b"j1", created_at=NOW)
    await store.set_many([(_key("abcdef1"), entry), (_key("abcdef2"), entry)])
    with pytest.raises(ConfigurationError, match="ambiguous"):
        await resolve_keys(store, ["abcdef"])
    assert await resolve_keys(store, ["abcdef2", _key("abcdef1")]) == {
        "abcdef2": _key("abcdef2"),
        _key("abcdef1"): _key("abcdef1"),
    }


async def test_prune_plans_expired_then_old_then_least_recently_hit() -> None:
    store = MemoryStore()
    await store.set_many(
        [
            (_key("01"), Entry(value=b"j" + b"1" * 99, created_at=NOW - 10, expires_at=NOW - 1)),
            (_key("02"), Entry(value=b"j" + b"1" * 99, created_at=NOW - 100 * 86400)),
            (_key("03"), Entry(value=b"j" + b"1" * 99, created_at=NOW - 50, hits=3, last_hit_at=NOW - 5)),
            (_key("04"), Entry(value=b"j" + b"1" * 99, created_at=NOW - 40, hits=1, last_hit_at=NOW - 30)),
            (_key("05"), Entry(value=b"j" + b"1" * 99, created_at=NOW - 1)),  # new, never hit
        ]
    )
    plan = await plan_prune(store, now=NOW, older_than=NOW - 30 * 86400, max_size=150)
    assert plan.expired == [_key("01")]
    assert plan.old == [_key("02")]
    assert plan.evicted == [_key("05"), _key("04")]  # never hit first, then the least recently hit
    assert plan.kept_bytes == 100


async def test_memory_counts_every_hit_of_a_mutable_answer() -> None:
    # stats and prune read these counts; re-remembering the same entry must not reset them.
    from agentcache import AgentCache

    store = MemoryStore()

    async def answer(key: object) -> dict[str, int]:
        return {"x": 1}

    async with AgentCache(store) as cache:
        for _ in range(4):
            await cache.get_or_call({"q": 1}, answer)
    assert [entry.hits async for _key, entry in store.scan()] == [3]
