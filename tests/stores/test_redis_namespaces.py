"""Namespaces are never patterns: a glob given to clear or scan is refused, and patterns are escaped.

Redis finds a namespace's entries with ``SCAN MATCH``, where ``*``, ``?``, ``[`` and ``\\`` are
wildcards. These tests run in a database of their own (``redis_own_db_url``): if a store ever
deleted more than it was asked to, no other test's data would be in reach.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentcache import ConfigurationError
from agentcache.stores import Entry, open_store
from agentcache.stores.redis import RedisStore

NOW = 1_800_000_000.0
STORED = ["one:v1:a", "one:v1:b", "two:v1:c", "o*:v1:d"]  # the last one written below the boundary


@pytest.fixture
async def store(redis_own_db_url: str) -> AsyncIterator[RedisStore]:
    made = open_store(redis_own_db_url)
    assert isinstance(made, RedisStore)
    await made.set_many([(key, Entry(key.encode(), NOW)) for key in STORED])
    yield made
    await made.aclose()


async def stored_keys(store: RedisStore) -> list[str]:
    return sorted([key async for key, _ in store.scan()])


@pytest.mark.parametrize("pattern", ["*", "?ne", "[ot]*", "one*", "o\\*", "one:v1", ""])
async def test_clearing_a_namespace_that_is_a_pattern_is_refused_and_deletes_nothing(
    store: RedisStore, pattern: str
) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        await store.clear(pattern)
    assert await stored_keys(store) == sorted(STORED)


@pytest.mark.parametrize("pattern", ["*", "?ne", "[ot]*", ""])
def test_scanning_a_namespace_that_is_a_pattern_is_refused_when_called(
    store: RedisStore, pattern: str
) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        store.scan(pattern)  # refused at the call, before anything is iterated


async def test_a_namespace_still_clears_exactly_itself(store: RedisStore) -> None:
    assert await store.clear("one") == 2
    assert await stored_keys(store) == ["o*:v1:d", "two:v1:c"]


async def test_glob_characters_of_a_namespace_are_escaped_in_the_scan_pattern(store: RedisStore) -> None:
    # The boundary refuses such namespaces, so only the pattern builder itself can show the escaping.
    assert [key async for key in store._scan_keys("o*")] == [f"{store.prefix}e:o*:v1:d"]
    assert [key async for key in store._scan_keys("?ne")] == []
