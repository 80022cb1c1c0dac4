"""A small agent suite that records into a cache or replays from it, run as a separate process.

    python -m tests.pydantic_ai.recorded_suite CACHE_URL MODE FAKE_API_BASE_URL

``MODE`` is ``record`` (a normal cache, model requests allowed) or ``replay`` (``mode="replay"``
and ``override_allow_model_requests(False)``: any request not recorded fails). It prints one JSON
object: every run's output and the cache's counters. The test that runs it
(``test_across_versions.py``) records with one Python and replays with another, which may have
another pydantic-ai: the same requests must find the same keys.

The runs cover what differs between supported pydantic-ai versions: system prompts, instructions,
tool calls and returns, structured output, responses in the history, both OpenAI APIs over HTTP,
a streamed run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models import Model, override_allow_model_requests
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from agentcache import AgentCache, CacheMissError
from agentcache.pydantic_ai import CacheCapability, CachedModel
from tests.pydantic_ai.helpers import Scripted, tool_agent


def researcher(model: Model) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(
        model,
        system_prompt="You are a careful researcher.",
        instructions="Research each topic, then summarise.",
    )

    @agent.tool_plain
    def research(topic: str) -> str:
        """Look a topic up."""
        return f"notes on {topic}"

    return agent


def differences(miss: CacheMissError) -> list[str]:
    """The paths a replay miss differs in from the nearest recorded request (its explanation)."""
    lines = (miss.explanation or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("differs")), len(lines))
    return [line.split(":")[0].strip() for line in lines[start + 1 :] if line.startswith("  ")]


async def suite(cache: AgentCache, base_url: str) -> dict[str, Any]:
    outputs: dict[str, Any] = {}

    async def scenario(name: str, run: Callable[[], Awaitable[Any]]) -> None:
        try:
            outputs[name] = await run()
        except CacheMissError as miss:
            outputs[name] = {"missed, differs in": differences(miss)}

    async def function_model() -> Any:
        verdict = await tool_agent(Scripted().model(), capabilities=[CacheCapability(cache)]).run("Tides?")
        return verdict.output.model_dump()

    await scenario("function-model", function_model)
    async with AsyncExitStack() as stack:
        for cls in (OpenAIChatModel, OpenAIResponsesModel):
            provider = OpenAIProvider(base_url=base_url, api_key="test")
            model = await stack.enter_async_context(cls("gpt-4o-mini", provider=provider))  # type: ignore[arg-type]

            async def conversation(model: Model = model) -> Any:
                first = await researcher(CachedModel(model, cache=cache)).run("Weather report")
                follow_up = await researcher(CachedModel(model, cache=cache)).run(
                    "And tomorrow?", message_history=first.all_messages()
                )
                return [first.output, follow_up.output]

            await scenario(cls.__name__, conversation)
        chat = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=base_url, api_key="test"))
        chat = await stack.enter_async_context(chat)

        async def streamed() -> Any:
            async with researcher(CachedModel(chat, cache=cache)).run_stream("Streamed report") as result:
                return await result.get_output()

        await scenario("stream", streamed)
    stats = cache.stats
    return {"outputs": outputs, "hits": stats.hits, "misses": stats.misses, "stores": stats.stores}


async def main(url: str, mode: str, base_url: str) -> None:
    if mode == "record":
        async with AgentCache(url) as cache:
            result = await suite(cache, base_url)
    else:
        with override_allow_model_requests(False):
            async with AgentCache(url, mode="replay") as cache:
                result = await suite(cache, base_url)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
