"""Benchmarks of the pydantic-ai integration: a cached hit inside agent.run, and request_key.

Rows (``name``, ``baseline``, ``ours``, ``ratio``; times are medians in microseconds):

- ``agent.run: CachedModel hit``: ``agent.run`` on a ``FunctionModel`` that answers instantly
  (the baseline: pydantic-ai's own per-run overhead with a model that costs nothing) against the
  same run served from the cache. A ratio near 1.0 means a hit costs a run almost nothing extra.
- ``a hit's own cost``: ``CachedModel.request`` on a hit (key, lookup, a fresh response) timed
  alone, against the same baseline run: the cache's share of a hit. Target: under 0.10.
- ``request_key, 50-message history``: pydantic-ai serialising the history to JSON
  (``ModelMessagesTypeAdapter.dump_json``, the floor for anything that reads every message) against
  ``request_key`` + sha256 of the same request.

Run alone: ``python -m benchmarks.pydantic_ai_bench``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from agentcache import AgentCache
from agentcache.keys import digest
from agentcache.pydantic_ai import CachedModel, request_key

REPEATS = 7
PROMPT = "What is the capital of France?"


def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(
        parts=[TextPart("A short answer of a few words, like most agent steps.")],
        usage=RequestUsage(input_tokens=800, output_tokens=40),
    )


async def _batch_us(op: Callable[[], Awaitable[Any]], n: int) -> float:
    """Mean microseconds per op over ``n`` sequential awaits."""
    gc.collect()
    started = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - started) / n * 1e6


async def _interleaved(
    baseline: Callable[[], Awaitable[Any]], ours: Callable[[], Awaitable[Any]], n: int
) -> tuple[float, float]:
    """Medians over REPEATS, alternating batches so that drift on a shared machine hits both."""
    base, mine = [], []
    for _ in range(REPEATS):
        base.append(await _batch_us(baseline, n))
        mine.append(await _batch_us(ours, n))
    return statistics.median(base), statistics.median(mine)


class _Capture(CachedModel):
    """Keeps the last request's arguments so the hit path can be timed on its own."""

    last: tuple[Any, ...] = ()

    async def request(self, *args: Any) -> ModelResponse:
        self.last = args
        return await super().request(*args)


async def bench_agent_hit(n: int = 200) -> list[dict[str, Any]]:
    plain = Agent(FunctionModel(_answer, model_name="gpt-4o-mini"), instructions="Be brief.")
    async with AgentCache("memory://") as cache:
        model = _Capture(FunctionModel(_answer, model_name="gpt-4o-mini"), cache=cache)
        cached = Agent(model, instructions="Be brief.")
        for _ in range(20):  # one miss, then warm both paths
            await plain.run(PROMPT)
            await cached.run(PROMPT)
        run_plain, run_cached = await _interleaved(lambda: plain.run(PROMPT), lambda: cached.run(PROMPT), n)
        args = model.last
        hit = statistics.median(
            [await _batch_us(lambda: CachedModel.request(model, *args), n) for _ in range(REPEATS)]
        )
        assert cache.stats.misses == 1, "every timed run must be a hit"
    return [
        _row("agent.run: CachedModel hit vs instant FunctionModel (us/run)", run_plain, run_cached),
        _row("a hit's own cost vs pydantic-ai's per-run overhead (us)", run_plain, hit),
    ]


def _history(length: int) -> list[ModelMessage]:
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("Plan a trip " * 40)])]
    while len(messages) < length:
        i = len(messages)
        messages.append(ModelResponse(parts=[ToolCallPart("search", {"query": f"leg {i}", "limit": 5})]))
        messages.append(ModelRequest(parts=[ToolReturnPart("search", f"result {i} " * 60, f"pyd_ai_{i}")]))
    return messages[:length]


async def bench_request_key(n: int = 300) -> dict[str, Any]:
    messages = _history(50)
    params = ModelRequestParameters(
        function_tools=[ToolDefinition(name="search", description="Search the web.")]
    )
    settings: Any = {"temperature": 0.0, "max_tokens": 800}

    async def dump() -> None:
        ModelMessagesTypeAdapter.dump_json(messages)

    async def key() -> None:
        digest(request_key(messages, settings, params, model_id="openai:gpt-4o-mini"))

    baseline, ours = await _interleaved(dump, key, n)
    return _row("request_key + sha256 vs dump_json, 50-message history (us/op)", baseline, ours)


def _row(name: str, baseline: float, ours: float) -> dict[str, Any]:
    return {
        "name": name,
        "baseline": round(baseline, 1),
        "ours": round(ours, 1),
        "ratio": round(ours / baseline, 3),
    }


async def run() -> list[dict[str, Any]]:
    """Every row of this module, measured in this process."""
    return [*await bench_agent_hit(), await bench_request_key()]


if __name__ == "__main__":
    for row in asyncio.run(run()):
        print(f"{row['name']:<66} {row['baseline']:>10} {row['ours']:>10} {row['ratio']:>7}")
