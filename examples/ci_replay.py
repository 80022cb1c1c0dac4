"""CI for an agent eval suite: record once, then replay with model requests forbidden.

1. Record: run the suite with a normal cache (``read_write``); every model response is stored.
2. In CI: open the same cache with ``mode="replay"`` and run under
   ``pydantic_ai.models.override_allow_model_requests(False)``. A recorded request is served from
   the cache; a request that was never recorded raises ``CacheMissError`` (naming the nearest
   recorded request and what differs) instead of calling the model; and any provider model that is
   asked anyway raises too. A green run proves it made no network call and cost nothing.

The model here calls ``check_allow_model_requests()`` as every provider model does, so the example
behaves as it would with ``openai:gpt-4o-mini``.

    python examples/ci_replay.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import check_allow_model_requests, override_allow_model_requests
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agentcache import AgentCache, CacheMissError
from agentcache.pydantic_ai import CachedModel

SUITE = ["Summarise: the cat sat on the mat.", "Summarise: it rained all day in Brest."]


async def provider_like(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    check_allow_model_requests()  # what a real provider model does before any request
    text = str(messages[-1].parts[-1].content).split(": ", 1)[1]
    return ModelResponse(parts=[TextPart(f"In short: {text}")])


def agent(cache: AgentCache) -> Agent[None, str]:
    model = CachedModel(FunctionModel(provider_like, model_name="gpt-4o-mini"), cache=cache)
    return Agent(model, instructions="Summarise in one line.")


async def main() -> None:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'recorded.db'}"
    async with AgentCache(url) as cache:  # 1. record (a developer's machine, real API)
        for case in SUITE:
            await agent(cache).run(case)
        print(f"recorded {cache.stats.stores} responses")

    with override_allow_model_requests(False):  # 2. CI: no model request may leave
        async with AgentCache(url, mode="replay") as cache:
            outputs = [(await agent(cache).run(case)).output for case in SUITE]
            print(f"replayed {cache.stats.hits} responses, 0 model calls: {outputs[0]!r}")
            try:
                await agent(cache).run("Summarise: the dog sat on the mat.")
            except CacheMissError as miss:
                print("a prompt that was never recorded fails the build:")
                print("   ", str(miss).splitlines()[0][:100])


if __name__ == "__main__":
    asyncio.run(main())
