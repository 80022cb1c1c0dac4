"""A multi-agent pydantic-ai pipeline over an eval suite, run twice on one persistent cache.

~200 eval cases. For each, an orchestrator agent ("planner") delegates three sub-questions to a
"researcher" sub-agent through a tool (the sub-questions overlap heavily between cases, and cases
run 50 at a time, so identical sub-questions are often asked at the same moment), writes a brief,
and a "judge" agent grades it with structured output. Every agent's model is wrapped in
``CachedModel`` with its own label; all share one ``AgentCache``.

The model is a ``FunctionModel`` named "gpt-4o-mini" that simulates latency and token usage, so
genai-prices prices it like the real one; no API key is needed. With ``AGENTCACHE_DEMO_MODEL`` set
(e.g. ``openai:gpt-4o-mini``, plus that provider's API key) the same pipeline runs on the real model.

The suite runs once cold and once more in a fresh process; the table shows upstream model calls,
hits, coalesced calls, wall time, and the tokens and dollars the cache saved.

    python examples/agent_pipeline.py            # the full demo
    python examples/agent_pipeline.py --quick    # 20 cases, 10 ms latency (used by the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from typing import Any

from demo_report import render, run_in_fresh_process
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from agentcache import AgentCache
from agentcache.pydantic_ai import CachedModel

NAMESPACE = "agent-pipeline-demo"
MODEL_NAME = "gpt-4o-mini"  # genai-prices knows its price
PLACES = [
    "Brest", "Dover", "Lisbon", "Oslo", "Naples", "Gdansk", "Bilbao", "Cork", "Tallinn", "Split",
    "Marseille", "Hamburg", "Bergen", "Valletta", "Porto", "Aarhus", "Genoa", "Rijeka",
]  # fmt: skip
ASPECTS = ["tides", "ferries", "weather"]


class Grade(BaseModel):
    """The judge's structured verdict on one brief."""

    score: int
    passed: bool


# -- the simulated model ----------------------------------------------------------------------


