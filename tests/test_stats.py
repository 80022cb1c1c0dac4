"""Stats count what was saved from the usage recorded with an entry; odd usage counts as 0, never fails."""

from __future__ import annotations

import enum
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcache import AgentCache, CacheStats
from agentcache.stats import StatsRecorder

GOOD = {"input_tokens": 120, "output_tokens": 30, "cost": 0.25}

BAD_META: list[dict[str, Any]] = [
    {"cost": "n/a"},
    {"cost": "0.25"},  # numeric strings are not counted (see the stats module docstring)
    {"input_tokens": "120", "output_tokens": "many"},
    {"input_tokens": None, "output_tokens": None, "cost": None},
    {"cost": [1], "input_tokens": {"x": 1}, "output_tokens": [3]},
    {"input_tokens": True, "output_tokens": False, "cost": True},
    {"cost": math.nan},
    {"cost": math.inf},
    {"cost": -math.inf},
    {"cost": -0.5, "input_tokens": -3, "output_tokens": -1},
    {"cost": 10**400, "input_tokens": 10**400, "output_tokens": 2**63},
    {"cost": 1e300},
    {"input_tokens": 12.0, "output_tokens": 1.5},  # a token count is a whole number
    {"cost": Decimal("NaN")},
    {"cost": Decimal("sNaN")},  # float() of a signalling NaN raises
    {"cost": b"0.5", "input_tokens": b"3"},
    {"cost": object(), "input_tokens": object()},
]


class Tokens(enum.IntEnum):
    FEW = 7


class Failing:
    """A number-like object whose conversions raise."""

    def __index__(self) -> int:
        raise RuntimeError("no index")

    def __float__(self) -> float:
        raise RuntimeError("no float")


def served(meta: dict[str, Any], label: str | None = None) -> CacheStats:
    recorder = StatsRecorder()
    recorder.hit(1.5, meta, label)
    recorder.coalesced(0.5, meta, label)
    return recorder.snapshot()


def meta_id(meta: dict[str, Any]) -> str:
    return ",".join(f"{name}={type(value).__name__}" for name, value in meta.items())


@pytest.mark.parametrize("meta", BAD_META, ids=meta_id)
@pytest.mark.parametrize("label", [None, "researcher"])
def test_odd_usage_counts_as_zero_and_the_hit_is_counted(meta: dict[str, Any], label: str | None) -> None:
    stats = served(meta, label)
    assert (stats.hits, stats.coalesced, stats.saved_seconds) == (1, 1, 2.0)
    assert (stats.saved_input_tokens, stats.saved_output_tokens, stats.saved_cost) == (0, 0, 0.0)
    if label is not None:
        assert stats.by_label[label].saved_cost == 0.0
        assert stats.by_label[label].hits == 1


def test_a_failing_number_like_object_counts_as_zero() -> None:
    stats = served({"cost": Failing(), "input_tokens": Failing(), "output_tokens": Failing()})
    assert (stats.saved_input_tokens, stats.saved_output_tokens, stats.saved_cost) == (0, 0, 0.0)


