"""CI for a pydantic-evals suite: record once with real models, replay in CI with no model request.

The recipe:

1. Record on a developer machine: run the suite with a normal cache (``AgentCache(url)``, mode
   ``read_write``). Every model answer is stored, one per repeat of each case
   (``Dataset.evaluate(task, repeat=N)``), judges' answers too (``LLMJudge(model=CachedModel(...))``).
2. Ship the recording: commit the SQLite file, or ``agentcache --url URL export evals.jsonl`` and
   ``agentcache --url URL import evals.jsonl`` in CI.
3. In CI run the same suite with ``AGENTCACHE_MODE=replay`` (the cache only reads; a request that
   was never recorded raises ``CacheMissError``) and with pydantic-ai's
   ``override_allow_model_requests(False)`` (``ALLOW_MODEL_REQUESTS = False``: any provider model
   asked anyway raises). pydantic-evals records a raising run as a failure of its case, so fail the
   build on ``report.failures``: the error names the nearest recorded request and what differs,
   e.g. a changed prompt.

Record and replay with the same pydantic-ai version (a lock file): keys do not depend on it, but
a response recorded by a newer version can carry a field an older one drops on loading, and the
next request of that run is then built without it.

Here the "provider" is a FunctionModel that calls ``check_allow_model_requests()`` as every
provider model does, and the judge is a FunctionModel with a random score, so the example runs
offline and behaves as it would with ``openai:gpt-4o-mini``.

    python examples/evals_replay.py
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import check_allow_model_requests, override_allow_model_requests
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_evals import Case, Dataset
from pydantic_evals.evaluators import LLMJudge
from pydantic_evals.evaluators.common import OutputConfig
from pydantic_evals.reporting import EvaluationReport

from agentcache import AgentCache
from agentcache.pydantic_ai import CacheCapability, CachedModel

CASES = [
    Case(name="cat", inputs="The cat sat on the mat all afternoon."),
    Case(name="rain", inputs="It rained all day in Brest, as it often does."),
    Case(name="tide", inputs="High tide at noon, low tide at six."),
]
calls = {"model": 0, "judge": 0}


async def provider_like(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    check_allow_model_requests()  # what a real provider model does before any request
    calls["model"] += 1
    text = str(messages[-1].parts[-1].content)
    return ModelResponse(parts=[TextPart(f"In short: {text.split()[1]} ({random.randint(1, 99)})")])


async def judge_like(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    check_allow_model_requests()
    calls["judge"] += 1
    grade = {"reason": "short enough", "pass": True, "score": round(random.random(), 2)}
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, grade)])


async def evaluate(cache: AgentCache, instructions: str = "Summarise in one line.") -> EvaluationReport:
    agent = Agent(
        FunctionModel(provider_like, model_name="gpt-4o-mini"),
        instructions=instructions,
        capabilities=[CacheCapability(cache)],
    )
    judge = CachedModel(FunctionModel(judge_like, model_name="gpt-4o-mini"), cache=cache)
    dataset = Dataset(
        name="summaries",
        cases=CASES,
        evaluators=[LLMJudge(rubric="One short line.", model=judge, score=OutputConfig(), assertion=False)],
    )

    async def summarise(text: str) -> str:
        return (await agent.run(text)).output

    return await dataset.evaluate(summarise, repeat=2, max_concurrency=4, progress=False)


def scores(report: EvaluationReport) -> dict[str, object]:
    return {case.name: (case.output, [s.value for s in case.scores.values()]) for case in report.cases}


async def main() -> None:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'evals.db'}"
    async with AgentCache(url) as cache:  # 1. record (a developer's machine, real models)
        recorded = await evaluate(cache)
    print(f"recorded: {len(recorded.cases)} runs, {calls['model']} model calls, {calls['judge']} judge calls")

    calls.update(model=0, judge=0)
    os.environ["AGENTCACHE_MODE"] = "replay"  # 3. CI: set in the job's environment
    with override_allow_model_requests(False):
        async with AgentCache(url) as cache:
            replayed = await evaluate(cache)
            same = "yes" if scores(replayed) == scores(recorded) else "no"
            print(
                f"replayed: {len(replayed.cases)} runs, {calls['model']} model calls, "
                f"same scores: {same}, failures: {len(replayed.failures)}"
            )
            changed = await evaluate(cache, instructions="Summarise in one short line.")
    total = len(changed.cases) + len(changed.failures)
    print(f"changed prompt: {len(changed.failures)} of {total} runs failed; the first says:")
    print("   " + changed.failures[0].error_message.replace("\n", "\n   "))
    # In CI: assert not report.failures, report.failures[0].error_message


if __name__ == "__main__":
    asyncio.run(main())
