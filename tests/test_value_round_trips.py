"""Values through the cache: bytes and non-finite floats are served back exactly, or refused once."""

from __future__ import annotations

import asyncio
import json
import math
import os

import pytest
from pydantic import BaseModel

from agentcache import AgentCache, AgentCacheWarning
from agentcache.cli import main
from tests.helpers import Upstream


class Reading(BaseModel):
    value: float


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, db_url: str) -> str:
    return "memory://" if request.param == "memory" else db_url


@pytest.mark.parametrize("value_type", [None, bytes])
async def test_bytes_that_are_not_utf8_are_stored_and_served_back_exactly(
    db_url: str, value_type: object
) -> None:
    blob = os.urandom(64) + b"\xff\xfe"
    upstream = Upstream(lambda key: blob)
    async with AgentCache(db_url) as cache:
        assert await cache.get_or_call("img", upstream, value_type=value_type) == blob
        assert await cache.get_or_call("img", upstream, value_type=value_type) == blob  # L1
        assert cache.stats.errors == 0
    async with AgentCache(db_url) as cache:  # read back from the file
        got = await cache.get_or_call("img", upstream, value_type=value_type)
        assert type(got) is bytes
        assert got == blob
    assert upstream.calls == 1


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_a_non_finite_float_is_served_back_not_dropped(db_url: str, number: float) -> None:
    upstream = Upstream(lambda key: number)
    async with AgentCache(db_url) as cache:
        await cache.get_or_call("x", upstream, value_type=float)
    async with AgentCache(db_url) as cache:
        got = await cache.get_or_call("x", upstream, value_type=float)
    assert got == number or (math.isnan(got) and math.isnan(number))
    assert upstream.calls == 1


async def test_nan_in_a_model_that_would_store_it_as_null_is_returned_and_not_stored(url: str) -> None:
    upstream = Upstream(lambda key: Reading(value=math.nan))
    async with AgentCache(url) as cache:
        with pytest.warns(AgentCacheWarning, match="ser_json_inf_nan='constants'"):
            got = await cache.get_or_call("r", upstream, value_type=Reading)
        assert math.isnan(got.value)
        assert cache.stats.errors == 1
        assert await cache.get("r", "absent", value_type=Reading) == "absent"


ANNOTATED_CALLS: list[int] = []  # a global, so the functions below capture nothing


async def test_annotating_a_cached_function_with_the_named_value_type_stores_its_answers(db_url: str) -> None:
    """The refusal's advice for @cache.cached, followed: the annotation becomes the value_type."""
    async with AgentCache(db_url) as cache:

        @cache.cached
        async def unannotated(n: int):  # type: ignore[no-untyped-def]
            return (n, "a")

        with pytest.warns(AgentCacheWarning, match=r"pass value_type=tuple\[int, str\]"):
            await unannotated(1)

        @cache.cached
        async def annotated(n: int) -> tuple[int, str]:
            ANNOTATED_CALLS.append(n)
            return (n, "a")

        assert await annotated(1) == (1, "a")
        assert await annotated(1) == (1, "a")
        assert cache.stats.errors == 1  # only the unannotated call's
    async with AgentCache(db_url) as cache:

        @cache.cached
        async def annotated(n: int) -> tuple[int, str]:  # the same function, in a new process
            ANNOTATED_CALLS.append(n)
            return (n, "a")

        assert await annotated(1) == (1, "a")
    assert ANNOTATED_CALLS == [1]


def test_agentcache_show_prints_an_entry_holding_raw_bytes(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> str:
        async with AgentCache(db_url) as cache:
            await cache.set("blob", b"\xff\x00raw")
            return cache.key("blob")

    key = asyncio.run(fill())
    capsys.readouterr()
    assert main(["--url", db_url, "show", key]) == 0
    assert "\\xff\\x00raw" in capsys.readouterr().out
    assert main(["--url", db_url, "show", "--json", key]) == 0
    assert "\\xff\\x00raw" in json.loads(capsys.readouterr().out)["value"]