def test_odd_usage_does_not_spoil_the_good_usage_of_other_entries() -> None:
    recorder = StatsRecorder()
    recorder.hit(1.0, GOOD)
    for meta in BAD_META:
        recorder.hit(1.0, meta)
    recorder.hit(1.0, GOOD)
    stats = recorder.snapshot()
    assert stats.hits == len(BAD_META) + 2
    assert (stats.saved_input_tokens, stats.saved_output_tokens) == (240, 60)
    assert stats.saved_cost == 0.5
    assert math.isfinite(stats.saved_seconds)


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (GOOD, (120, 30, 0.25)),
        ({"input_tokens": 5, "cost": 2}, (5, 0, 2.0)),  # an int cost
        ({"cost": Decimal("0.125")}, (0, 0, 0.125)),
        ({"input_tokens": Tokens.FEW, "output_tokens": 0}, (7, 0, 0.0)),
        ({"input_tokens": 2**63 - 1}, (2**63 - 1, 0, 0.0)),
        ({"cost": 0.0, "model": "gpt-4o", "label": "x"}, (0, 0, 0.0)),
        ({}, (0, 0, 0.0)),
        ({"family": "abc", "conversation": "def"}, (0, 0, 0.0)),
    ],
    ids=repr,
)
def test_real_numbers_count(meta: dict[str, Any], expected: tuple[int, int, float]) -> None:
    recorder = StatsRecorder()
    recorder.hit(0.0, meta, "label")
    stats = recorder.snapshot()
    assert (stats.saved_input_tokens, stats.saved_output_tokens, stats.saved_cost) == expected
    by_label = stats.by_label["label"]
    assert (by_label.saved_input_tokens, by_label.saved_output_tokens, by_label.saved_cost) == expected


usage_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.decimals()
usage = st.fixed_dictionaries(
    {}, optional={"input_tokens": usage_values, "output_tokens": usage_values, "cost": usage_values}
)


@settings(deadline=None)  # the first example builds pydantic adapters
@given(st.lists(usage, max_size=10))
def test_any_recorded_usage_keeps_every_figure_a_sane_number(metas: list[dict[str, Any]]) -> None:
    recorder = StatsRecorder()
    for meta in metas:
        recorder.hit(0.1, meta, "a")
        recorder.coalesced(0.1, meta)
    stats = recorder.snapshot()
    assert stats.hits == len(metas)
    assert stats.coalesced == len(metas)
    for figures in (stats, *stats.by_label.values()):
        assert type(figures.saved_input_tokens) is int
        assert figures.saved_input_tokens >= 0
        assert type(figures.saved_output_tokens) is int
        assert figures.saved_output_tokens >= 0
        assert type(figures.saved_cost) is float
        assert math.isfinite(figures.saved_cost)
        assert figures.saved_cost >= 0


# -- through the cache: describe() metadata on L1 hits and stored hits ------------------------------


@pytest.mark.parametrize("meta", BAD_META[:13], ids=meta_id)  # the ones a store can hold as JSON
async def test_hits_of_entries_described_with_odd_usage_count_it_as_zero(
    meta: dict[str, Any], db_url: str
) -> None:
    calls = 0

    async def call(_key: object) -> str:
        nonlocal calls
        calls += 1
        return "answer"

    async with AgentCache(db_url) as cache:
        await cache.get_or_call("q", call, describe=lambda _answer: meta)
        assert await cache.get_or_call("q", call) == "answer"  # an L1 hit
        assert await cache.get_or_call("q", call) == "answer"
        stats = cache.stats
        assert (stats.hits, stats.misses) == (2, 1)
        assert (stats.saved_input_tokens, stats.saved_output_tokens, stats.saved_cost) == (0, 0, 0.0)
    async with AgentCache(db_url) as cache:  # a hit read back from the store
        assert await cache.get_or_call("q", call) == "answer"
        stats = cache.stats
        assert stats.hits == 1
        assert (stats.saved_input_tokens, stats.saved_output_tokens, stats.saved_cost) == (0, 0, 0.0)
    assert calls == 1


async def test_hits_of_entries_described_with_real_usage_count_it(db_url: str) -> None:
    async def call(_key: object) -> str:
        return "answer"

    async with AgentCache(db_url) as cache:
        await cache.get_or_call("q", call, describe=lambda _answer: GOOD, label="writer")
        await cache.get_or_call("q", call, label="writer")
        stats = cache.stats
        assert (stats.saved_input_tokens, stats.saved_output_tokens, stats.saved_cost) == (120, 30, 0.25)
        assert stats.by_label["writer"].saved_input_tokens == 120
    async with AgentCache(db_url) as cache:
        await cache.get_or_call("q", call)
        assert cache.stats.saved_cost == 0.25
