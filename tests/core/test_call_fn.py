"""What call_fn may be: an async function, a plain function (its value is the answer), never a trap."""

from __future__ import annotations

import pytest

from agentcache import AgentCache, ConfigurationError


async def test_a_plain_function_is_called_once_and_its_answer_kept(db_url: str) -> None:
    calls: list[object] = []

    def call_model(prompt: object) -> str:  # not async: the answer is its return value
        calls.append(prompt)
        return f"paid answer to {prompt}"

    async with AgentCache(db_url) as cache:
        first = await cache.get_or_call("q", call_model)
        again = await cache.get_or_call("q", call_model)
    async with AgentCache(db_url) as cache:
        later = await cache.get_or_call("q", call_model)
    assert first == again == later == "paid answer to q"
    assert calls == ["q"]


async def test_a_lambda_returning_a_coroutine_is_awaited() -> None:
    async def ask(prompt: str) -> str:
        return prompt.upper()

    async with AgentCache("memory://") as cache:
        assert await cache.get_or_call("abc", lambda key: ask(key)) == "ABC"


async def test_a_function_of_no_arguments_is_refused_before_anything_is_called() -> None:
    calls = 0

    async def no_arguments() -> str:
        nonlocal calls
        calls += 1
        return "x"

    async with AgentCache("memory://") as cache:
        with pytest.raises(ConfigurationError, match=r"call_fn\(key\).*lambda _key"):
            await cache.get_or_call("q", no_arguments)  # type: ignore[arg-type]
        assert calls == 0
        assert cache.stats.stores == 0


async def test_a_type_error_raised_inside_call_fn_passes_through_unchanged() -> None:
    error = TypeError("the user's own bug")

    async def buggy(_key: object) -> str:
        raise error

    async with AgentCache("memory://") as cache:
        with pytest.raises(TypeError) as caught:
            await cache.get_or_call("q", buggy)
    assert caught.value is error


async def test_a_type_error_from_a_plain_function_passes_through_unchanged() -> None:
    def buggy(key: object) -> str:
        return len(key)  # type: ignore[arg-type,return-value]

    async with AgentCache("memory://") as cache:
        with pytest.raises(TypeError, match="has no len"):
            await cache.get_or_call(3, buggy)