class Simulation:
    """What the simulated model did in this process: calls, per agent."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls: dict[str, int] = {}

    def model(self, agent: str) -> FunctionModel:
        async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            self.calls[agent] = self.calls.get(agent, 0) + 1
            text = _transcript(messages)
            rng = random.Random(hashlib.sha256(text.encode()).digest())
            await asyncio.sleep(self.latency * (0.5 + rng.random()))
            parts = ANSWERS[agent](messages, info, rng)
            written = sum(len(str(getattr(p, "content", "") or getattr(p, "args", ""))) for p in parts)
            usage = RequestUsage(input_tokens=350 + len(text) // 4, output_tokens=20 + written // 4)
            return ModelResponse(parts=parts, usage=usage, model_name=MODEL_NAME)

        return FunctionModel(respond, model_name=MODEL_NAME)


def _transcript(messages: list[ModelMessage]) -> str:
    out = []
    for message in messages:
        for part in message.parts:
            content = getattr(part, "content", None) or getattr(part, "args", None)
            out.append(str(content))
    return "\n".join(out)


def _planner(messages: list[ModelMessage], info: AgentInfo, rng: random.Random) -> list[Any]:
    last = messages[-1]
    returns = [p for p in last.parts if isinstance(p, ToolReturnPart)]
    if not returns:  # first step: delegate the case's sub-questions
        prompt = next(p for p in last.parts if isinstance(p, UserPromptPart))
        questions = str(prompt.content).split("Sub-questions: ")[1].split("; ")
        return [ToolCallPart("research", {"question": q}) for q in questions]
    notes = " ".join(str(r.content)[:60] for r in returns)
    return [TextPart(f"Brief for the traveller. {notes} Verdict: go, with care.")]


def _researcher(messages: list[ModelMessage], info: AgentInfo, rng: random.Random) -> list[Any]:
    words = ["calm", "rough", "early", "late", "busy", "quiet", "cheap", "dear", "reliable", "seasonal"]
    facts = " ".join(rng.choice(words) for _ in range(rng.randint(40, 90)))
    return [TextPart(f"Findings: {facts}.")]


def _judge(messages: list[ModelMessage], info: AgentInfo, rng: random.Random) -> list[Any]:
    score = rng.randint(1, 10)
    args = {"score": score, "passed": score >= 5}
    return [ToolCallPart(info.output_tools[0].name, args)]


ANSWERS = {"planner": _planner, "researcher": _researcher, "judge": _judge}


# -- the pipeline -----------------------------------------------------------------------------


def build_agents(cache: AgentCache, models: dict[str, Model | str]) -> tuple[Any, Any]:
    def cached(agent: str) -> CachedModel:
        return CachedModel(models[agent], cache=cache, label=agent)

    researcher = Agent(cached("researcher"), instructions="Answer the sub-question in facts.")
    planner = Agent(
        cached("planner"),
        instructions="Use the research tool for every sub-question, then write a short brief.",
    )
    judge = Agent(cached("judge"), output_type=Grade, instructions="Grade the brief from 1 to 10.")

    @planner.tool
    async def research(ctx: RunContext[None], question: str) -> str:
        """Ask the researcher one sub-question."""
        result = await researcher.run(question, usage=ctx.usage)
        return result.output

    return planner, judge


def case_prompt(case: int) -> str:
    rng = random.Random(case)
    place = PLACES[case % len(PLACES)]
    # Sub-questions come from a small shared pool: many cases ask the same ones, often at once.
    questions = [f"{aspect} at {rng.choice(PLACES)}" for aspect in ASPECTS]
    return f"Case {case}: brief a traveller heading to {place}. Sub-questions: {'; '.join(questions)}"


async def run_suite(cases: int, latency: float, concurrency: int) -> dict[str, Any]:
    simulation = Simulation(latency)
    real = os.environ.get("AGENTCACHE_DEMO_MODEL")
    models: dict[str, Model | str] = {name: real if real else simulation.model(name) for name in ANSWERS}
    limit = asyncio.Semaphore(concurrency)  # like a provider's rate limit
    spent = RequestUsage()

    async with AgentCache(namespace=NAMESPACE) as cache:  # the default: .agentcache/cache.db
        planner, judge = build_agents(cache, models)

        async def run_case(case: int) -> list[Any]:
            nonlocal spent
            async with limit:
                brief = await planner.run(case_prompt(case))
                grade = await judge.run(brief.output)
            for usage in (brief.usage, grade.usage):
                spent += RequestUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
            return [brief.output, grade.output.model_dump()]

        started = time.perf_counter()
        outputs = await asyncio.gather(*(run_case(i) for i in range(cases)))
        wall = time.perf_counter() - started
        stats = cache.stats
    return {
        "upstream_calls": sum(simulation.calls.values()) if not real else stats.misses,
        "wall_seconds": wall,
        "spent_tokens": spent.input_tokens + spent.output_tokens,
        "outputs_digest": hashlib.sha256(json.dumps(outputs).encode()).hexdigest(),
        **stats.as_dict(),
    }


# -- the two runs -----------------------------------------------------------------------------


async def clear() -> int:
    async with AgentCache(namespace=NAMESPACE) as cache:
        return await cache.clear()


def table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    header = ("", "model calls", "hits", "coalesced", "wall time", "call time saved",
              "tokens spent", "tokens saved", "$ saved")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for name, r in runs:
        saved = r["saved_input_tokens"] + r["saved_output_tokens"]
        rows.append((
            name, f"{r['upstream_calls']:,}", f"{r['hits']:,}", f"{r['coalesced']:,}",
            f"{r['wall_seconds']:.2f} s", f"{r['saved_seconds']:.1f} s",
            f"{r['spent_tokens']:,}", f"{saved:,}",
            f"${r['saved_cost']:.4f}",
        ))  # fmt: skip
    return render(header, rows)


def per_label(run: dict[str, Any]) -> str:
    lines = []
    for label, s in run["by_label"].items():
        lines.append(
            f"  {label:<10} hits {s['hits']:>4}  coalesced {s['coalesced']:>4}  "
            f"misses {s['misses']:>4}  saved ${s['saved_cost']:.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.6, help="mean seconds per model call")
    parser.add_argument("--concurrency", type=int, default=50, help="cases in flight at once")
    parser.add_argument("--quick", action="store_true", help="20 cases, 10 ms latency")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.cases, args.latency = 20, 0.01
    if args.child:
        print(json.dumps(asyncio.run(run_suite(args.cases, args.latency, args.concurrency))))
        return
    asyncio.run(clear())
    model = os.environ.get("AGENTCACHE_DEMO_MODEL") or f"simulated {MODEL_NAME}"
    print(f"agentcache + pydantic-ai: {args.cases} eval cases; planner -> 3 researcher sub-agent")
    print(f"calls -> judge (structured output) per case; model: {model}; .agentcache/cache.db\n")
    cold = run_in_fresh_process(__file__, args)
    warm = run_in_fresh_process(__file__, args)
    print(table([("run 1 (cold)", cold), ("run 2 (new process)", warm)]))
    print("\nrun 1 by agent:\n" + per_label(cold))
    print("run 2 by agent:\n" + per_label(warm))
    same = cold["outputs_digest"] == warm["outputs_digest"]
    per_request_ms = warm["wall_seconds"] / max(warm["hits"], 1) * 1e3
    print(f"\nrun 2 outputs identical to run 1: {'yes' if same else 'NO'}; "
          f"speed-up {cold['wall_seconds'] / warm['wall_seconds']:.1f}x (run 2's wall time is "
          f"pydantic-ai's own work, {per_request_ms:.1f} ms per request)")  # fmt: skip
    if not same or warm["upstream_calls"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
