"""A pydantic-evals suite of a cached agent and a cached LLM judge, run as a fresh process.

    python -m tests.pydantic_ai.evals_suite CACHE_URL ORDER

Both models are stochastic: every call answers something new (a fresh uuid, a random score), so
only the cache can make two runs agree. ``Dataset.evaluate(task, repeat=3, max_concurrency=4)``:
the first four runs (the three repeats of the first case among them) are held until all four
are in flight, so repeats of one case really run at once. ``ORDER`` is ``forward`` or
``reversed``: reversed delays repeat k by ``3 - k`` event-loop turns, so the repeats reach the
cache in the opposite order; an answer that followed arrival order would land on another repeat.

The agent is instrumented and an OpenTelemetry tracer provider is set, so pydantic-evals puts
each run's requests, tokens and cost into its metrics. Prints one JSON object: per run name, the
output, the judge's score and the metrics; and how many calls each model got.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage
from pydantic_evals import Case, Dataset
from pydantic_evals.evaluators import LLMJudge
from pydantic_evals.evaluators.common import OutputConfig

from agentcache import AgentCache
from agentcache.pydantic_ai import CacheCapability, CachedModel
from agentcache.pydantic_ai._evals import current_run

CASES = [Case(name=f"q{i}", inputs=f"Describe the sea, take {i}.") for i in range(3)]
REPEAT = 3
CONCURRENCY = 4


class Stochastic:
    """The task's model: a new answer on every call; the first CONCURRENCY calls wait for each other."""

    def __init__(self) -> None:
        self.calls = 0
        self.all_in_flight = asyncio.Event()

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        if self.calls == CONCURRENCY:
            self.all_in_flight.set()
        if self.calls <= CONCURRENCY:
            await asyncio.wait_for(self.all_in_flight.wait(), 30)
        text = f"The sea is {uuid.uuid4().hex[:8]}."
        return ModelResponse(parts=[TextPart(text)], usage=RequestUsage(input_tokens=1000, output_tokens=500))


class Judge:
    """The judge's model: a random score on every call."""

    def __init__(self) -> None:
        self.calls = 0

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        verdict = {"reason": "it describes the sea", "pass": True, "score": round(random.random(), 6)}
        part = ToolCallPart(info.output_tools[0].name, verdict)
        return ModelResponse(parts=[part], usage=RequestUsage(input_tokens=200, output_tokens=20))


async def main(url: str, order: str) -> None:
    trace.set_tracer_provider(TracerProvider())  # pydantic-evals reads usage and cost from spans
    model, judge = Stochastic(), Judge()
    async with AgentCache(url) as cache:
        agent = Agent(
            FunctionModel(model.respond, model_name="gpt-4o"), capabilities=[CacheCapability(cache)]
        )
        agent.instrument = True
        judge_model = CachedModel(FunctionModel(judge.respond, model_name="gpt-4o-mini"), cache=cache)

        async def task(question: str) -> str:
            run = current_run()
            if order == "reversed" and run is not None and isinstance(run.repeat, int):
                for _ in range(REPEAT - run.repeat):
                    await asyncio.sleep(0)
            return (await agent.run(question)).output

        dataset = Dataset(
            name="sea",
            cases=CASES,
            evaluators=[
                LLMJudge(
                    rubric="Describes the sea.",
                    model=judge_model,
                    score=OutputConfig(evaluation_name="quality", include_reason=False),
                    assertion=False,
                )
            ],
        )
        report = await dataset.evaluate(task, repeat=REPEAT, max_concurrency=CONCURRENCY, progress=False)
    runs: dict[str, Any] = {
        case.name: {
            "output": case.output,
            "score": case.scores["quality"].value,
            "metrics": case.metrics,
            "source": case.source_case_name,
        }
        for case in report.cases
    }
    failures = {f.name: f.error_message for f in report.failures}
    print(json.dumps({"runs": runs, "failures": failures, "calls": model.calls, "judge_calls": judge.calls}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
