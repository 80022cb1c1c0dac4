"""@cache.cached: keys from bound arguments with defaults, value_type from the return annotation."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentcache import AgentCache, ConfigurationError


class Summary(BaseModel):
    text: str
    model: str


async def test_equivalent_calls_share_one_entry_and_typed_results_round_trip(db_url: str) -> None:
    calls = 0
    cache = AgentCache(db_url)

    @cache.cached(ttl=60)
    async def summarise(text: str, *, model: str = "gpt-4o") -> Summary:
        nonlocal calls
        calls += 1
        return Summary(text=text[:5], model=model)

    async with cache:
        first = await summarise("hello world")
        assert await summarise("hello world", model="gpt-4o") == first
        assert await summarise(text="hello world") == first
        assert calls == 1
        await summarise("hello world", model="gpt-4o-mini")
        assert calls == 2
    async with AgentCache(db_url) as fresh:
        rebound = fresh.cached(summarise.__wrapped__)  # type: ignore[attr-defined]
        hit = await rebound("hello world")
    assert calls == 2
    assert isinstance(hit, Summary)
    assert hit == first


async def test_bare_decorator_and_ignored_arguments() -> None:
    cache = AgentCache("memory://")
    calls = 0

    class Client:
        pass

    @cache.cached
    async def plain(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 2

    @cache.cached(ignore=("client",))
    async def with_client(client: Client, prompt: str) -> str:
        nonlocal calls
        calls += 1
        return prompt.upper()

    async with cache:
        assert await plain(2) == 4
        assert await plain(2) == 4
        assert await with_client(Client(), "hi") == "HI"
        assert await with_client(Client(), "hi") == "HI"
    assert calls == 2


async def test_unkeyable_arguments_name_the_parameter() -> None:
    cache = AgentCache("memory://")

    @cache.cached
    async def f(client: object) -> str:
        return "x"

    async with cache:
        with pytest.raises(TypeError, match=r"key\[.args.\]\[.client.\]"):
            await f(object())


def test_sync_functions_and_unknown_ignores_are_refused() -> None:
    cache = AgentCache("memory://")
    with pytest.raises(ConfigurationError, match="async def"):

        @cache.cached
        def sync(x: int) -> int:
            return x

    with pytest.raises(ConfigurationError, match="nope"):

        @cache.cached(ignore=("nope",))
        async def f(x: int) -> int:
            return x
