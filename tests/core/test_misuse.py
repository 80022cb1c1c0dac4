"""Misuse gets an error that names the problem and the fix."""

from __future__ import annotations

import re

import pytest

import agentcache
from agentcache import AgentCache, ConfigurationError


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_bad_l1_size_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="l1_max_entries must be an int >= 0"):
        AgentCache("memory://", l1_max_entries=bad)  # type: ignore[arg-type]


def test_l1_size_zero_turns_the_l1_off(db_url: str) -> None:
    AgentCache(db_url, l1_max_entries=0)


def test_a_sync_with_names_async_with() -> None:
    cache = AgentCache("memory://")
    with pytest.raises(TypeError, match="async with AgentCache"), cache:
        pass


@pytest.mark.parametrize("bad", [-1, "1", None])
def test_a_bad_store_retry_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="store_retry"):
        AgentCache("memory://", store_retry=bad)  # type: ignore[arg-type]


def test_the_version_is_exported() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", agentcache.__version__)
    assert "__version__" in agentcache.__all__
