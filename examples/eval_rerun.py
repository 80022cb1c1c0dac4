"""Re-running an eval suite of a pydantic-ai agent: the second run makes zero model calls.

An agent with a tool and structured output is evaluated on 30 cases, twice, with the whole agent
cached through ``CacheCapability``. Tools still run on the second pass (their results feed the
next, cached, model step); only the model calls are saved. The cache is a SQLite file in a
temporary folder here; by default it is ``.agentcache/cache.db``.

    python examples/eval_rerun.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from agentcache import AgentCache
from agentcache.pydantic_ai import CacheCapability

CASES = [f"Is {n} a prime number?" for n in range(100, 130)]
calls = 0


class Verdict(BaseModel):
    number: int
    prime: bool


async def model_fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for an LLM: asks the tool, then answers with the output tool."""
    global calls
    calls += 1
    await asyncio.sleep(0.3)  # network + generation time
    usage = RequestUsage(input_tokens=600, output_tokens=30)
    returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
    if not returns:
        number = int(str(messages[-1].parts[-1].content).split()[1])
        return ModelResponse(parts=[ToolCallPart("factor", {"n": number})], usage=usage)
    factors = str(returns[0].content)
    verdict = {"number": int(factors.split(":")[0]), "prime": factors.endswith(": []")}
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, verdict)], usage=usage)


async def main() -> None:
    global calls
    folder = Path(tempfile.mkdtemp())
    agent = Agent(FunctionModel(model_fn, model_name="gpt-4o-mini"), output_type=Verdict)
    tool_runs = 0

    @agent.tool_plain
    def factor(n: int) -> str:
        """The proper factors of n."""
        nonlocal tool_runs
        tool_runs += 1
        return f"{n}: {[d for d in range(2, n) if n % d == 0]}"

    for run in (1, 2):
        calls = tool_runs = 0
        started = time.perf_counter()
        async with AgentCache(f"sqlite:///{folder / 'eval.db'}") as cache:
            cached = CacheCapability(cache, label="eval")
            results = await asyncio.gather(*(agent.run(case, capabilities=[cached]) for case in CASES))
            stats = cache.stats
        primes = sum(r.output.prime for r in results)
        print(
            f"run {run}: {len(CASES)} cases, {primes} primes, model calls {calls}, "
            f"tool runs {tool_runs}, hits {stats.hits}, {time.perf_counter() - started:.2f} s, "
            f"saved ${stats.saved_cost:.5f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
