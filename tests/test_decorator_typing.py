"""@cache.cached keeps the function's signature and return type for a type checker.

mypy checks this file (it is listed in ``[tool.mypy] files`` in pyproject.toml, so ``make types``
fails when a decorated function loses its types); the ``assert_type`` lines are what it proves.
The same calls also run here, so the file cannot drift from what works at run time.
"""

from __future__ import annotations

from typing_extensions import assert_type

from agentcache import AgentCache

cache = AgentCache("memory://")


@cache.cached
async def bare(text: str, *, model: str = "gpt-4o") -> int:
    return len(text) + len(model)


@cache.cached(ttl=60, namespace="typing", ignore=("verbose",))
async def configured(text: str, verbose: bool = False) -> list[str]:
    return text.split()


class Agent:
    def __init__(self, model: str) -> None:
        self.model = model

    @cache.cached(key=lambda self, question: {"model": self.model, "question": question})
    async def answer(self, question: str) -> str:
        return f"{self.model}: {question}"


async def check_types() -> None:
    """Never called: mypy reads it."""
    assert_type(await bare("x"), int)
    assert_type(await bare("x", model="m"), int)
    assert_type(bare.key("x", model="m"), str)
    assert_type(await bare.invalidate("x"), bool)
    assert_type(await configured("a b", verbose=True), list[str])
    assert_type(await Agent("m").answer("q"), str)
    assert_type(Agent("m").answer.key("q"), str)
    await bare(1)  # type: ignore[arg-type]  # a wrong argument type is an error
    await bare("x", "m")  # type: ignore[call-arg]  # keyword-only stays keyword-only
    await bare("x", temperature=0.0)  # type: ignore[call-arg]  # so is an unknown keyword
    await Agent("m").answer()  # type: ignore[call-arg]  # and a missing argument of a method


async def test_the_typed_calls_run() -> None:
    async with cache:
        assert await bare("abc") == 3 + len("gpt-4o")
        assert await configured("a b", verbose=True) == ["a", "b"]
        assert await configured("a b") == ["a", "b"]
        assert configured.key("a b") == configured.key("a b", verbose=True)
        agent = Agent("m")
        assert await agent.answer("q") == "m: q"
        assert agent.answer.key("q") != Agent("other").answer.key("q")
        assert await agent.answer.invalidate("q") is True
