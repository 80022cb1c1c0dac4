"""Warnings point at the caller's own line, even when a flight task met the problem."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning


async def _tuple(_key: object) -> tuple[int, int]:
    return (1, 2)


async def test_an_unstorable_answer_is_warned_at_the_callers_line() -> None:
    async with AgentCache("memory://") as cache:
        with pytest.warns(AgentCacheWarning, match="could not store") as caught:
            line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
            await cache.get_or_call("q", _tuple)
    assert caught[0].filename == __file__
    assert caught[0].lineno == line


async def test_a_store_outage_met_inside_a_flight_is_warned_at_the_callers_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    async with AgentCache(f"sqlite:///{blocker / 'cache.db'}") as cache:
        with pytest.warns(AgentCacheWarning, match="failed; calling through") as caught:
            line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
            await cache.get_or_call("q", _tuple, value_type=tuple[int, int])
    assert caught[0].filename == __file__
    assert caught[0].lineno == line


async def test_the_same_problem_at_two_lines_is_shown_at_each() -> None:
    async with AgentCache("memory://") as cache:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # once per location, as Python shows them
            await cache.get_or_call("a", _tuple)
            await cache.get_or_call("b", _tuple)
    lines = [w.lineno for w in caught if issubclass(w.category, AgentCacheWarning)]
    assert len(lines) == 2
    assert lines[1] == lines[0] + 1
